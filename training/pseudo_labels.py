"""Pseudo-labels: what the serving model already finds, kept in the images that teach a new class.

Reviewed images are labelled for what the reviews teach (a new class, or a place); the classes
the model learned before are mostly left unlabelled in them, because nobody was asked. Trained
as they are, every garbage pile or smoke plume in such an image is a negative: the fine-tune is
taught "there is no garbage here", and the public classes' AP falls (learning without forgetting,
Li and Hoiem 2017: the old model's answers on the new images are the targets for the old
outputs). So before a fine-tune, the base model's boxes for the classes not being taught, at or
above each class's operating threshold, join the reviewed labels; a predicted box that overlaps
a reviewed box is dropped, since a reviewer drew that object and said what it is.

The merged labels are written as a YOLO folder of their own, so a dataset's own label files are
never rewritten. Its images are hard links (a copy across file systems), not symlinks: a list of
training images is written with resolved paths, and a symlink resolves to the original image,
whose labels ultralytics would then read instead of the merged ones.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from training.datasets.labels import YoloBox, read_label_file
from training.datasets.yolo import label_path_for
from training.metrics import box_iou
from training.train import TrainingError
from vision.detections import Detections


class PseudoLabels(BaseModel):
    """Which of the base model's boxes become labels of a reviewed image."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    thresholds: dict[int, float] = Field(
        description="Class id -> the least score kept (the class's operating threshold). Classes "
                    "not named (the ones being taught) are never pseudo-labelled.")
    overlap_iou: float = Field(default=0.5, gt=0.0, le=1.0,
                               description="A predicted box overlapping a reviewed box this much is dropped.")


def merge_boxes(reviewed: Sequence[YoloBox], predicted: Detections, resolution_wh: tuple[int, int],
                pseudo: PseudoLabels) -> list[YoloBox]:
    """The reviewed boxes, then the predicted boxes `pseudo` keeps (normalised to the image)."""
    width, height = resolution_wh
    if width <= 0 or height <= 0:
        raise TrainingError(f"expected a positive image size, got {resolution_wh}")
    floor = np.array([pseudo.thresholds.get(int(c), np.inf) for c in predicted.class_id], dtype=np.float64)
    keep = predicted.confidence >= floor
    scale = np.array([width, height, width, height], dtype=np.float64)
    xyxy = np.clip(predicted.xyxy[keep].astype(np.float64) / scale, 0.0, 1.0)
    classes = predicted.class_id[keep]
    labelled = np.array([[b.x1, b.y1, b.x2, b.y2] for b in reviewed], dtype=np.float64).reshape(-1, 4)
    overlap = box_iou(xyxy, labelled).max(axis=1, initial=0.0)
    added = [YoloBox(int(c), float(x1), float(y1), float(x2), float(y2))
             for c, (x1, y1, x2, y2), o in zip(classes, xyxy, overlap, strict=True)
             if o < pseudo.overlap_iou and x2 > x1 and y2 > y1]
    return [*reviewed, *added]


def _linked_name(image: Path) -> str:
    # Reviewed images may come from several folders with clashing names: the path's digest keeps
    # them apart, and the same image always gets the same name.
    digest = hashlib.sha1(str(image.resolve()).encode("utf-8")).hexdigest()[:10]
    return f"{digest}_{image.name}"


def _resolution_wh(found: Detections, image: Path) -> tuple[int, int]:
    size = found.metadata.get("resolution_wh")
    if size is None:
        raise TrainingError(f"{image}: its detections carry no resolution_wh to normalise their boxes by")
    return int(size[0]), int(size[1])


def write_pseudo_labelled(images: Sequence[Path], detections: Sequence[Detections], out: Path,
                          pseudo: PseudoLabels) -> list[Path]:
    """`out/images/*` linked to `images`, `out/labels/*.txt` their merged labels; the linked paths.

    `detections[i]` is the base model's answer on `images[i]` (pixels of the image's
    `metadata["resolution_wh"]`, as every detector here reports it).
    """
    if len(images) != len(detections):
        raise TrainingError(f"expected one detection per image, got {len(images)} images and "
                            f"{len(detections)} detections")
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "labels").mkdir(parents=True, exist_ok=True)
    linked: list[Path] = []
    for image, found in zip(images, detections, strict=True):
        reviewed, issues = read_label_file(label_path_for(image))
        if issues:
            raise TrainingError(f"{image}: {issues[0]}")
        target = out / "images" / _linked_name(image)
        if target.is_symlink() or target.exists():
            target.unlink()
        try:
            os.link(image.resolve(), target)
        except OSError:  # another file system, or one without hard links
            shutil.copyfile(image, target)
        boxes = merge_boxes(reviewed, found, _resolution_wh(found, image), pseudo)
        label_path_for(target).write_text("".join(f"{b.yolo_line(b.class_id)}\n" for b in boxes),
                                          encoding="utf-8")
        linked.append(target)
    return linked
