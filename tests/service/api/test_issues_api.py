"""GET /v1/issues (GeoJSON, filters), the issue Feature, its evidence images, placing unlocated issues."""

from __future__ import annotations

from datetime import timedelta

import cv2
import numpy as np
import pytest

from tests.service.helpers import issue, issues, move, upload_ok
from tests.service.images import BASE_LAT, BASE_LON, GARBAGE, SMOKE, offset, painted, png


@pytest.fixture
def ledger(client, keys, clock) -> dict[str, int]:
    """Three located issues and one without a location, created an hour apart."""
    ids = {}
    for n, (name, obj, east_m) in enumerate(
        [("garbage", GARBAGE, 0), ("smoke", SMOKE, 0), ("far", GARBAGE, 5000)]
    ):
        lon, lat = offset(BASE_LON, BASE_LAT, east_m=east_m)
        ids[name] = upload_ok(client, keys, png(painted([obj], shade=n)), lon=lon, lat=lat)["issues"][0]["id"]
        clock.advance(hours=1)
    ids["unlocated"] = upload_ok(client, keys, png(painted([GARBAGE], shade=5)))["issues"][0]["id"]
    return ids


def _ids(features) -> list[int]:  # type: ignore[no-untyped-def]
    return sorted(f["id"] for f in features)


def test_collection_is_geojson_with_ledger_properties(client, keys, ledger):
    body = client.get("/v1/issues", headers=keys.headers("worker")).json()
    assert body["type"] == "FeatureCollection" and body["total"] == 4
    garbage = next(f for f in body["features"] if f["id"] == ledger["garbage"])
    assert garbage["type"] == "Feature"
    assert garbage["geometry"] == {"type": "Point", "coordinates": [BASE_LON, BASE_LAT]}
    props = garbage["properties"]
    assert (props["class_key"], props["name_zh"], props["state"]) == ("garbage_pile", "垃圾堆", "candidate")
    assert (props["observation_count"], props["source_count"]) == (1, 1)
    assert "village" in props and "grid" in props and props["regions"] == []
    unlocated = next(f for f in body["features"] if f["id"] == ledger["unlocated"])
    assert unlocated["geometry"] is None and unlocated["properties"]["needs_location"] is True


def test_filters(client, keys, ledger, clock):
    move(client, keys, ledger["smoke"], "confirmed", who="reviewer")
    assert _ids(issues(client, keys, status="confirmed")) == [ledger["smoke"]]
    assert _ids(issues(client, keys, status=["confirmed", "candidate"])) == sorted(ledger.values())
    assert _ids(issues(client, keys, **{"class": "straw_burning"})) == [ledger["smoke"]]
    lon, lat = offset(BASE_LON, BASE_LAT, east_m=5000)
    assert _ids(issues(client, keys, bbox=f"{lon - 0.001},{lat - 0.001},{lon + 0.001},{lat + 0.001}")) == [
        ledger["far"]
    ]
    # changed in the last 30 minutes: the one just confirmed and the one just uploaded
    since = (clock.now - timedelta(minutes=30)).isoformat()
    assert _ids(issues(client, keys, since=since)) == sorted([ledger["smoke"], ledger["unlocated"]])


def test_pagination_reports_the_total(client, keys, ledger):
    response = client.get("/v1/issues", headers=keys.headers("reviewer"), params={"limit": 2, "offset": 1})
    body = response.json()
    assert body["total"] == 4 and _ids(body["features"]) == sorted(ledger.values())[1:3]


@pytest.mark.parametrize(
    "params, status",
    [
        ({"status": "finished"}, 422),
        ({"class": "litter"}, 422),
        ({"bbox": "1,2,3"}, 422),
        ({"bbox": "3,2,1,4"}, 422),
        ({"since": "2026-11-01T00:00:00"}, 422),  # no time zone
        ({"limit": 0}, 422),
        ({"region": 42}, 404),
    ],
)
def test_bad_filters(client, keys, params, status):
    assert client.get("/v1/issues", headers=keys.headers("reviewer"), params=params).status_code == status


def test_issue_feature_has_history_and_evidence_links(client, keys, ledger):
    second = upload_ok(
        client, keys, png(painted([GARBAGE], shade=9)), lon=BASE_LON, lat=BASE_LAT, who="citizen2"
    )
    assert second["issues"][0]["id"] == ledger["garbage"]
    props = issue(client, keys, ledger["garbage"])["properties"]
    assert [e["kind"] for e in props["history"]] == ["opened", "joined"]
    assert [e["n"] for e in props["evidence"]] == [1, 2]
    assert [e["source_name"] for e in props["evidence"]] == ["key 1 (test citizen)", "key 6 (second citizen)"]
    assert props["evidence"][1]["crop_url"] == f"/v1/issues/{ledger['garbage']}/evidence/2?view=crop"


@pytest.mark.parametrize("view, shape", [(None, (104, 104)), ("crop", (104, 104)), ("frame", (240, 320))])
def test_evidence_images(client, keys, ledger, view, shape):
    params = {} if view is None else {"view": view}
    response = client.get(
        f"/v1/issues/{ledger['garbage']}/evidence/1", headers=keys.headers("reviewer"), params=params
    )
    assert response.status_code == 200 and response.headers["content-type"] == "image/jpeg"
    image = cv2.imdecode(np.frombuffer(response.content, np.uint8), cv2.IMREAD_COLOR)
    assert image.shape[:2] == shape  # the 80 px box with a 15 % margin (12 px) each side, or the frame
    if view != "frame":
        assert image[52, 52, 2] > 200 and image[52, 52, 0] < 40  # the red paint is in the middle of the crop


@pytest.mark.parametrize(
    "path",
    [
        "/v1/issues/{garbage}/evidence/2",
        "/v1/issues/{garbage}/evidence/0",
        "/v1/issues/999/evidence/1",
        "/v1/issues/999",
    ],
)
def test_missing_things_are_404(client, keys, ledger, path):
    assert client.get(path.format(**ledger), headers=keys.headers("reviewer")).status_code == 404


def test_a_reviewer_places_an_unlocated_issue(client, keys, ledger):
    issue_id = ledger["unlocated"]
    refused = move(client, keys, issue_id, "confirmed", who="reviewer")
    assert refused.status_code == 200  # confirming needs no location ...
    blocked = move(client, keys, issue_id, "dispatched")
    assert blocked.status_code == 409 and "no location" in blocked.json()["detail"]  # ... dispatching does
    lon, lat = offset(BASE_LON, BASE_LAT, east_m=100)
    placed = client.put(
        f"/v1/issues/{issue_id}/location",
        headers=keys.headers("reviewer"),
        json={"lon": lon, "lat": lat, "reason": "村民电话确认"},
    )
    assert placed.status_code == 200, placed.text
    feature = placed.json()
    assert feature["geometry"]["coordinates"] == [lon, lat]
    assert feature["properties"]["needs_location"] is False
    last = feature["properties"]["history"][-1]
    assert (
        last["kind"] == "located" and "村民电话确认" in last["reason"] and "was no location" in last["reason"]
    )
    assert move(client, keys, issue_id, "dispatched").status_code == 200


@pytest.mark.parametrize(
    "body, status",
    [
        ({"lon": 0.0, "lat": 0.0}, 422),
        ({"lon": 200.0, "lat": 31.0}, 422),
        ({"lon": 117.0}, 422),
        ({"lon": 117.0, "lat": 31.0, "colour": "red"}, 422),
    ],
)
def test_bad_locations_are_refused(client, keys, ledger, body, status):
    response = client.put(
        f"/v1/issues/{ledger['unlocated']}/location", headers=keys.headers("reviewer"), json=body
    )
    assert response.status_code == status
    assert issue(client, keys, ledger["unlocated"])["properties"]["needs_location"] is True
