"""Partially labelled images: a fine-tune learns from them only the classes they were labelled for.

A reviewed image is labelled for the classes its review asked about (a new class); the other
classes' objects in it were never looked for. ultralytics' loss treats every unlabelled place as
background for every class, so without this each reviewed image teaches "no garbage, no smoke
here", wherever the model saw some, and the old classes fade. `ignore_unlabelled_classes` gives
those images' classification loss a zero weight for the classes they were not labelled for: no
negative and no positive from them, while the replayed public images, labelled for the old
classes, keep teaching those. Box regression is unchanged (it only follows labelled boxes).

It rides on ultralytics' own class weights (v8DetectionLoss.class_weights, a (1, 1, classes)
factor on the per-anchor BCE), made per image for each batch; training without mosaic is assumed
(ultralytics closes mosaic for the last `close_mosaic` = 10 epochs, the whole of a short fine-tune),
since a mosaic tile of another image would take the first image's weights.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from training.train import TrainingError


def _key(path: str | Path) -> str:
    return str(Path(path).resolve())


def _weights_per_image(files: Iterable[str], partial: frozenset[str], labelled: Any, everything: Any) -> Any:
    import torch

    return torch.stack([labelled if _key(f) in partial else everything for f in files]).unsqueeze(1)


def partial_label_loss(model: Any, partial: Iterable[Path], labelled_classes: Iterable[int]) -> Any:
    """A v8DetectionLoss for `model` whose classification loss on the `partial` images counts only
    `labelled_classes`; on other images every class counts (times the model's own class weights)."""
    import torch
    from ultralytics.utils.loss import v8DetectionLoss

    class PartialLabelLoss(v8DetectionLoss):
        def __init__(self) -> None:
            super().__init__(model)
            classes = sorted(set(labelled_classes))
            if not classes or classes[0] < 0 or classes[-1] >= self.nc:
                raise TrainingError(f"expected labelled class ids in 0..{self.nc - 1}, got {classes}")
            self.partial = frozenset(_key(p) for p in partial)
            self.own_weights = self.class_weights  # (1, 1, nc) or None
            self.everything = torch.ones(self.nc, device=self.device)
            self.labelled = torch.zeros(self.nc, device=self.device)
            self.labelled[classes] = 1.0

        def loss(self, preds: Any, batch: dict[str, Any]) -> Any:
            weights = _weights_per_image(batch["im_file"], self.partial, self.labelled, self.everything)
            self.class_weights = weights if self.own_weights is None else weights * self.own_weights
            return super().loss(preds, batch)

    return PartialLabelLoss()


def ignore_unlabelled_classes(partial: Iterable[Path], labelled_classes: Iterable[int]
                              ) -> dict[str, Callable[[Any], None]]:
    """ultralytics callbacks: the training model's loss ignores, on the `partial` images, every
    class but `labelled_classes`. Set after the trainer made its EMA copy, so saved checkpoints
    carry ultralytics' own loss (and unpickle anywhere)."""
    images, classes = tuple(partial), tuple(labelled_classes)

    def install(trainer: Any) -> None:
        trainer.model.criterion = partial_label_loss(trainer.model, images, classes)

    return {"on_train_start": install}
