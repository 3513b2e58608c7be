"""The job function, the same for the in-process runner and Celery: claim, run with a lease, finish.

`execute` turns what happened into the job's final state: succeeded; failed with a message
a user can act on (any deliberate error, `vision.errors.PatrolVisionError`: bad input, no
model, another model, a queue still full after `retry.detect_with_retry` waited out what
the hierarchy calls `retryable`); cancelled; queued again (runner shutting down); or left
alone (lease lost: another runner has it). Any other exception is a bug: the job fails as
an internal error and the worker logs the traceback. Anything that is not an `Exception`
(the process being killed, KeyboardInterrupt) leaves the job running under a lease that
nobody renews, so another runner resumes it once the lease runs out.
"""

from __future__ import annotations

import logging
import threading
from enum import StrEnum

from service.jobs import queue
from service.jobs.change_request import change_detector_version
from service.jobs.drone_survey import run_drone_survey
from service.jobs.errors import (
    JobCancelled,
    LeaseLost,
    ModelMismatchError,
    RunnerStopping,
    SurveyInputError,
)
from service.jobs.items import JobSpec
from service.jobs.lease import Lease
from service.jobs.models import Job, JobKind, JobState
from service.jobs.ortho_survey import run_orthomosaic
from service.jobs.store import JobInputStore
from service.jobs.survey_changes import run_changes
from service.runtime import Runtime
from vision.errors import PatrolVisionError

logger = logging.getLogger(__name__)


class RunOutcome(StrEnum):
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"
    released = "released"  # back in the queue: the runner is stopping
    lost = "lost"  # another runner took the job over
    not_claimed = "not_claimed"  # nothing to run (finished, held by a live runner, or unknown)


def run_job(ctx: Runtime, job_id: str, lease: Lease) -> None:
    with ctx.session_factory() as session:
        job = session.get(Job, job_id)
        if job is None:
            raise LookupError(f"job {job_id} vanished while claimed")
        spec = JobSpec.of(job)
        done = queue.done_seqs(session, job_id)
    # a change job runs the change detector's thresholds, not the model
    version = change_detector_version() if spec.kind == JobKind.changes else ctx.model_version()
    if version != spec.model_version:
        raise ModelMismatchError(
            f"this runner has model {version}, the job was submitted for {spec.model_version}; "
            "run the same model on the API and every worker, or submit the survey again"
        )
    if not JobInputStore(ctx.settings.data_dir).path_of(spec.input_path).is_file():
        raise SurveyInputError(f"the job's input {spec.input_path} is missing from the data dir")
    if spec.kind == JobKind.drone_photos:
        run_drone_survey(ctx, spec, done, lease)
    elif spec.kind == JobKind.orthomosaic:
        run_orthomosaic(ctx, spec, done, lease)
    elif spec.kind == JobKind.changes:
        run_changes(ctx, spec, done, lease)
    else:
        raise SurveyInputError(f"unknown job kind {spec.kind!r}")


def execute(
    ctx: Runtime, job_id: str, owner: str, *, stopping: threading.Event | None = None
) -> RunOutcome:
    """Run a job this owner has claimed, to a final state where one is reached."""

    def finish(state: JobState, error: str | None = None) -> None:
        queue.finish(
            ctx.session_factory, job_id=job_id, owner=owner, state=state, now=ctx.lease_clock(), error=error
        )

    with Lease(ctx, job_id, owner, stopping) as lease:
        try:
            run_job(ctx, job_id, lease)  # a cancel that comes after the last item is too late
        except JobCancelled:
            finish(JobState.cancelled)
            return RunOutcome.cancelled
        except RunnerStopping:
            queue.release(ctx.session_factory, job_id=job_id, owner=owner, now=ctx.lease_clock())
            return RunOutcome.released
        except LeaseLost:
            logger.warning("job %s: lease lost; another runner continues it", job_id)
            return RunOutcome.lost
        except PatrolVisionError as exc:  # deliberate: its message says what to change
            finish(JobState.failed, str(exc))
            return RunOutcome.failed
        except Exception as exc:
            logger.exception("job %s failed", job_id)
            finish(JobState.failed, f"internal error ({type(exc).__name__}: {exc}); see the worker log")
            return RunOutcome.failed
    finish(JobState.succeeded)
    return RunOutcome.succeeded


def claim_and_execute(
    ctx: Runtime, *, job_id: str | None = None, stopping: threading.Event | None = None
) -> tuple[str | None, RunOutcome]:
    """Claim one job (the oldest runnable, or `job_id`) and run it."""
    owner = queue.new_owner()
    claimed = queue.claim(
        ctx.session_factory,
        owner=owner,
        now=ctx.lease_clock(),
        lease_seconds=ctx.settings.job_lease_seconds,
        max_attempts=ctx.settings.job_max_attempts,
        job_id=job_id,
    )
    if claimed is None:
        return None, RunOutcome.not_claimed
    return claimed, execute(ctx, claimed, owner, stopping=stopping)
