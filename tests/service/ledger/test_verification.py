"""回头看 (verification) and 反弹 (rebound), through the API with drone and phone photos.

Drone photos here are nadir shots 50 m up: 50 m x 37.5 m of ground, so their coverage is
known; phone photos have none. The conftest sets verification_min_gap_minutes = 30.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.service.helpers import issue, move, upload_ok
from tests.service.images import BASE_LAT, BASE_LON, drone_box_at, drone_photo, offset, painted, png

PILE = ("garbage", drone_box_at(0, 0), 0.9)


def _drone(client, keys, *, objects=(), east_m: float = 0.0, shade: int = 0, taken=None) -> dict:
    lon, lat = offset(BASE_LON, BASE_LAT, east_m=east_m)
    return upload_ok(client, keys, drone_photo(lon, lat, objects, shade=shade, taken=taken), who="ingest")


def _rectified(client, keys, clock) -> int:
    """A garbage pile found by drone, confirmed, dispatched and rectified by the grid worker."""
    issue_id = _drone(client, keys, objects=[PILE], shade=1)["issues"][0]["id"]
    for to, who in (("confirmed", "reviewer"), ("dispatched", "admin"), ("rectified", "worker")):
        clock.advance(minutes=5)
        assert move(client, keys, issue_id, to, who=who).status_code == 200
    clock.advance(hours=1)
    return issue_id


def _state(client, keys, issue_id: int) -> str:
    return issue(client, keys, issue_id)["properties"]["state"]


def test_two_clear_passes_verify_with_their_evidence(client, keys, clock):
    issue_id = _rectified(client, keys, clock)
    first = _drone(client, keys, shade=2)
    assert first["observations"] == [] and first["verified_issue_ids"] == []
    assert _state(client, keys, issue_id) == "rectified"
    clock.advance(hours=2)
    second = _drone(client, keys, shade=3, east_m=5)  # a slightly different view still covers the pile
    assert second["verified_issue_ids"] == [issue_id]

    props = issue(client, keys, issue_id)["properties"]
    assert props["state"] == "verified"
    last = props["history"][-1]
    assert (last["kind"], last["from_state"], last["to_state"], last["actor"]) == (
        "transition",
        "rectified",
        "verified",
        "system",
    )
    assert last["frame_id"] == second["frame_id"] and "回头看" in last["reason"]
    passes = [e for e in props["evidence"] if e["kind"] == "clear_pass"]
    assert [p["frame_id"] for p in passes] == [first["frame_id"], second["frame_id"]]
    assert passes[0]["crop_url"] is None

    n = passes[1]["n"]
    frame = client.get(f"/v1/issues/{issue_id}/evidence/{n}", headers=keys.headers("reviewer"))
    assert frame.status_code == 200 and frame.headers["content-type"] == "image/jpeg"
    crop = client.get(f"/v1/issues/{issue_id}/evidence/{n}?view=crop", headers=keys.headers("reviewer"))
    assert crop.status_code == 404 and "clear pass" in crop.json()["detail"]


def test_passes_closer_than_the_gap_count_once(client, keys, clock):
    issue_id = _rectified(client, keys, clock)
    _drone(client, keys, shade=2)
    clock.advance(minutes=10)
    _drone(client, keys, shade=3)
    assert _state(client, keys, issue_id) == "rectified"
    clock.advance(minutes=25)  # 35 minutes after the first pass
    assert _drone(client, keys, shade=4)["verified_issue_ids"] == [issue_id]


def test_a_detection_after_rectification_rebounds(client, keys, clock):
    issue_id = _rectified(client, keys, clock)
    again = _drone(client, keys, objects=[("garbage", drone_box_at(2, -1), 0.8)], shade=2)
    assert again["issues"][0] == {
        **again["issues"][0],
        "id": issue_id,
        "outcome": "rebound",
        "state": "rebound",
    }
    history = issue(client, keys, issue_id)["properties"]["history"]
    assert [(e["kind"], e["to_state"], e["actor"]) for e in history[-2:]] == [
        ("joined", None, "key:4:test ingest"),
        ("transition", "rebound", "system"),
    ]
    assert history[-1]["observation_id"] == again["observations"][0]["id"]


def test_a_phone_photo_can_rebound_but_never_verify(client, keys, clock):
    issue_id = _rectified(client, keys, clock)
    for shade in (2, 3):  # empty phone photos at the place: no coverage, no pass
        upload_ok(client, keys, png(painted([], shade=shade)), lon=BASE_LON, lat=BASE_LAT)
        clock.advance(hours=1)
    props = issue(client, keys, issue_id)["properties"]
    assert props["state"] == "rectified" and not [e for e in props["history"] if e["kind"] == "clear_pass"]
    seen = upload_ok(
        client,
        keys,
        png(painted([("garbage", (100, 80, 180, 160), 0.9)], shade=4)),
        lon=BASE_LON,
        lat=BASE_LAT,
    )
    assert seen["issues"][0]["outcome"] == "rebound"


@pytest.mark.parametrize("east_m", [200.0, 24.0], ids=["elsewhere", "pile half out of view"])
def test_frames_that_do_not_show_the_whole_place_are_no_pass(client, keys, clock, east_m):
    issue_id = _rectified(client, keys, clock)
    for shade in (2, 3):
        _drone(client, keys, shade=shade, east_m=east_m)
        clock.advance(hours=1)
    assert _state(client, keys, issue_id) == "rectified"


def test_another_class_at_the_place_does_not_spoil_a_pass(client, keys, clock):
    issue_id = _rectified(client, keys, clock)
    _drone(client, keys, objects=[("smoke", drone_box_at(0, 0, 30), 0.9)], shade=2)
    clock.advance(hours=1)
    _drone(client, keys, shade=3)
    assert _state(client, keys, issue_id) == "verified"


def test_photos_taken_before_the_rectification_neither_verify_nor_rebound(client, keys, clock):
    issue_id = _rectified(client, keys, clock)
    before = clock.now - timedelta(hours=3)  # taken before the worker said done, uploaded now
    late = _drone(client, keys, objects=[("garbage", drone_box_at(1, 1), 0.9)], shade=2, taken=before)
    assert late["issues"][0]["outcome"] == "joined" and late["issues"][0]["state"] == "rectified"
    for shade in (3, 4):
        _drone(client, keys, shade=shade, taken=before + timedelta(minutes=40 * shade))
    assert _state(client, keys, issue_id) == "rectified"


def test_only_passes_since_the_last_rectification_count(client, keys, clock):
    issue_id = _rectified(client, keys, clock)
    _drone(client, keys, shade=2)  # one clear pass
    clock.advance(hours=1)
    _drone(client, keys, objects=[PILE], shade=3)  # seen again: rebound
    for to, who in (("dispatched", "admin"), ("rectified", "worker")):
        clock.advance(minutes=5)
        assert move(client, keys, issue_id, to, who=who).status_code == 200
    clock.advance(hours=1)
    _drone(client, keys, shade=4)
    assert _state(client, keys, issue_id) == "rectified"  # the pass before the rebound does not count
    clock.advance(hours=1)
    _drone(client, keys, shade=5)
    assert _state(client, keys, issue_id) == "verified"


@pytest.mark.parametrize(
    "then, days, expected",
    [
        ("verified", 30, "rebound"),
        ("closed", 89, "rebound"),
        ("closed", 91, "new candidate"),
    ],
)
def test_rebound_window_after_verification_or_closure(client, keys, clock, then, days, expected):
    issue_id = _rectified(client, keys, clock)
    _drone(client, keys, shade=2)
    clock.advance(hours=1)
    _drone(client, keys, shade=3)
    if then == "closed":
        assert move(client, keys, issue_id, "closed").status_code == 200
    clock.advance(days=days)
    seen = _drone(client, keys, objects=[PILE], shade=4)
    if expected == "rebound":
        assert (seen["issues"][0]["id"], seen["issues"][0]["outcome"]) == (issue_id, "rebound")
        last = issue(client, keys, issue_id)["properties"]["history"][-1]
        assert (last["from_state"], last["to_state"], last["actor"]) == (then, "rebound", "system")
    else:
        assert seen["issues"][0]["outcome"] == "opened" and seen["issues"][0]["id"] != issue_id
        assert _state(client, keys, issue_id) == "closed"
