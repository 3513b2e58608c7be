"""The one result type that crosses every stage boundary.

Modelled on `supervision.Detections`: parallel numpy arrays, validated on construction,
coordinates in source-image pixels (xyxy) until geotagging adds ground geometry.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt


def _check_length(name: str, array: np.ndarray | None, n: int) -> None:
    if array is not None and len(array) != n:
        raise ValueError(f"expected {name} to have length {n} (one per box), got {len(array)}")


@dataclass
class Detections:
    """Boxes, scores and class ids of one image, plus optional per-detection extras.

    - `xyxy`: (N, 4) float32, pixel corners x1, y1, x2, y2 in the source image.
    - `confidence`: (N,) float32 in [0, 1].
    - `class_id`: (N,) int64, indices into the producing model's labels.
    - `tracker_id`: (N,) int64 or None.
    - `mask`: (N, H, W) bool or None.
    - `data`: per-detection arrays of length N (e.g. "class_key", "class_name").
    - `metadata`: per-image facts (e.g. "model", "resolution_wh").
    """

    xyxy: npt.NDArray[np.float32]
    confidence: npt.NDArray[np.float32]
    class_id: npt.NDArray[np.int64]
    tracker_id: npt.NDArray[np.int64] | None = None
    mask: npt.NDArray[np.bool_] | None = None
    data: dict[str, np.ndarray] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.xyxy = np.asarray(self.xyxy, dtype=np.float32)
        if self.xyxy.size == 0:
            self.xyxy = self.xyxy.reshape(0, 4)
        if self.xyxy.ndim != 2 or self.xyxy.shape[1] != 4:
            raise ValueError(f"expected xyxy of shape (N, 4), got {self.xyxy.shape}")
        n = len(self.xyxy)
        if not np.all(np.isfinite(self.xyxy)):
            raise ValueError("expected finite xyxy coordinates, got NaN or inf")
        if n and np.any(self.xyxy[:, 2:] < self.xyxy[:, :2]):
            raise ValueError("expected x2 >= x1 and y2 >= y1 in every box, got an inverted box")
        self.confidence = np.asarray(self.confidence, dtype=np.float32).reshape(-1)
        self.class_id = np.asarray(self.class_id, dtype=np.int64).reshape(-1)
        _check_length("confidence", self.confidence, n)
        _check_length("class_id", self.class_id, n)
        if n and (np.any(self.confidence < 0) or np.any(self.confidence > 1) or
                  not np.all(np.isfinite(self.confidence))):
            raise ValueError("expected confidence in [0, 1]")
        if self.tracker_id is not None:
            self.tracker_id = np.asarray(self.tracker_id, dtype=np.int64).reshape(-1)
            _check_length("tracker_id", self.tracker_id, n)
        if self.mask is not None:
            self.mask = np.asarray(self.mask, dtype=bool)
            if self.mask.ndim != 3:
                raise ValueError(f"expected mask of shape (N, H, W), got {self.mask.shape}")
            _check_length("mask", self.mask, n)
        for key, value in list(self.data.items()):
            value = np.asarray(value)
            _check_length(f"data[{key!r}]", value, n)
            self.data[key] = value

    # -- construction -------------------------------------------------------------------

    @classmethod
    def empty(cls, metadata: Mapping[str, Any] | None = None) -> Detections:
        return cls(
            xyxy=np.empty((0, 4), np.float32),
            confidence=np.empty((0,), np.float32),
            class_id=np.empty((0,), np.int64),
            metadata=dict(metadata or {}),
        )

    @classmethod
    def merge(cls, parts: Iterable[Detections], metadata: Mapping[str, Any] | None = None) -> Detections:
        """Concatenate detections of the same image (e.g. tiles); extras must agree in keys."""
        parts = [p for p in parts]
        if not parts:
            return cls.empty(metadata)
        non_empty = [p for p in parts if len(p)] or parts[:1]
        keys = set(non_empty[0].data)
        for p in non_empty[1:]:
            if set(p.data) != keys:
                raise ValueError(f"expected the same data keys in every part, got {sorted(keys)} "
                                 f"and {sorted(p.data)}")
        has_tracker = [p.tracker_id is not None for p in non_empty]
        has_mask = [p.mask is not None for p in non_empty]
        if len(set(has_tracker)) > 1 or len(set(has_mask)) > 1:
            raise ValueError("expected tracker_id and mask to be present in all parts or none")
        merged_meta: dict[str, Any] = {}
        for p in parts:
            merged_meta.update(p.metadata)
        merged_meta.update(metadata or {})
        return cls(
            xyxy=np.concatenate([p.xyxy for p in non_empty]),
            confidence=np.concatenate([p.confidence for p in non_empty]),
            class_id=np.concatenate([p.class_id for p in non_empty]),
            tracker_id=np.concatenate([p.tracker_id for p in non_empty]) if has_tracker[0] else None,
            mask=np.concatenate([p.mask for p in non_empty]) if has_mask[0] else None,
            data={k: np.concatenate([p.data[k] for p in non_empty]) for k in keys},
            metadata=merged_meta,
        )

    # -- access -------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.xyxy)

    def __iter__(self) -> Iterator[int]:
        return iter(range(len(self)))

    def __getitem__(self, index: int | slice | list[int] | np.ndarray) -> Detections:
        """Select detections by index, slice, index list or boolean mask; metadata is kept."""
        if isinstance(index, (int, np.integer)):
            index = [int(index)]
        return Detections(
            xyxy=self.xyxy[index],
            confidence=self.confidence[index],
            class_id=self.class_id[index],
            tracker_id=None if self.tracker_id is None else self.tracker_id[index],
            mask=None if self.mask is None else self.mask[index],
            data={k: v[index] for k, v in self.data.items()},
            metadata=dict(self.metadata),
        )

    @property
    def area(self) -> npt.NDArray[np.float32]:
        """Box areas in square pixels."""
        return (self.xyxy[:, 2] - self.xyxy[:, 0]) * (self.xyxy[:, 3] - self.xyxy[:, 1])

    def with_offset(self, dx: float, dy: float) -> Detections:
        """A copy shifted by (dx, dy) pixels: tile coordinates back to image coordinates."""
        out = self[np.arange(len(self))]
        out.xyxy = out.xyxy + np.array([dx, dy, dx, dy], np.float32)
        return out
