"""API keys and roles.

Keys are `pv_` + 32 random bytes (url-safe base64). Only their sha256 is stored: a slow
password hash (bcrypt, argon2) exists to make guessing low-entropy passwords expensive,
but guessing a 256-bit random key is already out of reach, and a fast hash keeps every
request cheap. A row is found by the first 16 hex digits of the hash (`lookup`, which
tells an attacker nothing they could use without a preimage), then the full hash is
compared with `hmac.compare_digest`, in constant time.

Roles (who may do what; the API routes and the state machine enforce it):

| role     | may                                                                    |
|----------|------------------------------------------------------------------------|
| citizen  | upload photos (POST /v1/photos), read regions                          |
| worker   | citizen's rights; read issues, evidence, reports; dispatched -> rectified |
| reviewer | citizen's rights; read issues, evidence, reports; confirm or reject       |
|          | candidates; place issues that need a location                            |
| ingest   | citizen's rights; submit drone surveys (POST /v1/surveys), read and      |
|          | cancel survey jobs (GET /v1/jobs/{id}, POST /v1/jobs/{id}/cancel)         |
|          | (cameras and drones use these)                                           |
| admin    | everything, including every allowed state change and importing regions  |

Anonymous callers reach only /health, /metrics and the API docs.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable
from datetime import datetime
from enum import StrEnum

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from service.db.models import ApiKey

KEY_PREFIX = "pv_"
KEY_BYTES = 32
LOOKUP_HEX_DIGITS = 16
BOOTSTRAP_KEY_NAME = "bootstrap-admin"
# Every request looks its key up: the query is built once (building it cost ~0.1-0.3 ms of CPU).
_LIVE_KEYS_BY_LOOKUP = select(ApiKey).where(ApiKey.lookup == bindparam("lookup"), ApiKey.revoked_at.is_(None))


class Role(StrEnum):
    citizen = "citizen"
    worker = "worker"
    reviewer = "reviewer"
    ingest = "ingest"
    admin = "admin"


# What each role includes: admin includes everyone, the staff roles include citizen.
ROLE_INCLUDES: dict[Role, frozenset[Role]] = {
    Role.admin: frozenset(Role),
    Role.reviewer: frozenset({Role.reviewer, Role.citizen}),
    Role.worker: frozenset({Role.worker, Role.citizen}),
    Role.ingest: frozenset({Role.ingest, Role.citizen}),
    Role.citizen: frozenset({Role.citizen}),
}


def role_satisfies(role: Role, required: Iterable[Role]) -> bool:
    """True when `role` is, or includes, any of the `required` roles."""
    included = ROLE_INCLUDES[role]
    return any(r in included for r in required)


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(KEY_BYTES)


def hash_key(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_key(
    session: Session, *, role: Role, name: str, now: datetime, token: str | None = None
) -> tuple[ApiKey, str]:
    """Store a new key and return it with its token, which is shown once and never stored."""
    if not name.strip():
        raise ValueError("expected a non-empty key name, e.g. 'grid worker Zhang'")
    token = token or generate_key()
    digest = hash_key(token)
    row = ApiKey(
        name=name.strip()[:100],
        role=role.value,
        lookup=digest[:LOOKUP_HEX_DIGITS],
        key_hash=digest,
        created_at=now,
    )
    session.add(row)
    session.flush()
    return row, token


def authenticate(session: Session, token: str) -> ApiKey | None:
    """The live key for `token`, or None."""
    digest = hash_key(token)
    rows = session.scalars(_LIVE_KEYS_BY_LOOKUP, {"lookup": digest[:LOOKUP_HEX_DIGITS]})
    found = None
    for row in rows:  # nearly always one; looping over all keeps the time independent of which matched
        if hmac.compare_digest(row.key_hash, digest):
            found = row
    return found


def ensure_bootstrap_admin(session: Session, token: str, now: datetime) -> ApiKey:
    """The admin key for PATROL_BOOTSTRAP_ADMIN_KEY, created on first start."""
    existing = authenticate(session, token)
    if existing is not None:
        return existing
    row, _ = create_key(session, role=Role.admin, name=BOOTSTRAP_KEY_NAME, now=now, token=token)
    return row


def actor_label(key: ApiKey) -> str:
    return f"key:{key.id}:{key.name}"[:120]
