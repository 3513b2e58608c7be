"""training/partial_labels.py: on an image labelled for the taught class only, the other classes'
scores get no gradient (neither "background" nor anything else); on a fully labelled image
every class learns; the callback puts the loss on the training model only."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from training.partial_labels import ignore_unlabelled_classes, partial_label_loss
from training.train import TrainingError

NC = 3
TAUGHT = 2


def tiny_model() -> Any:
    from ultralytics.cfg import get_cfg
    from ultralytics.nn.tasks import DetectionModel

    model = DetectionModel("yolov5nu.yaml", nc=NC, verbose=False)
    model.args = get_cfg()
    return model


def score_grads(model: Any, criterion: Any, files: list[str]) -> Any:
    """Gradient of the loss on each image's class scores, (images, classes, anchors)."""
    import torch

    torch.manual_seed(0)
    model.train()
    preds = model(torch.rand(len(files), 3, 64, 64))
    preds["scores"].retain_grad()
    # One labelled box of the taught class in the first image.
    batch = {"im_file": files, "batch_idx": torch.tensor([0.0]), "cls": torch.tensor([[float(TAUGHT)]]),
             "bboxes": torch.tensor([[0.5, 0.5, 0.4, 0.4]])}
    loss, _ = criterion(preds, batch)
    loss.sum().backward()
    return preds["scores"].grad


def test_unlabelled_classes_get_no_gradient_on_partial_images(tmp_path: Path) -> None:
    model = tiny_model()
    reviewed, public = tmp_path / "reviewed.jpg", tmp_path / "public.jpg"
    grads = score_grads(model, partial_label_loss(model, [reviewed], [TAUGHT]), [str(reviewed), str(public)])
    ignored = [c for c in range(NC) if c != TAUGHT]
    assert grads[0, ignored].abs().sum() == 0  # the reviewed image says nothing of the others
    assert grads[0, TAUGHT].abs().sum() > 0  # its own class learns, its box and the background
    assert all(grads[1, c].abs().sum() > 0 for c in range(NC))  # a public image teaches every class


def test_without_partial_images_the_loss_is_ultralytics_own(tmp_path: Path) -> None:
    import torch
    from ultralytics.utils.loss import v8DetectionLoss

    model = tiny_model()
    files = [str(tmp_path / "a.jpg"), str(tmp_path / "b.jpg")]
    ours = score_grads(model, partial_label_loss(model, [], [TAUGHT]), files)
    theirs = score_grads(model, v8DetectionLoss(model), files)
    assert torch.allclose(ours, theirs)


def test_class_ids_beyond_the_model_are_refused() -> None:
    with pytest.raises(TrainingError, match="class ids"):
        partial_label_loss(tiny_model(), [], [NC])


def test_the_callback_sets_the_training_models_loss_only() -> None:
    model, ema = tiny_model(), SimpleNamespace(ema=SimpleNamespace(criterion=None))
    trainer = SimpleNamespace(model=model, ema=ema)
    ignore_unlabelled_classes([Path("r.jpg")], [TAUGHT])["on_train_start"](trainer)
    assert type(model.criterion).__name__ == "PartialLabelLoss" and ema.ema.criterion is None
