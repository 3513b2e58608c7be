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

from collections.abc import Sequence
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
