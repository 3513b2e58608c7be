"""Content-hash splits: deterministic, fraction-true, groups kept together, test fixed."""

from __future__ import annotations

import hashlib

import pytest
from pydantic import ValidationError

from training.datasets.errors import DatasetError
from training.datasets.spec import GroupRule, SplitFractions
from training.datasets.split import assign_split, hash_position, split_for_position


def _digests(n: int) -> list[str]:
    return [hashlib.sha256(f"image-{i}".encode()).hexdigest() for i in range(n)]


@pytest.mark.parametrize(
    ("digest", "position"),
    [("0" * 64, 0.0), ("8" + "0" * 63, 0.5), ("4" + "0" * 63, 0.25), ("f" * 64, 1.0 - 2 ** -64)],
)
def test_hash_position(digest: str, position: float) -> None:
    assert hash_position(digest) == pytest.approx(position, abs=1e-12)
    assert 0.0 <= hash_position(digest) < 1.0


@pytest.mark.parametrize(
    ("position", "split"),
    [(0.0, "test"), (0.1499, "test"), (0.15, "val"), (0.2999, "val"), (0.30, "train"), (0.9999, "train")],
)
def test_test_takes_the_lowest_positions(position: float, split: str) -> None:
    assert split_for_position(position, SplitFractions()) == split


def test_fractions_are_met_on_many_images() -> None:
    splits = [assign_split(d, SplitFractions(), source="s") for d in _digests(20_000)]
    for name, expected in (("train", 0.70), ("val", 0.15), ("test", 0.15)):
        assert splits.count(name) / len(splits) == pytest.approx(expected, abs=0.01)


def test_changing_train_and_val_fractions_never_moves_a_test_image() -> None:
    digests = _digests(5_000)
    before = [assign_split(d, SplitFractions(train=0.70, val=0.15, test=0.15), source="s") for d in digests]
    after = [assign_split(d, SplitFractions(train=0.60, val=0.25, test=0.15), source="s") for d in digests]
    assert [s == "test" for s in before] == [s == "test" for s in after]
    assert before != after  # the val change did move some train images


def test_a_group_lands_in_one_split_whatever_the_content() -> None:
    splits = {assign_split(d, SplitFractions(), source="s", group_key="clip7") for d in _digests(200)}
    assert len(splits) == 1


@pytest.mark.parametrize(
    ("rule", "name", "key"),
    [
        (GroupRule(pattern=r"^(?P<key>.+_mp4)-\d+_jpg"), "fire2_mp4-78_jpg.rf.ab.jpg", "fire2_mp4"),
        (GroupRule(pattern=r"^(?P<key>.+_mp4)-\d+_jpg"), "img_10_jpg.rf.ab.jpg", None),
        (GroupRule(pattern=r"^(?P<key>\d+)_jpg", numeric_block=10), "002718_jpg.rf.x.jpg", "block271"),
        (GroupRule(pattern=r"^(?P<key>\d+)_jpg", numeric_block=10), "002719_jpg.rf.y.jpg", "block271"),
        (GroupRule(pattern=r"^(?P<key>\d+)_jpg", numeric_block=10), "002720_jpg.rf.y.jpg", "block272"),
    ],
)
def test_group_keys_from_file_names(rule: GroupRule, name: str, key: str | None) -> None:
    assert rule.group_key(name) == key


def test_group_pattern_needs_a_key_group() -> None:
    with pytest.raises(ValidationError, match="named group"):
        GroupRule(pattern=r"^(\d+)_jpg")


def test_numeric_block_refuses_a_non_numeric_key() -> None:
    rule = GroupRule(pattern=r"^(?P<key>[a-z]+)", numeric_block=10)
    with pytest.raises(DatasetError, match="expects a number"):
        rule.group_key("abc.jpg")


@pytest.mark.parametrize("fractions", [dict(train=0.7, val=0.2, test=0.2),
                                       dict(train=0.5, val=0.1, test=0.1)])
def test_fractions_must_sum_to_one(fractions: dict[str, float]) -> None:
    with pytest.raises(ValidationError, match="sum to 1"):
        SplitFractions(**fractions)
