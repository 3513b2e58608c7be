"""The queue in the database, on SQLite and PostgreSQL: one claim per job, leases, attempts, cancel."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import timedelta

import pytest

from service.db.session import session_scope
from service.jobs import queue
from service.jobs.models import Job
from service.jobs.queue import LeaseStatus
from service.jobs.work import RunOutcome, claim_and_execute
from tests.service.jobs.conftest import HookedAnalyzer, enqueue, job_row, ledger_counts
from tests.service.jobs.surveys import drone_zip


def _claim(ctx, owner, *, at=None, job_id=None):  # type: ignore[no-untyped-def]
    return queue.claim(
        ctx.session_factory,
        owner=owner,
        now=at or ctx.lease_clock(),
        lease_seconds=ctx.settings.job_lease_seconds,
        max_attempts=ctx.settings.job_max_attempts,
        job_id=job_id,
    )


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_concurrent_claimers_never_share_a_job(job_ctx, n_jobs):
    job_ids = {enqueue(job_ctx, drone_zip(1, shade=i)) for i in range(n_jobs)}
    start = threading.Barrier(4)
    claimed: list[str | None] = []
    lock = threading.Lock()

    def claimer(i: int) -> None:
        start.wait()
        got = _claim(job_ctx, f"test:{i}:x")
        with lock:
            claimed.append(got)

    threads = [threading.Thread(target=claimer, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    got = [c for c in claimed if c is not None]
    assert sorted(got) == sorted(job_ids)  # every job claimed exactly once, by one claimer


def test_an_expired_lease_is_taken_over_and_the_old_owner_can_write_nothing(job_ctx):
    job_id = enqueue(job_ctx, drone_zip(1))
    t0 = job_ctx.lease_clock()
    assert _claim(job_ctx, "a:1:x", at=t0) == job_id
    assert _claim(job_ctx, "b:2:x", at=t0 + timedelta(seconds=1)) is None  # lease still held
    later = t0 + timedelta(seconds=job_ctx.settings.job_lease_seconds + 1)
    assert _claim(job_ctx, "b:2:x", at=later) == job_id
    assert job_row(job_ctx, job_id).attempts == 2
    with session_scope(job_ctx.session_factory) as session:
        status = queue.set_progress(
            session, job_id=job_id, owner="a:1:x", done=1, total=1, stage="x", now=later
        )
    assert status is LeaseStatus.lost
    assert queue.renew(
        job_ctx.session_factory, job_id=job_id, owner="a:1:x", now=later, lease_seconds=60
    ) is (LeaseStatus.lost)
    assert not queue.finish(
        job_ctx.session_factory, job_id=job_id, owner="a:1:x", state=queue.JobState.succeeded, now=later
    )
    assert job_row(job_ctx, job_id).lease_owner == "b:2:x"


def test_a_job_whose_runner_keeps_dying_fails_after_max_attempts(job_ctx):
    job_id = enqueue(job_ctx, drone_zip(1))
    t = job_ctx.lease_clock()
    step = timedelta(seconds=job_ctx.settings.job_lease_seconds + 1)
    for attempt in range(job_ctx.settings.job_max_attempts):
        assert _claim(job_ctx, f"dead:{attempt}:x", at=t + step * attempt) == job_id
    assert _claim(job_ctx, "next:1:x", at=t + step * job_ctx.settings.job_max_attempts) is None
    job = job_row(job_ctx, job_id)
    assert job.state == "failed" and "stopped 3 times" in job.error


def test_leases_of_dead_local_processes_end_at_once(job_ctx):
    job_id = enqueue(job_ctx, drone_zip(1))
    owner = queue.new_owner()
    host = owner.split(":")[0]
    dead_pid = 2**22 + 12345  # above the default pid_max: never a live process
    assert _claim(job_ctx, f"{host}:{dead_pid}:feed") == job_id
    assert queue.end_dead_local_leases(job_ctx.session_factory, now=job_ctx.lease_clock()) == [job_id]
    assert _claim(job_ctx, owner) == job_id  # no wait for the lease to run out


def test_cancel_a_running_job_stops_it_after_the_current_photo(job_ctx):
    job_id = enqueue(job_ctx, drone_zip(4))

    def cancel_at_the_first(n: int) -> None:
        if n == 1:
            with session_scope(job_ctx.session_factory) as session:
                queue.request_cancel(session, session.get(Job, job_id), job_ctx.clock())

    ctx = replace(job_ctx, analyzer=HookedAnalyzer(job_ctx.analyzer, cancel_at_the_first))
    assert claim_and_execute(ctx) == (job_id, RunOutcome.cancelled)
    job = job_row(job_ctx, job_id)
    assert job.state == "cancelled" and job.lease_owner is None
    # What was recorded before the cancel took effect stays, and nothing beyond the photos in flight.
    counts = ledger_counts(job_ctx)
    assert 1 <= counts["items"] < 4 and counts["frames"] == counts["items"] == counts["observations"]


def test_claims_take_turns_across_keys(job_ctx):
    """Key A queues three surveys, key B one after them: B's does not wait for all of A's."""
    a_jobs = [_enqueue_later(job_ctx, drone_zip(1, shade=i), "team A") for i in range(3)]
    b_job = _enqueue_later(job_ctx, drone_zip(1, shade=9), "team B")
    t = job_ctx.lease_clock()
    order = []
    for step in range(4):
        now = t + timedelta(seconds=step)
        job_id = _claim(job_ctx, f"runner:1:{step}", at=now)
        assert job_id is not None
        order.append(job_id)
        assert queue.finish(job_ctx.session_factory, job_id=job_id, owner=f"runner:1:{step}",
                            state=queue.JobState.succeeded, now=now)
    assert order == [a_jobs[0], b_job, a_jobs[1], a_jobs[2]]


def test_a_key_with_a_running_job_waits_for_keys_with_none(job_ctx):
    """Two runners: while A's first job runs, the second runner takes B's, though A's next is older."""
    a_jobs = [_enqueue_later(job_ctx, drone_zip(1, shade=i), "team A") for i in range(2)]
    b_job = _enqueue_later(job_ctx, drone_zip(1, shade=9), "team B")
    assert _claim(job_ctx, "runner:1:x") == a_jobs[0]
    assert _claim(job_ctx, "runner:2:x") == b_job
    assert _claim(job_ctx, "runner:3:x") == a_jobs[1]


def _enqueue_later(ctx, data, key_name):  # type: ignore[no-untyped-def]
    ctx.clock.advance(seconds=1)  # distinct creation times: "oldest first" must decide ties
    return enqueue(ctx, data, key_name=key_name)
