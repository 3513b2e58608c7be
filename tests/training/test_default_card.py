"""The shipped model's card is reproduced by a fresh `patrol evaluate` on the public test split
(built from ../shared; skipped where it is absent): per class, per source, cross-class false
alarms, and one corruption of the suite on the card's own sample."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from patrol_cli.main import app
from training.datasets.build import build_dataset, default_data_root
from training.datasets.spec import DatasetSpec
from vision.model_card import ModelCard

REPO = Path(__file__).resolve().parents[2]
CARD = REPO / "models" / "default" / "card.json"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.accuracy,
    pytest.mark.skipif(not (default_data_root() / "MANIFEST.md").is_file(),
                       reason="shared public datasets are not present"),
]


def test_default_card_figures_are_reproduced(tmp_path: Path) -> None:
    metrics = ModelCard.read(CARD).metrics
    suite = metrics["corruption_suite"]
    spec = DatasetSpec.from_yaml(REPO / "datasets" / "patrol-public.yaml")
    built = build_dataset(spec, tmp_path / "public", check_near_duplicates=False)
    assert built.card.hash == metrics["dataset_hash"]
    result = CliRunner().invoke(app, [
        "evaluate", "default", "--data", str(built.out), "--split", "test", "--json", "--per-source",
        "--corruptions", "jpeg_q30", "--corruption-images", str(suite["n_images"]),
        "--seed", str(suite["seed"]), "--models-dir", str(REPO / "models")])
    assert result.exit_code == 0, result.output
    fresh = json.loads(result.stdout.strip().splitlines()[-1])
    for key in ("per_class", "per_source", "cross_class_false_alarms", "false_alarms_per_100_negatives",
                "map50"):
        assert fresh[key] == metrics[key], key
    assert fresh["corruption"]["jpeg_q30"] == metrics["corruption"]["jpeg_q30"]
    assert fresh["corruption_suite"]["clean_ap50"] == suite["clean_ap50"]
