"""The in-process job runner: one worker thread in the API process, its queue in the database.

Started and stopped with the app's lifespan. It claims jobs from the `jobs` table (see
`queue.claim`), so a restart resumes what was queued or running: at start it ends the
leases of dead processes on this host, then takes those jobs first. A submit wakes it at
once; otherwise it polls, which also picks up jobs that another process's runner
abandoned. Stopping lets the current photo or tile finish, then puts the job back in the
queue for the next start.
"""

from __future__ import annotations

import logging

from sqlalchemy.exc import SQLAlchemyError

from service.background import WakeableThread
from service.jobs import queue
from service.jobs.work import RunOutcome, claim_and_execute
from service.runtime import Runtime

logger = logging.getLogger(__name__)

POLL_S = 5.0
ERROR_BACKOFF_S = 10.0


class JobRunner:
    def __init__(self, ctx: Runtime, *, poll_s: float = POLL_S) -> None:
        self.ctx = ctx
        self.poll_s = poll_s
        self._thread = WakeableThread("patrol-job-runner")

    def start(self) -> None:
        if self._thread.started:
            raise RuntimeError("the job runner is already started")
        queue.end_dead_local_leases(self.ctx.session_factory, now=self.ctx.lease_clock())
        self._thread.start(self._loop)

    def wake(self) -> None:
        self._thread.wake()

    def stop(self, timeout: float = 60.0) -> None:
        if not self._thread.stop(timeout):
            logger.warning("job runner still busy after %.0f s; its job resumes after the lease", timeout)

    @property
    def alive(self) -> bool:
        return self._thread.alive

    def run_once(self) -> RunOutcome:
        """Claim and run one job in the calling thread (tests, `patrol demo`)."""
        return claim_and_execute(self.ctx, stopping=self._thread.stopping)[1]

    def run_until_idle(self) -> list[RunOutcome]:
        """Run jobs in the calling thread until none is runnable."""
        outcomes: list[RunOutcome] = []
        while (outcome := self.run_once()) is not RunOutcome.not_claimed:
            outcomes.append(outcome)
        return outcomes

    def _loop(self) -> None:
        while not self._thread.stopping.is_set():
            self._thread.woken.clear()  # before looking: a submit from now on is not missed
            try:
                outcome = self.run_once()
            except SQLAlchemyError as exc:  # database away: retry later, the jobs are safe in it
                logger.warning("job runner: database error, retrying in %.0f s: %s", ERROR_BACKOFF_S, exc)
                self._thread.stopping.wait(ERROR_BACKOFF_S)
                continue
            if outcome is RunOutcome.not_claimed:
                self._thread.woken.wait(self.poll_s)
