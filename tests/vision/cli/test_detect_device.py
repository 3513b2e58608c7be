"""`patrol detect --device` / PATROL_DEVICE: ONNX Runtime's providers, and a clear error naming
what is missing when a provider is not installed (this machine has the CPU one only)."""

from __future__ import annotations

import json

import onnxruntime as ort
import pytest
from typer.testing import CliRunner

from patrol_cli.main import app

runner = CliRunner()
MISSING = [(device, provider) for device, provider in
           (("cuda", "CUDAExecutionProvider"), ("tensorrt", "TensorrtExecutionProvider"))
           if provider not in ort.get_available_providers()]


def test_cpu_runs(models_dir, image_dir):
    result = runner.invoke(app, ["detect", str(image_dir / "a.png"), "--device", "cpu"],
                           env={"PATROL_MODELS_DIR": str(models_dir)})
    assert result.exit_code == 0, result.output
    (record,) = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    assert record["error"] is None and record["model"] == "default"


@pytest.mark.skipif(not MISSING, reason="both GPU providers are installed here")
@pytest.mark.parametrize(("device", "provider"), MISSING)
@pytest.mark.parametrize("how", ["option", "environment"])
def test_a_missing_provider_is_a_clear_error(models_dir, image_dir, device, provider, how):
    args = ["detect", str(image_dir / "a.png")] + (["--device", device] if how == "option" else [])
    env = {"PATROL_MODELS_DIR": str(models_dir)} | ({"PATROL_DEVICE": device} if how == "environment" else {})
    result = runner.invoke(app, args, env=env)
    assert result.exit_code == 2
    assert provider in result.stderr and "onnxruntime-gpu" in result.stderr
    assert result.stdout == ""


def test_an_unknown_device_is_a_usage_error(models_dir, image_dir):
    result = runner.invoke(app, ["detect", str(image_dir / "a.png"), "--device", "npu"],
                           env={"PATROL_MODELS_DIR": str(models_dir)})
    assert result.exit_code == 2 and "npu" in result.stderr
