"""Detector backends behind one interface, chosen by an explicit registry.

Backends are imported lazily by dotted path, so choosing "onnxruntime" or "openvino" never
imports torch or ultralytics.
"""

from __future__ import annotations

import importlib
from typing import Any

from pydantic import TypeAdapter

from vision.detectors.base import (
    Detector,
    DetectorConfig,
    OnnxRuntimeConfig,
    OpenVinoConfig,
    UltralyticsConfig,
)
from vision.errors import UnknownBackendError

# type key -> "module:Class"; the class has `from_config(config) -> Detector`.
BACKENDS: dict[str, str] = {
    "onnxruntime": "vision.detectors.onnx_runtime:OnnxRuntimeDetector",
    "openvino": "vision.detectors.openvino_runtime:OpenVinoDetector",
    "ultralytics": "vision.detectors.ultralytics_torch:UltralyticsDetector",
}

_CONFIG_ADAPTER: TypeAdapter[DetectorConfig] = TypeAdapter(DetectorConfig)


def parse_config(raw: dict[str, Any]) -> DetectorConfig:
    """Validate a mapping into the right config class, by its `type`."""
    kind = raw.get("type")
    if kind not in BACKENDS:
        raise UnknownBackendError(
            f"unknown detector type {kind!r}; valid types: {', '.join(sorted(BACKENDS))}")
    return _CONFIG_ADAPTER.validate_python(raw)


def load_detector(config: DetectorConfig, *, warmup: bool = True) -> Detector:
    """Build the backend named by `config.type`, and warm it up."""
    target = BACKENDS.get(config.type)
    if target is None:
        raise UnknownBackendError(
            f"unknown detector type {config.type!r}; valid types: {', '.join(sorted(BACKENDS))}")
    module_name, _, class_name = target.partition(":")
    backend_cls = getattr(importlib.import_module(module_name), class_name)
    detector: Detector = backend_cls.from_config(config)
    if warmup:
        detector.warmup()
    return detector


__all__ = [
    "BACKENDS",
    "Detector",
    "DetectorConfig",
    "OnnxRuntimeConfig",
    "OpenVinoConfig",
    "UltralyticsConfig",
    "load_detector",
    "parse_config",
]
