"""Whose a job is: the key that submitted it, and admins. Everyone else is told it does not exist."""

from __future__ import annotations

from service.auth import Role
from service.db.models import ApiKey
from service.jobs.errors import SurveyOwnedElsewhereError
from service.jobs.models import Job


def may_see(key: ApiKey, job: Job) -> bool:
    return Role(key.role) is Role.admin or (job.api_key_id is not None and job.api_key_id == key.id)


def check_resubmit(key: ApiKey, job: Job) -> None:
    """A repeat upload of a survey another key submitted: refused, without showing that key's job."""
    if not may_see(key, job):
        raise SurveyOwnedElsewhereError(
            "this survey (same file, same model) was submitted by another key; its job is theirs and its "
            "findings are in the ledger. Ask that key's owner or an admin to resubmit it if it failed"
        )
