"""Waiting out what the error hierarchy calls `retryable` (a busy inference queue): photo
uploads get 503 with Retry-After, a job waits its turn here.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from vision.errors import PatrolVisionError

T = TypeVar("T")
BACKOFF_S = (1.0, 2.0, 5.0, 10.0, 30.0)


def detect_with_retry(call: Callable[[], T], *, sleep: Callable[[float], None] = time.sleep) -> T:
    """`call()`, retried with growing pauses while it fails with a `retryable` error (a full queue)."""
    for pause in BACKOFF_S:
        try:
            return call()
        except PatrolVisionError as exc:
            if not exc.retryable:
                raise
            sleep(pause)
    return call()  # still failing after ~50 s: let the error fail the job with its message
