"""Taking a checked survey upload into the queue, idempotently on (content hash, model version).

The same survey under the same model is one job: a repeat upload returns it (a failed or
cancelled one is queued again and resumes after its last recorded item; one that nobody
runs is handed to the dispatcher again, in case its message was lost). Only the key that
submitted it (or an admin) may do so: another key's repeat is refused without its job. A new job adopts
the upload as its input file and is handed to the dispatcher once its row is committed.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from service.auth import actor_label
from service.db.models import ApiKey
from service.db.session import lock_ledger, session_scope
from service.jobs import queue
from service.jobs.dispatch import JobDispatcher, make_dispatcher
from service.jobs.models import Job, JobKind, JobState
from service.jobs.ownership import check_resubmit
from service.jobs.store import JobInputStore, StoredUpload
from service.runtime import Clock, Runtime, utc_now
from service.settings import Settings
from vision.errors import ModelError


class SubmitStatus(StrEnum):
    created = "created"
    requeued = "requeued"  # it had failed or been cancelled; it resumes where it stopped
    existing = "existing"  # queued, running or done already


@dataclass(frozen=True)
class Submission:
    job: Job
    status: SubmitStatus
    needs_runner: bool = True  # nobody runs it now (a message may have been lost): hand it over again


@dataclass(frozen=True)
class JobServices:
    """The jobs side of one app: the context jobs run in (None when this app cannot run surveys),
    how jobs are handed over, and where their inputs live."""

    settings: Settings
    session_factory: sessionmaker[Session]
    context: Runtime | None
    dispatcher: JobDispatcher
    store: JobInputStore
    lease_clock: Clock = utc_now  # wall time, as leases are written in

    @classmethod
    def for_app(cls, state: Runtime) -> JobServices:
        context = state if state.runs_surveys else None
        return cls(
            settings=state.settings,
            session_factory=state.session_factory,
            context=context,
            dispatcher=make_dispatcher(state.settings, context, state.session_factory),
            store=JobInputStore(state.settings.data_dir),
            lease_clock=state.lease_clock,
        )

    def start(self) -> None:
        self.dispatcher.start()

    def close(self) -> None:
        self.dispatcher.close()

    def model_version(self) -> str:
        """The model surveys are analysed with now; ModelError when none can be loaded."""
        if self.context is None:
            raise ModelError("this server's analyzer cannot run surveys (it has no detection pipeline)")
        return self.context.model_version()

    def submit(
        self,
        upload: StoredUpload,
        *,
        kind: JobKind,
        model_version: str,
        key: ApiKey,
        note: str,
        now: datetime,
    ) -> Submission:
        """Raises BrokerUnavailableError when the job is saved but could not be sent (Celery), and
        SurveyOwnedElsewhereError when another key submitted the same survey."""
        try:
            submission = self._store(upload, kind, model_version, key, note, now)
        except IntegrityError:  # the same survey arrived twice at once: the other request made the job
            submission = self._store(upload, kind, model_version, key, note, now)
        finally:
            upload.path.unlink(missing_ok=True)  # adopted uploads have moved; repeats are not kept
        if submission.status is not SubmitStatus.existing:
            self.dispatcher.submit(submission.job.id)
        elif submission.needs_runner:  # queued or stalled: its message may be lost (broker down, restarted)
            self.dispatcher.resend(submission.job.id)
        return submission

    def _store(
        self, upload: StoredUpload, kind: JobKind, model_version: str, key: ApiKey, note: str, now: datetime
    ) -> Submission:
        with session_scope(self.session_factory) as session:
            # Write first: on SQLite a transaction that reads and then writes fails at once
            # ("database is locked") when another writer committed in between.
            lock_ledger(session, now)
            job = session.scalars(
                select(Job).where(Job.content_hash == upload.content_hash, Job.model_version == model_version)
            ).first()
            if job is None:
                job_id = uuid.uuid4().hex
                job = Job(
                    id=job_id,
                    kind=kind.value,
                    state=JobState.queued.value,
                    content_hash=upload.content_hash,
                    model_version=model_version,
                    input_path=f"jobs/{job_id}/input",
                    input_bytes=upload.size,
                    note=note,
                    api_key_id=key.id,
                    actor=actor_label(key),
                    source_name=f"key {key.id} ({key.name})"[:200],
                    progress_done=0,
                    progress_total=0,
                    stage="queued",
                    attempts=0,
                    cancel_requested=False,
                    created_at=now,
                    updated_at=now,
                )
                session.add(job)
                session.flush()  # a duplicate raises here, before the file moves
                self.store.adopt(upload, job_id)
                return Submission(job, SubmitStatus.created)
            check_resubmit(key, job)
            if job.state in (JobState.failed, JobState.cancelled):
                self.store.adopt(upload, job.id)  # the same bytes; replaces an input that went missing
                job.state = JobState.queued.value
                job.stage = "queued"
                job.attempts = 0
                job.error = None
                job.cancel_requested = False
                job.finished_at = None
                job.updated_at = now
                return Submission(job, SubmitStatus.requeued)
            return Submission(job, SubmitStatus.existing, queue.needs_runner(job, self.lease_clock()))
