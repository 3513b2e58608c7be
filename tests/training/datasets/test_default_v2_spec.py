"""datasets/patrol-default-v2.yaml: patrol-public plus the aerial vendors as roadside_clutter.

The public part must stay patrol-public's (same labels first, same sources), so that the shipped
model's head grows instead of being re-initialised and both models are measured on the same
public test images."""

from __future__ import annotations

from pathlib import Path

import pytest

from training.datasets.build import build_dataset, default_data_root
from training.datasets.spec import SPLITS, DatasetSpec
from vision.taxonomy import Taxonomy

REPO = Path(__file__).resolve().parents[3]
V2 = REPO / "datasets" / "patrol-default-v2.yaml"
PUBLIC = REPO / "datasets" / "patrol-public.yaml"
SHARED = pytest.mark.skipif(not (default_data_root() / "MANIFEST.md").is_file(),
                            reason="shared public datasets are not present")


def test_v2_is_the_public_spec_plus_roadside_clutter() -> None:
    v2, public = DatasetSpec.from_yaml(V2), DatasetSpec.from_yaml(PUBLIC)
    v2.check_taxonomy(Taxonomy.default())
    assert v2.label_names == (*public.label_names, "roadside_clutter")
    assert v2.label_map == {**public.label_map, "roadside_clutter": "roadside_clutter"}
    assert v2.fractions == public.fractions
    by_name = {s.name: s for s in v2.sources}
    for source in public.sources:  # mappings, groups and split rules unchanged
        assert by_name[source.name] == source
    vendors = by_name["bogota-vendors"]
    assert vendors.path == "bogota-aerial-vendors" and vendors.split == "hash"
    assert vendors.class_map == {"vendedor_ambulante": "roadside_clutter"}
    assert vendors.licence == "CC BY 4.0" and vendors.attribution
    assert vendors.group is not None
    key = vendors.group.group_key
    row = "ortofoto_bogota_kennedy_2021_rgb__chip_{}_{}_png.rf.{}.jpg"
    assert key(row.format(34, 12, "0123abcd")) == key(row.format(34, 13, "ff00"))  # one grid row
    assert key(row.format(34, 12, "0123abcd")) != key(row.format(35, 12, "0123abcd"))


@pytest.mark.slow
@pytest.mark.accuracy
@SHARED
def test_v2_builds_with_vendors_in_every_split_and_public_images_in_place(tmp_path: Path) -> None:
    v2 = build_dataset(DatasetSpec.from_yaml(V2), tmp_path / "v2", check_near_duplicates=False)
    public = build_dataset(DatasetSpec.from_yaml(PUBLIC), tmp_path / "public", check_near_duplicates=False)
    card = v2.card
    assert card.issues == [] and card.duplicates == []
    vendors = {r.name: r for r in card.sources}["bogota-vendors"]
    assert vendors.images_kept == 427  # MANIFEST.md: 321 + 85 + 21
    for split in SPLITS:
        assert card.by_source["bogota-vendors"][split].images > 0
        assert card.splits[split].boxes.get("roadside_clutter", 0) > 0
    for split in SPLITS:  # a public image is in the same split in both builds
        public_in_v2 = {p.name for p in (v2.out / "images" / split).iterdir()
                        if not p.name.startswith("bogota-vendors__")}
        assert public_in_v2 == {p.name for p in (public.out / "images" / split).iterdir()}
