"""training/finetune.py: replay is the share asked for, reproducible per round and fresh across
rounds; a mixed data.yaml keeps the reviewed set's own val split and refuses mismatched labels;
the recipe reaches ultralytics' arguments."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from training.finetune import (
    Recipe,
    Replay,
    chained,
    hold_class_rows,
    mixed_train_list,
    replay_data_yaml,
)
from training.train import TrainingError, TrainOptions, optimiser_args

IMAGES = tuple(Path(f"/public/{i:04d}.jpg") for i in range(200))


def test_replay_is_its_share_of_the_list() -> None:
    replay = Replay(images=IMAGES, share=0.5, seed=3)
    assert replay.count(50) == 50
    assert Replay(images=IMAGES, share=0.25).count(60) == 20
    assert Replay(images=IMAGES[:10], share=0.5).count(50) == 10  # capped by what there is
    assert Replay(images=IMAGES, share=0.0).count(50) == 0
    listed = mixed_train_list(IMAGES[:3], Replay(images=IMAGES[100:], share=0.5), round_=1)
    assert listed[:3] == list(IMAGES[:3]) and len(listed) == 6 and set(listed[3:]) <= set(IMAGES[100:])


def test_replay_is_reproducible_per_round_and_fresh_across_rounds() -> None:
    replay = Replay(images=IMAGES, share=0.5, seed=3)
    first = replay.sample(40, round_=1)
    assert first == Replay(images=tuple(reversed(IMAGES)), share=0.5, seed=3).sample(40, round_=1)
    assert len(set(first)) == 40 and set(first) <= set(IMAGES)
    assert replay.sample(40, round_=2) != first
    assert Replay(images=IMAGES, share=0.5, seed=4).sample(40, round_=1) != first


def write_set(root: Path, names: list[str], n: int) -> Path:
    for split in ("train", "val"):
        folder = root / "images" / split
        folder.mkdir(parents=True)
        for i in range(n):
            (folder / f"{split}{i}.jpg").write_bytes(b"")
    data = {"path": str(root), "train": "images/train", "val": "images/val", "names": dict(enumerate(names))}
    path = root / "data.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def test_a_mixed_data_yaml_adds_replay_to_train_only(tmp_path: Path) -> None:
    reviewed = write_set(tmp_path / "reviewed", ["garbage_pile", "smoke", "roadside_clutter"], 6)
    public = write_set(tmp_path / "public", ["garbage_pile", "smoke"], 20)
    mixed = replay_data_yaml(reviewed, public, share=0.25, seed=0, out=tmp_path / "mixed")
    data = yaml.safe_load(mixed.read_text(encoding="utf-8"))
    listed = (tmp_path / "mixed" / "train.txt").read_text(encoding="utf-8").split()
    assert len(listed) == 8 and sum("/public/" in line for line in listed) == 2
    assert Path(data["val"]) == (tmp_path / "reviewed" / "images" / "val").resolve()
    assert data["names"] == {0: "garbage_pile", 1: "smoke", 2: "roadside_clutter"}


def test_replay_labels_must_be_the_first_labels(tmp_path: Path) -> None:
    reviewed = write_set(tmp_path / "reviewed", ["roadside_clutter", "garbage_pile"], 2)
    public = write_set(tmp_path / "public", ["garbage_pile"], 2)
    with pytest.raises(TrainingError, match="not the first labels"):
        replay_data_yaml(reviewed, public, share=0.5, seed=0, out=tmp_path / "mixed")


def test_the_recipe_reaches_ultralytics_arguments(tmp_path: Path) -> None:
    plain = TrainOptions(data=tmp_path / "d.yaml", base="b.pt", name="n")
    assert optimiser_args(plain) == {}  # ultralytics' own choice
    tuned = Recipe(freeze=10, lr0=0.0005).apply(plain)
    assert tuned.freeze == 10
    # No warmup, and no bias warmup from 0.1 either.
    assert optimiser_args(tuned) == {"optimizer": "AdamW", "lr0": 0.0005, "warmup_epochs": 0.0,
                                     "warmup_bias_lr": 0.0}


def test_held_class_rows_learn_nothing_and_the_others_do() -> None:
    import torch
    from torch import nn

    torch.manual_seed(0)
    # The shape of ultralytics' Detect: per scale, cv3 ends in a 1x1 convolution with a row per class.
    head = nn.Module()
    head.cv3 = nn.ModuleList(nn.Sequential(nn.Conv2d(4, 4, 1), nn.Conv2d(4, 3, 1)) for _ in range(2))
    trainer = SimpleNamespace(model=SimpleNamespace(model=[nn.Identity(), head]))
    hold_class_rows([0, 1])["on_train_start"](trainer)
    x = torch.randn(2, 4, 5, 5)
    sum(branch(x).sum() for branch in head.cv3).backward()
    for branch in head.cv3:
        final = branch[-1]
        assert torch.all(final.weight.grad[:2] == 0) and torch.all(final.bias.grad[:2] == 0)
        assert torch.any(final.weight.grad[2] != 0) and torch.any(final.bias.grad[2] != 0)
        assert torch.any(branch[0].weight.grad != 0)  # shared layers still learn
    with pytest.raises(TrainingError, match="beyond"):
        hold_class_rows([5])["on_train_start"](trainer)


def test_taught_rows_step_rate_times_as_far_and_nothing_else_moves_differently() -> None:
    import copy

    import torch
    from torch import nn

    from training.grow_head import faster_rows

    torch.manual_seed(0)
    head = nn.Module()
    head.cv3 = nn.ModuleList(nn.Sequential(nn.Conv2d(4, 4, 1), nn.Conv2d(4, 3, 1)) for _ in range(2))
    with torch.no_grad():
        for branch in head.cv3:  # a grown row: zero weights, a prior bias
            branch[-1].weight[2].zero_()
            branch[-1].bias[2] = -8.0
    x = torch.randn(2, 4, 5, 5)
    steps = {}
    for rate in (1.0, 20.0):
        model = copy.deepcopy(head)
        start = [p.detach().clone() for p in model.parameters()]
        optimizer = torch.optim.AdamW(model.parameters(), lr=0.001, weight_decay=0.0005)
        trainer = SimpleNamespace(model=SimpleNamespace(model=[nn.Identity(), model]), optimizer=optimizer)
        for event, callback in faster_rows([2], rate).items():
            assert event == "on_train_start"
            callback(trainer)
        # One step from the same state and gradients (after it, the gradients differ with row 2).
        sum(branch(x).square().sum() for branch in model.cv3).backward()
        optimizer.step()
        steps[rate] = [p.detach() - s for p, s in zip(model.parameters(), start, strict=True)]
    # Parameters in order per branch: conv0 weight, conv0 bias, final weight, final bias.
    for i, (plain, fast) in enumerate(zip(steps[1.0], steps[20.0], strict=True)):
        if i % 4 in (2, 3):  # a final convolution: row 2 moved 20x, rows 0-1 as before
            assert torch.allclose(fast[2], 20 * plain[2], rtol=1e-3, atol=1e-7) and plain[2].abs().sum() > 0
            assert torch.allclose(fast[:2], plain[:2], atol=1e-6)
        else:
            assert torch.allclose(fast, plain, atol=1e-6)
    assert faster_rows([2], 1.0) == {} and faster_rows([], 20.0) == {}
    with pytest.raises(ValueError, match="rate"):
        faster_rows([2], 0.0)


def test_the_recipe_teaches_new_labels_faster(tmp_path: Path) -> None:
    plain = TrainOptions(data=tmp_path / "d.yaml", base="b.pt", name="n")
    assert plain.taught_rate == 1.0 and Recipe().apply(plain).taught_rate == 20.0


def test_chained_callbacks_run_every_one_of_an_event_in_order() -> None:
    calls: list[str] = []
    merged = chained({"on_train_start": lambda _t: calls.append("hold")},
                     {"on_train_start": lambda _t: calls.append("loss"),
                      "on_fit_epoch_end": lambda _t: calls.append("e")})
    merged["on_train_start"](None)
    merged["on_fit_epoch_end"](None)
    assert calls == ["hold", "loss", "e"]


def test_a_replay_by_class_draws_rare_classes_whole_and_stays_reproducible(tmp_path: Path) -> None:
    folder = tmp_path / "images"
    (tmp_path / "labels").mkdir()
    folder.mkdir()
    images = []
    # 40 images of class 0, 4 of class 1, 2 with both, 4 without boxes.
    for i, classes in enumerate([[0]] * 40 + [[1]] * 4 + [[0, 1]] * 2 + [[]] * 4):
        image = folder / f"{i:03d}.jpg"
        image.write_bytes(b"")
        (tmp_path / "labels" / f"{i:03d}.txt").write_text("".join(f"{c} 0.5 0.5 0.2 0.2\n" for c in classes))
        images.append(image)
    replay = Replay.by_class(images, share=0.5, seed=1)
    drawn = replay.sample(18, round_=1)  # 18 turns: 6 for each of class 0, class 1, no boxes
    assert len(drawn) == len(set(drawn)) == 18
    with_one = [p for p in drawn if 40 <= int(p.stem) < 46]
    assert len(with_one) == 6  # every image holding the rare class (a uniform draw expects 2.2)
    assert sum(int(p.stem) >= 46 for p in drawn) == 4  # images without boxes take their turn too
    assert drawn == Replay.by_class(list(reversed(images)), share=0.5, seed=1).sample(18, round_=1)
    assert drawn != replay.sample(18, round_=2)
    assert len(replay.sample(100, round_=1)) == 50  # capped by what there is


def test_kept_batch_norm_statistics_do_not_drift_while_the_rest_trains() -> None:
    import torch
    from torch import nn

    from training.finetune import keep_batch_norm_statistics

    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.SiLU())
    trainer = SimpleNamespace(model=model)
    before = model[1].running_mean.clone()
    model.train()  # what ultralytics does at the start of each epoch
    keep_batch_norm_statistics()["on_train_batch_start"](trainer)
    out = model(torch.rand(2, 3, 8, 8) * 5 + 3)
    out.mean().backward()
    assert torch.equal(model[1].running_mean, before)
    assert model[1].weight.grad is not None  # the scale still learns
    assert model[0].training  # only batch norms leave training mode
