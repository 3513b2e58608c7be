"""Choosing the runtime of an installed model's ONNX export: the names, "auto", refusals that
say what to use instead, and `Pipeline.from_installed(engine=...)` opening what was chosen."""

from __future__ import annotations

from contextlib import nullcontext as does_not_raise
from pathlib import Path

import pytest

from vision.detectors import engines
from vision.detectors.engines import (
    openvino_importable,
    openvino_precision,
    openvino_wins_here,
    resolve_engine,
)
from vision.errors import BackendUnavailableError
from vision.model_registry import resolve_model
from vision.pipeline import Pipeline

MODELS = Path(__file__).resolve().parents[3] / "models"


@pytest.mark.parametrize(
    ("engine", "device", "quantization", "installed", "expected", "expectation"),
    [
        ("auto", "cpu", None, True, "openvino", does_not_raise()),
        ("auto", "cpu", None, False, "onnxruntime", does_not_raise()),
        ("auto", "cpu", "int8-static", True, "onnxruntime", does_not_raise()),
        ("auto", "cuda", None, True, "onnxruntime", does_not_raise()),
        ("onnxruntime", "cpu", None, True, "onnxruntime", does_not_raise()),
        ("onnxruntime", "tensorrt", "int8-static", True, "onnxruntime", does_not_raise()),
        ("openvino", "cpu", None, True, "openvino", does_not_raise()),
        ("openvino", "cuda", None, True, None,
         pytest.raises(BackendUnavailableError, match="cpu only, got device 'cuda'")),
        ("openvino", "cpu", "int8-static", True, None,
         pytest.raises(BackendUnavailableError, match=r"quantized \(int8-static\).*onnxruntime")),
        ("tflite", "cpu", None, True, None,
         pytest.raises(BackendUnavailableError, match="valid engines: auto, onnxruntime, openvino")),
    ],
)
def test_resolve_engine(monkeypatch, engine, device, quantization, installed, expected, expectation) -> None:
    # `installed`: the extra is there and runs in a reduced precision on this CPU
    monkeypatch.setattr(engines, "openvino_wins_here", lambda: installed)
    with expectation:
        assert resolve_engine(engine, device=device, quantization=quantization) == expected


@pytest.mark.parametrize(
    ("installed", "precision", "expected"),
    [(True, "bf16", True), (True, "f16", True), (True, "f32", False), (False, "bf16", False)],
)
def test_auto_takes_openvino_only_where_it_runs_in_a_reduced_precision(
        monkeypatch, installed, precision, expected) -> None:
    """OpenVINO beat ONNX Runtime only on a CPU where it ran bfloat16; running f32 on an
    AVX2-only EPYC it was slower (37.0 against 48.3 images/s), so f32 keeps ONNX Runtime."""
    monkeypatch.setattr(engines, "openvino_importable", lambda: installed)
    monkeypatch.setattr(engines, "openvino_precision", lambda: precision)
    assert openvino_wins_here() is expected
    assert resolve_engine("auto") == ("openvino" if expected else "onnxruntime")


@pytest.mark.skipif(not openvino_importable(), reason="the openvino extra is not installed")
def test_openvino_says_its_precision_on_this_cpu() -> None:
    assert openvino_precision() in {"f32", "bf16", "f16"}


# What "auto" opens here depends on this CPU's precision under OpenVINO (read once, above).
AUTO_HERE = "openvino" if openvino_wins_here() else "onnxruntime"


@pytest.mark.skipif(not openvino_importable(), reason="the openvino extra is not installed")
@pytest.mark.parametrize(
    ("model", "engine", "expected"),
    [("default", "auto", AUTO_HERE), ("default", "onnxruntime", "onnxruntime"),
     ("default", "openvino", "openvino"), ("default-int8", "auto", "onnxruntime")],
)
def test_the_pipeline_opens_the_chosen_engine(model, engine, expected) -> None:
    with Pipeline.from_installed(resolve_model(model, MODELS), engine=engine) as pipeline:
        assert pipeline.engine == expected
        assert type(pipeline.detector).engine == expected
        # lanes as onnxruntime's: one batcher worker per lane of the detector
        assert pipeline.batcher_config.workers == pipeline.detector.lanes  # type: ignore[attr-defined]
