"""benchmarks/review_loop.py's plumbing on a tiny synthetic set: both arms run their rounds from one
base, the ranking's choice and the random one are fresh images each round, every figure is there."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from benchmarks.review_loop import Loop, fine_tune, rank_pool, run_loop
from tests.training.synthetic import make_synthetic_dataset
from training.finetune import Recipe, Replay
from vision.image_hash import dhash64

pytestmark = pytest.mark.slow

LABELS = ("garbage_pile", "smoke", "roadside_clutter")  # the last one plays the class being taught


@pytest.fixture(scope="module")
def loop(tmp_path_factory: pytest.TempPathFactory) -> Loop:
    root = tmp_path_factory.mktemp("review-loop")
    shapes = make_synthetic_dataset(root / "set", n_train=16, n_val=6, n_test=6, labels=LABELS, seed=3)
    train = tuple(i.image_path for i in shapes.split("train"))
    start = Loop(work=root, base=Path("yolov5nu.yaml"), labels=LABELS, new_label="roadside_clutter",
                 public_labels=("garbage_pile", "smoke"), pool=train[4:], test=tuple(
                     i.image_path for i in shapes.split("test")),
                 public_test=tuple(i.image_path for i in shapes.split("val")),
                 replay=Replay(images=train[:4], share=0.5),
                 val=tuple(i.image_path for i in shapes.split("val"))[:2],
                 thresholds={"garbage_pile": 0.35, "smoke": 0.3, "roadside_clutter": 0.35},
                 rounds=2, per_round=4, reviewed_replay=2, epochs=1, imgsz=64, batch=4,
                 base_freeze=0, recipe=Recipe(freeze=10), ignore_unlabelled=True)
    # A .pt base that knows only the public labels, as the shipped model does: the rounds grow its
    # head by the new one, and each round's model is served beside it (training/branches.py).
    public = make_synthetic_dataset(root / "public", n_train=8, n_val=2, labels=LABELS[:2], seed=4)
    base = fine_tune(replace(start, labels=LABELS[:2], val=tuple(i.image_path for i in public.split("val"))),
                     Path("yolov5nu.yaml"), tuple(i.image_path for i in public.split("train")), "base")
    return replace(start, base=base)


def test_both_arms_report_a_curve_public_figures_and_round_times(loop: Loop) -> None:
    logged: list[str] = []
    result = run_loop(loop, logged.append)
    json.dumps(result)  # the --json line
    assert result["rounds"] == 2
    for arm in ("active_ap50", "random_ap50"):
        assert len(result[arm]) == 2 and all(0.0 <= v <= 1.0 for v in result[arm])
    assert len(result["round_s"]) == 2 and all(s > 0 for s in result["round_s"])
    assert set(result["public_base_ap50"]) == {"garbage_pile", "smoke"}
    assert all(len(rows) == 2 for rows in result["public_ap50"].values())
    # Served branched, the public labels are the base's own outputs: the same AP50 every round,
    # where the fine-tuned model alone moved them (its figures reported beside).
    assert result["public_max_drop"] == 0.0
    assert all(row == result["public_base_ap50"] for rows in result["public_ap50"].values() for row in rows)
    assert all(len(rows) == 2 for rows in result["public_ap50_taught_alone"].values())
    assert 0.0 <= result["public_max_drop_taught_alone"] <= 1.0
    assert result["served_public_s_ratio"] > 0
    # the branch costs the neck and head again to serve: more time per image than the base
    assert result["served_onnx_s_per_image"] > 0 and result["base_onnx_s_per_image"] > 0
    assert result["served_onnx_s_ratio"] == pytest.approx(
        result["served_onnx_s_per_image"] / result["base_onnx_s_per_image"], rel=0.01)
    assert sorted(p.name for p in (loop.work / "served").iterdir()) == [
        "active-r1.pt", "active-r2.pt", "random-r1.pt", "random-r2.pt"]
    assert sum("round" in line for line in logged) == 4  # 2 arms x 2 rounds
    for arm in ("active", "random"):
        first = (loop.work / "data" / f"{arm}-r1" / "train.txt").read_text().split()
        second = (loop.work / "data" / f"{arm}-r2" / "train.txt").read_text().split()
        # Round 2: its own 4 fresh images, 2 of round 1's again, and the public replay (half the
        # list, here capped by the 4 replay images there are).
        fresh = set(second) - set(first)
        assert len(second) == len(set(second)) == loop.per_round + 2 + loop.replay.count(loop.per_round + 2)
        assert set(loop.replay.images) <= set(map(Path, second))
        assert len(fresh) == loop.per_round


def test_without_the_branch_the_fine_tuned_model_is_served(loop: Loop, tmp_path: Path) -> None:
    result = run_loop(replace(loop, work=tmp_path, branch=False, rounds=1))
    assert len(result["active_ap50"]) == 1
    assert "public_ap50_taught_alone" not in result
    assert not (tmp_path / "served").exists()
    assert result["settings"]["branch"] is False


def test_the_ranking_picks_fresh_images_and_skips_reviewed_twins(loop: Loop) -> None:
    pool = list(loop.pool)
    hashes = {p: dhash64(p) for p in pool}
    reviewed = pool[:2]
    rest = pool[2:]
    chosen = rank_pool(loop.base, rest, loop, reviewed, hashes, 4)
    assert len(chosen) == len(set(chosen)) == 4 and set(chosen) <= set(rest)
    # A pool holding only a twin of a reviewed image (same hash) still fills the request, last.
    twin = {**hashes, rest[0]: hashes[reviewed[0]]}
    chosen = rank_pool(loop.base, rest[:3], loop, reviewed, twin, 3)
    assert chosen[-1] == rest[0]
