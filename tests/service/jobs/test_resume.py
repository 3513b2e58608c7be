"""A job interrupted mid-way resumes and finishes without duplicates; running a job twice adds nothing.

Two kinds of interruption: the job function dies in-process with a non-Exception (as when
the interpreter is torn down; nothing marks the job), and a real runner process killed with
SIGKILL mid-job. Either way the job is left `running` under a lease nobody renews.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, select, update

from service.db.session import session_scope
from service.jobs.models import Job, JobItem
from service.jobs.runner import JobRunner
from service.jobs.work import RunOutcome, claim_and_execute
from tests.service.jobs.conftest import HookedAnalyzer, enqueue, job_row, ledger_counts
from tests.service.jobs.surveys import drone_photos, drone_zip, zip_bytes

ROOT = Path(__file__).resolve().parents[3]
N_PHOTOS = 6


class SimulatedCrash(BaseException):
    """Not an Exception: the runner must not catch it, like a process dying."""


def _crashing(analyzer: Any, after: int) -> HookedAnalyzer:
    def crash_past(n: int) -> None:
        if n > after:
            raise SimulatedCrash()

    return HookedAnalyzer(analyzer, crash_past)


def test_a_crash_mid_job_resumes_after_the_lease_and_adds_no_duplicates(job_ctx):
    job_id = enqueue(job_ctx, drone_zip(N_PHOTOS))
    with pytest.raises(SimulatedCrash):
        claim_and_execute(replace(job_ctx, analyzer=_crashing(job_ctx.analyzer, after=3)))
    crashed = job_row(job_ctx, job_id)
    assert crashed.state == "running" and crashed.attempts == 1
    done_before = ledger_counts(job_ctx)
    assert 1 <= done_before["items"] <= 3 and done_before["frames"] == done_before["items"]
    assert crashed.progress_done == done_before["items"]

    # Another runner cannot take it while the lease holds; once it has run out, it resumes.
    assert claim_and_execute(job_ctx) == (None, RunOutcome.not_claimed)
    later = replace(
        job_ctx,
        lease_clock=lambda: job_ctx.lease_clock() + timedelta(seconds=job_ctx.settings.job_lease_seconds + 1),
    )
    assert claim_and_execute(later) == (job_id, RunOutcome.succeeded)

    job = job_row(job_ctx, job_id)
    assert (job.state, job.attempts, job.progress_done, job.progress_total) == (
        "succeeded",
        2,
        N_PHOTOS,
        N_PHOTOS,
    )
    counts = ledger_counts(job_ctx)
    # one frame, observation and issue per photo: nothing recorded twice
    assert counts["items"] == counts["frames"] == counts["observations"] == counts["issues"] == N_PHOTOS


def test_running_a_finished_job_again_from_scratch_adds_nothing(job_ctx):
    """Its items deleted (as if none had been written): every photo is found in the ledger instead."""
    job_id = enqueue(job_ctx, drone_zip(3))
    assert claim_and_execute(job_ctx) == (job_id, RunOutcome.succeeded)
    before = ledger_counts(job_ctx)
    with session_scope(job_ctx.session_factory) as session:
        session.execute(delete(JobItem).where(JobItem.job_id == job_id))
        session.execute(update(Job).where(Job.id == job_id).values(state="queued"))
    assert claim_and_execute(job_ctx) == (job_id, RunOutcome.succeeded)
    after = ledger_counts(job_ctx)
    assert after == before  # frames, observations, issues, events, and as many items again
    with job_ctx.session_factory() as session:
        outcomes = session.scalars(select(JobItem.outcome).where(JobItem.job_id == job_id)).all()
    assert outcomes == ["already_recorded"] * 3


def test_a_second_survey_of_the_same_photos_runs_no_inference(job_ctx):
    first = enqueue(job_ctx, zip_bytes((f"{i}.jpg", p) for i, p in enumerate(drone_photos(3))))
    assert claim_and_execute(job_ctx) == (first, RunOutcome.succeeded)
    before = ledger_counts(job_ctx)
    counting = HookedAnalyzer(job_ctx.analyzer)
    renamed = enqueue(job_ctx, zip_bytes((f"again/{i}.jpg", p) for i, p in enumerate(drone_photos(3))))
    assert renamed != first  # other zip bytes: another job
    assert claim_and_execute(replace(job_ctx, analyzer=counting)) == (renamed, RunOutcome.succeeded)
    assert counting.calls == 0  # recognised by content hash before any inference
    after = ledger_counts(job_ctx)
    assert after == {**before, "items": before["items"] + 3}


RUNNER = """
import sys, time
from service.runtime import Runtime
from service.jobs.runner import JobRunner
from service.photo_analyzer import PipelineAnalyzer
from service.settings import Settings
from tests.service.conftest import painted_card
from tests.vision.fakes import PaintedBoxDetector
from vision.batcher import BatcherConfig
from vision.pipeline import Pipeline


class SlowDetector(PaintedBoxDetector):
    def predict_batch(self, images):
        time.sleep(0.4)  # slow enough for the test to kill the process mid-job
        return super().predict_batch(images)


settings = Settings(database_url=sys.argv[1], data_dir=sys.argv[2])
batcher = BatcherConfig(max_batch=1, max_wait_ms=1)
pipeline = Pipeline(SlowDetector(input_size=640), painted_card(), batcher=batcher)
ctx = Runtime.build(settings, analyzer=PipelineAnalyzer(settings, pipeline=pipeline))
print("ready", flush=True)
JobRunner(ctx).run_until_idle()
print("finished", flush=True)
"""


@pytest.mark.slow  # a child interpreter importing the service (~5-10 s) and a kill mid-job
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # claims are tested on both backends
def test_a_runner_killed_mid_job_is_resumed_by_the_next_start(job_ctx):
    job_id = enqueue(job_ctx, drone_zip(N_PHOTOS))
    child = subprocess.Popen(
        [sys.executable, "-c", RUNNER, job_ctx.settings.database_url, str(job_ctx.settings.data_dir)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while job_row(job_ctx, job_id).progress_done < 2:
            assert child.poll() is None, child.communicate()
            assert time.monotonic() < deadline, "the child runner made no progress"
            time.sleep(0.05)
        os.kill(child.pid, signal.SIGKILL)
        child.wait(30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(30)
    killed = job_row(job_ctx, job_id)
    assert killed.state == "running" and 2 <= killed.progress_done < N_PHOTOS, killed.progress_done

    # The next start on this host sees the owner process is gone and resumes at once.
    runner = JobRunner(job_ctx)
    runner.start()
    try:
        deadline = time.monotonic() + 60
        while job_row(job_ctx, job_id).state == "running":
            assert time.monotonic() < deadline, "the job was not resumed"
            time.sleep(0.05)
    finally:
        runner.stop()
    job = job_row(job_ctx, job_id)
    assert (job.state, job.attempts, job.progress_done) == ("succeeded", 2, N_PHOTOS)
    counts = ledger_counts(job_ctx)
    assert counts["items"] == counts["frames"] == counts["observations"] == counts["issues"] == N_PHOTOS
