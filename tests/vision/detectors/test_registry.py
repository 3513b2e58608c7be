"""Backend registry: config parsing, unknown types, loading, and the torch-free ONNX path."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from vision.detectors import (
    BACKENDS,
    Detector,
    OnnxRuntimeConfig,
    OpenVinoConfig,
    UltralyticsConfig,
    load_detector,
    parse_config,
)
from vision.errors import UnknownBackendError

REPO_ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize(
    ("raw", "expected_type"),
    [
        ({"type": "onnxruntime", "model": "m.onnx"}, OnnxRuntimeConfig),
        ({"type": "onnxruntime", "model": "m.onnx", "device": "cuda", "intra_op_threads": 2},
         OnnxRuntimeConfig),
        ({"type": "ultralytics", "model": "m.pt", "device": "cuda:0", "half": True}, UltralyticsConfig),
        ({"type": "openvino", "model": "m.onnx", "lanes": 2, "precision": "f32"}, OpenVinoConfig),
    ],
)
def test_parse_config_picks_the_class_by_type(raw, expected_type) -> None:
    config = parse_config(raw)
    assert type(config) is expected_type and config.type == raw["type"]


@pytest.mark.parametrize("kind", ["tensorflow", None, "ONNXRUNTIME"])
def test_unknown_backend_type_lists_valid_ones(kind) -> None:
    with pytest.raises(UnknownBackendError,
                       match=r"unknown detector type .*; valid types: onnxruntime, openvino, ultralytics"):
        parse_config({"type": kind, "model": "m.onnx"})


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({"type": "onnxruntime", "model": "m.onnx", "devcie": "cpu"}, "devcie"),  # typo: extra="forbid"
        ({"type": "onnxruntime", "model": "m.onnx", "device": "npu"}, "device"),
        ({"type": "onnxruntime", "model": "m.onnx", "conf": 1.5}, "conf"),
        ({"type": "onnxruntime", "model": "m.onnx", "imgsz": 16}, "imgsz"),
        ({"type": "onnxruntime"}, "model"),
        ({"type": "ultralytics", "model": "m.pt", "intra_op_threads": 2}, "intra_op_threads"),
    ],
)
def test_bad_config_fields_are_refused(raw, field) -> None:
    with pytest.raises(ValidationError, match=field):
        parse_config(raw)


def test_load_detector_refuses_an_unregistered_type(monkeypatch, tiny_model) -> None:
    monkeypatch.delitem(BACKENDS, "onnxruntime")
    with pytest.raises(UnknownBackendError, match="valid types: openvino, ultralytics"):
        load_detector(OnnxRuntimeConfig(model=tiny_model.onnx_path))


def test_load_detector_builds_and_warms_up_the_onnx_backend(tiny_model) -> None:
    from vision.detectors.onnx_runtime import OnnxRuntimeDetector

    detector = load_detector(parse_config({"type": "onnxruntime", "model": str(tiny_model.onnx_path)}))
    assert isinstance(detector, OnnxRuntimeDetector) and isinstance(detector, Detector)
    assert detector.labels == tiny_model.labels
    results = detector.predict_batch([np.zeros((50, 70, 3), np.uint8)])
    assert len(results) == 1 and results[0].metadata["resolution_wh"] == (70, 50)


@pytest.mark.slow
def test_load_detector_builds_the_ultralytics_backend(tiny_model) -> None:
    from vision.detectors.ultralytics_torch import UltralyticsDetector

    detector = load_detector(UltralyticsConfig(model=tiny_model.pt_path, imgsz=tiny_model.imgsz))
    assert isinstance(detector, UltralyticsDetector) and isinstance(detector, Detector)
    assert detector.labels == tiny_model.labels and detector.input_size == tiny_model.imgsz


@pytest.mark.parametrize("kind", ["onnxruntime", "openvino"])
def test_the_onnx_path_never_imports_torch_or_ultralytics(tiny_model, kind) -> None:
    """Load and run an ONNX backend in a fresh interpreter, then look at sys.modules."""
    pytest.importorskip(kind)
    script = f"""
import json, sys
import numpy as np
from vision.detectors import load_detector, parse_config
from vision.image_io import load_image
import vision.detectors.onnx_runtime, vision.preprocess, vision.postprocess
detector = load_detector(parse_config({{"type": {kind!r}, "model": {str(tiny_model.onnx_path)!r}}}))
detector.predict_batch([np.zeros((40, 60, 3), np.uint8)])
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "ultralytics", "torchvision"))
print(json.dumps({{"heavy": heavy, "runtime": {kind!r} in sys.modules}}))
"""
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["runtime"] is True  # the check ran the real path
    assert report["heavy"] == []
