"""The job queue in the database: create, claim with a lease, renew, finish, cancel, recover.

Claiming is one UPDATE whose target is chosen by a subquery: on PostgreSQL the subquery
locks its row `FOR UPDATE SKIP LOCKED`, so concurrent runners each get a different job
without waiting; SQLite has no row locks (SQLAlchemy leaves the clause out) but the UPDATE
takes the database write lock first and repeats the claim condition, so a job is still
claimed once. Claims take turns across the keys that submitted jobs (`fair_order`), so
one key cannot keep the runners to itself. A running job holds a lease that its runner
renews; a runner that dies stops renewing, and once the lease has run out any runner may
take the job over. A
restarted process need not wait for that: leases of dead processes on the same host are
ended at once (`end_dead_local_leases`).
"""

from __future__ import annotations

import os
import socket
import uuid
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import ColumnElement, Result, and_, case, func, or_, select, update
from sqlalchemy.orm import InstrumentedAttribute, Session, aliased, sessionmaker
from sqlalchemy.sql import Subquery

from service.db.session import session_scope
from service.jobs.models import FINAL_STATES, ItemOutcome, Job, JobItem, JobState

MAX_ERROR_CHARS = 4000


def new_owner() -> str:
    """host:pid:token, unique per claim; host and pid let a restart end its dead predecessor's leases."""
    return f"{socket.gethostname()[:60]}:{os.getpid()}:{uuid.uuid4().hex[:16]}"


def _owner_host_pid(owner: str) -> tuple[str, int] | None:
    parts = owner.rsplit(":", 2)
    if len(parts) != 3 or not parts[1].isdigit():
        return None
    return parts[0], int(parts[1])


def _claimable(now: datetime, max_attempts: int):  # type: ignore[no-untyped-def]
    return and_(
        or_(Job.state == JobState.queued, and_(Job.state == JobState.running, Job.lease_expires_at < now)),
        Job.attempts < max_attempts,
        Job.cancel_requested.is_(False),
    )


def claim(
    factory: sessionmaker[Session],
    *,
    owner: str,
    now: datetime,
    lease_seconds: float,
    max_attempts: int,
    job_id: str | None = None,
) -> str | None:
    """Claim the fairest claimable job (see `fair_order`), or the given one; its id, or None."""
    settle_abandoned(factory, now=now, max_attempts=max_attempts)
    usage = key_usage(now)
    candidate = (
        select(Job.id)
        .outerjoin(usage, usage.c.api_key_id == Job.api_key_id)
        .where(_claimable(now, max_attempts))
    )
    if job_id is not None:
        candidate = candidate.where(Job.id == job_id)
    candidate = (
        candidate.order_by(*fair_order(usage)).limit(1).with_for_update(of=Job, skip_locked=True)
    )
    statement = (
        update(Job)
        .where(Job.id == candidate.scalar_subquery(), _claimable(now, max_attempts))
        .values(
            state=JobState.running.value,
            lease_owner=owner,
            lease_expires_at=now + timedelta(seconds=lease_seconds),
            heartbeat_at=now,
            attempts=Job.attempts + 1,
            started_at=func.coalesce(Job.started_at, now),
            stage="starting",
            updated_at=now,
        )
        .returning(Job.id)
        .execution_options(synchronize_session=False)
    )
    with session_scope(factory) as session:
        return session.execute(statement).scalar_one_or_none()


def key_usage(now: datetime) -> Subquery:
    """Per submitting key: its jobs a runner holds now, and when a runner last held one of its jobs.

    One grouped pass over `jobs` per claim: the table holds a row per survey (thousands, not
    millions), and this keeps the claim one statement, so SQLite's write lock and PostgreSQL's
    SKIP LOCKED still make it atomic.
    """
    other = aliased(Job)
    live = and_(other.state == JobState.running, other.lease_expires_at >= now)
    return (
        select(
            other.api_key_id.label("api_key_id"),
            func.sum(case((live, 1), else_=0)).label("running"),
            func.max(other.heartbeat_at).label("last_ran"),
        )
        .where(other.heartbeat_at.is_not(None))
        .group_by(other.api_key_id)
        .subquery("key_usage")
    )


def fair_order(usage: Subquery) -> tuple[ColumnElement[Any] | InstrumentedAttribute[Any], ...]:
    """Round-robin over submitting keys: the key with the fewest jobs running now first, then the
    key whose jobs ran longest ago (never: first), then the oldest job. One key's hundred queued
    surveys therefore take turns with another key's one instead of all going first."""
    return (
        func.coalesce(usage.c.running, 0),
        usage.c.last_ran.is_not(None),  # keys whose jobs never ran go first (False sorts first)
        usage.c.last_ran,
        Job.created_at,
        Job.id,
    )


def requeue_expired(factory: sessionmaker[Session], *, now: datetime, max_attempts: int) -> list[str]:
    """Running jobs whose lease ran out (their runner crashed or was killed) back to `queued`; their ids.

    The sweeper resends these to the broker: the crashed worker's message stays unacknowledged
    until the broker's visibility timeout, so without this the job would wait that long. The
    attempt the dead runner started still counts (`settle_abandoned` fails jobs out of them)."""
    settle_abandoned(factory, now=now, max_attempts=max_attempts)
    with session_scope(factory) as session:
        return list(
            session.scalars(
                update(Job)
                .where(
                    Job.state == JobState.running,
                    Job.lease_expires_at < now,
                    Job.attempts < max_attempts,
                    Job.cancel_requested.is_(False),
                )
                .values(state=JobState.queued.value, stage="queued", lease_owner=None, lease_expires_at=None,
                        updated_at=now)
                .returning(Job.id)
                .execution_options(synchronize_session=False)
            )
        )


def needs_runner(job: Job, now: datetime) -> bool:
    """Queued, or running under a lease that ran out: nobody is running it now."""
    if job.state == JobState.queued and not job.cancel_requested:
        return True
    expires = job.lease_expires_at
    return job.state == JobState.running and (expires is None or expires < now)


def settle_abandoned(factory: sessionmaker[Session], *, now: datetime, max_attempts: int) -> int:
    """End jobs whose runner died and that may not run again: cancelled ones, and ones out of attempts."""
    expired = and_(Job.state == JobState.running, Job.lease_expires_at < now)
    with session_scope(factory) as session:
        cancelled = _rowcount(
            session.execute(
                update(Job)
                .where(expired, Job.cancel_requested.is_(True))
                .values(**_ended(JobState.cancelled, now))
                .execution_options(synchronize_session=False)
            )
        )
        failed = _rowcount(
            session.execute(
                update(Job)
                .where(expired, Job.attempts >= max_attempts)
                .values(
                    **_ended(JobState.failed, now),
                    error=f"its runner stopped {max_attempts} times without finishing (crashed, killed or "
                    "out of memory); see the worker logs, then submit the survey again to retry",
                )
                .execution_options(synchronize_session=False)
            )
        )
    return cancelled + failed


def _rowcount(result: Result[Any]) -> int:
    """Rows an UPDATE matched: its result is a CursorResult, which the generic type does not say."""
    return int(getattr(result, "rowcount", 0) or 0)


def _ended(state: JobState, now: datetime) -> dict[str, object]:
    """The columns of a job that reaches final `state` now: its lease given up."""
    return dict(
        state=state.value, stage=state.value, lease_owner=None, lease_expires_at=None, finished_at=now,
        updated_at=now,
    )


def _running_under(job_id: str, owner: str) -> ColumnElement[bool]:
    """The job is running under `owner`'s lease: the guard on every write a runner makes to it."""
    return and_(Job.id == job_id, Job.lease_owner == owner, Job.state == JobState.running)


class LeaseStatus(StrEnum):
    held = "held"
    lost = "lost"  # finished, or taken over by another runner
    cancel_requested = "cancel_requested"


def renew(
    factory: sessionmaker[Session], *, job_id: str, owner: str, now: datetime, lease_seconds: float
) -> LeaseStatus:
    with session_scope(factory) as session:
        return _update_held(
            session, job_id, owner, lease_expires_at=now + timedelta(seconds=lease_seconds), heartbeat_at=now
        )


def set_progress(
    session: Session, *, job_id: str, owner: str, done: int, total: int, stage: str, now: datetime
) -> LeaseStatus:
    """Progress in the caller's transaction, which the runner's item joins; the lease's status with it.

    On PostgreSQL this also locks the job row until commit, so two runners that both believe
    they hold the job can never both write an item.
    """
    return _update_held(session, job_id, owner, progress_done=done, progress_total=total, stage=stage,
                        updated_at=now)


def _update_held(session: Session, job_id: str, owner: str, **values: object) -> LeaseStatus:
    """Set `values` on the job if `owner` still runs it; the lease's status either way."""
    row = session.execute(
        update(Job)
        .where(_running_under(job_id, owner))
        .values(**values)
        .returning(Job.cancel_requested)
        .execution_options(synchronize_session=False)
    ).first()
    if row is None:
        return LeaseStatus.lost
    return LeaseStatus.cancel_requested if row[0] else LeaseStatus.held


def finish(
    factory: sessionmaker[Session],
    *,
    job_id: str,
    owner: str,
    state: JobState,
    now: datetime,
    error: str | None = None,
) -> bool:
    if state not in FINAL_STATES:
        raise ValueError(f"expected a final state, got {state}")
    with session_scope(factory) as session:
        result = session.execute(
            update(Job)
            .where(_running_under(job_id, owner))
            .values(**_ended(state, now), error=error[:MAX_ERROR_CHARS] if error else None)
            .execution_options(synchronize_session=False)
        )
    return result.rowcount == 1  # type: ignore[attr-defined]


def release(factory: sessionmaker[Session], *, job_id: str, owner: str, now: datetime) -> bool:
    """Give a running job back to the queue (runner shutting down); the attempt does not count."""
    with session_scope(factory) as session:
        result = session.execute(
            update(Job)
            .where(_running_under(job_id, owner))
            .values(
                state=JobState.queued.value,
                stage="queued",
                lease_owner=None,
                lease_expires_at=None,
                attempts=Job.attempts - 1,
                updated_at=now,
            )
            .execution_options(synchronize_session=False)
        )
    return result.rowcount == 1  # type: ignore[attr-defined]


def end_dead_local_leases(factory: sessionmaker[Session], *, now: datetime) -> list[str]:
    """Expire the leases of running jobs whose owner was a process on this host that no longer exists."""
    host = socket.gethostname()[:60]
    with factory() as session:
        rows = session.execute(
            select(Job.id, Job.lease_owner).where(Job.state == JobState.running, Job.lease_owner.is_not(None))
        ).all()
    dead = []
    for job_id, owner in rows:
        parsed = _owner_host_pid(owner or "")
        if parsed is not None and parsed[0] == host and not _pid_alive(parsed[1]):
            dead.append((job_id, owner))
    if not dead:
        return []
    with session_scope(factory) as session:
        for job_id, owner in dead:  # guarded: the owner may have changed since the read
            session.execute(
                update(Job)
                .where(Job.id == job_id, Job.lease_owner == owner)
                .values(lease_expires_at=now - timedelta(seconds=1), updated_at=now)
                .execution_options(synchronize_session=False)
            )
    return [job_id for job_id, _ in dead]


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def runnable_ids(session: Session, *, now: datetime, max_attempts: int) -> list[str]:
    """Jobs a runner should pick up: queued ones and running ones whose lease ran out."""
    return list(
        session.scalars(select(Job.id).where(_claimable(now, max_attempts)).order_by(Job.created_at, Job.id))
    )


def request_cancel(session: Session, job: Job, now: datetime) -> None:
    """Queued: cancelled at once. Running: flagged; its runner stops after the current photo or tile."""
    if job.state == JobState.queued:
        job.state = JobState.cancelled.value
        job.stage = "cancelled"
        job.finished_at = now
    elif job.state == JobState.running:
        job.cancel_requested = True
    job.updated_at = now


class JobCounts(BaseModel):
    """What became of a job's items so far; the API's JobSummary adds the first skipped ones."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    items: int = Field(description="Photos or tiles handled so far.")
    recorded: int
    already_recorded: int = Field(description="In the ledger before (same image and model): not added again.")
    skipped: int
    observations: int
    issues_opened: int
    issues_joined: int
    issues_rebound: int
    issues_verified: int


def summarize(session: Session, job_id: str) -> JobCounts:
    outcome_counts = dict(
        session.execute(
            select(JobItem.outcome, func.count()).where(JobItem.job_id == job_id).group_by(JobItem.outcome)
        ).all()
    )
    sums = session.execute(
        select(
            func.coalesce(func.sum(JobItem.observations), 0),
            func.coalesce(func.sum(JobItem.issues_opened), 0),
            func.coalesce(func.sum(JobItem.issues_joined), 0),
            func.coalesce(func.sum(JobItem.issues_rebound), 0),
            func.coalesce(func.sum(JobItem.issues_verified), 0),
        ).where(JobItem.job_id == job_id)
    ).one()
    return JobCounts(
        items=sum(outcome_counts.values()),
        recorded=outcome_counts.get(ItemOutcome.recorded.value, 0),
        already_recorded=outcome_counts.get(ItemOutcome.already_recorded.value, 0),
        skipped=outcome_counts.get(ItemOutcome.skipped.value, 0),
        observations=int(sums[0]),
        issues_opened=int(sums[1]),
        issues_joined=int(sums[2]),
        issues_rebound=int(sums[3]),
        issues_verified=int(sums[4]),
    )


def skipped_items(session: Session, job_id: str, limit: int = 100) -> list[JobItem]:
    return list(
        session.scalars(
            select(JobItem)
            .where(JobItem.job_id == job_id, JobItem.outcome == ItemOutcome.skipped.value)
            .order_by(JobItem.seq)
            .limit(limit)
        )
    )


def done_seqs(session: Session, job_id: str) -> set[int]:
    return set(session.scalars(select(JobItem.seq).where(JobItem.job_id == job_id)))
