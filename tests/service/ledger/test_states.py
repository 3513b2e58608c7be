"""The state machine as data: every (from, to) pair, and who may make each move."""

from __future__ import annotations

import itertools

import pytest

from service.auth import Role
from service.errors import IllegalTransitionError, RoleNotAllowedError
from service.ledger.states import MOVES, State, allowed_targets, check_move, find_move

# The expected machine, written out independently of service.ledger.states.MOVES:
# (from, to) -> who may make the move ("system" is the ledger itself).
EXPECTED: dict[tuple[str, str], set[str]] = {
    ("candidate", "confirmed"): {"reviewer", "admin"},
    ("candidate", "rejected"): {"reviewer", "admin"},
    ("confirmed", "dispatched"): {"admin"},
    ("dispatched", "rectified"): {"worker", "admin"},
    ("rectified", "verified"): {"admin", "system"},
    ("rectified", "rebound"): {"admin", "system"},
    ("verified", "closed"): {"admin"},
    ("verified", "rebound"): {"admin", "system"},
    ("closed", "rebound"): {"admin", "system"},
    ("rebound", "dispatched"): {"admin"},
    ("rebound", "closed"): {"admin"},
}
ACTORS = [*(r.value for r in Role), "system"]


def test_moves_are_exactly_the_expected_ones():
    assert {(m.source.value, m.target.value) for m in MOVES} == set(EXPECTED)


@pytest.mark.parametrize("source, target", list(itertools.product([s.value for s in State], repeat=2)))
def test_every_pair_is_allowed_or_refused_naming_the_allowed_targets(source, target):
    allowed_from_source = sorted(t for (s, t) in EXPECTED if s == source)
    if (source, target) in EXPECTED:
        assert find_move(State(source), State(target)).target == State(target)
        return
    with pytest.raises(IllegalTransitionError) as caught:
        find_move(State(source), State(target))
    assert caught.value.state == source and caught.value.target == target
    assert sorted(caught.value.allowed) == allowed_from_source
    message = str(caught.value)
    for name in allowed_from_source:
        assert name in message
    if not allowed_from_source:
        assert "none (final state)" in message


@pytest.mark.parametrize("move, actor", list(itertools.product(sorted(EXPECTED), ACTORS)))
def test_who_may_make_each_move(move, actor):
    role = None if actor == "system" else Role(actor)
    source, target = State(move[0]), State(move[1])
    if actor in EXPECTED[move]:
        assert check_move(source, target, role).target == target
    else:
        with pytest.raises(RoleNotAllowedError, match=f"may not move an issue from '{source}' to '{target}'"):
            check_move(source, target, role)


def test_rejected_is_final():
    assert allowed_targets(State.rejected) == ()


def test_database_enumerations_match_the_code():
    from service.db import models

    assert set(models.ISSUE_STATES) == {s.value for s in State}
    assert set(models.ROLES) == {r.value for r in Role}
