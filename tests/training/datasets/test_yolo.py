"""data.yaml reading the way ultralytics reads it."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from training.datasets.errors import DatasetError
from training.datasets.yolo import label_path_for, read_data_yaml


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


@pytest.mark.parametrize(
    ("image", "label"),
    [
        ("/d/images/train/a.jpg", "/d/labels/train/a.txt"),
        ("/d/images/train/sub/a.b.png", "/d/labels/train/sub/a.b.txt"),
        ("/images/x/images/a.jpg", "/images/x/labels/a.txt"),  # only the last images/ changes
    ],
)
def test_label_path_for(image: str, label: str) -> None:
    assert label_path_for(Path(image)) == Path(label)


@pytest.mark.parametrize("names", [["a", "b"], {0: "a", 1: "b"}, {"0": "a", "1": "b"}])
def test_names_as_list_or_mapping(tmp_path: Path, names: object) -> None:
    _touch(tmp_path / "images" / "val" / "x.jpg")
    (tmp_path / "data.yaml").write_text(yaml.safe_dump({"val": "images/val", "names": names}))
    data = read_data_yaml(tmp_path)
    assert data.names == ("a", "b")
    assert data.root == tmp_path.resolve()
    assert [p.name for p in data.images("val")] == ["x.jpg"]


def test_txt_lists_relative_roots_and_missing_splits(tmp_path: Path) -> None:
    root = tmp_path / "set"
    a = _touch(root / "images" / "a.jpg")
    _touch(root / "images" / "b.png")
    _touch(root / "images" / "notes.md")
    (root / "test.txt").write_text("images/a.jpg\n\n")
    (tmp_path / "cfg").mkdir()
    (tmp_path / "cfg" / "data.yaml").write_text(yaml.safe_dump(
        {"path": "../set", "train": ["images"], "test": "test.txt", "val": "absent", "names": ["a"]}))
    data = read_data_yaml(tmp_path / "cfg" / "data.yaml")
    assert [p.name for p in data.images("train")] == ["a.jpg", "b.png"]
    assert data.images("test") == (a,)
    with pytest.raises(DatasetError, match="neither a folder of images nor a .txt list"):
        data.images("val")
    assert set(data.existing_splits()) == {"train", "test"}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ({"val": "x"}, "expected a mapping with `names`"),
        ({"names": {0: "a", 2: "c"}}, r"expected class ids 0..1"),
        ({"names": "a b"}, "expected `names` as a list"),
    ],
)
def test_bad_data_yaml(tmp_path: Path, content: dict, message: str) -> None:
    (tmp_path / "data.yaml").write_text(yaml.safe_dump(content))
    with pytest.raises(DatasetError, match=message):
        read_data_yaml(tmp_path / "data.yaml")
