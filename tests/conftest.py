"""Shared fixtures. Every image is synthesised; the one model is built and exported here."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.model_factory import TinyModel, build_tiny_model

# Real servers (PostgreSQL, Redis) found or started for the `server` tests: tests/servers.
# pytester runs the inner sessions that test that mechanism.
pytest_plugins = ["tests.servers.plugin", "pytester"]


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> TinyModel:
    """An untrained 3-class YOLOv5nu (.pt and dynamic-batch .onnx at 128 px)."""
    return build_tiny_model(Path(tmp_path_factory.mktemp("tiny_model")))
