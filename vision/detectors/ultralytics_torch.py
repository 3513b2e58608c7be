"""PyTorch backend through ultralytics: `YOLO(weights).predict` on BGR arrays.

The only module in vision/ that may import torch/ultralytics, and only lazily, through
`import_ultralytics()` (offline, no downloads). ultralytics' Results never leave this
module: they become Detections here.

Inputs are ultralytics' default rectangles (`rect=True`), which it applies only to a batch
of same-sized images; so images are grouped by shape and each group is one predict call.
Every image then gets the input it would get alone, the same one OnnxRuntimeDetector builds,
and both backends give the same boxes for the same weights.
"""

from __future__ import annotations

import pickle
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vision.detections import Detections
from vision.detectors.base import SquareInputBackend, UltralyticsConfig
from vision.detectors.ultralytics_offline import import_ultralytics
from vision.errors import ModelError
from vision.preprocess import check_image

# ultralytics accepts any batch size; the batcher's own size decides.
DYNAMIC_MAX_BATCH = 1024


class UltralyticsDetector(SquareInputBackend):
    """A .pt detection model run with ultralytics' predictor."""

    def __init__(self, yolo: Any, config: UltralyticsConfig, *, labels: Sequence[str] | None = None) -> None:
        names = yolo.names
        model_labels = tuple(str(names[i]) for i in range(len(names)))
        self._labels = tuple(labels) if labels is not None else model_labels
        if len(self._labels) != len(model_labels):
            raise ModelError(
                f"expected {len(model_labels)} labels for {config.model}, got {len(self._labels)}")
        self._label_array = np.asarray(self._labels, dtype=str)
        overrides = getattr(yolo, "overrides", {}) or {}
        model_args = getattr(getattr(yolo, "model", None), "args", {}) or {}
        imgsz = config.imgsz or overrides.get("imgsz") or model_args.get("imgsz") or 640
        self._size = int(imgsz if isinstance(imgsz, int) else max(imgsz))
        self._yolo = yolo
        self._config = config
        self._model_name = Path(config.model).stem
        # ultralytics keeps its predictor (and the current batch) on the model object, so one
        # YOLO cannot predict from two threads at once; callers get serialised here.
        self._lock = threading.Lock()

    @classmethod
    def from_config(
        cls, config: UltralyticsConfig, *, labels: Sequence[str] | None = None,
    ) -> UltralyticsDetector:
        path = config.model_file("weights file")
        if path.suffix != ".pt":
            raise ModelError(f"expected a .pt weights file for the ultralytics backend, got {path.name}; "
                             f"use type: onnxruntime for .onnx")
        ultralytics = import_ultralytics()
        try:
            yolo = ultralytics.YOLO(str(path), task="detect")
        # ultralytics reports an unreadable checkpoint as TypeError; torch.load raises the others.
        except (TypeError, RuntimeError, ValueError, KeyError, AttributeError, OSError, EOFError,
                pickle.UnpicklingError) as exc:
            raise ModelError(f"ultralytics cannot load {path}: {exc}") from exc
        if getattr(yolo, "task", "detect") != "detect":
            raise ModelError(f"expected a detection model, got task {yolo.task!r} for {path}")
        return cls(yolo, config, labels=labels)

    # -- Detector protocol --------------------------------------------------------------

    @property
    def max_batch(self) -> int:
        return DYNAMIC_MAX_BATCH

    def predict_batch(self, images: Sequence[np.ndarray]) -> list[Detections]:
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, image in enumerate(images):
            check_image(image, i)
            groups.setdefault(image.shape, []).append(i)
        results: list[Detections | None] = [None] * len(images)
        for indices in groups.values():
            kwargs: dict[str, Any] = {
                "conf": self._config.conf,
                "iou": self._config.iou,
                "max_det": self._config.max_det,
                "imgsz": self._size,
                "device": self._config.device,
                "batch": len(indices),
                "rect": True,
                "verbose": False,
                "save": False,
            }
            if self._config.half:
                kwargs["quantize"] = 16
            with self._lock:
                predictions = self._yolo.predict([images[i] for i in indices], **kwargs)
            for i, result in zip(indices, predictions, strict=True):
                results[i] = self._to_detections(result)
        return results  # type: ignore[return-value]  # every slot is filled above

    def _to_detections(self, result: Any) -> Detections:
        boxes = result.boxes
        class_id = boxes.cls.cpu().numpy().astype(np.int64)
        h, w = result.orig_shape
        return Detections(
            xyxy=boxes.xyxy.cpu().numpy().astype(np.float32),
            confidence=boxes.conf.cpu().numpy().astype(np.float32),
            class_id=class_id,
            data={"class_name": self._label_array[class_id]},
            metadata={"resolution_wh": (int(w), int(h)), "model": self._model_name},
        )
