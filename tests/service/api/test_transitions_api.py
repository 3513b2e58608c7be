"""POST /v1/issues/{id}/transitions: every pair through the API, role checks, events with each move.

One test per source state tries every target on its own fresh issue, so that the 64
pairs cost 8 apps per backend rather than 64.
"""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from service.db.models import IssueEvent
from service.db.session import make_engine, make_session_factory
from tests.service.helpers import PATH_TO, drive, issue, move, upload_ok
from tests.service.images import BASE_LAT, BASE_LON, GARBAGE, offset, painted, png
from tests.service.ledger.test_states import EXPECTED

STATES = list(PATH_TO)
ROLES = ("citizen", "ingest", "worker", "reviewer", "admin")


def _new_issue(client, keys, n: int) -> int:
    """A fresh candidate, 1 km from the others so that it never joins them."""
    lon, lat = offset(BASE_LON, BASE_LAT, east_m=1000.0 * n)
    body = upload_ok(client, keys, png(painted([GARBAGE], shade=n % 20)), lon=lon, lat=lat)
    assert body["issues"][0]["outcome"] == "opened"
    return body["issues"][0]["id"]


def _transition_events(settings, issue_id: int) -> int:
    engine = make_engine(settings.database_url)
    with make_session_factory(engine)() as session:
        count = session.scalar(
            select(func.count())
            .select_from(IssueEvent)
            .where(IssueEvent.issue_id == issue_id, IssueEvent.kind == "transition")
        )
    engine.dispose()
    return count or 0


@pytest.mark.parametrize("source", STATES)
def test_every_pair_through_the_api(client, keys, settings, source):
    for n, target in enumerate(STATES):
        issue_id = _new_issue(client, keys, n)
        drive(client, keys, issue_id, source)
        before = _transition_events(settings, issue_id)
        response = move(client, keys, issue_id, target, reason="table test")
        pair = f"{source} -> {target}"
        if (source, target) in EXPECTED:
            assert response.status_code == 200, (pair, response.text)
            body = response.json()
            assert body["properties"]["state"] == target, pair
            last = body["properties"]["history"][-1]
            assert (last["kind"], last["from_state"], last["to_state"], last["reason"]) == (
                "transition",
                source,
                target,
                "table test",
            ), pair
            assert last["actor"].startswith("key:") and "test admin" in last["actor"], pair
            assert _transition_events(settings, issue_id) == before + 1, pair
        else:
            assert response.status_code == 409, (pair, response.text)
            allowed = sorted(t for (s, t) in EXPECTED if s == source)
            body = response.json()
            assert body["state"] == source and sorted(body["allowed"]) == allowed, pair
            assert f"from {source!r} to {target!r}" in body["detail"], pair
            assert all(name in body["detail"] for name in allowed), pair
            assert issue(client, keys, issue_id)["properties"]["state"] == source, pair  # unchanged
            assert _transition_events(settings, issue_id) == before, pair  # and no event written


@pytest.mark.parametrize("edge", sorted(EXPECTED), ids=lambda e: f"{e[0]}-{e[1]}")
def test_roles_per_move(client, keys, edge):
    source, target = edge
    for n, role in enumerate(ROLES):
        issue_id = _new_issue(client, keys, n)
        drive(client, keys, issue_id, source)
        response = move(client, keys, issue_id, target, who=role)
        if role in EXPECTED[edge]:
            assert response.status_code == 200, (role, response.text)
            assert response.json()["properties"]["state"] == target
        else:
            assert response.status_code == 403, (role, response.text)
            assert issue(client, keys, issue_id)["properties"]["state"] == source, role


def test_unknown_target_state_is_a_validation_error(client, keys):
    assert move(client, keys, _new_issue(client, keys, 0), "finished").status_code == 422


def test_transition_of_a_missing_issue_is_404(client, keys):
    assert move(client, keys, 999, "confirmed").status_code == 404


def test_allowed_transitions_are_listed_on_the_issue(client, keys):
    issue_id = _new_issue(client, keys, 0)
    assert sorted(issue(client, keys, issue_id)["properties"]["allowed_transitions"]) == [
        "confirmed",
        "rejected",
    ]
