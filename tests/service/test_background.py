"""WakeableThread: a wake ends the loop's wait at once, stop ends the loop, a second start is a no-op."""

from __future__ import annotations

import threading
import time

from service.background import WakeableThread

LONG_POLL_S = 30.0


def test_wake_and_stop_do_not_wait_out_the_poll() -> None:
    worker = WakeableThread("test-loop")
    rounds: list[float] = []
    looked = threading.Event()

    def loop() -> None:
        while not worker.stopping.is_set():
            rounds.append(time.monotonic())
            looked.set()
            worker.woken.wait(LONG_POLL_S)
            worker.woken.clear()

    worker.start(loop)
    worker.start(loop)  # already started: still one thread
    assert looked.wait(5) and worker.started and worker.alive
    looked.clear()
    worker.wake()
    assert looked.wait(5), "a wake did not end the poll's wait"
    started = time.monotonic()
    assert worker.stop(timeout_s=5) is True
    assert time.monotonic() - started < 5 and not worker.started and not worker.alive
    assert len(rounds) == 2
    assert len([t for t in threading.enumerate() if t.name == "test-loop"]) == 0


def test_stop_says_when_the_loop_is_still_running() -> None:
    worker = WakeableThread("test-busy")
    release = threading.Event()
    worker.start(lambda: release.wait(10))
    assert worker.stop(timeout_s=0.05) is False  # the loop ignores stopping until released
    release.set()
    assert worker.stop(timeout_s=1) is True  # nothing started any more
