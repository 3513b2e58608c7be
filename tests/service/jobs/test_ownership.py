"""A job belongs to the key that submitted it (and to admins): other keys are told it does not exist."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from service.auth import Role, create_key
from service.db.session import make_engine, make_session_factory, session_scope
from service.jobs.models import Job
from tests.service.conftest import Keys
from tests.service.jobs.surveys import drone_zip, submit


def _with_second_ingest_key(keys: Keys, settings, clock) -> Keys:  # type: ignore[no-untyped-def]
    engine = make_engine(settings.database_url)
    with session_scope(make_session_factory(engine)) as session:
        token = create_key(session, role=Role.ingest, name="another drone team", now=clock())[1]
    engine.dispose()
    return Keys({**keys.tokens, "ingest2": token})


# (who, GET status, cancel status): the owner and admins see it; another ingest key gets the same
# 404 as for a job that does not exist; roles that may not read jobs at all get 403; no key 401.
ACCESS = [
    ("ingest", 200, 200),
    ("admin", 200, 200),
    ("ingest2", 404, 404),
    ("reviewer", 403, 403),
    ("worker", 403, 403),
    ("citizen", 403, 403),
    (None, 401, 401),
]


@pytest.mark.parametrize(("who", "read", "cancel"), ACCESS)
def test_a_job_is_seen_and_cancelled_only_by_its_key_and_admins(
    client, keys, settings, clock, who, read, cancel
):
    keys = _with_second_ingest_key(keys, settings, clock)
    client.app.state.jobs.dispatcher.runner.stop()  # the job stays queued, so a cancel can succeed
    job_id = submit(client, keys, drone_zip(1)).json()["id"]

    got = client.get(f"/v1/jobs/{job_id}", headers=keys.headers(who))
    assert got.status_code == read, got.text
    unknown = client.get("/v1/jobs/" + "0" * 32, headers=keys.headers(who))
    if read == 404:  # indistinguishable from a job that does not exist
        assert got.json() == {"detail": f"no job {job_id}"} and unknown.status_code == 404
    cancelled = client.post(f"/v1/jobs/{job_id}/cancel", headers=keys.headers(who))
    assert cancelled.status_code == cancel, cancelled.text
    state = client.get(f"/v1/jobs/{job_id}", headers=keys.headers("ingest")).json()["state"]
    assert state == ("cancelled" if cancel == 200 else "queued")


def test_another_key_resubmitting_the_same_survey_gets_409_not_the_job(client, keys, settings, clock):
    keys = _with_second_ingest_key(keys, settings, clock)
    client.app.state.jobs.dispatcher.runner.stop()
    data = drone_zip(1)
    job_id = submit(client, keys, data).json()["id"]

    response = submit(client, keys, data, who="ingest2")
    assert response.status_code == 409, response.text
    assert job_id not in response.text and "another key" in response.json()["detail"]
    assert "location" not in response.headers
    assert submit(client, keys, data, who="admin").json()["id"] == job_id  # admins see every job
    engine = make_engine(settings.database_url)
    with make_session_factory(engine)() as session:
        assert session.scalar(select(func.count()).select_from(Job)) == 1
    engine.dispose()
    assert not any(p.is_file() for p in (settings.data_dir / "jobs" / "incoming").rglob("*"))
