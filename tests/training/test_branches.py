"""A taught class on its own branch (training/branches.py, `patrol train --branch`): the base's
classes scored exactly as the base scores them, in PyTorch, in the exported ONNX file and in the
serving pipeline."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.training.synthetic import make_synthetic_dataset
from training.export import export_model, synthetic_samples
from training.grow_head import grow_classes
from training.train import TrainingError
from vision.model_registry import resolve_model

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared" / "datasets"
SHARED_LAYERS = 10  # YOLOv5's backbone, what a fine-tune freezes (training/finetune.Recipe)

pytestmark = pytest.mark.slow


def _base():  # type: ignore[no-untyped-def]
    from vision.detectors.ultralytics_offline import import_ultralytics

    import_ultralytics()
    from ultralytics.nn.tasks import load_checkpoint

    model, _ = load_checkpoint(str(resolve_model(REPO / "models" / "default").pytorch_weights()))
    return model.eval()


def _taught(base, moved_from: int = SHARED_LAYERS, seed: int = 0):  # type: ignore[no-untyped-def]
    """The base grown by one class with every layer from `moved_from` on changed, as a fine-tune
    with that many layers frozen changes them."""
    import torch

    labels = [base.names[i] for i in sorted(base.names)] + ["roadside_clutter"]
    taught = grow_classes(base, labels)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in list(taught.model)[moved_from:]:
            for p in layer.parameters():
                p.add_(0.02 * torch.randn(p.shape, generator=generator))
            for name, buffer in layer.named_buffers():
                if name.endswith("running_mean"):
                    buffer.add_(0.05)
    return taught.eval()


def _images() -> list[np.ndarray]:
    paths = sorted((SHARED / "cn-garbage-overflow" / "valid" / "images").glob("*.jpg"))[:3]
    paths += sorted((SHARED / "fire8-cctv-firesmoke" / "valid" / "images").glob("*.jpg"))[:3]
    return [image for p in paths if (image := cv2.imread(str(p))) is not None] or synthetic_samples(6)


def _batch(size: int = 320):  # type: ignore[no-untyped-def]
    import torch

    frames = [cv2.resize(image, (size, size))[:, :, ::-1] for image in _images()]
    return torch.from_numpy(np.stack(frames).transpose(0, 3, 1, 2).copy()).float() / 255.0


def test_the_base_classes_score_as_the_base_and_the_taught_class_as_taught() -> None:
    import torch

    from training.branches import compose

    base = _base()
    taught = _taught(base)
    branched = compose(base, taught, SHARED_LAYERS)
    batch = _batch()
    with torch.no_grad():
        expected_base, expected_taught, got = base(batch)[0], taught(batch)[0], branched(batch)[0]
    anchors, old = expected_base.shape[2], 4 + len(base.names)
    assert got.shape == (batch.shape[0], old + 1, 2 * anchors)
    # The first half of the candidates is the base's, bit for bit, with no score for the new class.
    assert torch.equal(got[:, :old, :anchors], expected_base)
    assert float(got[:, old, :anchors].abs().max()) == 0.0
    # The second half: the taught model's boxes and new class, no score for the base's classes.
    assert torch.equal(got[:, :4, anchors:], expected_taught[:, :4])
    assert torch.equal(got[:, old, anchors:], expected_taught[:, old])
    assert float(got[:, 4:old, anchors:].abs().max()) == 0.0
    # ...and the taught model differs from the base where it scores the old classes, so the equality
    # above is the branch's doing, not a taught model that had not moved.
    assert float((expected_taught[:, 4:old] - expected_base[:, 4:old]).abs().max()) > 1e-3
    assert branched.names == taught.names
    assert 0.3 < branched.branch_cost() < 1.0  # the neck and head again, not the whole network


def test_a_taught_model_that_is_not_the_base_below_the_branch_is_refused() -> None:
    from training.branches import compose

    base = _base()
    with pytest.raises(TrainingError, match="layer 5 of the taught model is not the base's"):
        compose(base, _taught(base, moved_from=5), SHARED_LAYERS)
    with pytest.raises(TrainingError, match="must be the base's"):
        compose(base, base, SHARED_LAYERS)  # teaches nothing
    with pytest.raises(TrainingError, match="cannot share"):
        compose(base, _taught(base), len(base.model))


def test_a_branched_model_is_not_trained() -> None:
    from training.branches import compose

    base = _base()
    branched = compose(base, _taught(base), SHARED_LAYERS)
    branched.train()
    with pytest.raises(TrainingError, match="fine-tune its taught model"):
        branched(_batch()[:1])


def test_a_branched_checkpoint_exports_and_serves_the_base_classes_as_the_base(tmp_path: Path) -> None:
    import torch

    from training.branches import compose_checkpoints
    from training.transplant import check_ultralytics_checkpoint
    from vision.detectors.engines import open_export

    base_pt = resolve_model(REPO / "models" / "default").pytorch_weights()
    base = _base()
    taught_pt = tmp_path / "taught.pt"
    torch.save({"model": _taught(base), "ema": None, "train_args": {"imgsz": 320}}, taught_pt)
    branched_pt = compose_checkpoints(base_pt, taught_pt, tmp_path / "branched.pt", SHARED_LAYERS)
    check_ultralytics_checkpoint(branched_pt)  # our own class passes the checkpoint allow-list
    samples = tmp_path / "samples"
    samples.mkdir()
    for i, image in enumerate(_images()):
        cv2.imwrite(str(samples / f"{i}.jpg"), image)
    # export_model installs nothing unless the ONNX file agrees with the PyTorch model
    result = export_model(branched_pt, "branched", tmp_path / "models", imgsz=320, samples=samples)
    assert result.parity.passed
    assert result.card.labels == [*base.names.values(), "roadside_clutter"]
    assert result.card.training["branched"]["shared"] == SHARED_LAYERS  # the card says what it serves

    # The serving backend (ONNX Runtime, this project's decoder and NMS) on both installed models
    labels = list(base.names.values())
    served = open_export("onnxruntime", result.onnx, imgsz=320, conf=0.05, labels=result.card.labels,
                         end2end=False)
    shipped = resolve_model(REPO / "models" / "default")
    before = open_export("onnxruntime", shipped.weights, imgsz=320, conf=0.05, labels=labels, end2end=False)
    compared = 0
    for got, want in zip(served.predict_batch(_images()), before.predict_batch(_images()), strict=True):
        mine = np.isin(got.data["class_name"], labels)
        assert sorted(got.data["class_name"][mine]) == sorted(want.data["class_name"])
        np.testing.assert_allclose(np.sort(got.confidence[mine]), np.sort(want.confidence), atol=1e-4)
        compared += len(want)
    assert compared > 0  # the images hold boxes of the base's classes


def test_patrol_train_branch_writes_a_branched_checkpoint(tmp_path: Path) -> None:
    import typer
    from typer.testing import CliRunner
    from ultralytics.nn.tasks import DetectionModel

    from training.cli_train import register
    from training.transplant import save_checkpoint_with_provenance

    _base()  # ultralytics imported offline
    two = DetectionModel(cfg="yolov5nu.yaml", nc=2, verbose=False)
    two.names = {0: "garbage", 1: "garbage_bin"}
    base_pt = save_checkpoint_with_provenance(two, "yolov5nu", {}, tmp_path / "base.pt")
    labels = ("garbage", "garbage_bin", "smoke")
    dataset = make_synthetic_dataset(tmp_path / "shapes", n_train=8, n_val=4, seed=5, labels=labels)
    app = typer.Typer()
    register(app)
    common = ["train", "--data", str(dataset.data_yaml), "--base", str(base_pt), "--project",
              str(tmp_path / "runs"), "--epochs", "1", "--imgsz", "64", "--batch", "8", "--workers", "0"]
    result = CliRunner().invoke(app, [*common, "--name", "taught", "--fine-tune", "--branch"])
    assert result.exit_code == 0, result.output
    printed = json.loads(result.output[result.output.index("{"):])
    branched = Path(printed["branched"])
    assert branched == tmp_path / "runs" / "taught" / "weights" / "branched.pt"
    saved = __import__("torch").load(branched, weights_only=False)
    assert saved["branched"]["shared"] == SHARED_LAYERS
    # the record names files by name and hash, relative to the branched file: no machine paths
    assert saved["branched"]["taught"]["file"] == "best.pt"
    assert saved["branched"]["base"]["file"] == "base.pt"
    assert len(saved["branched"]["base"]["sha256"]) == 64
    assert saved["model"].names == dict(enumerate(labels))

    refused = CliRunner().invoke(app, [*common, "--name", "whole", "--branch"])
    assert refused.exit_code != 0
    assert "--branch needs --fine-tune" in refused.output

    # A further fine-tune starts from the taught checkpoint: the branched one is refused, not
    # rebuilt by ultralytics as one model of the base's layers.
    again = CliRunner().invoke(app, [*common, "--base", str(branched), "--name", "again", "--fine-tune"])
    assert again.exit_code != 0
    assert "is a branched model" in again.output and "(best.pt, beside it)" in again.output
