"""The commands end to end: datasets build, evaluate (tiny ONNX model), thresholds, promote."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from patrol_cli.main import app
from tests.model_factory import TinyModel
from tests.training.synthetic import make_synthetic_dataset
from tests.vision.fakes import install_tiny_model
from vision.model_card import ModelCard

runner = CliRunner()

SPEC = {
    "name": "shapes",
    "labels": [{"name": "garbage_pile", "taxonomy": "garbage_pile"},
               {"name": "garbage_bin", "taxonomy": None},
               {"name": "smoke", "taxonomy": "straw_burning"}],
    "fractions": {"train": 0.5, "val": 0.25, "test": 0.25},
    "sources": [{"name": "shapes", "path": "shapes", "licence": "CC0 1.0",
                 "classes": {0: "red_box", 1: "green_ellipse", 2: "blue_box"},
                 "class_map": {"red_box": "garbage_pile", "green_ellipse": "garbage_bin",
                               "blue_box": "smoke"}}],
}


@pytest.fixture
def built(tmp_path: Path) -> Path:
    make_synthetic_dataset(tmp_path / "data" / "shapes", n_train=24, n_val=8, seed=11)
    label = tmp_path / "data" / "shapes" / "train" / "labels" / "train_003.txt"
    label.write_text(label.read_text() + "0 0.5 0.5 0.1\n")
    spec = tmp_path / "shapes.yaml"
    spec.write_text(yaml.safe_dump(SPEC, allow_unicode=True))
    result = runner.invoke(app, ["datasets", "build", str(spec), str(tmp_path / "built"),
                                 "--data-root", str(tmp_path / "data")])
    assert result.exit_code == 0, result.output
    assert "skipped: shapes/train/labels/train_003.txt:" in result.stderr
    assert "1 label lines or images skipped; hash " in result.stdout
    return tmp_path / "built"


def test_datasets_build_reports_a_missing_source(tmp_path: Path) -> None:
    spec = tmp_path / "shapes.yaml"
    spec.write_text(yaml.safe_dump(SPEC))
    result = runner.invoke(app, ["datasets", "build", str(spec), str(tmp_path / "out"),
                                 "--data-root", str(tmp_path / "nowhere")])
    assert result.exit_code == 2
    assert "does not exist" in result.stderr


@pytest.mark.slow
def test_evaluate_choose_thresholds_and_promote(tiny_model: TinyModel, built: Path, tmp_path: Path) -> None:
    models = tmp_path / "models"
    install_tiny_model(tiny_model.onnx_path, models, "candidate", input_size=tiny_model.imgsz)
    common = ["--data", str(built), "--models-dir", str(models)]

    # Thresholds on val: written into the card.
    result = runner.invoke(app, ["evaluate", "candidate", "--split", "val", "--choose-thresholds",
                                 "--min-threshold", "0.001", *common])
    assert result.exit_code == 0, result.output
    assert "wrote thresholds into" in result.stderr
    card = ModelCard.read(models / "candidate" / "card.json")
    assert card.dataset["threshold_selection"]["split"] == "val"

    # Test metrics: the last stdout line is the JSON object, stored verbatim in the card.
    plots = tmp_path / "plots"
    result = runner.invoke(app, ["evaluate", "candidate", "--split", "test", "--json", "--write-card",
                                 "--plots", str(plots), *common])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(summary["per_class"]) == {"garbage_pile", "straw_burning"}
    for row in summary["per_class"].values():
        assert set(row) >= {"ap50", "ap50_95", "precision", "recall", "n_images", "n_boxes"}
        assert row["ap50"] is None or 0.0 <= row["ap50"] <= 1.0
    dataset_card = json.loads((built / "dataset_card.json").read_text())
    assert summary["dataset_hash"] == dataset_card["hash"]
    assert summary["n_images"] == dataset_card["splits"]["test"]["images"]
    assert summary["n_negative_images"] == dataset_card["splits"]["test"]["images_without_violations"]
    assert ModelCard.read(models / "candidate" / "card.json").metrics == summary
    assert sorted(p.name for p in plots.iterdir()) == ["confusion_matrix.png", "pr_curves.png"]

    # Refusals with clear messages.
    result = runner.invoke(app, ["evaluate", "candidate", "--split", "test", "--choose-thresholds", *common])
    assert result.exit_code == 2 and "not on the test split" in result.stderr
    result = runner.invoke(app, ["evaluate", "missing-model", *common])
    assert result.exit_code == 2 and "no model card" in result.stderr

    # The first promotion is accepted; a candidate measured on another dataset is refused.
    result = runner.invoke(app, ["promote", "candidate", "--models-dir", str(models)])
    assert result.exit_code == 0, result.output
    assert "PROMOTED" in result.stdout
    other = dict(summary, dataset_hash="0" * 64)
    install_tiny_model(tiny_model.onnx_path, models, "other", input_size=tiny_model.imgsz, metrics=other)
    result = runner.invoke(app, ["promote", "other", "--models-dir", str(models)])
    assert result.exit_code == 1
    assert "REFUSED" in result.stdout and "different datasets" in result.stdout
    assert ModelCard.read(models / "default" / "card.json").name == "candidate"
