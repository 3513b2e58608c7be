"""Rule detectors run beside the model: on whole images and large raster windows, not on
model tiles, because a rule measures shape and area on the ground (a 20 m roof is several
model tiles wide) and needs no network input size.

A rule has `labels` (taxonomy keys), a `name` and `detect(image, *, gsd_m)` returning
`Detections` with `data["footprint_xy"]` (N, 4, 2) and `data["area_m2"]` (N,). The pipeline
(vision/pipeline.py) gives its rules the class ids after the model's labels, so their
findings go through the same class mapping, geotagging, dedup and ledger as the model's.
Rules are chosen by name from an explicit registry; an unknown name lists the valid ones.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from vision.detections import Detections
from vision.errors import UnknownBackendError
from vision.postprocess import nms
from vision.tiling import TileWindow, touches_inner_edge

# name -> "module:Class"; the class builds with no arguments (thresholds from its own YAML).
RULES: dict[str, str] = {
    "blue_roof": "vision.detectors.blue_roof:BlueRoofDetector",
}
# Nadir views only: a rule's areas and shapes mean nothing in an oblique camera frame.
RULE_SOURCES = ("drone", "orthomosaic")
FOOTPRINT_KEYS = ("footprint_xy", "area_m2")
# Raster windows for rules: this many metres a side, overlapping by the largest roof we expect
# to see whole, so every roof up to that size lies uncut in some window.
RULE_WINDOW_M = 120.0
RULE_OVERLAP_M = 40.0
DUPLICATE_IOU = 0.3


@runtime_checkable
class WholeImageRule(Protocol):
    @property
    def labels(self) -> tuple[str, ...]:
        """Taxonomy keys, indexed by the rule's class ids."""

    @property
    def name(self) -> str:
        """Name and threshold version, for the findings' metadata."""

    def detect(self, image: np.ndarray, *, gsd_m: float | None = None) -> Detections:
        """Findings in one BGR uint8 image; `gsd_m`: metres per pixel, when known."""


def load_rules(names: Iterable[str]) -> tuple[WholeImageRule, ...]:
    """The registered rules by name, in the order given."""
    rules = []
    for name in names:
        target = RULES.get(name)
        if target is None:
            raise UnknownBackendError(f"unknown rule {name!r}; valid rules: {', '.join(sorted(RULES))}")
        module_name, _, class_name = target.partition(":")
        rules.append(getattr(importlib.import_module(module_name), class_name)())
    return tuple(rules)


def with_footprints(dets: Detections) -> Detections:
    """`dets` with footprint keys: a box's footprint is its four corners, its area unknown (NaN)."""
    if all(key in dets.data for key in FOOTPRINT_KEYS):
        return dets
    x1, y1, x2, y2 = (dets.xyxy[:, i] for i in range(4))
    corners = np.stack(
        [np.stack([x1, y1], 1), np.stack([x2, y1], 1), np.stack([x2, y2], 1), np.stack([x1, y2], 1)], axis=1
    ).astype(np.float32)
    out = dets[np.arange(len(dets))]
    out.data = {**out.data, "footprint_xy": corners, "area_m2": np.full(len(dets), np.nan, np.float32)}
    return out


def conform(dets: Detections, like: Detections) -> Detections:
    """`dets` with every data key `like` has and it lacks (the model's own extras, such as
    its class names), filled with blanks ("" for text, NaN for numbers, else None), so the
    two can be merged."""
    data = dict(dets.data)
    for key, values in like.data.items():
        if key not in data:
            blank: object = "" if values.dtype.kind in "US" else np.nan if values.dtype.kind == "f" else None
            data[key] = np.full(
                len(dets), blank, dtype=values.dtype if values.dtype.kind in "USf" else object
            )
    out = dets[np.arange(len(dets))]
    out.data = data
    return out


class RuleSet:
    """The rules one pipeline runs; rule i's class c becomes class id first_class_id + offset."""

    def __init__(self, rules: Sequence[WholeImageRule], first_class_id: int) -> None:
        self.rules = tuple(rules)
        self._offsets = []
        offset = first_class_id
        for rule in self.rules:
            self._offsets.append(offset)
            offset += len(rule.labels)

    def __bool__(self) -> bool:
        return bool(self.rules)

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(label for rule in self.rules for label in rule.labels)

    @property
    def names(self) -> list[str]:
        return [rule.name for rule in self.rules]

    def detect(self, pixels: np.ndarray, gsd_m: float | None) -> Detections:
        """Every rule's findings in one image, class ids in the pipeline's label space."""
        parts = []
        for rule, offset in zip(self.rules, self._offsets, strict=True):
            found = rule.detect(pixels, gsd_m=gsd_m)
            found.class_id = found.class_id + offset
            found.data = {key: found.data[key] for key in FOOTPRINT_KEYS}
            parts.append(found)
        return with_footprints(Detections.merge(parts))

    def detect_windows(
        self,
        windows: Iterable[tuple[TileWindow, np.ndarray]],
        resolution_wh: tuple[int, int],
        gsd_m: float | None,
    ) -> Detections:
        """Findings over a raster's windows (see `raster_window_px`), in raster pixels.

        A finding cut by a window's inner edge is dropped (the overlap shows it whole in a
        neighbour); one seen whole by two windows is kept once (class-aware NMS)."""
        parts = [
            whole_in_raster(self.detect(pixels, gsd_m), window, resolution_wh)
            for window, pixels in windows
        ]
        merged = with_footprints(Detections.merge(parts))
        return merged[nms(merged.xyxy, merged.confidence, DUPLICATE_IOU, merged.class_id)]


def whole_in_raster(
    found: Detections,
    window: TileWindow,
    resolution_wh: tuple[int, int],
    offset: tuple[int, int] | None = None,
) -> Detections:
    """A window's findings with footprints (`data["footprint_xy"]`) moved to raster pixels.

    Findings cut by the window's inner edge are dropped: the overlap shows them whole in a
    neighbour. `offset` is where the window's pixels start when that differs from the window's
    place in `resolution_wh` (a window of an overlap area inside a larger grid)."""
    x, y = offset if offset is not None else (window.x, window.y)
    found = found[~touches_inner_edge(found.xyxy, window, resolution_wh, 1.0)]
    shifted = found.with_offset(x, y)
    shifted.data["footprint_xy"] = found.data["footprint_xy"] + np.array([x, y], np.float32)
    return shifted


def raster_window_px(gsd_m: float | None) -> tuple[int, float]:
    """(window side in pixels, overlap fraction) for rules over a raster of `gsd_m` m/px."""
    if gsd_m is None:
        return 2048, 0.25
    return max(256, round(RULE_WINDOW_M / gsd_m)), RULE_OVERLAP_M / RULE_WINDOW_M
