"""vision.proc_status reads this process's memory as Linux reports it."""

from __future__ import annotations

import math

import numpy as np

from vision.proc_status import rss_mb, status_kb


def test_rss_grows_by_what_the_process_holds() -> None:
    before = rss_mb()
    held = np.ones(64 * 1024 * 1024, np.uint8)  # written, so every page is resident
    assert rss_mb() - before > 48
    peak, now = status_kb("VmHWM"), status_kb("VmRSS")
    assert peak is not None and now is not None and peak >= now
    del held


def test_a_missing_process_or_field_is_not_made_up() -> None:
    assert math.isnan(rss_mb(2**31 - 1))  # above pid_max: no such process
    assert status_kb("NoSuchField") is None
