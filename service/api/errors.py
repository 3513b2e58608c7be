"""Every deliberate error's HTTP answer, in one table; `add_error_handlers(app)` installs it.

The project has one error hierarchy (`vision.errors.PatrolVisionError`, with the service's
`ServiceError` under it), so routes do not catch and translate errors: they let them rise
and this table answers. A class not listed takes the answer of its nearest listed ancestor
(Starlette looks handlers up along the exception's MRO); an error with no listed ancestor
is a bug and a 500. The body is `{"detail": str(exc)}` unless the entry says otherwise;
errors whose class says `retryable` carry a Retry-After header.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request, status
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from service.api.uploads import BodyTooLargeError
from service.errors import (
    IllegalTransitionError,
    InvalidInputError,
    NotFoundError,
    RoleNotAllowedError,
    TransitionConflictError,
)
from service.jobs.dispatch import BrokerUnavailableError
from service.jobs.errors import SurveyInputError, SurveyOwnedElsewhereError
from service.settings import redact_url
from vision.errors import (
    ImageLoadError,
    ModelError,
    PatrolVisionError,
    QueueFullError,
    StreamError,
    TaxonomyError,
    VideoError,
)


@dataclass(frozen=True)
class HttpAnswer:
    """How one error class is answered: status, `detail` made from the error, extra body keys."""

    status_code: int
    detail: Callable[[Any], Any] = str
    extra: Callable[[Any], dict[str, Any]] | None = None
    retry_after_s: int | None = None  # set exactly for the classes that say `retryable`

    async def handle(self, request: Request, exc: Exception) -> JSONResponse:
        body = {"detail": self.detail(exc), **(self.extra(exc) if self.extra else {})}
        headers = None if self.retry_after_s is None else {"Retry-After": str(self.retry_after_s)}
        return JSONResponse(body, status_code=self.status_code, headers=headers)


HTTP_ANSWERS: Mapping[type[PatrolVisionError], HttpAnswer] = {
    NotFoundError: HttpAnswer(status.HTTP_404_NOT_FOUND),
    RoleNotAllowedError: HttpAnswer(status.HTTP_403_FORBIDDEN),
    IllegalTransitionError: HttpAnswer(
        status.HTTP_409_CONFLICT, extra=lambda exc: {"state": exc.state, "allowed": list(exc.allowed)}
    ),
    TransitionConflictError: HttpAnswer(status.HTTP_409_CONFLICT),
    SurveyOwnedElsewhereError: HttpAnswer(status.HTTP_409_CONFLICT),
    BodyTooLargeError: HttpAnswer(status.HTTP_413_CONTENT_TOO_LARGE),
    InvalidInputError: HttpAnswer(status.HTTP_422_UNPROCESSABLE_CONTENT),
    SurveyInputError: HttpAnswer(status.HTTP_422_UNPROCESSABLE_CONTENT),
    TaxonomyError: HttpAnswer(status.HTTP_422_UNPROCESSABLE_CONTENT),
    # Not a usable image: the machine-readable reason beside the words.
    ImageLoadError: HttpAnswer(
        status.HTTP_422_UNPROCESSABLE_CONTENT, detail=lambda exc: {"reason": exc.reason, "detail": exc.detail}
    ),
    # A video source given through the API that is not one (no such file, not a video, corrupt).
    VideoError: HttpAnswer(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=lambda exc: _video_detail(exc)),
    # A stream that is down or silent may answer later: retry after about one reconnect.
    StreamError: HttpAnswer(
        status.HTTP_503_SERVICE_UNAVAILABLE, detail=lambda exc: _video_detail(exc), retry_after_s=10
    ),
    ModelError: HttpAnswer(
        status.HTTP_503_SERVICE_UNAVAILABLE, detail=lambda exc: f"no detection model is available: {exc}"
    ),
    # Back-pressure from the shared inference queue: the client should retry, not give up.
    QueueFullError: HttpAnswer(
        status.HTTP_503_SERVICE_UNAVAILABLE,
        detail=lambda exc: "the detector is busy; retry in a few seconds",
        retry_after_s=5,
    ),
    BrokerUnavailableError: HttpAnswer(status.HTTP_503_SERVICE_UNAVAILABLE, retry_after_s=30),
}


def _video_detail(exc: VideoError) -> dict[str, str]:
    """The reason and words, with a stream URL's password hidden (FFmpeg's messages repeat the URL)."""
    source = redact_url(exc.source)
    return {"reason": exc.reason, "source": source, "detail": exc.detail.replace(exc.source, source)}


def add_error_handlers(app: FastAPI) -> None:
    """One handler per listed class; the most specific listed class of an error answers it."""
    for error_class, answer in HTTP_ANSWERS.items():
        app.add_exception_handler(error_class, answer.handle)
    app.add_exception_handler(RequestValidationError, invalid_request)


async def invalid_request(request: Request, exc: Exception) -> JSONResponse:
    """FastAPI's own 422 for requests that fail validation, with one change: inputs such as
    `{"lon": NaN}` (Python's JSON parser reads NaN and Infinity) are echoed as strings, since
    strict JSON cannot carry them and the default answer failed to serialise into a 500."""
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    return JSONResponse({"detail": _finite(jsonable_encoder(errors))}, status_code=422)


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # 'nan', 'inf', '-inf'
    if isinstance(value, list):
        return [_finite(v) for v in value]
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    return value
