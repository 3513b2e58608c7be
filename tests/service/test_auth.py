"""API keys: random, stored only as a hash, compared in constant time; roles; the bootstrap admin key."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError
from sqlalchemy import select, update

import service.auth as auth
from service.api.app import create_app
from service.auth import BOOTSTRAP_KEY_NAME, Role, authenticate, create_key, generate_key, role_satisfies
from service.db.models import ApiKey
from service.db.session import make_engine, make_session_factory, session_scope
from service.settings import Settings

NOW = datetime(2026, 11, 2, tzinfo=UTC)


def test_generated_keys_are_long_random_and_distinct():
    tokens = {generate_key() for _ in range(100)}
    assert len(tokens) == 100
    assert all(t.startswith("pv_") and len(t) >= 3 + 43 for t in tokens)  # 32 bytes of url-safe base64


@pytest.fixture
def session_factory(database_url):  # type: ignore[no-untyped-def]
    engine = make_engine(database_url)
    yield make_session_factory(engine)
    engine.dispose()


def test_only_the_hash_is_stored(session_factory):
    with session_scope(session_factory) as session:
        row, token = create_key(session, role=Role.worker, name="网格员 张三", now=NOW)
    with session_factory() as session:
        stored = session.scalars(select(ApiKey)).one()
        values = [str(getattr(stored, c.key)) for c in ApiKey.__table__.columns]
    assert stored.key_hash == hashlib.sha256(token.encode()).hexdigest()
    assert stored.lookup == stored.key_hash[:16]
    assert not any(token in v or token[3:] in v for v in values)


def test_authenticate_compares_the_hash_in_constant_time(session_factory, monkeypatch):
    with session_scope(session_factory) as session:
        _, token = create_key(session, role=Role.reviewer, name="r", now=NOW)
    calls = []
    real_compare = hmac.compare_digest

    def spy(a, b):  # type: ignore[no-untyped-def]
        calls.append((a, b))
        return real_compare(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", spy)
    with session_factory() as session:
        assert authenticate(session, token).role == "reviewer"
        digest = hashlib.sha256(token.encode()).hexdigest()
        assert calls == [(digest, digest)]
        calls.clear()
        assert authenticate(session, token + "x") is None


def test_revoked_keys_are_refused(client, keys, settings):
    assert client.get("/v1/regions", headers=keys.headers("worker")).status_code == 200
    engine = make_engine(settings.database_url)
    with session_scope(make_session_factory(engine)) as session:
        session.execute(update(ApiKey).where(ApiKey.role == "worker").values(revoked_at=NOW))
    engine.dispose()
    assert client.get("/v1/regions", headers=keys.headers("worker")).status_code == 401


ROLE_TABLE = [
    # role, required, satisfied
    ("admin", {"reviewer"}, True),
    ("admin", {"citizen"}, True),
    ("admin", {"ingest"}, True),
    ("reviewer", {"reviewer"}, True),
    ("reviewer", {"citizen"}, True),
    ("reviewer", {"worker"}, False),
    ("reviewer", {"admin"}, False),
    ("worker", {"reviewer", "worker"}, True),
    ("worker", {"ingest"}, False),
    ("ingest", {"citizen"}, True),
    ("ingest", {"reviewer"}, False),
    ("citizen", {"citizen"}, True),
    ("citizen", {"worker"}, False),
]


@pytest.mark.parametrize("role, required, satisfied", ROLE_TABLE)
def test_role_hierarchy(role, required, satisfied):
    assert role_satisfies(Role(role), {Role(r) for r in required}) is satisfied


BOOT = "boot-" + "k" * 40


def test_bootstrap_admin_key_is_created_once(settings, analyzer, clock):
    configured = settings.model_copy(
        update={"bootstrap_admin_key": Settings(bootstrap_admin_key=BOOT).bootstrap_admin_key}
    )
    for _ in range(2):  # a restart must not add a second key
        with TestClient(create_app(configured, analyzer=analyzer, clock=clock)) as client:
            response = client.post(
                "/v1/regions",
                headers={"Authorization": f"Bearer {BOOT}", "content-type": "application/json"},
                content=b'{"type": "FeatureCollection", "features": []}',
            )
            assert response.status_code == 422  # past authentication and the admin-only gate
    engine = make_engine(settings.database_url)
    with make_session_factory(engine)() as session:
        rows = session.scalars(select(ApiKey)).all()
    engine.dispose()
    assert [(r.name, r.role) for r in rows] == [(BOOTSTRAP_KEY_NAME, "admin")]


@pytest.mark.parametrize("value", ["changeme", "secret", "short-key", "x" * 31])
def test_placeholder_or_short_bootstrap_keys_are_refused(value):
    with pytest.raises(ValidationError, match="at least 32 characters"):
        Settings(bootstrap_admin_key=value)
