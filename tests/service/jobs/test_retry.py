"""Jobs wait out what the error hierarchy calls retryable, and nothing else."""

from __future__ import annotations

import pytest

from service.jobs.errors import SurveyInputError
from service.jobs.retry import BACKOFF_S, detect_with_retry
from vision.errors import ModelError, QueueFullError


def _failing(errors: list[Exception], result: str = "done"):  # type: ignore[no-untyped-def]
    def call() -> str:
        if errors:
            raise errors.pop(0)
        return result

    return call


def test_a_full_queue_is_waited_out() -> None:
    pauses: list[float] = []
    call = _failing([QueueFullError("full"), QueueFullError("full")])
    assert detect_with_retry(call, sleep=pauses.append) == "done"
    assert pauses == list(BACKOFF_S[:2])


def test_a_queue_full_past_every_pause_fails_with_its_error() -> None:
    pauses: list[float] = []
    call = _failing([QueueFullError("still full") for _ in range(len(BACKOFF_S) + 1)])
    with pytest.raises(QueueFullError, match="still full"):
        detect_with_retry(call, sleep=pauses.append)
    assert pauses == list(BACKOFF_S)


@pytest.mark.parametrize("error", [ModelError("no model"), SurveyInputError("bad zip"), ValueError("bug")])
def test_permanent_errors_are_not_retried(error: Exception) -> None:
    pauses: list[float] = []
    with pytest.raises(type(error)):
        detect_with_retry(_failing([error]), sleep=pauses.append)
    assert pauses == []
