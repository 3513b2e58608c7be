"""A tiny YOLO dataset made on the fly: coloured shapes on noise, with known labels.

Each class is one shape in one colour (a red rectangle, a green ellipse, a blue
rectangle), drawn on uniform noise, so a model can learn it in a few steps and a test
knows every box exactly. Layout matches the shared public sets and what ultralytics reads:

    root/data.yaml
    root/<split>/images/<split>_<i>.jpg
    root/<split>/labels/<split>_<i>.txt      (class cx cy w h, normalised)

Nothing here imports torch or ultralytics, so dataset and evaluation tests can use it too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import yaml

# label -> (shape, BGR colour). Colours far apart so that class is never ambiguous.
SHAPES: dict[str, tuple[str, tuple[int, int, int]]] = {
    "red_box": ("rectangle", (0, 0, 230)),
    "green_ellipse": ("ellipse", (0, 210, 0)),
    "blue_box": ("rectangle", (230, 0, 0)),
}
LABELS: tuple[str, ...] = tuple(SHAPES)
_STYLES = tuple(SHAPES.values())  # class id -> (shape, colour), whatever the labels are called


@dataclass(frozen=True)
class SyntheticBox:
    """One drawn shape: class id and pixel corners in its image."""

    class_id: int
    xyxy: tuple[int, int, int, int]


@dataclass(frozen=True)
class SyntheticImage:
    split: str
    image_path: Path
    label_path: Path
    resolution_wh: tuple[int, int]
    boxes: tuple[SyntheticBox, ...]


@dataclass(frozen=True)
class SyntheticDataset:
    root: Path
    data_yaml: Path
    labels: tuple[str, ...]
    images: tuple[SyntheticImage, ...] = field(repr=False)

    def split(self, name: str) -> list[SyntheticImage]:
        return [image for image in self.images if image.split == name]


def _draw_image(rng: np.random.Generator, width: int, height: int, max_shapes: int, n_classes: int
                ) -> tuple[np.ndarray, list[SyntheticBox]]:
    # Dim noise keeps the saturated shapes clearly separable from the background.
    image = rng.integers(0, 110, size=(height, width, 3), dtype=np.uint8)
    boxes: list[SyntheticBox] = []
    for _ in range(int(rng.integers(1, max_shapes + 1))):
        class_id = int(rng.integers(0, n_classes))
        shape, colour = _STYLES[class_id]
        box_w = int(rng.integers(max(8, width // 5), max(9, width // 2)))
        box_h = int(rng.integers(max(8, height // 5), max(9, height // 2)))
        x1 = int(rng.integers(0, width - box_w))
        y1 = int(rng.integers(0, height - box_h))
        x2, y2 = x1 + box_w, y1 + box_h
        if shape == "rectangle":
            cv2.rectangle(image, (x1, y1), (x2 - 1, y2 - 1), colour, thickness=-1)
        else:
            centre = ((x1 + x2) // 2, (y1 + y2) // 2)
            cv2.ellipse(image, centre, (box_w // 2, box_h // 2), 0, 0, 360, colour, thickness=-1)
        boxes.append(SyntheticBox(class_id, (x1, y1, x2, y2)))
    return image, boxes


def _yolo_lines(boxes: list[SyntheticBox], width: int, height: int) -> str:
    lines = []
    for box in boxes:
        x1, y1, x2, y2 = box.xyxy
        cx, cy = (x1 + x2) / 2 / width, (y1 + y2) / 2 / height
        w, h = (x2 - x1) / width, (y2 - y1) / height
        lines.append(f"{box.class_id} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}")
    return "\n".join(lines) + "\n"


def make_synthetic_dataset(root: Path, *, n_train: int = 24, n_val: int = 8, n_test: int = 0,
                           size_range: tuple[int, int] = (64, 96), max_shapes: int = 2,
                           seed: int = 0, labels: tuple[str, ...] = LABELS) -> SyntheticDataset:
    """Write a YOLO dataset of coloured shapes under `root` and return what was drawn.

    `labels` renames the classes (e.g. to taxonomy keys, so evaluation can score them); class
    id i is always drawn in the i-th style of SHAPES.

    Shapes may overlap (a later one paints over an earlier one); labels still list both,
    which is what a careless labeller would do too, and it keeps the maker simple.
    """
    if size_range[0] < 32 or size_range[1] < size_range[0]:
        raise ValueError(f"expected 32 <= min <= max image size, got {size_range}")
    if n_train < 1 or n_val < 1 or n_test < 0:
        raise ValueError(f"expected n_train >= 1, n_val >= 1, n_test >= 0, got "
                         f"{n_train}, {n_val}, {n_test}")
    if not 1 <= len(labels) <= len(_STYLES):
        raise ValueError(f"expected 1 to {len(_STYLES)} labels, got {len(labels)}")
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    images: list[SyntheticImage] = []
    counts = {"train": n_train, "val": n_val, "test": n_test}
    for split, count in counts.items():
        if count == 0:
            continue
        image_dir, label_dir = root / split / "images", root / split / "labels"
        image_dir.mkdir(parents=True, exist_ok=True)
        label_dir.mkdir(parents=True, exist_ok=True)
        for index in range(count):
            width = int(rng.integers(size_range[0], size_range[1] + 1))
            height = int(rng.integers(size_range[0], size_range[1] + 1))
            pixels, boxes = _draw_image(rng, width, height, max_shapes, len(labels))
            image_path = image_dir / f"{split}_{index:03d}.jpg"
            label_path = label_dir / f"{split}_{index:03d}.txt"
            # Quality 95: JPEG ringing must not blur the shapes' edges much.
            if not cv2.imwrite(str(image_path), pixels, [cv2.IMWRITE_JPEG_QUALITY, 95]):
                raise OSError(f"could not write {image_path}")
            label_path.write_text(_yolo_lines(boxes, width, height), encoding="utf-8")
            images.append(SyntheticImage(split, image_path, label_path, (width, height), tuple(boxes)))
    data = {"path": str(root), "train": "train/images", "val": "val/images",
            "names": dict(enumerate(labels))}
    if n_test:
        data["test"] = "test/images"
    data_yaml = root / "data.yaml"
    data_yaml.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return SyntheticDataset(root, data_yaml, tuple(labels), tuple(images))
