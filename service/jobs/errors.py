"""Why a survey cannot be taken or finished; each message says what to change."""

from __future__ import annotations

from service.errors import ServiceError


class SurveyInputError(ServiceError):
    """The upload is not a usable survey (422 at submit; a failed job when found while running)."""


class JobStopped(ServiceError):
    """The running job must stop between steps: cancelled, its lease lost, or the runner shutting down."""

    def __init__(self, why: str) -> None:
        self.why = why
        super().__init__(f"job stopped: {why}")


class JobCancelled(JobStopped):
    def __init__(self) -> None:
        super().__init__("cancelled on request")


class LeaseLost(JobStopped):
    def __init__(self) -> None:
        super().__init__("its lease expired and another runner took it over")


class RunnerStopping(JobStopped):
    def __init__(self) -> None:
        super().__init__("the runner is shutting down; the job is queued again")


class ModelMismatchError(ServiceError):
    """This worker runs another model than the job was submitted for."""


class SurveyOwnedElsewhereError(ServiceError):
    """The same survey was submitted by another key, whose job this key may not see (409)."""
