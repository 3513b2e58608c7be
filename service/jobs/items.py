"""One step of a job: a photo or tile into the ledger, its `job_items` row and the job's progress, atomically.

Everything a step writes commits together or not at all, in one recording unit of work
(`service.recording`): the frame, observations and issue events, the item saying what
became of this photo or tile, and the job's progress. A crash between steps therefore
leaves nothing half done, and a resumed run skips exactly the items that exist. Before
the expensive analysis, a photo already in the ledger under this model (same content
hash) is recognised and not analysed again.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.analysis import PhotoAnalysis
from service.auth import Role
from service.db.models import Frame
from service.db.session import session_scope
from service.jobs import queue
from service.jobs.errors import LeaseLost
from service.jobs.lease import Lease
from service.jobs.models import ItemOutcome, Job, JobItem
from service.jobs.queue import LeaseStatus
from service.ledger.events import Actor
from service.ledger.intake import Outcome, SourceRef
from service.recording import UnitOfWork, unit_of_work
from service.runtime import Runtime

MAX_REASON_CHARS = 1000


@dataclass(frozen=True)
class JobSpec:
    """The parts of a job row a run needs, read once at its start."""

    id: str
    kind: str
    content_hash: str
    model_version: str
    input_path: str
    note: str
    api_key_id: int | None
    actor_label: str
    source_name: str

    @classmethod
    def of(cls, job: Job) -> JobSpec:
        return cls(
            job.id,
            job.kind,
            job.content_hash,
            job.model_version,
            job.input_path,
            job.note,
            job.api_key_id,
            job.actor,
            job.source_name,
        )

    def actor(self) -> Actor:
        return Actor(self.actor_label, Role.ingest, self.api_key_id)

    def source(self) -> SourceRef:
        return SourceRef(kind="drone", name=self.source_name, api_key_id=self.api_key_id)


@dataclass(frozen=True)
class Progress:
    done: int  # including the item being written
    total: int
    stage: str


def recorded_frame_id(ctx: Runtime, content_hash: str, model_version: str) -> int | None:
    with ctx.session_factory() as session:
        return session.scalar(
            select(Frame.id).where(Frame.content_hash == content_hash, Frame.model_version == model_version)
        )


def write_progress(ctx: Runtime, spec: JobSpec, lease: Lease, progress: Progress) -> None:
    """Progress without an item (the detection pass of an orthomosaic)."""
    with session_scope(ctx.session_factory) as session:
        status = _set_progress(session, ctx, spec, lease, progress)
    lease.note(status)
    lease.check()


def _set_progress(
    session: Session, ctx: Runtime, spec: JobSpec, lease: Lease, progress: Progress
) -> LeaseStatus:
    return queue.set_progress(
        session,
        job_id=spec.id,
        owner=lease.owner,
        done=progress.done,
        total=progress.total,
        stage=progress.stage,
        now=ctx.lease_clock(),
    )


def write_item(
    ctx: Runtime,
    spec: JobSpec,
    lease: Lease,
    *,
    seq: int,
    label: str,
    progress: Progress,
    analysis: PhotoAnalysis | None = None,
    outcome: ItemOutcome | None = None,
    reason: str | None = None,
    frame_id: int | None = None,
) -> JobItem:
    """Record `analysis` (or a skipped / already-recorded item) and the progress in one unit of work."""
    with unit_of_work(ctx) as work:
        status = _set_progress(work.session, ctx, spec, lease, progress)
        if status is LeaseStatus.lost:
            raise LeaseLost()  # another runner owns the job now: write nothing
        item = _recorded_item(work, spec, analysis) if analysis is not None else JobItem(frame_id=frame_id)
        item.job_id = spec.id
        item.seq = seq
        item.label = label
        if analysis is None:
            if outcome is None:
                raise ValueError("expected an analysis or an outcome")
            item.outcome = outcome.value
            item.reason = reason[:MAX_REASON_CHARS] if reason else None
        work.session.add(item)
        work.session.flush()
    lease.note(status)
    return item


def _recorded_item(work: UnitOfWork, spec: JobSpec, analysis: PhotoAnalysis) -> JobItem:
    result = work.record(analysis, source=spec.source(), actor=spec.actor(), note=spec.note)
    outcomes = [o.outcome for o in result.observations]
    return JobItem(
        outcome=(ItemOutcome.already_recorded if result.duplicate else ItemOutcome.recorded).value,
        frame_id=result.frame.id,
        observations=0 if result.duplicate else len(outcomes),
        issues_opened=outcomes.count(Outcome.opened),
        issues_joined=outcomes.count(Outcome.joined),
        issues_rebound=outcomes.count(Outcome.rebound),
        issues_verified=sum(1 for p in result.passes if p.verified),
    )
