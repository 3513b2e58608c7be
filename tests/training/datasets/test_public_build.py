"""Build datasets/patrol-public.yaml from the shared public data (skipped where it is absent)."""

from __future__ import annotations

from pathlib import Path

import pytest

from training.datasets.build import build_dataset, default_data_root
from training.datasets.card import hash_built_folder
from training.datasets.spec import DatasetSpec

REPO = Path(__file__).resolve().parents[3]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (default_data_root() / "MANIFEST.md").is_file(),
                       reason="shared public datasets are not present"),
]


def test_public_dataset_builds_cleanly(tmp_path: Path) -> None:
    spec = DatasetSpec.from_yaml(REPO / "datasets" / "patrol-public.yaml")
    result = build_dataset(spec, tmp_path / "public")
    card = result.card
    assert card.issues == [] and card.duplicates == []
    reports = {s.name: s for s in card.sources}
    # The manifest's image counts: 2221+327, 877+47, 99; every image was read and kept.
    assert {n: r.images_kept for n, r in reports.items()} == {"cn-garbage": 2548, "fire8": 924,
                                                               "dfire-sample": 99}
    # fire8's image-level `default` tags are dropped, its other boxes kept.
    assert reports["fire8"].boxes_dropped == {"default": 160}
    assert reports["fire8"].boxes_kept == {"Fire": 349, "smoke": 511}
    # The tower-camera negatives are all in test.
    assert card.by_source["dfire-sample"].keys() == {"test"}
    for split in ("train", "val", "test"):
        assert card.by_source["cn-garbage"][split].images > 0
    assert hash_built_folder(result.out, card.labels) == card.hash
