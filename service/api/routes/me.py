"""GET /v1/me: the caller's key (name, role) and the state changes that role may make.

The page shows buttons for these moves only; the transitions route checks every move again.
"""

from __future__ import annotations

from fastapi import APIRouter

from service.api.deps import AUTHENTICATED, CurrentKey
from service.api.schemas import KeyPublic, MovePublic
from service.auth import Role
from service.ledger.states import MOVES, may_move

router = APIRouter(prefix="/v1/me", tags=["keys"], dependencies=AUTHENTICATED)


@router.get("", response_model=KeyPublic, name="get_me")
def get_me(key: CurrentKey) -> KeyPublic:
    role = Role(key.role)
    return KeyPublic(
        id=key.id,
        name=key.name,
        role=role.value,
        moves=[MovePublic(from_state=m.source, to_state=m.target) for m in MOVES if may_move(role, m)],
    )
