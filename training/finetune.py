"""Fine-tuning on reviewed labels without forgetting what the model already knew.

Reviewed images teach a class (or a place) the model did not know; they rarely show the classes
it learned from the public sets, so a fine-tune on them alone teaches "no garbage, no smoke
anywhere", and the public classes fade (the simulated review loop measured a 0.40 AP50 drop
after two rounds). Two controls, both data here so a run records them:

- replay: every fine-tune mixes in public training images, a fixed share of its training list,
  a fresh sample each round drawn by a seed and the round number (reproducible, and over rounds
  the replay covers more of the public set than one fixed sample would);
- a gentler optimiser: the backbone frozen (YOLOv5's first 10 layers, COCO features every class
  shares), an explicit AdamW rate instead of ultralytics' choice, and no warmup (ultralytics'
  warmup starts bias rates at 0.1, which resets the class biases the model already learned).
  The neck and the detection head train, the new class's outputs among them;
- the old classes' own outputs held (`hold_class_rows`): the rows of the head's last class
  convolution that belong to classes the reviews do not teach get no gradient, so what changes
  their scores is only the shared layers' drift, which replay pulls back;
- replay balanced by class (`Replay.by_class`): a uniform sample keeps the public set's imbalance,
  and the rarest class (fire) was the one that fell;
- the new class's own rows faster (`Recipe.taught_rate`, training/grow_head.faster_rows): a grown
  row starts from zero, and at a rate low enough for the learned classes it never rose above the
  prior in a round;
- the reviewed images' loss for the classes they were not labelled for ignored
  (training/partial_labels.py), so they stop teaching "no garbage here"; or, instead, the base
  model's own boxes for those classes added to their labels (training/pseudo_labels.py).

These controls slow the drift of the shared layers; they do not stop it: from the shipped model,
a round that taught the new class to 0.3-0.5 AP50 still cost a public class 0.07-0.11. What stops
it is serving the base's own layers for the classes it knew beside the fine-tuned ones for the
new class (training/branches.py, `patrol train --branch`), at the price of the neck and head twice.

Measured on one round of the review loop (benchmarks/README.md): uniform replay, AdamW 0.001:
public max drop 0.144 (fire, smoke); rates low enough to keep the public classes (0.0003, or
0.0003 with 0.005 for the head's last class convolutions alone) taught the new class nothing;
balanced replay and the ignored classes together: drop 0.010 with the new class at 0.33 AP50.
`chained` runs several of these callbacks on one ultralytics event.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

from training.train import TrainingError, TrainOptions


class Replay(BaseModel):
    """Public training images mixed into every fine-tune, `share` of its training list."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    images: tuple[Path, ...] = Field(description="Images to draw from (their YOLO labels beside them).")
    share: float = Field(default=0.5, ge=0.0, lt=1.0, description="Replay's share of each round's list.")
    seed: int = Field(default=0, ge=0)
    classes: tuple[frozenset[int], ...] | None = Field(
        default=None, description="Per image, the class ids it holds: a sample balanced by class "
                                  "(`by_class`); None: a uniform sample.")

    @classmethod
    def by_class(cls, images: Sequence[Path], share: float, seed: int = 0) -> Replay:
        """A replay that draws every class alike, reading the images' labels.

        A uniform sample keeps the public set's imbalance (the review loop's base set: 116 of 192
        images hold garbage piles, 24 fire), and a rare class seen in a tenth of a fine-tune's list
        is the one that fades first (one round at AdamW 0.001 cost fire 0.12 AP50, garbage gained).
        """
        from training.datasets.labels import read_label_file
        from training.datasets.yolo import label_path_for

        ordered = tuple(sorted(images))
        held = tuple(frozenset(b.class_id for b in read_label_file(label_path_for(p))[0]) for p in ordered)
        return cls(images=ordered, share=share, seed=seed, classes=held)

    def count(self, reviewed: int) -> int:
        """Replay images for `reviewed` reviewed ones, so replay is `share` of the whole."""
        return min(len(self.images), round(reviewed * self.share / (1.0 - self.share)))

    def sample(self, reviewed: int, round_: int) -> list[Path]:
        """This round's replay: the same for the same seed and round, another for the next round."""
        rng = random.Random(f"{self.seed}:{round_}")
        if self.classes is None:
            return rng.sample(sorted(self.images), self.count(reviewed))
        return self._balanced(self.count(reviewed), rng)

    def _balanced(self, n: int, rng: random.Random) -> list[Path]:
        """Classes in turn (images without boxes as one more), each adding a random image of it not
        yet drawn, until `n`: a class with fewer images than its turn is drawn whole."""
        if len(self.classes or ()) != len(self.images):
            raise TrainingError(f"expected the classes of each of {len(self.images)} images, "
                                f"got {len(self.classes or ())}")
        pools: dict[int, list[int]] = {}
        for index, held in enumerate(self.classes or ()):
            for class_id in held or (-1,):
                pools.setdefault(class_id, []).append(index)
        queues = [rng.sample(pools[k], len(pools[k])) for k in sorted(pools)]
        chosen: dict[int, None] = {}  # drawn order, no repeats
        while len(chosen) < n and any(queues):
            for queue in queues:
                while queue and queue[-1] in chosen:
                    queue.pop()
                if queue and len(chosen) < n:
                    chosen[queue.pop()] = None
        return [self.images[i] for i in chosen]


class Recipe(BaseModel):
    """The optimiser settings of a fine-tune from a trained model (not of training from scratch)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    freeze: int = Field(default=10, ge=0, le=24, description="Layers frozen; 10 = YOLOv5's backbone.")
    optimizer: Literal["auto", "SGD", "Adam", "AdamW"] = "AdamW"
    lr0: float = Field(default=0.001, gt=0.0, le=1.0)
    warmup_epochs: float = Field(default=0.0, ge=0.0)
    # The new class's rows start from zero at a rate set low for the learned ones (faster_rows in
    # training/grow_head.py): one review-loop round from the shipped model, AdamW 0.001, taught
    # roadside_clutter to AP50 0.0 at 1x and 0.30 at 20x.
    taught_rate: float = Field(default=20.0, ge=1.0, le=1000.0,
                               description="How much faster the taught labels' class rows learn.")

    def apply(self, options: TrainOptions) -> TrainOptions:
        return options.model_copy(update={"freeze": self.freeze, "optimizer": self.optimizer,
                                          "lr0": self.lr0, "warmup_epochs": self.warmup_epochs,
                                          "taught_rate": self.taught_rate})


def mixed_train_list(reviewed: Sequence[Path], replay: Replay, round_: int) -> list[Path]:
    return [*reviewed, *replay.sample(len(reviewed), round_)]


def _names(data: dict[str, object]) -> list[str]:
    names = data.get("names")
    if isinstance(names, dict):
        return [str(names[k]) for k in sorted(names)]
    if isinstance(names, list):
        return [str(n) for n in names]
    raise TrainingError("data.yaml has no names")


def _load(path: Path) -> dict[str, object]:
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise TrainingError(f"cannot read {path}: {exc}") from exc
    if not isinstance(loaded, dict):
        raise TrainingError(f"{path}: expected a YOLO data.yaml mapping")
    return loaded


def _root(data_yaml: Path, data: dict[str, object]) -> Path:
    root = Path(str(data.get("path") or data_yaml.parent))
    return root if root.is_absolute() else (data_yaml.parent / root).resolve()


def _train_images(data_yaml: Path, data: dict[str, object]) -> list[Path]:
    """The train split's images of a data.yaml: a folder of images or a .txt list of paths."""
    root = _root(data_yaml, data)
    entry = root / str(data.get("train", ""))
    if entry.is_dir():
        return sorted(p for p in entry.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    if entry.suffix == ".txt" and entry.is_file():
        lines = entry.read_text(encoding="utf-8").splitlines()
        return [Path(line) if Path(line).is_absolute() else root / line for line in lines if line.strip()]
    raise TrainingError(f"{data_yaml}: train split {entry} is neither a folder nor a .txt list")


def replay_data_yaml(data_yaml: Path, replay_yaml: Path, share: float, seed: int, out: Path) -> Path:
    """A data.yaml in `out`: `data_yaml`'s train images plus a replay sample of `replay_yaml`'s.

    The replay set's labels must be the first labels of `data_yaml` (class id = position), as they
    are when a reviewed dataset adds classes after the public ones.
    """
    data, public = _load(data_yaml), _load(replay_yaml)
    names, public_names = _names(data), _names(public)
    if names[:len(public_names)] != public_names:
        raise TrainingError(f"replay labels {public_names} are not the first labels of {names}")
    reviewed = _train_images(data_yaml, data)
    replay = Replay(images=tuple(_train_images(replay_yaml, public)), share=share, seed=seed)
    out.mkdir(parents=True, exist_ok=True)
    listed = mixed_train_list(reviewed, replay, round_=0)
    (out / "train.txt").write_text("".join(f"{p.resolve()}\n" for p in listed), encoding="utf-8")
    root = _root(data_yaml, data)
    # val and test stay the reviewed dataset's own, named absolutely from the new folder.
    splits = {key: str(root / str(data[key])) for key in ("val", "test") if data.get(key)}
    mixed = {**data, **splits, "path": str(out.resolve()), "train": "train.txt",
             "names": dict(enumerate(names))}
    path = out / "data.yaml"
    path.write_text(yaml.safe_dump(mixed, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


def _zero_rows(keep: list[int]) -> Callable[[Any], Any]:
    def hook(grad: Any) -> Any:
        held = grad.clone()
        held[keep] = 0
        return held

    return hook


def hold_class_rows(held: Iterable[int]) -> dict[str, Callable[[Any], None]]:
    """ultralytics callbacks that stop gradients to the `held` class ids' rows of the detection
    head's last class convolution (weight and bias, every scale); other rows learn as usual."""
    rows = sorted(set(held))

    def register(trainer: Any) -> None:
        head = trainer.model.model[-1]
        for branch in head.cv3:
            final = branch[-1]
            if final.out_channels <= max(rows, default=-1):
                raise TrainingError(f"class ids {rows} beyond the head's {final.out_channels} classes")
            final.weight.register_hook(_zero_rows(rows))
            final.bias.register_hook(_zero_rows(rows))

    return {"on_train_start": register}



def keep_batch_norm_statistics() -> dict[str, Callable[[Any], None]]:
    """ultralytics callbacks that keep every batch norm's running statistics as the base has
    them (evaluation mode in each training step; their scale and shift still learn).

    ultralytics already does this for frozen layers only. A fine-tune's batches mix the new
    images (aerial views of stalls) with replayed ones, and statistics drifting towards that mix
    change what the neck computes on the public classes' images: forgetting without any
    gradient to the public classes' rows.
    """
    def hold(trainer: Any) -> None:
        from torch import nn

        for module in trainer.model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.eval()

    return {"on_train_batch_start": hold}


def chained(*callbacks: Mapping[str, Callable[[Any], None]]) -> dict[str, Callable[[Any], None]]:
    """One callback per ultralytics event that runs each given one of that event, in order (a dict
    union would keep only the last: holding rows and a partial-label loss both start on
    on_train_start)."""
    events: dict[str, list[Callable[[Any], None]]] = {}
    for mapping in callbacks:
        for event, function in mapping.items():
            events.setdefault(event, []).append(function)

    def run_all(functions: list[Callable[[Any], None]]) -> Callable[[Any], None]:
        def run(trainer: Any) -> None:
            for function in functions:
                function(trainer)

        return run

    return {event: run_all(functions) for event, functions in events.items()}
