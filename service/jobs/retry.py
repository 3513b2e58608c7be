"""Waiting out a busy inference queue: photo uploads get 503 and retry, a job waits its turn."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from vision.errors import QueueFullError

T = TypeVar("T")
BACKOFF_S = (1.0, 2.0, 5.0, 10.0, 30.0)


def detect_with_retry(call: Callable[[], T], *, sleep: Callable[[float], None] = time.sleep) -> T:
    """`call()`, retried with growing pauses while the shared inference queue stays full."""
    for pause in BACKOFF_S:
        try:
            return call()
        except QueueFullError:
            sleep(pause)
    return call()  # still full after ~50 s: let QueueFullError fail the job with its message
