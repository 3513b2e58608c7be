"""`patrol detect --rule blue_roof`: the rule's findings join the model's on drone photos."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
from typer.testing import CliRunner

from benchmarks.ortho_scenes import make_scene
from patrol_cli.main import app

runner = CliRunner()


def _keys(args: list[str], models_dir: Path) -> list[str]:
    result = runner.invoke(app, ["detect", *args], env={"PATROL_MODELS_DIR": str(models_dir)})
    assert result.exit_code == 0, result.output
    (record,) = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    return [det["class_key"] for det in record["detections"]]


def test_the_rule_option_adds_blue_roofs_on_drone_photos(models_dir: Path, tmp_path: Path) -> None:
    scene = make_scene(np.random.default_rng(0), size_px=1000, gsd_m=0.05, roofs=1, confusions=())
    path = tmp_path / "roof.png"
    assert cv2.imwrite(str(path), scene.image)
    assert (
        _keys([str(path), "--source", "drone", "--rule", "blue_roof"], models_dir).count("blue_steel_roof")
        == 1
    )
    assert "blue_steel_roof" not in _keys([str(path), "--source", "drone"], models_dir)
    assert "blue_steel_roof" not in _keys(
        [str(path), "--source", "citizen", "--rule", "blue_roof"], models_dir
    )


def test_an_unknown_rule_is_refused_naming_the_valid_ones(models_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "grey.png"
    assert cv2.imwrite(str(path), np.full((64, 64, 3), 128, np.uint8))
    result = runner.invoke(
        app, ["detect", str(path), "--rule", "red_roof"], env={"PATROL_MODELS_DIR": str(models_dir)}
    )
    assert result.exit_code == 2
    assert "valid rules: blue_roof" in result.output
