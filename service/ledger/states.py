"""The issue state machine as data: which moves exist and who may make them.

    candidate --reviewer--> confirmed --admin--> dispatched --worker--> rectified
        |                                            ^                     |  \\
     reviewer                                      admin            system  system
        v                                            |                 v      v
     rejected                                     rebound <--system-- verified --admin--> closed
                                                     ^                                      |
                                                     +----------------system----------------+

- "system" moves are made by the ledger itself (回头看 verification and rebound detection);
  an admin may also make them by hand (e.g. after a field visit).
- admin may make every move that exists; no role may make a move that does not.
- rejected is final. A rebound issue is open again and goes back to dispatch (or an admin
  closes it again when the rebound was a false alarm).
"""

from __future__ import annotations

from dataclasses import dataclass

from service.auth import Role
from service.db.models import IssueState as State  # the states live with the CHECK that allows them
from service.errors import IllegalTransitionError, RoleNotAllowedError

# New observations of the same class nearby join these (within the class's time window).
OPEN_STATES: frozenset[State] = frozenset({State.candidate, State.confirmed, State.dispatched, State.rebound})
# A detection at these places reopens the issue as `rebound` (rectified: any time after the
# rectification; verified/closed: within the rebound window).
REBOUNDABLE_STATES: frozenset[State] = frozenset({State.rectified, State.verified, State.closed})


@dataclass(frozen=True)
class Move:
    source: State
    target: State
    roles: frozenset[Role]  # besides admin, who may make every move
    automatic: bool = False  # the ledger makes it itself


MOVES: tuple[Move, ...] = (
    Move(State.candidate, State.confirmed, frozenset({Role.reviewer})),
    Move(State.candidate, State.rejected, frozenset({Role.reviewer})),
    Move(State.confirmed, State.dispatched, frozenset()),
    Move(State.dispatched, State.rectified, frozenset({Role.worker})),
    Move(State.rectified, State.verified, frozenset(), automatic=True),
    Move(State.rectified, State.rebound, frozenset(), automatic=True),
    Move(State.verified, State.closed, frozenset()),
    Move(State.verified, State.rebound, frozenset(), automatic=True),
    Move(State.closed, State.rebound, frozenset(), automatic=True),
    Move(State.rebound, State.dispatched, frozenset()),
    Move(State.rebound, State.closed, frozenset()),
)


def allowed_targets(state: State) -> tuple[State, ...]:
    return tuple(m.target for m in MOVES if m.source == state)


def find_move(state: State, target: State) -> Move:
    """The move from `state` to `target`; IllegalTransitionError naming the allowed ones otherwise."""
    for move in MOVES:
        if move.source == state and move.target == target:
            return move
    raise IllegalTransitionError(state.value, target.value, tuple(t.value for t in allowed_targets(state)))


def may_move(role: Role | None, move: Move) -> bool:
    """`role` None is the ledger itself."""
    if role is None:
        return move.automatic
    return role == Role.admin or role in move.roles


def check_move(state: State, target: State, role: Role | None) -> Move:
    """Raise IllegalTransitionError (no such move) or RoleNotAllowedError (not for this role)."""
    move = find_move(state, target)
    if not may_move(role, move):
        who = "the ledger" if role is None else f"role {role.value!r}"
        mine = [t.value for t in allowed_targets(state) if may_move(role, find_move(state, t))]
        by = sorted({"admin", *(r.value for r in move.roles)}) + (["the ledger"] if move.automatic else [])
        raise RoleNotAllowedError(
            f"{who} may not move an issue from {state.value!r} to {target.value!r} "
            f"(made by: {', '.join(by)}); "
            f"{who} may move it from {state.value!r} to: {', '.join(mine) or 'nothing'}"
        )
    return move
