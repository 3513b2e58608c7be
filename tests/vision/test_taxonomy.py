"""Taxonomy: the shipped classes, validation errors, classes as data."""

from __future__ import annotations

from contextlib import nullcontext as does_not_raise
from pathlib import Path

import pytest
import yaml

from vision.errors import TaxonomyError
from vision.taxonomy import Taxonomy

PATROL_KEYS = ("garbage_pile", "straw_burning", "roadside_clutter", "illegal_structure", "blue_steel_roof")


def one_class(**overrides) -> dict:
    return {"version": 1, "classes": [{"key": "garbage_pile", "name_zh": "垃圾堆", **overrides}]}


def test_default_taxonomy_has_the_five_patrol_classes_in_order() -> None:
    taxonomy = Taxonomy.default()
    assert taxonomy.keys == PATROL_KEYS
    assert taxonomy.get("straw_burning").name_zh == "秸秆焚烧"
    assert taxonomy.get("blue_steel_roof").sources == ("drone",)
    assert taxonomy.index("roadside_clutter") == 2
    assert "garbage_pile" in taxonomy and "fly_tipping" not in taxonomy
    assert len(taxonomy) == 5 and [c.key for c in taxonomy] == list(PATROL_KEYS)


@pytest.mark.parametrize(
    ("raw", "expectation"),
    [
        (one_class(), does_not_raise()),
        (one_class(key="Garbage Pile"), pytest.raises(TaxonomyError, match="snake_case key")),
        (one_class(key="1pile"), pytest.raises(TaxonomyError, match="snake_case key")),
        (one_class(colour="red"), pytest.raises(TaxonomyError, match="colour like")),
        (one_class(colour="#12345G"), pytest.raises(TaxonomyError, match="colour like")),
        (one_class(threshold=1.5), pytest.raises(TaxonomyError, match="threshold")),
        (one_class(sources=["satellite"]), pytest.raises(TaxonomyError, match="sources")),
        (one_class(ground_anchor="top"), pytest.raises(TaxonomyError, match="ground_anchor")),
        (one_class(dedup_radius_m=0), pytest.raises(TaxonomyError, match="dedup_radius_m")),
        (one_class(name_zh=""), pytest.raises(TaxonomyError, match="name_zh")),
        (one_class(unexpected=True), pytest.raises(TaxonomyError, match="unexpected")),
        ({"version": 1, "classes": []}, pytest.raises(TaxonomyError, match="at least one class")),
        ({"version": 1, "classes": [{"key": "a", "name_zh": "甲"}, {"key": "a", "name_zh": "乙"}]},
         pytest.raises(TaxonomyError, match=r"duplicates \['a'\]")),
        ("not a mapping", pytest.raises(TaxonomyError, match="invalid taxonomy")),
    ],
)
def test_from_mapping_validates(raw, expectation) -> None:
    with expectation:
        Taxonomy.from_mapping(raw)


def test_colour_is_normalised_and_converted_to_bgr() -> None:
    spec = Taxonomy.from_mapping(one_class(colour="#1f77b4")).get("garbage_pile")
    assert spec.colour == "#1F77B4"
    assert spec.bgr == (0xB4, 0x77, 0x1F)


def test_unknown_key_lookup_lists_known_keys() -> None:
    with pytest.raises(TaxonomyError, match="unknown class key 'fly_tipping'; known keys: garbage_pile"):
        Taxonomy.default().get("fly_tipping")
    with pytest.raises(TaxonomyError):
        Taxonomy.default().index("fly_tipping")


def test_a_new_class_is_added_purely_as_data(tmp_path: Path) -> None:
    raw = yaml.safe_load(Path(__file__).parents[2].joinpath("vision/data/taxonomy.yaml").read_text("utf-8"))
    raw["classes"].append({"key": "open_sewage", "name_zh": "污水直排", "colour": "#2E8B57",
                           "threshold": 0.45, "sources": ["camera", "citizen"]})
    path = tmp_path / "taxonomy.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")

    taxonomy = Taxonomy.from_yaml(path)

    assert taxonomy.keys == (*PATROL_KEYS, "open_sewage")
    spec = taxonomy.get("open_sewage")
    assert (spec.name_zh, spec.threshold, spec.sources) == ("污水直排", 0.45, ("camera", "citizen"))
    assert spec.ground_anchor == "center" and spec.dedup_radius_m == 25.0  # defaults


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("classes: [unclosed", "not valid YAML"),
        (None, "cannot read taxonomy"),
    ],
)
def test_from_yaml_reports_unreadable_files(tmp_path: Path, content, match) -> None:
    path = tmp_path / "taxonomy.yaml"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(TaxonomyError, match=match):
        Taxonomy.from_yaml(path)
