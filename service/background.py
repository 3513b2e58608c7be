"""A background thread of the service that can be woken early and asked to stop.

The alert dispatcher and the job runner each poll their table in one daemon thread: a commit
of new work wakes it at once instead of at the next poll, and stopping wakes it too so that it
ends without waiting out its poll. The loop reads `stopping` and waits on `woken`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable


class WakeableThread:
    def __init__(self, name: str) -> None:
        self.name = name
        self.stopping = threading.Event()
        self.woken = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def started(self) -> bool:
        """Started and not stopped since (the thread may have ended on its own)."""
        return self._thread is not None

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, loop: Callable[[], None]) -> None:
        """Run `loop` in a daemon thread, unless one is started already."""
        if self._thread is None:
            self.stopping.clear()
            self._thread = threading.Thread(target=loop, name=self.name, daemon=True)
            self._thread.start()

    def wake(self) -> None:
        self.woken.set()

    def stop(self, timeout_s: float) -> bool:
        """Ask the loop to end and wait up to `timeout_s`; False when it is still running."""
        self.stopping.set()
        self.woken.set()
        thread, self._thread = self._thread, None
        if thread is None:
            return True
        thread.join(timeout_s)
        return not thread.is_alive()
