"""The smoke persistence rule as a table: samples in, the sample at which the plume is confirmed out."""

from __future__ import annotations

import numpy as np
import pytest

from service.cameras.persistence import PersistenceRule, PersistenceTracker

RULE = PersistenceRule(k=3, n=5, window_s=30, min_growth=1.15, max_static_iou=0.9)
GROWING = [(100, 100, 120, 130), (98, 96, 124, 130), (96, 90, 128, 130), (94, 84, 132, 130)]
FIXED = (100, 100, 120, 130)
DRIFTING = [(100, 100, 120, 130), (106, 100, 126, 130), (112, 100, 132, 130)]
NONE: list[tuple[int, int, int, int]] = []


def _run(
    samples: list[tuple[float, list[tuple[int, int, int, int]]]], rule: PersistenceRule = RULE
) -> list[int]:
    """Indices of the samples at which a track was confirmed."""
    tracker = PersistenceTracker(rule)
    hits = []
    for i, (time_s, boxes) in enumerate(samples):
        if tracker.update(time_s, np.array(boxes, np.float64).reshape(-1, 4)):
            hits.append(i)
    return hits


@pytest.mark.parametrize(
    ("samples", "expected"),
    [
        pytest.param(
            [(0, [GROWING[0]]), (2, [GROWING[1]]), (4, [GROWING[2]]), (6, [GROWING[3]])],
            [2],
            id="growing plume: confirmed at the 3rd hit, once",
        ),
        pytest.param(
            [(0, [FIXED]), (2, [FIXED]), (4, [FIXED]), (6, [FIXED]), (8, [FIXED])],
            [],
            id="fixed cloud: never",
        ),
        pytest.param(
            [(0, [DRIFTING[0]]), (2, [DRIFTING[1]]), (4, [DRIFTING[2]])],
            [2],
            id="drifting plume: moved counts as well as grown",
        ),
        pytest.param(
            [(0, [GROWING[0]]), (2, NONE), (4, [GROWING[1]]), (6, NONE), (8, [GROWING[2]])],
            [4],
            id="3 of 5 with misses between",
        ),
        pytest.param(
            [
                (0, [GROWING[0]]),
                (2, NONE),
                (4, NONE),
                (6, NONE),
                (8, [GROWING[1]]),
                (10, NONE),
                (12, [GROWING[2]]),
            ],
            [],
            id="3 hits but not within the last 5 samples",
        ),
        pytest.param(
            [(0, [GROWING[0]]), (20, [GROWING[1]]), (40, [GROWING[2]])],
            [],
            id="3 hits spanning 40 s > window 30 s",
        ),
        pytest.param([(0, [GROWING[0]]), (2, [GROWING[1]])], [], id="2 hits only"),
        pytest.param(
            [
                (0, [GROWING[0], (500, 500, 520, 520)]),
                (2, [GROWING[1], (500, 500, 520, 520)]),
                (4, [GROWING[2], (500, 500, 520, 520)]),
            ],
            [2],
            id="a plume and a fixed cloud side by side: only the plume",
        ),
    ],
)
def test_persistence_rule(samples, expected):
    assert _run(samples) == expected


def test_two_plumes_confirm_separately():
    far = [(400 + d, 400 - 2 * d, 420 + d, 440) for d in range(0, 12, 4)]
    samples = [(0, [GROWING[0]]), (2, [GROWING[1]]), (4, [GROWING[2], far[0]]), (6, [far[1]]), (8, [far[2]])]
    tracker = PersistenceTracker(RULE)
    confirmed = [
        (i, c.track_id)
        for i, (t, b) in enumerate(samples)
        for c in tracker.update(t, np.array(b, np.float64).reshape(-1, 4))
    ]
    assert [i for i, _ in confirmed] == [2, 4]
    assert len({track for _, track in confirmed}) == 2


def test_k_of_one_confirms_a_growing_plume_at_once_only_when_it_can_compare():
    rule = PersistenceRule(k=1, n=1, window_s=10)
    # one sample has nothing to compare with: first == last, neither grown nor moved
    assert _run([(0, [GROWING[0]])], rule) == []


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"k": 6, "n": 5}, "k <= n"),
        ({"k": 0}, "greater than or equal to 1"),
        ({"window_s": 0}, "greater than 0"),
    ],
)
def test_rule_refuses_impossible_settings(fields, message):
    with pytest.raises(ValueError, match=message):
        PersistenceRule(**fields)
