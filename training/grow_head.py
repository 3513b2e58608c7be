"""Add classes to a trained detector without forgetting the ones it has.

A township teaches the served model a class it lacks (roadside_clutter from its reviewers'
labels) with `patrol train --base default --data <reviewed set>`, whose labels are the model's
own followed by the new ones. ultralytics builds a model for the new class count and copies
over only the tensors whose shapes still match: the last convolution of each class branch has
one output row per class, so its shape changed and every class row, the learned ones too, would
start again from random. Growing the head instead keeps each learned row where it was (class
id = position). The new rows start with zero weights and the class-prior bias ultralytics
gives a new model, so before the first step the grown model scores the old classes exactly as
the base does and the new ones at the prior everywhere (under 1 %), not at random.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from vision.errors import ModelError


def class_convolutions(model: Any) -> list[Any]:
    """The last convolution of each scale's class branch of the Detect head (out = classes)."""
    head = model.model[-1]
    branches = getattr(head, "cv3", None)
    if branches is None:
        raise ModelError(f"expected an anchor-free Detect head with class branches, "
                         f"got {type(head).__name__}")
    return [branch[-1] for branch in branches]


def grow_classes(model: Any, labels: Sequence[str]) -> Any:
    """A copy of `model` whose head reports `labels`: the model's own labels first, unchanged,
    then new ones. Raises ModelError when the model's labels are not a prefix of `labels`."""
    import torch
    from ultralytics.nn.tasks import DetectionModel

    known = [model.names[i] for i in sorted(model.names)]
    if list(labels[:len(known)]) != known or len(labels) <= len(known):
        raise ModelError(f"to add classes, the new labels must start with the model's own {known} "
                         f"(class id = position) and add at least one; got {list(labels)}")
    # A copy of the architecture dict: DetectionModel writes the new class count into it.
    grown = DetectionModel(cfg=dict(model.yaml), nc=len(labels), verbose=False)
    grown.names = dict(enumerate(labels))
    source, target = model.state_dict(), grown.state_dict()
    same = {k: v.float() for k, v in source.items() if k in target and v.shape == target[k].shape}
    grown.load_state_dict(same, strict=False)
    old_rows = len(known)
    grown_rows = class_convolutions(grown)
    with torch.no_grad():
        for old, new in zip(class_convolutions(model), grown_rows, strict=True):
            new.weight[:old_rows].copy_(old.weight.float())
            new.bias[:old_rows].copy_(old.bias.float())
            # Random rows on trained features score some anchors at 0.6 and more; zero rows
            # score every anchor at the prior, and still learn (the layer is linear).
            new.weight[old_rows:].zero_()
    copied = set(same) | {f"{name}.{part}" for name, module in grown.named_modules()
                          if any(module is conv for conv in grown_rows)
                          for part in ("weight", "bias")}
    missing = [k for k in target if k not in copied]
    if missing:
        raise ModelError(f"growing the head left tensors uninitialised from the base: {missing[:5]}")
    return grown


def faster_rows(rows: Sequence[int], rate: float) -> dict[str, Callable[[Any], None]]:
    """ultralytics callbacks that make every optimiser step move the `rows` of the head's last
    class convolutions (weight and bias, every scale) `rate` times as far as it moved them.

    Why: a grown row starts at zero weight and the class-prior bias (log(5 / nc / cells), -5.5 to
    -8.3 at 320 px), and a fine-tune takes few optimiser steps (ultralytics accumulates gradients
    to 64 images, so 150 images make 2-3 steps an epoch). At the fine-tune's rate, which the
    learned classes need low, the new class never scores above 0.001 in a round: the review loop's
    first round gave it AP50 0.0 from the shipped model, and 0.30 with these rows 20 times as fast
    (same images, same seed; public figures within 0.015 of each other). For Adam and AdamW the
    step is proportional to the rate, so this is that row's rate times `rate`, weight decay included;
    a parameter group cannot do it, as the learned rows share each tensor with the new ones.
    """
    if rate <= 0:
        raise ValueError(f"expected a rate > 0, got {rate}")
    index = sorted(set(rows))

    def register(trainer: Any) -> None:
        import torch

        finals = class_convolutions(trainer.model)
        before: list[tuple[Any, Any]] = []

        def save(_optimizer: Any, _args: Any, _kwargs: Any) -> None:
            before[:] = [(conv.weight[index].detach().clone(), conv.bias[index].detach().clone())
                         for conv in finals]

        def scale(_optimizer: Any, _args: Any, _kwargs: Any) -> None:
            with torch.no_grad():
                for conv, (weight, bias) in zip(finals, before, strict=True):
                    conv.weight[index] = weight + rate * (conv.weight[index] - weight)
                    conv.bias[index] = bias + rate * (conv.bias[index] - bias)

        if finals and max(index, default=-1) >= finals[0].out_channels:
            raise ModelError(f"class rows {index} beyond the head's {finals[0].out_channels} classes")
        trainer.optimizer.register_step_pre_hook(save)
        trainer.optimizer.register_step_post_hook(scale)

    return {"on_train_start": register} if index and rate != 1.0 else {}
