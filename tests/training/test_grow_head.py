"""Adding classes to a trained detector keeps what it knew (training/grow_head.py, `patrol train`)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.model_factory import TinyModel
from tests.training.synthetic import make_synthetic_dataset
from training.export import synthetic_samples
from training.grow_head import grow_classes
from training.rebuild_pt import calibration_batches
from training.run_record import RunRecord
from training.train import TrainingError, TrainOptions, train
from vision.errors import ModelError
from vision.model_registry import resolve_model

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared" / "datasets"

pytestmark = pytest.mark.slow


def _load_ultralytics() -> None:
    from vision.detectors.ultralytics_offline import import_ultralytics

    import_ultralytics()


def _load(path: Path):  # type: ignore[no-untyped-def]
    import torch

    _load_ultralytics()
    return torch.load(path, weights_only=False)["model"].float().eval()


def _images() -> list[np.ndarray]:
    paths = sorted((SHARED / "cn-garbage-overflow" / "valid" / "images").glob("*.jpg"))[:4]
    paths += sorted((SHARED / "fire8-cctv-firesmoke" / "valid" / "images").glob("*.jpg"))[:4]
    return [image for p in paths if (image := cv2.imread(str(p))) is not None] or synthetic_samples(4)


def test_a_grown_head_scores_the_old_classes_exactly_as_before() -> None:
    import torch

    installed = resolve_model(REPO / "models" / "default")
    base = _load(installed.pytorch_weights())
    labels = [*installed.card.labels, "roadside_clutter"]
    grown = grow_classes(base, labels).eval()
    assert grown.names == dict(enumerate(labels))
    batch = torch.from_numpy(calibration_batches(_images(), installed.card.input_size, batch=8)[0])
    with torch.no_grad():
        before, after = base(batch)[0], grown(batch)[0]  # (N, 4 + classes, anchors)
    old = 4 + len(installed.card.labels)
    assert after.shape[1] == old + 1
    assert float((after[:, :old] - before[:, :old]).abs().max()) < 1e-4
    assert float(after[:, old].max()) < 0.05  # the new class starts at its prior, not at random
    assert float(before[:, 4:old].max()) > 0.5  # the images do hold the old classes


def test_new_labels_must_extend_the_models_own(tiny_model: TinyModel) -> None:
    base = _load(tiny_model.pt_path)
    with pytest.raises(ModelError, match="must start with"):
        grow_classes(base, ["smoke", "garbage", "garbage_bin", "extra"])
    with pytest.raises(ModelError, match="add at least one"):
        grow_classes(base, list(tiny_model.labels))


def test_training_from_a_checkpoint_grows_its_head_for_added_labels(tmp_path: Path) -> None:
    from ultralytics.nn.tasks import DetectionModel

    from training.transplant import save_checkpoint_with_provenance

    _load_ultralytics()
    two = DetectionModel(cfg="yolov5nu.yaml", nc=2, verbose=False)
    two.names = {0: "garbage", 1: "garbage_bin"}
    base = save_checkpoint_with_provenance(two, "yolov5nu", {}, tmp_path / "two.pt")
    labels = ("garbage", "garbage_bin", "smoke")
    dataset = make_synthetic_dataset(tmp_path / "shapes", n_train=8, n_val=4, seed=5, labels=labels)
    options = TrainOptions(data=dataset.data_yaml, base=str(base), name="grown",
                           project=tmp_path / "runs", epochs=1, imgsz=64, batch=8, workers=0, taught_rate=20)
    result = train(options, ["patrol", "train"])
    record = RunRecord.read(result.run_dir)
    head = record.base["head"]
    assert head == {"labels": ["garbage", "garbage_bin"], "action": "grown", "added": ["smoke"]}
    # The added label's rows learnt 20x as fast (training/grow_head.faster_rows), and the record says so.
    assert record.base["taught"] == {"labels": ["smoke"], "rows": [2], "rate": 20.0}
    assert _load(result.best).names == dict(enumerate(labels))

    shuffled = make_synthetic_dataset(tmp_path / "shuffled", n_train=8, n_val=4, seed=5,
                                      labels=("garbage_bin", "garbage", "smoke"))
    with pytest.raises(TrainingError, match="taught labels"):
        train(options.model_copy(update={"name": "unknown", "taught_labels": ("fire",)}), ["patrol", "train"])
    with pytest.raises(TrainingError, match="not the data's labels"):
        train(options.model_copy(update={"data": shuffled.data_yaml, "name": "shuffled"}),
              ["patrol", "train"])
