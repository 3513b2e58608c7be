"""PATROL_DEVICE for `serve` and the workers: the analyzer opens the model on that provider,
and a provider this onnxruntime lacks is an error naming it (503 to clients, like a missing model)."""

from __future__ import annotations

from pathlib import Path

import onnxruntime as ort
import pytest
from pydantic import ValidationError

from service.photo_analyzer import PipelineAnalyzer
from service.settings import Settings
from tests.vision.fakes import install_tiny_model
from vision.errors import BackendUnavailableError


def test_device_comes_from_the_environment(monkeypatch):
    monkeypatch.delenv("PATROL_DEVICE", raising=False)
    assert Settings().device == "cpu"
    monkeypatch.setenv("PATROL_DEVICE", "tensorrt")
    assert Settings().device == "tensorrt"
    with pytest.raises(ValidationError, match="'cpu', 'cuda' or 'tensorrt'"):
        Settings(device="gpu")


@pytest.mark.parametrize(("device", "provider"), [("cuda", "CUDAExecutionProvider"),
                                                  ("tensorrt", "TensorrtExecutionProvider")])
def test_a_missing_provider_names_what_to_install(tmp_path: Path, device: str, provider: str):
    if provider in ort.get_available_providers():
        pytest.skip(f"{provider} is installed here")
    # The provider is chosen before the weights are parsed: any bytes with a valid card do.
    weights = tmp_path / "weights.onnx"
    weights.write_bytes(b"not parsed")
    install_tiny_model(weights, tmp_path / "models")
    analyzer = PipelineAnalyzer(Settings(models_dir=tmp_path / "models", device=device))
    with pytest.raises(BackendUnavailableError) as caught:
        analyzer.pipeline()
    assert provider in str(caught.value) and "onnxruntime-gpu" in str(caught.value)
