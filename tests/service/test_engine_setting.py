"""PATROL_ENGINE for `serve` and the workers: the analyzer opens the model with that runtime."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from service.photo_analyzer import PipelineAnalyzer
from service.settings import Settings

MODELS = Path(__file__).resolve().parents[2] / "models"


@pytest.mark.parametrize(("environment", "expected"), [
    (None, "auto"), ("onnxruntime", "onnxruntime"), ("openvino", "openvino"), ("tflite", None)])
def test_engine_comes_from_the_environment(monkeypatch, environment: str | None,
                                           expected: str | None) -> None:
    if environment is None:
        monkeypatch.delenv("PATROL_ENGINE", raising=False)
    else:
        monkeypatch.setenv("PATROL_ENGINE", environment)
    if expected is None:
        with pytest.raises(ValidationError, match="'auto', 'onnxruntime' or 'openvino'"):
            Settings()
    else:
        assert Settings().engine == expected


@pytest.mark.parametrize("engine", ["onnxruntime", "openvino"])
def test_the_analyzer_opens_the_model_with_the_engine(engine: str) -> None:
    pytest.importorskip(engine)
    analyzer = PipelineAnalyzer(Settings(models_dir=MODELS, engine=engine, rules=[]))
    try:
        assert analyzer.pipeline().engine == engine
    finally:
        analyzer.close()
