"""A standard background load that a benchmark starts, toggles and stops itself.

One busy process per core, each spinning for `duty` of every `period_s` and sleeping the
rest: "loaded" means the same thing on every run, unlike whatever else the machine does.
The processes are paused (SIGSTOP) between loaded passes, so quiet and loaded passes can
alternate inside one run, and each stops by itself after `max_s` or when its parent is
gone: a killed benchmark leaves nothing spinning.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

_BUSY_LOOP = """
import os, sys, time
duty, period, max_s, parent = float(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
end = time.monotonic() + max_s
while time.monotonic() < end and os.getppid() == parent:
    started = time.perf_counter()
    while time.perf_counter() - started < duty * period:
        pass
    time.sleep(period * (1 - duty))
"""


class BackgroundLoad:
    """`processes` busy loops at `duty` (0-1) of each `period_s`; paused until `on()`."""

    def __init__(self, processes: int, *, duty: float = 0.5, period_s: float = 0.05,
                 max_s: float = 1800.0) -> None:
        if processes < 1:
            raise ValueError(f"expected processes >= 1, got {processes}")
        if not 0.0 < duty <= 1.0:
            raise ValueError(f"expected 0 < duty <= 1, got {duty}")
        self.processes, self.duty, self.period_s = processes, duty, period_s
        self._children = [
            subprocess.Popen([sys.executable, "-c", _BUSY_LOOP, str(duty), str(period_s), str(max_s),
                              str(os.getpid())], stdin=subprocess.DEVNULL)
            for _ in range(processes)]
        self.active = True
        self.off()

    def describe(self) -> str:
        return (f"{self.processes} busy processes at {self.duty:.0%} duty "
                f"({self.period_s * 1000:.0f} ms period)")

    def _signal(self, sig: int) -> None:
        for child in self._children:
            if child.poll() is None:
                child.send_signal(sig)

    def on(self, settle_s: float = 0.2) -> None:
        if not self.active:
            self._signal(signal.SIGCONT)
            self.active = True
            time.sleep(settle_s)  # let the scheduler spread them over the cores first

    def off(self) -> None:
        if self.active:
            self._signal(signal.SIGSTOP)
            self.active = False

    def set(self, active: bool) -> None:
        self.on() if active else self.off()

    def close(self) -> None:
        self._signal(signal.SIGKILL)
        for child in self._children:
            child.wait()

    def __enter__(self) -> BackgroundLoad:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
