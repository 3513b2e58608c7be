"""A periodic task on its own daemon thread: the Celery dispatcher's sweep for stalled and unsent jobs.

Bounded: one sweep at a time, every `interval_s`; a failing sweep (database or broker away)
is logged and tried again at the next tick, never in a tight loop. `stop()` waits for the
sweep in progress (each is a few statements and at most a few sends).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from sqlalchemy.exc import SQLAlchemyError

from vision.errors import PatrolVisionError

logger = logging.getLogger(__name__)


class Sweeper:
    def __init__(self, sweep: Callable[[], object], *, interval_s: float, name: str) -> None:
        if interval_s <= 0:
            raise ValueError(f"expected a positive sweep interval, got {interval_s}")
        self._sweep = sweep
        self.interval_s = interval_s
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _loop(self) -> None:
        while not self._stopping.wait(self.interval_s):
            try:
                self._sweep()
            except (SQLAlchemyError, PatrolVisionError) as exc:  # away for now: the next tick tries again
                logger.warning("%s: sweep failed, retrying in %.1f s: %s",
                               self._thread.name, self.interval_s, exc)
