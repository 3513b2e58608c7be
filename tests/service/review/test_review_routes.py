"""Label Studio's ways in, without Label Studio: the webhook's secret, replays, decisions in the
ledger; signed evidence URLs (bad, expired, bent to another frame). The real server's loop is in
tests/servers/test_label_studio.py."""

from __future__ import annotations

import time
from typing import Any

import pytest
from fastapi.testclient import TestClient

from service.db.models import Frame, Observation
from service.db.session import make_engine, make_session_factory, session_scope
from service.review.models import ReviewTask
from service.review.signing import UrlSigner, frame_path
from service.review.tasks import task_of
from service.settings import Settings
from tests.service.helpers import issue, upload_ok
from tests.service.images import BASE_LAT, BASE_LON, GARBAGE, SMOKE, painted, png
from tests.service.review.conftest import URL_SECRET, WEBHOOK_SECRET
from vision.taxonomy import Taxonomy

HOOK = "/v1/review/webhook"
SECRET = {"X-Patrol-Webhook-Secret": WEBHOOK_SECRET}
TASK_ID = 501
GARBAGE_LABEL = ["垃圾堆 Garbage pile"]


def _pushed(settings: Settings, issue_id: int, task_id: int) -> dict[str, Any]:
    """What a push leaves behind for the issue's frame (its task row), and the task it sends to
    Label Studio (prediction result ids `obs-<id>`)."""
    engine = make_engine(settings.database_url)
    try:
        with session_scope(make_session_factory(engine)) as session:
            observation = session.query(Observation).filter_by(issue_id=issue_id).one()
            frame = session.get(Frame, observation.frame_id)
            assert frame is not None
            observations = session.query(Observation).filter_by(frame_id=frame.id).all()
            task = task_of(frame, observations, Taxonomy.default(), "http://example.invalid/x.jpg")
            session.add(
                ReviewTask(frame_id=frame.id, project_id=1, task_id=task_id, pushed_at=frame.received_at)
            )
            return {"frame_id": frame.id, **task}
    finally:
        engine.dispose()


def _delivery(
    result: list[dict[str, Any]], *, annotation_id: int = 7, updated_at: str = "2026-11-30T20:27:00.458543Z"
) -> dict[str, Any]:
    return {
        "action": "ANNOTATION_CREATED",
        "annotation": {"id": annotation_id, "task": TASK_ID, "result": result, "updated_at": updated_at,
                       "completed_by": 3, "was_cancelled": False},
        "task": {"id": TASK_ID},
    }


@pytest.fixture
def candidate(client: TestClient, keys, settings) -> tuple[int, dict[str, Any]]:  # type: ignore[no-untyped-def]
    photo = png(painted([GARBAGE, SMOKE]))
    found = upload_ok(client, keys, photo, lon=BASE_LON, lat=BASE_LAT)["issues"]
    issue_id = next(i["id"] for i in found if i["class_key"] == "garbage_pile")
    return issue_id, _pushed(settings, issue_id, TASK_ID)


@pytest.mark.parametrize(
    "headers", [{}, {"X-Patrol-Webhook-Secret": "wrong"}, {"X-Patrol-Webhook-Secret": WEBHOOK_SECRET + "x"}]
)
def test_the_webhook_needs_its_secret(client, keys, candidate, headers):
    issue_id, task = candidate
    response = client.post(HOOK, json=_delivery(task["predictions"][0]["result"]), headers=headers)
    assert response.status_code == 401
    assert issue(client, keys, issue_id)["properties"]["state"] == "candidate"


def test_kept_boxes_confirm_and_a_replay_changes_nothing(client, keys, candidate):
    issue_id, task = candidate
    predicted = task["predictions"][0]["result"]
    assert {r["id"][:4] for r in predicted} == {"obs-"} and len(predicted) == 2
    assert all(0 < r["value"]["width"] <= 100 and 0 <= r["score"] <= 1 for r in predicted)
    kept = [r for r in predicted if r["value"]["rectanglelabels"] == GARBAGE_LABEL]
    first = client.post(HOOK, json=_delivery(kept), headers=SECRET)
    assert first.status_code == 200, first.text
    assert first.json()["applied"] is True
    detail = issue(client, keys, issue_id)["properties"]
    assert detail["state"] == "confirmed"
    moved = [e for e in detail["history"] if e["kind"] == "transition"]
    assert moved[-1]["to_state"] == "confirmed" and moved[-1]["actor"] == "labelstudio:user:3"
    assert any(e["kind"] == "reviewed" and "kept" in e["reason"] for e in detail["history"])
    events = len(detail["history"])

    again = client.post(HOOK, json=_delivery(kept), headers=SECRET)
    assert again.status_code == 200
    assert again.json() == {"action": "ANNOTATION_CREATED", "applied": False, "outcome": "already applied"}
    assert len(issue(client, keys, issue_id)["properties"]["history"]) == events
    # the smoke box the reviewer removed: its issue is rejected, by the same reviewer
    smoke = [i for i in client.get("/v1/issues", headers=keys.headers("admin")).json()["features"]
             if i["properties"]["class_key"] == "straw_burning"]
    assert [i["properties"]["state"] for i in smoke] == ["rejected"]


def test_not_a_violation_rejects(client, keys, candidate):
    issue_id, _task = candidate
    verdict = [{"id": "v", "from_name": "verdict", "to_name": "image", "type": "choices",
                "value": {"choices": ["not a violation"]}}]
    response = client.post(HOOK, json=_delivery(verdict), headers=SECRET)
    assert response.status_code == 200, response.text
    assert issue(client, keys, issue_id)["properties"]["state"] == "rejected"


def test_a_moved_and_relabelled_box_is_a_corrected_label(client, keys, candidate):
    issue_id, task = candidate
    box = next(r for r in task["predictions"][0]["result"] if r["value"]["rectanglelabels"] == GARBAGE_LABEL)
    clutter = ["乱堆乱放/占道 Roadside clutter"]
    value = {**box["value"], "x": box["value"]["x"] + 5, "rectanglelabels": clutter}
    box = {**box, "value": value}
    response = client.post(HOOK, json=_delivery([box], updated_at="2026-11-30T21:00:00Z"), headers=SECRET)
    assert response.status_code == 200, response.text
    detail = issue(client, keys, issue_id)["properties"]
    assert detail["state"] == "confirmed" and detail["class_key"] == "roadside_clutter"
    assert any("garbage_pile → roadside_clutter" in e["reason"] for e in detail["history"])


def test_an_unknown_task_or_label_is_422(client, candidate):
    _issue_id, task = candidate
    unknown = _delivery(task["predictions"][0]["result"])
    unknown["annotation"]["task"] = 999
    assert client.post(HOOK, json=unknown, headers=SECRET).status_code == 422
    bad = task["predictions"][0]["result"][0]
    bad = {**bad, "value": {**bad["value"], "rectanglelabels": ["no such class"]}}
    assert client.post(HOOK, json=_delivery([bad], annotation_id=8), headers=SECRET).status_code == 422


# -- signed evidence URLs ---------------------------------------------------------------------------


def test_a_signed_url_serves_its_frame_and_nothing_else(client, keys, candidate):
    _issue_id, task = candidate
    frame_id = task["frame_id"]
    signer = UrlSigner(URL_SECRET.encode())
    good = signer.sign(frame_path(frame_id), now_s=time.time(), ttl_s=60)
    response = client.get(good)
    assert response.status_code == 200 and response.content[:2] == b"\xff\xd8"  # a JPEG
    # Label Studio's editor reads it cross-origin; without this header its page shows no image
    assert response.headers["access-control-allow-origin"] == "*"

    expires = int(time.time()) + 60
    sig = signer.signature(frame_path(frame_id), expires)
    assert client.get(f"{frame_path(frame_id)}?expires={expires}&sig={'0' * 64}").status_code == 403
    stretched = f"{frame_path(frame_id)}?expires={expires + 1}&sig={sig}"
    assert client.get(stretched).status_code == 403
    assert client.get(f"{frame_path(frame_id)}?expires={expires}&sig=short").status_code == 403
    # bent to another frame, or to another file: the signature covers the path
    other = upload_ok(client, keys, png(painted([GARBAGE], shade=40)), lon=BASE_LON + 0.01, lat=BASE_LAT)
    assert other["issues"]
    assert client.get(f"{frame_path(frame_id + 1)}?expires={expires}&sig={sig}").status_code == 403
    bent = client.get(f"/v1/review/frames/{frame_id}.jpg/../../../etc/passwd?expires={expires}&sig={sig}")
    assert bent.status_code == 404
    expired = signer.sign(frame_path(frame_id), now_s=time.time() - 120, ttl_s=60)
    answer = client.get(expired)
    assert answer.status_code == 403 and "expired" in answer.json()["detail"]


def test_without_a_secret_no_url_is_served(settings, analyzer, clock, candidate):
    from service.api.app import create_app
    from service.review.settings import ReviewSettings

    _issue_id, task = candidate
    app = create_app(settings, analyzer=analyzer, clock=clock, review=ReviewSettings())
    with TestClient(app) as bare:
        signed = UrlSigner(b"").sign(frame_path(task["frame_id"]), now_s=time.time(), ttl_s=60)
        assert bare.get(signed).status_code == 403
        assert bare.post(HOOK, json={}, headers={"X-Patrol-Webhook-Secret": ""}).status_code == 401


def test_an_added_box_opens_a_confirmed_issue_to_place(client, keys, candidate):
    _issue_id, task = candidate
    added = {"id": "drawn1", "from_name": "label", "to_name": "image", "type": "rectanglelabels",
             "value": {"x": 60, "y": 60, "width": 20, "height": 20, "rotation": 0,
                       "rectanglelabels": ["违章建筑 Illegal structure"]}}
    response = client.post(HOOK, json=_delivery([*task["predictions"][0]["result"], added]), headers=SECRET)
    assert response.status_code == 200, response.text
    assert response.json()["outcome"].endswith("added 1, kept 2")
    found = [i for i in client.get("/v1/issues", headers=keys.headers("admin")).json()["features"]
             if i["properties"]["class_key"] == "illegal_structure"]
    assert len(found) == 1
    detail = issue(client, keys, found[0]["id"])["properties"]
    assert detail["state"] == "confirmed" and detail["needs_location"] is True
    assert [e["kind"] for e in detail["history"]][:2] == ["opened", "reviewed"]
    crop = client.get(f"/v1/issues/{found[0]['id']}/evidence/1", headers=keys.headers("reviewer"))
    assert crop.status_code == 200 and crop.content[:2] == b"\xff\xd8"
