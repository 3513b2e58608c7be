"""Exceptions raised at the vision core's boundaries, and the root of the project's errors.

Each one names what was wrong and where, so that a CLI run or an API call can report it
per file and carry on with the next one. Every error the project raises on purpose derives
from `PatrolVisionError`: the vision core's here, the geo errors (`GeoError`), training's
and the service's (`service.errors.ServiceError`). The service maps the hierarchy to HTTP
in one table (`service.api.errors`); jobs read `retryable` from the classes.
"""

from __future__ import annotations

from typing import ClassVar


class PatrolVisionError(Exception):
    """Base of every error the project raises on purpose.

    `retryable` says whether the same call can succeed later with nothing changed (a full
    inference queue, a broker that is away): callers wait and try again. Otherwise the
    input, the model or the configuration has to change first, and retrying is pointless.
    """

    retryable: ClassVar[bool] = False


class InputError(PatrolVisionError):
    """One input (a file, a label such as "<upload>", a URL) could not be used, and why.

    `reason` is a short machine-readable cause, one of the class's REASONS; `detail` says
    the rest for people.
    """

    REASONS: ClassVar[tuple[str, ...]] = ()

    def __init__(self, subject: str, reason: str, detail: str) -> None:
        if reason not in self.REASONS:
            raise ValueError(f"expected reason in {self.REASONS}, got {reason!r}")
        self.subject = subject
        self.reason = reason
        self.detail = detail
        super().__init__(f"{subject}: {reason}: {detail}")


class ImageLoadError(InputError):
    """An image could not be used: unknown format, too many pixels, truncated or corrupt.

    `path` is the file (or a label such as "<upload>").
    """

    REASONS = ("not_found", "empty", "unsupported_format", "too_many_pixels", "corrupt", "too_large")

    @property
    def path(self) -> str:
        return self.subject


class VideoError(InputError):
    """A video file or stream could not be opened or read (vision.video).

    `source` is the file or URL. The input (or the URL) has to change first; a stream that
    may come back raises `StreamError` instead.
    """

    REASONS = ("not_found", "unsupported_format", "no_video", "corrupt", "open_timeout", "read_timeout",
               "disconnected")

    @property
    def source(self) -> str:
        return self.subject


class StreamError(VideoError):
    """A stream that did not answer in time or went away: the same URL may work later."""

    retryable = True


class TaxonomyError(PatrolVisionError):
    """A taxonomy file or a class mapping is malformed or refers to unknown classes."""


class ModelError(PatrolVisionError):
    """A model file or its card is missing, inconsistent, or fails its checksum."""


class UnknownBackendError(ModelError):
    """A detector config names a backend type that is not registered."""


class BackendUnavailableError(ModelError):
    """A backend's library (onnxruntime, ultralytics, a CUDA provider) is not installed."""


class QueueFullError(PatrolVisionError):
    """The inference queue stayed full for longer than the caller was willing to wait."""

    retryable = True


class BatcherClosedError(PatrolVisionError, RuntimeError):
    """Raised by submit() after close(); like concurrent.futures after shutdown()."""


class GeoError(PatrolVisionError, ValueError):
    """Geo input that cannot be used: coordinates out of range, bad metadata or camera geometry.

    Also a ValueError, which is what these errors were before the hierarchy held them.
    """
