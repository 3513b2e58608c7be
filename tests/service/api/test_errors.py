"""The one table from deliberate errors to HTTP answers: status, body, Retry-After."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from service.api.errors import HTTP_ANSWERS, add_error_handlers
from service.api.uploads import BodyTooLargeError
from service.errors import IllegalTransitionError, NotFoundError, ServiceError
from service.jobs.dispatch import BrokerUnavailableError
from service.jobs.errors import SurveyInputError
from vision.errors import (
    ImageLoadError,
    ModelError,
    PatrolVisionError,
    QueueFullError,
    StreamError,
    UnknownBackendError,
    VideoError,
)
from vision.geo.orthomosaic import OrthomosaicError


def _answer(exc: Exception) -> Any:
    app = FastAPI()
    add_error_handlers(app)

    @app.get("/boom")
    def boom() -> None:
        raise exc

    with TestClient(app, raise_server_exceptions=False) as client:
        return client.get("/boom")


@pytest.mark.parametrize(
    ("exc", "status_code", "body", "retry_after"),
    [
        (NotFoundError("no issue 7"), 404, {"detail": "no issue 7"}, None),
        (
            IllegalTransitionError("closed", "confirmed", ()),
            409,
            {
                "detail": "cannot move an issue from 'closed' to 'confirmed'; allowed from 'closed': "
                "none (final state)",
                "state": "closed",
                "allowed": [],
            },
            None,
        ),
        (
            ImageLoadError("upload", "corrupt", "truncated JPEG"),
            422,
            {"detail": {"reason": "corrupt", "detail": "truncated JPEG"}},
            None,
        ),
        (SurveyInputError("zip archive holds no files"), 422, {"detail": "zip archive holds no files"}, None),
        (ModelError("no card"), 503, {"detail": "no detection model is available: no card"}, None),
        # A subclass takes its nearest listed ancestor's answer.
        (
            UnknownBackendError("type 'tflite'"),
            503,
            {"detail": "no detection model is available: type 'tflite'"},
            None,
        ),
        (QueueFullError("full"), 503, {"detail": "the detector is busy; retry in a few seconds"}, "5"),
        (
            VideoError("clip.txt", "unsupported_format", "cannot open as a video"),
            422,
            {
                "detail": {
                    "reason": "unsupported_format",
                    "source": "clip.txt",
                    "detail": "cannot open as a video",
                }
            },
            None,
        ),
        # A stream that is down: retry later; the URL's password never reaches the answer.
        (
            StreamError(
                "rtsp://admin:hunter2@10.0.0.7/live",
                "disconnected",
                "Connection refused: 'rtsp://admin:hunter2@10.0.0.7/live'",
            ),
            503,
            {
                "detail": {
                    "reason": "disconnected",
                    "source": "rtsp://admin:***@10.0.0.7/live",
                    "detail": "Connection refused: 'rtsp://admin:***@10.0.0.7/live'",
                }
            },
            "10",
        ),
        (BrokerUnavailableError("redis away"), 503, {"detail": "redis away"}, "30"),
        (
            BodyTooLargeError(2 * 1024 * 1024),
            413,
            {"detail": "request body exceeds the 2,097,152-byte limit (2 MB)"},
            None,
        ),
    ],
)
def test_each_error_gets_its_answer(
    exc: Exception, status_code: int, body: dict[str, Any], retry_after: str | None
) -> None:
    response = _answer(exc)
    assert (response.status_code, response.json()) == (status_code, body)
    assert response.headers.get("retry-after") == retry_after


@pytest.mark.parametrize("exc", [OrthomosaicError("no CRS"), ServiceError("unlisted"), RuntimeError("bug")])
def test_an_error_without_a_listed_ancestor_is_a_500(exc: Exception) -> None:
    assert _answer(exc).status_code == 500


@pytest.mark.parametrize("error_class", list(HTTP_ANSWERS), ids=lambda c: c.__name__)
def test_retry_after_is_sent_exactly_for_retryable_errors(error_class: type[PatrolVisionError]) -> None:
    assert (HTTP_ANSWERS[error_class].retry_after_s is not None) == error_class.retryable
