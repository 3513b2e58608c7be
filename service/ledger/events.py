"""Issue events: who changed what, when and why; every change to an issue writes one.

The current state is kept on the issue row beside its events, written in the same
transaction (house rule 8), so reads stay cheap and the history stays complete.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TypedDict, Unpack

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.auth import Role, actor_label
from service.db.models import ApiKey, Issue, IssueEvent
from service.errors import TransitionConflictError
from service.ledger.states import State, check_move

SYSTEM_ACTOR = "system"


@dataclass(frozen=True)
class Actor:
    """Who makes a change: an API key with a role, or the ledger itself (role None)."""

    label: str
    role: Role | None
    api_key_id: int | None = None

    @classmethod
    def system(cls) -> Actor:
        return cls(SYSTEM_ACTOR, None, None)

    @classmethod
    def from_key(cls, key: ApiKey) -> Actor:
        return cls(actor_label(key), Role(key.role), key.id)


class EventLinks(TypedDict, total=False):
    """Why an event happened and what it points at besides its issue (all optional): the keywords
    `record_event` takes and `transition` passes on, declared once for both."""

    reason: str  # "" when not given (the column's default)
    observation_id: int | None
    frame_id: int | None


def record_event(
    session: Session,
    issue: Issue,
    *,
    kind: str,
    actor: Actor,
    at: datetime,
    from_state: str | None = None,
    to_state: str | None = None,
    **links: Unpack[EventLinks],
) -> IssueEvent:
    event = IssueEvent(
        issue_id=issue.id,
        at=at,
        kind=kind,
        actor=actor.label,
        api_key_id=actor.api_key_id,
        from_state=from_state,
        to_state=to_state,
        reason=links.get("reason", ""),
        observation_id=links.get("observation_id"),
        frame_id=links.get("frame_id"),
    )
    session.add(event)
    issue.updated_at = at
    session.flush()
    return event


def transition(
    session: Session,
    issue: Issue,
    target: State,
    *,
    actor: Actor,
    at: datetime,
    **links: Unpack[EventLinks],
) -> IssueEvent:
    """Move `issue` to `target` with its event, or raise (IllegalTransition, RoleNotAllowed, Conflict)."""
    source = State(issue.state)
    check_move(source, target, actor.role)
    if target == State.dispatched and issue.needs_location:
        raise TransitionConflictError(
            f"issue {issue.id} has no location yet; a reviewer must place it "
            f"(PUT /v1/issues/{issue.id}/location) before it can be dispatched"
        )
    issue.state = target.value
    issue.state_changed_at = at
    return record_event(
        session,
        issue,
        kind="transition",
        actor=actor,
        at=at,
        from_state=source.value,
        to_state=target.value,
        **links,
    )


def history(session: Session, issue_id: int) -> list[IssueEvent]:
    return list(
        session.scalars(select(IssueEvent).where(IssueEvent.issue_id == issue_id).order_by(IssueEvent.id))
    )


def last_transition_to(session: Session, issue_id: int, state: State) -> IssueEvent | None:
    return session.scalars(
        select(IssueEvent)
        .where(
            IssueEvent.issue_id == issue_id,
            IssueEvent.kind == "transition",
            IssueEvent.to_state == state.value,
        )
        .order_by(IssueEvent.id.desc())
        .limit(1)
    ).first()
