"""A taught class on its own branch: what the served model knew stays exactly as it was.

A fine-tune that teaches a township's new class (roadside_clutter from its reviewers' labels)
has to train the neck: a probe on the frozen neck's features found no stalls, and the rate that
teaches the class moved the public classes by 0.07-0.11 AP50 in the review loop however the
other controls (replay, held rows, partial labels; training/finetune.py) were set, because the
neck is shared. Parameter isolation removes that coupling instead of pulling against it: the
served model becomes the base's frozen backbone (the layers the fine-tune froze, bit-identical in
both models) feeding two branches, the base's own neck and head for the classes it knew and the
fine-tuned neck and head for the classes it was taught. Each branch scores only its own classes
(the other rows are zero), and the two sets of candidate boxes are concatenated before NMS, so
the output is an ordinary YOLO tensor (batch, 4 + classes, anchors x 2): ultralytics' predictor,
its ONNX export and this project's decoder read it as they read any model.

The price is the neck and head twice per image (`BranchedDetectionModel.branch_cost` says how
much of the network that is); the base's scores are exactly the base's, which is what a tower
driving a loudspeaker needs from its next model. What it keeps it also freezes: reviewers'
corrections of the base's own classes (rejected false alarms) change nothing there; they need a
plain fine-tune, weighed by `patrol promote`. A further fine-tune starts from the taught model
(a plain ultralytics checkpoint), never from the branched one: `compose` is the last step.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

from training.train import TrainingError
from vision.detectors.ultralytics_offline import import_ultralytics

import_ultralytics()  # offline settings before ultralytics' first import
from ultralytics.nn.tasks import DetectionModel  # noqa: E402


class BranchedDetectionModel(DetectionModel):
    """The base's first `shared` layers, then the base's remaining layers and the taught model's
    side by side in `self.model` (base first, so ultralytics' own fuse, device moves and
    parameter walks cover both); `branch_at` is where the taught branch starts in that list."""

    shared: int
    branch_at: int
    base_classes: int

    def _run(self, layers: Sequence[Any], x: Any, saved: list[Any]) -> Any:
        # ultralytics' own forward (DetectionModel._predict_once), over a slice of the layers
        for m in layers:
            if m.f != -1:
                x = saved[m.f] if isinstance(m.f, int) else [x if j == -1 else saved[j] for j in m.f]
            x = m(x)
            saved.append(x if m.i in cast(Any, self.save) else None)
        return x

    def _layers(self) -> list[Any]:
        return list(cast(Any, self.model))

    def _predict_once(self, x: Any, profile: bool = False, embed: Any = None) -> Any:
        if self.training:
            raise TrainingError("a branched model is for inference and export; fine-tune its taught "
                                "model and compose again")
        layers = self._layers()
        saved: list[Any] = []
        trunk = self._run(layers[:self.shared], x, saved)
        base = self._run(layers[self.shared:self.branch_at], trunk, list(saved))
        taught = self._run(layers[self.branch_at:], trunk, list(saved))
        return self._combine(base, taught)

    def _combine(self, base: Any, taught: Any) -> Any:
        """One YOLO output: the base's candidates with zero scores for the taught classes, then the
        taught branch's with zero scores for the base's classes (anchors concatenated)."""
        import torch

        exported = not isinstance(base, tuple)
        ya, yb = (base, taught) if exported else (base[0], taught[0])
        n = 4 + self.base_classes
        # zeros_like of a slice keeps the batch and anchor axes dynamic in an ONNX trace
        ya = torch.cat([ya, torch.zeros_like(yb[:, n:])], 1)
        yb = torch.cat([yb[:, :4], torch.zeros_like(yb[:, 4:n]), yb[:, n:]], 1)
        y = torch.cat([ya, yb], 2)
        return y if exported else (y, taught[1])

    def _apply(self, fn: Any, recurse: bool = True) -> BranchedDetectionModel:
        # ultralytics moves the strides and anchors of self.model[-1] only: the base's head too
        super()._apply(fn)
        head: Any = self._layers()[self.branch_at - 1]
        head.stride = fn(head.stride)
        head.anchors = fn(head.anchors)
        head.strides = fn(head.strides)
        return self

    def branch_cost(self) -> float:
        """Parameters of the taught branch over those of the base alone: what composing adds."""
        layers = self._layers()
        count = lambda group: sum(p.numel() for m in group for p in m.parameters())  # noqa: E731
        return count(layers[self.branch_at:]) / max(1, count(layers[:self.branch_at]))


def _names(model: Any) -> list[str]:
    return [str(model.names[i]) for i in sorted(model.names)]


def compose(base: Any, taught: Any, shared: int) -> BranchedDetectionModel:
    """The branched model of two ultralytics DetectionModels: `taught` fine-tuned from `base`
    with its first `shared` layers frozen, its labels the base's followed by the new ones.

    Raises TrainingError when the labels are not so, the architectures differ, or the shared
    layers are not the base's (a fine-tune with fewer layers frozen, or a different base)."""
    import torch

    known, labels = _names(base), _names(taught)
    if labels[:len(known)] != known or len(labels) <= len(known):
        raise TrainingError(f"the taught model's labels {labels} must be the base's {known} followed "
                            "by the taught ones")
    base_layers, taught_layers = list(base.model), list(taught.model)
    if len(base_layers) != len(taught_layers) or not 0 < shared < len(base_layers) - 1:
        raise TrainingError(f"cannot share {shared} layers between models of {len(base_layers)} and "
                            f"{len(taught_layers)} layers")
    for i in range(len(base_layers)):
        if type(base_layers[i]) is not type(taught_layers[i]) or base_layers[i].f != taught_layers[i].f:
            raise TrainingError(f"layer {i} differs between the base and the taught model")
    for i in range(shared):
        a, b = base_layers[i].state_dict(), taught_layers[i].state_dict()
        # ultralytics saves a run's weights in half precision: a frozen layer comes back rounded
        # (0.05 % at most), a trained one moved by far more; counters are not weights.
        if a.keys() != b.keys() or any(
                not torch.allclose(b[k].float(), a[k].float(), rtol=1e-3, atol=1e-6)
                for k in a if a[k].is_floating_point()):
            raise TrainingError(f"layer {i} of the taught model is not the base's: it was not frozen "
                                f"in the fine-tune (compose with shared <= its frozen layers)")
    model = copy.deepcopy(base).float()
    # The base's class turned into the branched one; ultralytics builds every DetectionModel
    # from a YAML file, and this one has no YAML of its own.
    model.__class__ = BranchedDetectionModel
    rest = [copy.deepcopy(m).float() for m in taught_layers[shared:]]
    model.model = torch.nn.Sequential(*model.model, *rest)
    model.shared, model.branch_at, model.base_classes = shared, len(base_layers), len(known)
    model.names = dict(enumerate(labels))
    model.nc = len(labels)
    model.yaml = {**dict(base.yaml), "nc": len(labels), "branched": {"shared": shared, "base": known}}
    model.eval()
    return model


def compose_checkpoints(base_pt: Path, taught_pt: Path, out_pt: Path, shared: int) -> Path:
    """`compose` on two ultralytics checkpoints, written as a checkpoint ultralytics loads
    (YOLO(out_pt) predicts and exports it); the taught checkpoint's training facts kept."""
    import os

    import torch
    from ultralytics.nn.tasks import load_checkpoint

    from training.transplant import check_ultralytics_checkpoint
    from vision.model_registry import sha256_file

    for path in (base_pt, taught_pt):
        check_ultralytics_checkpoint(path)  # before unpickling either in full
    base, _ = load_checkpoint(str(base_pt), device="cpu")
    taught, taught_ckpt = load_checkpoint(str(taught_pt), device="cpu")
    model = compose(base, taught, shared)
    # Written in float32 (ultralytics writes half): the export's parity check compares the ONNX
    # file with this model at 1e-4 on scores.
    ckpt = {key: value for key, value in taught_ckpt.items()
            if key not in ("model", "ema", "optimizer", "scaler", "modelopt")}
    # Named by file and hash, never by this machine's paths (the record reaches model cards);
    # the taught checkpoint relative to this file, where a further fine-tune starts.
    ckpt.update({"model": model, "ema": None, "branched": {
        "base": {"file": base_pt.name, "sha256": sha256_file(base_pt)},
        "taught": {"file": os.path.relpath(taught_pt.resolve(), out_pt.resolve().parent),
                   "sha256": sha256_file(taught_pt)},
        "shared": shared}})
    out_pt.parent.mkdir(parents=True, exist_ok=True)
    torch.save(ckpt, out_pt)
    return out_pt
