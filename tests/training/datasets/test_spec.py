"""Dataset definitions: the shipped one loads; mistakes are refused with a clear message."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from training.datasets.errors import DatasetError
from training.datasets.spec import DatasetSpec
from vision.taxonomy import Taxonomy

REPO = Path(__file__).resolve().parents[3]


def _spec(**changes: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "name": "toy",
        "labels": [{"name": "garbage_pile", "taxonomy": "garbage_pile"},
                   {"name": "garbage_bin", "taxonomy": None}],
        "sources": [{"name": "src", "path": "src", "licence": "CC0 1.0",
                     "classes": {0: "garbage", 1: "bin"},
                     "class_map": {"garbage": "garbage_pile", "bin": "garbage_bin"}}],
    }
    raw.update(changes)
    return raw


def _write(tmp_path: Path, raw: dict[str, Any]) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    return path


def test_every_shipped_definition_loads_and_matches_the_taxonomy() -> None:
    paths = sorted((REPO / "datasets").glob("*.yaml"))
    assert paths, "datasets/ holds no definitions"
    for path in paths:
        spec = DatasetSpec.from_yaml(path)
        spec.check_taxonomy(Taxonomy.default())


def test_public_definition_claims_only_classes_with_public_data() -> None:
    spec = DatasetSpec.from_yaml(REPO / "datasets" / "patrol-public.yaml")
    assert spec.label_map == {"garbage_pile": "garbage_pile", "garbage_bin": None,
                              "smoke": "straw_burning", "fire": "straw_burning"}
    fire8 = next(s for s in spec.sources if s.name == "fire8")
    assert fire8.class_map["default"] is None
    assert next(s for s in spec.sources if s.name == "dfire-sample").split == "test"


def test_a_valid_toy_spec_loads(tmp_path: Path) -> None:
    spec = DatasetSpec.from_yaml(_write(tmp_path, _spec()))
    assert spec.label_names == ("garbage_pile", "garbage_bin")
    assert spec.fractions.test == pytest.approx(0.15)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"sources": [{"name": "src", "path": "p", "licence": "x", "classes": {0: "garbage", 1: "bin"},
                       "class_map": {"garbage": "garbage_pile"}}]}, "missing ['bin']"),
        ({"sources": [{"name": "src", "path": "p", "licence": "x", "classes": {0: "garbage"},
                       "class_map": {"garbage": "garbage_pile", "car": None}}]}, "lacks: ['car']"),
        ({"sources": [{"name": "src", "path": "p", "licence": "x", "classes": {0: "garbage"},
                       "class_map": {"garbage": "rubbish"}}]}, "does not define"),
        ({"labels": [{"name": "a", "taxonomy": None}, {"name": "a", "taxonomy": None}]}, "duplicates"),
        ({"sources": _spec()["sources"] * 2}, "unique source names, got duplicates ['src']"),
        ({"labels": [{"name": "Garbage Pile", "taxonomy": None}]}, "snake_case"),
        ({"fractions": {"train": 0.8, "val": 0.15, "test": 0.15}}, "sum to 1"),
        ({"colour": "red"}, "Extra inputs are not permitted"),
        ({"name": "Toy Set"}, "slug"),
    ],
)
def test_mistakes_are_refused(tmp_path: Path, changes: dict[str, Any], message: str) -> None:
    with pytest.raises(DatasetError, match="invalid dataset definition") as info:
        DatasetSpec.from_yaml(_write(tmp_path, _spec(**changes)))
    assert message in str(info.value)


def test_unknown_taxonomy_key_is_refused(tmp_path: Path) -> None:
    spec = DatasetSpec.from_yaml(_write(tmp_path, _spec(labels=[
        {"name": "garbage_pile", "taxonomy": "rubbish"}, {"name": "garbage_bin", "taxonomy": None}])))
    with pytest.raises(DatasetError, match=r"unknown taxonomy keys \['rubbish'\]"):
        spec.check_taxonomy(Taxonomy.default())


def test_unreadable_file_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="cannot read"):
        DatasetSpec.from_yaml(tmp_path / "absent.yaml")
