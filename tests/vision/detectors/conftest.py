"""Fixtures for backend tests: a tiny model whose outputs depend on the image."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.model_factory import TinyModel
from vision.detectors.ultralytics_offline import import_ultralytics


@pytest.fixture(scope="session")
def responsive_model(tiny_model: TinyModel, tmp_path_factory: pytest.TempPathFactory) -> TinyModel:
    """`tiny_model` with seeded weights, BatchNorm statistics calibrated and class biases zeroed.

    Freshly initialised YOLO layers shrink the signal layer by layer, so the untrained
    model's scores are its biases: the same few values for every anchor and image, full of
    ties. Calibrating BatchNorm on random batches restores unit-scale features, and zero
    class biases put scores around 0.5, so boxes and scores differ per image and anchor and
    backend comparisons test something.
    """
    ultralytics = import_ultralytics()
    import torch

    folder = Path(tmp_path_factory.mktemp("responsive_model"))
    yolo = ultralytics.YOLO(str(tiny_model.pt_path))
    model = yolo.model
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, module in model.named_modules():
            if isinstance(module, torch.nn.Conv2d) and ".dfl" not in name:  # DFL's conv is a fixed arange
                # PyTorch's default initialisation, seeded: the same model in every run.
                torch.nn.init.kaiming_uniform_(module.weight, a=5 ** 0.5, generator=generator)
            if isinstance(module, torch.nn.BatchNorm2d):
                module.reset_running_stats()
                module.momentum = None  # cumulative average over the calibration batches
        for branch in model.model[-1].cv3:  # the class-score branches of the Detect head
            branch[-1].bias.zero_()
        model.train()
        for _ in range(4):
            model(torch.rand((8, 3, tiny_model.imgsz, tiny_model.imgsz), generator=generator))
        model.eval()
    pt_path = folder / "responsive.pt"
    yolo.save(pt_path)
    exported = Path(ultralytics.YOLO(str(pt_path)).export(
        format="onnx", imgsz=tiny_model.imgsz, dynamic=True, simplify=True, batch=1, verbose=False))
    onnx_path = folder / "responsive.onnx"
    if exported != onnx_path:
        shutil.move(exported, onnx_path)
    return TinyModel(pt_path, onnx_path, tiny_model.imgsz, tiny_model.labels)
