"""training/pseudo_labels.py: the base model's boxes of the classes not taught join a reviewed
image's labels at their operating thresholds, never over a reviewed box, never for the taught
class; the merged labels live in a folder of their own and the dataset's files stay as they were."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from training.datasets.labels import YoloBox, read_label_file
from training.datasets.yolo import label_path_for
from training.pseudo_labels import PseudoLabels, merge_boxes, write_pseudo_labelled
from training.train import TrainingError
from vision.detections import Detections

GARBAGE, SMOKE, CLUTTER = 0, 1, 2  # CLUTTER plays the class being taught
PSEUDO = PseudoLabels(thresholds={GARBAGE: 0.35, SMOKE: 0.3})
STALL = YoloBox(CLUTTER, 0.1, 0.1, 0.3, 0.3)  # a reviewer's box


def found(*boxes: tuple[int, float, tuple[float, float, float, float]], wh: tuple[int, int] = (200, 100)
          ) -> Detections:
    """Detections in pixels of a `wh` image: (class id, score, xyxy)."""
    return Detections(xyxy=np.array([b[2] for b in boxes], dtype=np.float32).reshape(-1, 4),
                      confidence=np.array([b[1] for b in boxes], dtype=np.float32),
                      class_id=np.array([b[0] for b in boxes], dtype=np.int64),
                      metadata={"resolution_wh": wh})


@pytest.mark.parametrize(("predicted", "added"), [
    pytest.param(found(), [], id="nothing found"),
    pytest.param(found((GARBAGE, 0.5, (100, 50, 200, 100))), [YoloBox(GARBAGE, 0.5, 0.5, 1.0, 1.0)],
                 id="garbage above its threshold, normalised"),
    pytest.param(found((GARBAGE, 0.34, (100, 50, 200, 100))), [], id="garbage below its threshold"),
    pytest.param(found((SMOKE, 0.3, (0, 0, 100, 100))), [YoloBox(SMOKE, 0.0, 0.0, 0.5, 1.0)],
                 id="smoke at its threshold"),
    pytest.param(found((CLUTTER, 0.99, (100, 50, 200, 100))), [], id="never the taught class"),
    pytest.param(found((GARBAGE, 0.9, (22, 11, 58, 29))), [], id="over the reviewed box"),
    pytest.param(found((GARBAGE, 0.9, (-10, -5, 300, 10))), [YoloBox(GARBAGE, 0.0, 0.0, 1.0, 0.1)],
                 id="clipped to the image"),
    pytest.param(found((GARBAGE, 0.9, (250, 0, 300, 10))), [], id="wholly outside the image"),
])
def test_merge_keeps_the_reviewed_boxes_and_adds_what_the_base_finds(predicted: Detections,
                                                                     added: list[YoloBox]) -> None:
    merged = merge_boxes([STALL], predicted, (200, 100), PSEUDO)
    assert merged[0] == STALL
    assert [b.class_id for b in merged[1:]] == [b.class_id for b in added]
    for got, want in zip(merged[1:], added, strict=True):
        assert (got.x1, got.y1, got.x2, got.y2) == pytest.approx((want.x1, want.y1, want.x2, want.y2))


def test_a_box_beside_a_reviewed_one_is_kept() -> None:
    # Garbage under a stall's edge is another object: only a large overlap means "the same one".
    merged = merge_boxes([STALL], found((GARBAGE, 0.9, (50, 20, 90, 40))), (200, 100), PSEUDO)
    assert len(merged) == 2 and merged[1].class_id == GARBAGE


def image_with_labels(folder: Path, name: str, lines: str) -> Path:
    (folder / "images").mkdir(parents=True, exist_ok=True)
    (folder / "labels").mkdir(parents=True, exist_ok=True)
    image = folder / "images" / name
    image.write_bytes(b"jpeg")
    label_path_for(image).write_text(lines, encoding="utf-8")
    return image


def test_merged_labels_are_written_beside_links_and_the_originals_stay(tmp_path: Path) -> None:
    first = image_with_labels(tmp_path / "a", "x.jpg", "2 0.2 0.2 0.2 0.2\n")
    second = image_with_labels(tmp_path / "b", "x.jpg", "")  # same name, another folder
    answers = [found((GARBAGE, 0.8, (100, 50, 200, 100))), found((SMOKE, 0.1, (0, 0, 10, 10)))]
    linked = write_pseudo_labelled([first, second], answers, tmp_path / "out", PSEUDO)
    assert len(set(linked)) == 2 and all(p.parent == tmp_path / "out" / "images" for p in linked)
    # Not symlinks: a train list holds resolved paths, and they must still lead to the merged labels.
    assert all(p.samefile(i) and not p.is_symlink() for p, i in zip(linked, (first, second), strict=True))
    boxes = [read_label_file(label_path_for(p))[0] for p in linked]
    assert [b.class_id for b in boxes[0]] == [CLUTTER, GARBAGE]
    assert boxes[1] == []  # smoke below its threshold
    assert label_path_for(first).read_text(encoding="utf-8") == "2 0.2 0.2 0.2 0.2\n"
    # Again (the next round): the same names, the labels rewritten, not appended.
    again = write_pseudo_labelled([first], answers[:1], tmp_path / "out", PSEUDO)
    assert again == linked[:1] and len(read_label_file(label_path_for(again[0]))[0]) == 2


def test_refuses_mismatched_answers_and_sizeless_detections(tmp_path: Path) -> None:
    image = image_with_labels(tmp_path, "x.jpg", "")
    with pytest.raises(TrainingError, match="one detection per image"):
        write_pseudo_labelled([image], [], tmp_path / "out", PSEUDO)
    sizeless = Detections(xyxy=np.zeros((0, 4)), confidence=np.zeros(0), class_id=np.zeros(0))
    with pytest.raises(TrainingError, match="resolution_wh"):
        write_pseudo_labelled([image], [sizeless], tmp_path / "out", PSEUDO)
