"""Trainable weights rebuilt from an ONNX export (training/rebuild_pt.py) and shipped with the model."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.model_factory import TinyModel
from training.export import check_parity, synthetic_samples
from training.rebuild_pt import (
    calibration_batches,
    load_folded_weights,
    onnx_initializers,
    rebuild_installed,
)
from training.registry import install_model
from training.train import TrainingError, resolve_base
from vision.errors import ModelError
from vision.model_registry import InstalledModel, resolve_model, sha256_file

REPO = Path(__file__).resolve().parents[2]
DEFAULT = REPO / "models" / "default"
SHARED = REPO.parent / "shared" / "datasets"


def _install_tiny(tiny_model: TinyModel, models_dir: Path) -> InstalledModel:
    fields = {"name": "tiny", "version": "1", "architecture": "yolov5nu", "input_size": tiny_model.imgsz,
              "labels": list(tiny_model.labels),
              "label_map": {"garbage": "garbage_pile", "garbage_bin": None, "smoke": "straw_burning"}}
    return install_model(tiny_model.onnx_path, fields, models_dir=models_dir)


def _image_folder(folder: Path, count: int = 12) -> Path:
    folder.mkdir(parents=True)
    for i in range(count):
        image = synthetic_samples(4, seed=i)[i % 4]
        cv2.imwrite(str(folder / f"{i:02d}.jpg"), image)
    return folder


@pytest.mark.slow
def test_rebuilt_weights_reproduce_the_export_and_ship_hashed(tiny_model: TinyModel, tmp_path: Path) -> None:
    models_dir = tmp_path / "models"
    installed = _install_tiny(tiny_model, models_dir)
    with pytest.raises(TrainingError, match="rebuild-pt tiny"):
        resolve_base("tiny", models_dir)

    rebuilt = rebuild_installed(installed, [_image_folder(tmp_path / "images")], count=8)

    shipped = rebuilt.card.pytorch
    assert shipped is not None and shipped.file == "model.pt"
    assert shipped.sha256 == sha256_file(rebuilt.folder / "model.pt")
    assert shipped.details["parity"]["passed"] is True
    assert shipped.details["rebuild"]["onnx_sha256"] == rebuilt.card.sha256
    # The card on disk says the same, and `--base tiny` now means these verified weights.
    reread = resolve_model("tiny", models_dir)
    assert reread.card.pytorch == shipped
    assert resolve_base("tiny", models_dir) == str(rebuilt.folder / "model.pt")
    assert "model.pt" in (rebuilt.folder / "card.md").read_text(encoding="utf-8")

    with (rebuilt.folder / "model.pt").open("r+b") as handle:
        handle.seek(-1, 2)
        last = handle.read(1)
        handle.seek(-1, 2)
        handle.write(bytes([last[0] ^ 0xFF]))
    with pytest.raises(ModelError, match="damaged or replaced"):
        resolve_base("tiny", models_dir)


def test_paths_and_architectures_pass_through_resolve_base() -> None:
    assert resolve_base("runs/x/weights/best.pt") == "runs/x/weights/best.pt"
    assert resolve_base("yolov5nu.yaml") == "yolov5nu.yaml"
    with pytest.raises(TrainingError, match="installed model"):
        resolve_base("no-such-model-anywhere")


@pytest.mark.slow
def test_folded_weights_must_fit_the_architecture(tiny_model: TinyModel) -> None:
    from vision.detectors.ultralytics_offline import import_ultralytics

    import_ultralytics()
    from ultralytics.nn.tasks import DetectionModel

    two_classes = DetectionModel(cfg="yolov5nu.yaml", nc=2, verbose=False)
    with pytest.raises(ModelError, match="has no"):
        load_folded_weights(two_classes, onnx_initializers(tiny_model.onnx_path))


def _shipped_default() -> tuple[Path, InstalledModel]:
    installed = resolve_model(DEFAULT)
    return installed.pytorch_weights(), installed


def _real_images(count: int) -> list[np.ndarray]:
    """Validation images of the default model's sources, else synthetic ones."""
    paths = sorted((SHARED / "cn-garbage-overflow" / "valid" / "images").glob("*.jpg"))[:count // 2]
    paths += sorted((SHARED / "fire8-cctv-firesmoke" / "valid" / "images").glob("*.jpg"))[:count // 2]
    images = [image for p in paths if (image := cv2.imread(str(p))) is not None]
    return images or synthetic_samples(count)


@pytest.mark.slow
def test_the_shipped_default_weights_are_the_serving_model() -> None:
    weights, installed = _shipped_default()
    parity = check_parity(weights, installed.weights, _real_images(8), installed.card.input_size)
    assert parity.passed, parity.failures
    assert parity.boxes_compared > 0


@pytest.mark.slow
def test_calibrated_batch_norms_keep_training_mode_near_serving() -> None:
    """Why the batch norms are re-split rather than left as identities: in training mode they
    normalise by the batch's statistics, which must be near the running ones, or the first
    fine-tuning steps start from a different function than the one that serves."""
    import torch

    from vision.detectors.ultralytics_offline import import_ultralytics

    import_ultralytics()
    from ultralytics.nn.tasks import DetectionModel

    weights, installed = _shipped_default()
    calibrated = torch.load(weights, weights_only=False)["model"].float()
    identity = DetectionModel(cfg="yolov5nu.yaml", nc=len(installed.card.labels), verbose=False)
    load_folded_weights(identity, onnx_initializers(installed.weights))
    batch = torch.from_numpy(calibration_batches(_real_images(16), installed.card.input_size, batch=16)[0])

    def neck_outputs(model: torch.nn.Module, training: bool) -> list[torch.Tensor]:
        layers = model.model  # type: ignore[union-attr]
        seen: dict[int, torch.Tensor] = {}
        hooks = [layers[i].register_forward_hook(lambda _m, _i, out, i=i: seen.__setitem__(i, out.detach()))
                 for i in (17, 20, 23)]
        model.train(training)
        with torch.no_grad():
            model(batch)
        for hook in hooks:
            hook.remove()
        return [seen[i] for i in (17, 20, 23)]

    def gap(model: torch.nn.Module) -> list[float]:
        serving, training = neck_outputs(model, False), neck_outputs(model, True)
        return [float((t - s).norm() / s.norm()) for t, s in zip(training, serving, strict=True)]

    for same, other in zip(neck_outputs(calibrated, False), neck_outputs(identity, False), strict=True):
        assert float((same - other).abs().max()) < 1e-3  # one function when serving
    calibrated_gap, identity_gap = gap(calibrated), gap(identity)
    assert all(c < 0.75 * i for c, i in zip(calibrated_gap, identity_gap, strict=True)), (
        calibrated_gap, identity_gap)


def test_patrol_train_from_names_what_it_accepts(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from patrol_cli.main import app

    data = tmp_path / "data.yaml"
    data.write_text("path: .\ntrain: images\nval: images\nnames: [garbage_pile]\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["train", "--name", "x", "--project", str(tmp_path / "runs"),
                                      "--data", str(data), "--from", "no-such-model-anywhere"])
    assert result.exit_code == 2
    assert "installed model" in result.output
