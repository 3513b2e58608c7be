"""`patrol models list`: table and JSON, classes not trained on, checksum state."""

from __future__ import annotations

import json
import shutil

from typer.testing import CliRunner

from patrol_cli.main import app
from tests.vision.fakes import install_tiny_model

runner = CliRunner()


def _list(models_dir, *args):
    return runner.invoke(app, ["models", "list", "--models-dir", str(models_dir), *args])


def test_json_lists_card_facts_and_classes_not_trained_on(models_dir):
    result = _list(models_dir, "--json")
    assert result.exit_code == 0, result.output
    (entry,) = json.loads(result.stdout)
    assert entry["name"] == "default"
    assert entry["version"] == "2026.11.23-test"
    assert entry["input_size"] == 128
    assert entry["labels"] == ["garbage", "garbage_bin", "smoke"]
    assert entry["trained_classes"] == ["garbage_pile", "straw_burning"]
    assert entry["not_trained_classes"] == ["roadside_clutter", "illegal_structure", "blue_steel_roof"]
    assert entry["sha256"] == "ok"
    assert entry["metrics"] == {"map50": 0.5, "precision": 0.25}  # key scalars only
    assert entry["error"] is None


def test_table_shows_each_model(models_dir):
    result = runner.invoke(app, ["models", "list", "--models-dir", str(models_dir)],
                           env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "default" in result.stdout and "2026.11.23-test" in result.stdout
    assert "roadside_clutter" in result.stdout and "ok" in result.stdout
    assert "map50=0.500" in result.stdout


def test_damaged_missing_and_broken_models_are_flagged(tiny_model, tmp_path):
    root = tmp_path / "models"
    install_tiny_model(tiny_model.onnx_path, root, "good")
    damaged = install_tiny_model(tiny_model.onnx_path, root, "damaged")
    with (damaged / "model.onnx").open("ab") as fh:
        fh.write(b"\0")
    missing = install_tiny_model(tiny_model.onnx_path, root, "missing")
    (missing / "model.onnx").unlink()
    broken = root / "broken"
    broken.mkdir()
    (broken / "card.json").write_text("{not json", encoding="utf-8")
    (root / "not-a-model").mkdir()

    result = _list(root, "--json")
    assert result.exit_code == 1
    by_name = {e["name"]: e for e in json.loads(result.stdout)}
    assert sorted(by_name) == ["broken", "damaged", "good", "missing"]
    assert by_name["good"]["sha256"] == "ok"
    assert by_name["damaged"]["sha256"] == "mismatch"
    assert by_name["missing"]["sha256"] == "missing"
    assert "not valid JSON" in by_name["broken"]["error"]
    shutil.rmtree(root)


def test_no_models_installed_says_so(tmp_path):
    result = _list(tmp_path / "none")
    assert result.exit_code == 0
    assert "no models installed" in result.stdout
    result = _list(tmp_path / "none", "--json")
    assert json.loads(result.stdout) == []


def test_a_narrow_table_folds_identifiers_instead_of_cutting_them(models_dir):
    result = runner.invoke(app, ["models", "list", "--models-dir", str(models_dir)], env={"COLUMNS": "60"})
    assert result.exit_code == 0, result.output
    assert "…" not in result.stdout
    columns: dict[int, str] = {}  # each column's text, its lines joined: a folded cell reads whole
    for line in result.stdout.splitlines():
        if line.startswith("│"):
            for i, cell in enumerate(line.strip("│").split("│")):
                columns[i] = columns.get(i, "") + cell.strip()
    text = " ".join(columns.values())
    for key in ("garbage_pile", "straw_burning", "roadside_clutter", "illegal_structure", "2026.11.23-test"):
        assert key in text
