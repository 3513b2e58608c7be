"""GET /v1/jobs/{id}: a survey job's state, progress and what became of each photo or tile; cancel.

A job belongs to the key that submitted it: another ingest key gets the same 404 as for a
job that does not exist (it learns nothing about other keys' surveys); admins see all.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, status
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from service.api.deps import AUTHENTICATED, NowDep, SessionDep, require_role
from service.api.rows import same_named_columns
from service.auth import Role
from service.db.models import ApiKey
from service.db.session import lock_ledger
from service.errors import NotFoundError
from service.jobs import queue
from service.jobs.models import FINAL_STATES, Job, JobKind, JobState
from service.jobs.ownership import may_see

router = APIRouter(prefix="/v1/jobs", tags=["jobs"], dependencies=AUTHENTICATED)

JOB_READERS = (Role.ingest,)
JobId = Annotated[str, Path(pattern=r"^[0-9a-f]{32}$", description="The id POST /v1/surveys returned.")]


class _Public(BaseModel):
    model_config = ConfigDict(extra="forbid")


class JobProgress(_Public):
    done: int
    total: int = Field(description="0 until the runner has counted the photos or tiles.")


class SkippedItem(_Public):
    seq: int
    label: str = Field(description="Zip member name or tile window, for people to read.")
    reason: str | None


class JobSummary(queue.JobCounts):
    skipped_items: list[SkippedItem] = Field(description="The first 100, in order.")


class JobPublic(_Public):
    id: str
    kind: JobKind
    state: JobState
    stage: str
    progress: JobProgress
    content_hash: str
    model_version: str
    input_bytes: int
    note: str
    attempts: int
    cancel_requested: bool
    error: str | None
    summary: JobSummary
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    url: str


def job_public(session: Session, job: Job) -> JobPublic:
    counts = queue.summarize(session, job.id)
    return JobPublic(
        **same_named_columns(job, JobPublic),  # kind and state validate into their enums
        progress=JobProgress(done=job.progress_done, total=job.progress_total),
        summary=JobSummary(
            **counts.model_dump(),
            skipped_items=[
                SkippedItem(seq=i.seq, label=i.label, reason=i.reason)
                for i in queue.skipped_items(session, job.id)
            ],
        ),
        url=f"/v1/jobs/{job.id}",
    )


def owned_job(session: Session, job_id: str, key: ApiKey) -> Job:
    """The job if `key` submitted it or is an admin; NotFoundError (404) otherwise, as for no job."""
    job = session.get(Job, job_id)
    if job is None or not may_see(key, job):
        raise NotFoundError(f"no job {job_id}")
    return job


@router.get("/{job_id}", response_model=JobPublic, name="get_job")
def get_job(
    job_id: JobId, session: SessionDep, key: Annotated[ApiKey, require_role(*JOB_READERS)]
) -> JobPublic:
    return job_public(session, owned_job(session, job_id, key))


@router.post(
    "/{job_id}/cancel",
    response_model=JobPublic,
    name="cancel_job",
    responses={409: {"description": "The job has finished already."}},
)
def cancel_job(
    job_id: JobId, session: SessionDep, now: NowDep, key: Annotated[ApiKey, require_role(*JOB_READERS)]
) -> JobPublic:
    """A queued job is cancelled at once; a running one stops after its current photo or tile
    (what it recorded stays in the ledger)."""
    with session.begin():
        lock_ledger(session, now)  # write first (SQLite), and no runner finishes the job meanwhile
        job = owned_job(session, job_id, key)
        if JobState(job.state) in FINAL_STATES:
            raise HTTPException(status.HTTP_409_CONFLICT, f"job {job_id} has already {job.state}")
        queue.request_cancel(session, job, now)
    return job_public(session, job)
