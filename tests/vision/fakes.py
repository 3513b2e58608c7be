"""A real detector of synthetic objects, for tests that need known boxes.

Trained YOLO weights cannot be part of a hermetic test, and untrained ones give random
boxes. `PaintedBoxDetector` finds solid-colour rectangles painted on a dark image by
thresholding and `cv2.findContours` - a genuine detector whose right answers are known:
pure red (BGR (0, 0, v)) is label 0, green label 1, blue label 2; the score is v / 255,
so tests set a score by choosing the paint's brightness.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from vision.detections import Detections

FAKE_LABELS = ("garbage", "garbage_bin", "smoke")
# label index -> the BGR channel its objects are painted in
_CHANNEL_OF_LABEL = (2, 1, 0)
_DARK = 24  # the other channels stay below this for a pixel to count as paint


def paint_box(image: np.ndarray, xyxy: tuple[int, int, int, int], label: int, score: float) -> None:
    """Paint one object of `label` with the given detector score into a BGR image, in place."""
    x1, y1, x2, y2 = xyxy
    colour = [0, 0, 0]
    colour[_CHANNEL_OF_LABEL[label]] = round(score * 255)
    image[y1:y2, x1:x2] = colour


class PaintedBoxDetector:
    """Implements the `Detector` protocol over painted rectangles; records its batch sizes."""

    def __init__(self, *, input_size: int = 64, max_batch: int = 8, min_area_px: int = 4,
                 fail_on_batch: int | None = None) -> None:
        self._input_size = input_size
        self._max_batch = max_batch
        self.min_area_px = min_area_px
        self.fail_on_batch = fail_on_batch  # raise on this (0-based) call, for error tests
        self._lock = threading.Lock()
        self.batch_sizes: list[int] = []
        self.image_shapes: list[tuple[int, ...]] = []

    @property
    def labels(self) -> tuple[str, ...]:
        return FAKE_LABELS

    @property
    def input_size(self) -> int:
        return self._input_size

    @property
    def max_batch(self) -> int:
        return self._max_batch

    def warmup(self) -> None:
        self.predict_batch([np.zeros((8, 8, 3), np.uint8)])
        with self._lock:
            self.batch_sizes.clear()
            self.image_shapes.clear()

    def predict_batch(self, images: Sequence[np.ndarray]) -> list[Detections]:
        with self._lock:
            call = len(self.batch_sizes)
            self.batch_sizes.append(len(images))
            self.image_shapes.extend(image.shape for image in images)
        if self.fail_on_batch is not None and call == self.fail_on_batch:
            raise RuntimeError(f"fake detector failure on batch {call}")
        return [self._detect(image) for image in images]

    def _detect(self, image: np.ndarray) -> Detections:
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"expected a BGR uint8 HxWx3 image, got {image.dtype} {image.shape}")
        boxes, scores, classes = [], [], []
        for label, channel in enumerate(_CHANNEL_OF_LABEL):
            others = [c for c in range(3) if c != channel]
            mask = ((image[:, :, channel] >= _DARK) & (image[:, :, others[0]] < _DARK)
                    & (image[:, :, others[1]] < _DARK)).astype(np.uint8)
            contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
            for contour in contours:
                x, y, w, h = cv2.boundingRect(contour)
                if w * h < self.min_area_px:
                    continue
                boxes.append((x, y, x + w, y + h))
                scores.append(float(image[y:y + h, x:x + w, channel].max()) / 255.0)
                classes.append(label)
        return Detections(
            xyxy=np.array(boxes, np.float32).reshape(-1, 4),
            confidence=np.array(scores, np.float32),
            class_id=np.array(classes, np.int64),
            data={"class_name": np.array([FAKE_LABELS[c] for c in classes], dtype=str)},
        )


# -- an installed model folder built from the session's tiny model ---------------------------

TINY_LABEL_MAP = {"garbage": "garbage_pile", "garbage_bin": None, "smoke": "straw_burning"}


def install_tiny_model(onnx_path: Path, models_dir: Path, name: str = "default", *,
                       input_size: int = 128, thresholds: dict[str, float] | None = None,
                       metrics: dict[str, object] | None = None) -> Path:
    """Copy the tiny ONNX model into `models_dir/name/` with a valid card (real sha256)."""
    from vision.model_card import ModelCard
    from vision.model_registry import sha256_file

    folder = models_dir / name
    folder.mkdir(parents=True, exist_ok=True)
    weights = folder / "model.onnx"
    shutil.copyfile(onnx_path, weights)
    ModelCard(
        name=name, version="2026.11.23-test", sha256=sha256_file(weights), architecture="yolov5nu",
        input_size=input_size, labels=list(FAKE_LABELS), label_map=dict(TINY_LABEL_MAP),
        thresholds=thresholds or {}, trained_classes=["garbage_pile", "straw_burning"],
        metrics=metrics or {},
    ).write(folder / "card.json")
    return folder
