"""vision.proc_status reads this process's memory as Linux reports it."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

from vision.proc_status import rss_mb, status_kb

REPO = Path(__file__).resolve().parents[2]


def test_rss_grows_by_what_the_process_holds() -> None:
    # In a fresh interpreter: in the suite's own process, an allocator an earlier test loaded (or
    # its cache of freed pages) can hand back memory that is already resident, and RSS need not
    # move (seen once in CI after 2,000 tests: +0.4 MB for 64 MB).
    code = ("import numpy as np\n"
            "from vision.proc_status import rss_mb, status_kb\n"
            "before = rss_mb()\n"
            "held = np.ones(64 * 1024 * 1024, np.uint8)  # written, so every page is resident\n"
            "print(rss_mb() - before, status_kb('VmHWM'), status_kb('VmRSS'))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          cwd=REPO, check=True)
    grew, peak, now = (float(v) for v in done.stdout.split())
    assert grew > 48
    assert peak >= now > 0


def test_a_missing_process_or_field_is_not_made_up() -> None:
    assert math.isnan(rss_mb(2**31 - 1))  # above pid_max: no such process
    assert status_kb("NoSuchField") is None
