"""Exceptions the service raises on purpose; `service.api.errors` maps each to one HTTP status."""

from __future__ import annotations

from vision.errors import PatrolVisionError


class ServiceError(PatrolVisionError):
    """Base of the service's own errors: one branch of the project's one hierarchy."""


class NotFoundError(ServiceError):
    """A referenced row does not exist (404)."""


class IllegalTransitionError(ServiceError):
    """The state machine has no such edge (409); the message names the allowed targets."""

    def __init__(self, state: str, target: str, allowed: tuple[str, ...]) -> None:
        self.state = state
        self.target = target
        self.allowed = allowed
        names = ", ".join(allowed) if allowed else "none (final state)"
        super().__init__(
            f"cannot move an issue from {state!r} to {target!r}; allowed from {state!r}: {names}"
        )


class TransitionConflictError(ServiceError):
    """The edge exists but the issue is not ready for it, e.g. dispatch without a location (409)."""


class RoleNotAllowedError(ServiceError):
    """The caller's role may not make this change (403)."""


class InvalidInputError(ServiceError):
    """A well-formed request whose content cannot be used, e.g. a self-intersecting region (422)."""


class SchemaNotReadyError(ServiceError):
    """The database lacks rows or tables the migrations create; run `patrol serve` or the migrations."""


class NulCharacterError(InvalidInputError, ValueError):
    """Text holding U+0000 (422). Also a ValueError, so that pydantic validators report it as one."""


def check_no_nul(what: str, value: str) -> str:
    """`value`, unless it holds a NUL character: PostgreSQL's text types cannot store one and
    SQLite's can, so refusing it on input is what keeps the two backends answering alike."""
    if "\x00" in value:
        raise NulCharacterError(f"{what}: NUL characters (\\x00) are not allowed in text")
    return value
