"""Fixtures for CLI tests: an installed tiny model and a folder of synthetic images."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.vision.fakes import install_tiny_model


@pytest.fixture(scope="session")
def models_dir(tiny_model, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """models/default from the session's tiny model; thresholds 0 so that its (untrained,
    low-scoring) boxes come through and the output has detections to check."""
    root = tmp_path_factory.mktemp("models")
    install_tiny_model(tiny_model.onnx_path, root, "default", thresholds={"garbage": 0.0, "smoke": 0.0},
                       metrics={"map50": 0.5, "precision": 0.25, "confusion": [[1, 0], [0, 1]]})
    return root


IMAGE_SIZES = {"a.png": (200, 150), "nested/b.jpg": (320, 240), "nested/deeper/c.png": (96, 128)}


@pytest.fixture
def image_dir(tmp_path: Path) -> Path:
    """Synthetic images (noise with a rectangle) in nested folders, plus a non-image file."""
    rng = np.random.default_rng(7)
    root = tmp_path / "images"
    for name, (width, height) in IMAGE_SIZES.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        image = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
        cv2.rectangle(image, (10, 10), (width // 2, height // 2), (40, 80, 200), -1)
        assert cv2.imwrite(str(path), image)
    (root / "notes.txt").write_text("not an image")
    return root
