"""`patrol detect --engine` / PATROL_ENGINE: the same model through either runtime."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from patrol_cli.main import app

runner = CliRunner()


@pytest.mark.parametrize("engine", ["onnxruntime", "openvino", "auto"])
@pytest.mark.parametrize("how", ["option", "environment"])
def test_each_engine_runs(models_dir, image_dir, engine, how):
    if engine == "openvino":
        pytest.importorskip("openvino")
    args = ["detect", str(image_dir / "a.png")] + (["--engine", engine] if how == "option" else [])
    env = {"PATROL_MODELS_DIR": str(models_dir)} | ({"PATROL_ENGINE": engine} if how == "environment" else {})
    result = runner.invoke(app, args, env=env)
    assert result.exit_code == 0, result.output
    (record,) = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    assert record["error"] is None and record["model"] == "default"


def test_an_unknown_engine_is_a_usage_error(models_dir, image_dir):
    result = runner.invoke(app, ["detect", str(image_dir / "a.png"), "--engine", "tflite"],
                           env={"PATROL_MODELS_DIR": str(models_dir)})
    assert result.exit_code == 2 and "tflite" in result.stderr
