"""`build_dataset`: class mapping, counts, determinism, malformed labels, splits, leak check."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import yaml

from tests.training.synthetic import SyntheticDataset, make_synthetic_dataset
from training.datasets.build import build_dataset
from training.datasets.card import DatasetCard, hash_built_folder
from training.datasets.errors import DatasetError
from training.datasets.spec import DatasetSpec
from training.datasets.split import assign_split

LABELS = [{"name": "garbage_pile", "taxonomy": "garbage_pile"},
          {"name": "garbage_bin", "taxonomy": None},
          {"name": "smoke", "taxonomy": "straw_burning"}]
SHAPE_CLASSES = {0: "red_box", 1: "green_ellipse", 2: "blue_box"}
SHAPE_MAP = {"red_box": "garbage_pile", "green_ellipse": "garbage_bin", "blue_box": None}


def _source(root: Path, name: str = "shapes", **changes: Any) -> dict[str, Any]:
    source = {"name": name, "path": str(root), "licence": "CC0 1.0",
              "classes": SHAPE_CLASSES, "class_map": SHAPE_MAP}
    source.update(changes)
    return source


def _spec(*sources: dict[str, Any]) -> DatasetSpec:
    return DatasetSpec.model_validate({"name": "toy", "labels": LABELS, "sources": list(sources)})


@pytest.fixture
def shapes(tmp_path: Path) -> SyntheticDataset:
    return make_synthetic_dataset(tmp_path / "shapes", n_train=30, n_val=10, seed=3)


def test_counts_and_class_mapping(shapes: SyntheticDataset, tmp_path: Path) -> None:
    result = build_dataset(_spec(_source(shapes.root)), tmp_path / "out", check_near_duplicates=False)
    card = result.card
    drawn = [box.class_id for image in shapes.images for box in image.boxes]
    total_boxes = {label: sum(c.boxes[label] for c in card.splits.values()) for label in card.labels}
    assert total_boxes == {"garbage_pile": drawn.count(0), "garbage_bin": drawn.count(1), "smoke": 0}
    report = card.sources[0]
    assert report.boxes_dropped == {"blue_box": drawn.count(2)}
    assert sum(c.images for c in card.splits.values()) == len(shapes.images) == report.images_kept
    only_blue = sum(all(b.class_id == 2 for b in image.boxes) for image in shapes.images)
    only_bins_or_blue = sum(all(b.class_id != 0 for b in image.boxes) for image in shapes.images)
    assert sum(c.images_without_boxes for c in card.splits.values()) == only_blue
    assert sum(c.images_without_violations for c in card.splits.values()) == only_bins_or_blue
    assert card.label_map == {"garbage_pile": "garbage_pile", "garbage_bin": None, "smoke": "straw_burning"}
    assert card.issues == []


def test_label_files_carry_model_label_ids(shapes: SyntheticDataset, tmp_path: Path) -> None:
    out = tmp_path / "out"
    build_dataset(_spec(_source(shapes.root)), out, check_near_duplicates=False)
    image = shapes.images[0]
    built = list(out.glob(f"labels/*/shapes__{image.image_path.stem}.txt"))
    assert len(built) == 1
    lines = [line.split() for line in built[0].read_text().splitlines()]
    kept = [b for b in image.boxes if b.class_id != 2]
    assert [int(line[0]) for line in lines] == [{0: 0, 1: 1}[b.class_id] for b in kept]
    w, h = image.resolution_wh
    for line, box in zip(lines, kept, strict=True):
        cx, cy, bw, bh = map(float, line[1:])
        x1, y1, x2, y2 = box.xyxy
        assert (cx * w, cy * h, bw * w, bh * h) == pytest.approx(
            ((x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1), abs=0.01)


def test_layout_data_yaml_and_hardlinks(shapes: SyntheticDataset, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = build_dataset(_spec(_source(shapes.root)), out, check_near_duplicates=False)
    data = yaml.safe_load((out / "data.yaml").read_text())
    assert data["names"] == {0: "garbage_pile", 1: "garbage_bin", 2: "smoke"}
    assert (data["train"], data["val"], data["test"]) == ("images/train", "images/val", "images/test")
    assert Path(data["path"]) == out.resolve()
    for split, counts in result.card.splits.items():
        assert len(list((out / "images" / split).iterdir())) == counts.images
        assert len(list((out / "labels" / split).iterdir())) == counts.images
    built = next((out / "images").rglob("shapes__train_000.jpg"))
    assert built.stat().st_ino == (shapes.root / "train/images/train_000.jpg").stat().st_ino
    assert result.linked == len(shapes.images) and result.copied == 0
    assert DatasetCard.read(out).hash == result.card.hash
    assert "| test |" in (out / "dataset_card.md").read_text()


def test_build_is_deterministic_and_the_hash_covers_the_files(
        shapes: SyntheticDataset, tmp_path: Path) -> None:
    spec = _spec(_source(shapes.root))
    first = build_dataset(spec, tmp_path / "a", check_near_duplicates=False).card
    second = build_dataset(spec, tmp_path / "b", check_near_duplicates=False).card
    assert first.hash == second.hash
    assert first.model_dump() == second.model_dump()
    assert hash_built_folder(tmp_path / "a", first.labels) == first.hash
    for label_file in (tmp_path / "a" / "labels").rglob("*.txt"):
        twin = tmp_path / "b" / label_file.relative_to(tmp_path / "a")
        assert twin.read_bytes() == label_file.read_bytes()


def test_any_change_in_labels_changes_the_hash(shapes: SyntheticDataset, tmp_path: Path) -> None:
    spec = _spec(_source(shapes.root))
    before = build_dataset(spec, tmp_path / "a", check_near_duplicates=False).card.hash
    label = shapes.images[0].label_path
    label.write_text(label.read_text().replace("0.", "0.0", 1))
    after = build_dataset(spec, tmp_path / "b", check_near_duplicates=False).card.hash
    assert before != after


def test_a_different_mapping_changes_the_hash(shapes: SyntheticDataset, tmp_path: Path) -> None:
    first = build_dataset(_spec(_source(shapes.root)), tmp_path / "a", check_near_duplicates=False)
    remapped = _source(shapes.root, class_map={**SHAPE_MAP, "blue_box": "smoke"})
    second = build_dataset(_spec(remapped), tmp_path / "b", check_near_duplicates=False)
    assert first.card.hash != second.card.hash
    drawn_blue = sum(b.class_id == 2 for image in shapes.images for b in image.boxes)
    assert sum(c.boxes["smoke"] for c in second.card.splits.values()) == drawn_blue


def test_malformed_lines_are_reported_with_file_and_line(shapes: SyntheticDataset, tmp_path: Path) -> None:
    image = shapes.split("train")[0]
    good = image.label_path.read_text().splitlines()
    image.label_path.write_text("\n".join([good[0], "0 0.5 0.5", "9 0.5 0.5 0.1 0.1", *good[1:]]) + "\n")
    result = build_dataset(_spec(_source(shapes.root)), tmp_path / "out", check_near_duplicates=False)
    issues = result.card.issues
    assert len(issues) == 2
    assert issues[0].endswith("train/labels/train_000.txt:2: expected 5 values (class cx cy w h) or a "
                              "polygon (class and at least 3 x y points), got 3 values")
    assert "train_000.txt:3: class id 9 is not one of the source's classes [0, 1, 2]" in issues[1]
    assert result.card.sources[0].label_issues == 2
    kept = sum(b.class_id != 2 for b in image.boxes)
    built = next((tmp_path / "out" / "labels").rglob("shapes__train_000.txt"))
    assert len(built.read_text().splitlines()) == kept
    assert "train_000.txt:2" in (tmp_path / "out" / "dataset_card.md").read_text()


def test_polygons_become_boxes(shapes: SyntheticDataset, tmp_path: Path) -> None:
    image = shapes.split("val")[0]
    image.label_path.write_text("0 0.1 0.2 0.5 0.2 0.3 0.7\n")
    result = build_dataset(_spec(_source(shapes.root)), tmp_path / "out", check_near_duplicates=False)
    built = next((tmp_path / "out" / "labels").rglob("shapes__val_000.txt"))
    assert built.read_text() == "0 0.300000 0.450000 0.400000 0.500000\n"
    assert result.card.sources[0].polygons_converted == 1


def test_split_rule_and_groups(shapes: SyntheticDataset, tmp_path: Path) -> None:
    all_test = _source(shapes.root, name="held-out", split="test")
    card = build_dataset(_spec(all_test), tmp_path / "a", check_near_duplicates=False).card
    assert card.splits["test"].images == len(shapes.images)
    assert card.splits["train"].images == card.splits["val"].images == 0
    # One group per original split folder name ("train_..." / "val_..."): two units in all.
    grouped = _source(shapes.root, group={"pattern": r"^(?P<key>[a-z]+)_\d+"})
    card = build_dataset(_spec(grouped), tmp_path / "b", check_near_duplicates=False).card
    assert card.sources[0].groups == 2
    for prefix, count in (("train", 30), ("val", 10)):
        splits = {p.parent.name for p in (tmp_path / "b" / "images").rglob(f"shapes__{prefix}_*.jpg")}
        assert len(splits) == 1, f"group {prefix} was split over {splits}"
        assert len(list((tmp_path / "b" / "images").rglob(f"shapes__{prefix}_*.jpg"))) == count


def test_byte_identical_images_are_kept_once(shapes: SyntheticDataset, tmp_path: Path) -> None:
    src = shapes.split("train")[1]
    shutil.copyfile(src.image_path, shapes.root / "val/images/copy.jpg")
    result = build_dataset(_spec(_source(shapes.root)), tmp_path / "out", check_near_duplicates=False)
    assert result.card.sources[0].duplicates_skipped == 1
    assert result.card.duplicates == [f"{shapes.root}/val/images/copy.jpg is byte-identical to "
                                      f"{shapes.root}/train/images/train_001.jpg"]


def _group_key_in(split: str) -> str:
    """A group key that the toy spec's fractions put into `split`."""
    fractions = _spec(_source(Path("x"))).fractions
    return next(f"g{i}" for i in range(1000)
                if assign_split("", fractions, source="near", group_key=f"g{i}") == split)


def test_near_duplicates_across_splits_are_counted(tmp_path: Path) -> None:
    drawn = make_synthetic_dataset(tmp_path / "drawn", n_train=5, n_val=1, seed=1)
    source = tmp_path / "near" / "all"
    (source / "images").mkdir(parents=True)
    train_key, test_key = _group_key_in("train"), _group_key_in("test")
    originals = drawn.split("train")
    for i, image in enumerate(originals[:4]):
        shutil.copyfile(image.image_path, source / "images" / f"{train_key}_{i}.jpg")
    # A brighter, re-encoded copy of a train image lands in test: a near-duplicate, not a byte copy.
    pixels = cv2.imread(str(originals[0].image_path))
    brighter = np.clip(pixels.astype(np.int16) + 12, 0, 255).astype(np.uint8)
    cv2.imwrite(str(source / "images" / f"{test_key}_dup.jpg"), brighter, [cv2.IMWRITE_JPEG_QUALITY, 70])
    shutil.copyfile(originals[4].image_path, source / "images" / f"{test_key}_other.jpg")
    spec = _spec(_source(tmp_path / "near", name="near", group={"pattern": r"^(?P<key>g\d+)_"}))
    card = build_dataset(spec, tmp_path / "out").card
    assert card.splits["train"].images == 4 and card.splits["test"].images == 2
    pairs = card.near_duplicates["pairs"]["near"]  # type: ignore[index]
    assert pairs["test~train"] == 1
    assert pairs["test_with_train_duplicate"] == 1
    assert pairs["test_images"] == 2
    assert "| near | 1 |" in (tmp_path / "out" / "dataset_card.md").read_text()


def test_output_folder_safety(shapes: SyntheticDataset, tmp_path: Path) -> None:
    spec = _spec(_source(shapes.root))
    out = tmp_path / "out"
    build_dataset(spec, out, check_near_duplicates=False)
    (out / "images" / "train" / "stale.jpg").write_bytes(b"old")
    build_dataset(spec, out, check_near_duplicates=False)  # a previous build is replaced
    assert not (out / "images" / "train" / "stale.jpg").exists()
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(DatasetError, match="not empty"):
        build_dataset(spec, foreign, check_near_duplicates=False)


def test_missing_source_folder_says_how_to_fix_it(tmp_path: Path) -> None:
    spec = _spec(_source(Path("nowhere"), name="ghost"))
    with pytest.raises(DatasetError, match="--data-root"):
        build_dataset(spec, tmp_path / "out", data_root=tmp_path, check_near_duplicates=False)


def test_unreadable_image_is_an_issue(shapes: SyntheticDataset, tmp_path: Path) -> None:
    (shapes.root / "train/images/broken.jpg").write_bytes(b"not an image at all")
    result = build_dataset(_spec(_source(shapes.root)), tmp_path / "out", check_near_duplicates=False)
    assert result.card.sources[0].images_unreadable == 1
    assert any("broken.jpg:0: cannot read image" in issue for issue in result.card.issues)
