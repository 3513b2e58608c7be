"""The routes the office's page reads besides the ledger: the taxonomy, who the key is, and the
issue filters by capture month and source kind."""

from __future__ import annotations

import pytest

from service.ledger.states import MOVES
from tests.service.helpers import issues, upload_ok
from tests.service.images import BASE_LAT, BASE_LON, GARBAGE, SMOKE, offset, painted, png
from vision.taxonomy import Taxonomy


def test_taxonomy_lists_the_classes_with_their_colours(client, keys):
    classes = client.get("/v1/taxonomy", headers=keys.headers("citizen")).json()["classes"]
    assert [(c["key"], c["name_zh"], c["colour"]) for c in classes] == [
        (c.key, c.name_zh, c.colour) for c in Taxonomy.default().classes
    ]


@pytest.mark.parametrize(
    "who, moves",
    [
        ("reviewer", {("candidate", "confirmed"), ("candidate", "rejected")}),
        ("worker", {("dispatched", "rectified")}),
        ("citizen", set()),
        ("admin", {(m.source.value, m.target.value) for m in MOVES}),
    ],
)
def test_me_names_the_role_and_its_moves(client, keys, who, moves):
    body = client.get("/v1/me", headers=keys.headers(who)).json()
    assert body["role"] == who and body["name"] == f"test {who}"
    assert {(m["from_state"], m["to_state"]) for m in body["moves"]} == moves


def test_issues_filter_by_capture_month_and_source_kind(client, keys, clock):
    garbage = upload_ok(client, keys, png(painted([GARBAGE])), lon=BASE_LON, lat=BASE_LAT)["issues"][0]["id"]
    lon, lat = offset(BASE_LON, BASE_LAT, 500)
    smoke = upload_ok(client, keys, png(painted([SMOKE], shade=3)), lon=lon, lat=lat)["issues"][0]["id"]
    # the clock reads 2026-11-02 09:00 UTC; PNGs carry no capture time: captured on receipt
    assert {f["id"] for f in issues(client, keys, month="2026-11")} == {garbage, smoke}
    assert issues(client, keys, month="2026-10") == []
    assert {f["id"] for f in issues(client, keys, source="citizen")} == {garbage, smoke}
    assert issues(client, keys, source=["drone", "camera"]) == []


@pytest.mark.parametrize("params", [{"month": "2026-13"}, {"month": "Nov"}, {"source": "satellite"}])
def test_bad_filters_get_422(client, keys, params):
    response = client.get("/v1/issues", headers=keys.headers("reviewer"), params=params)
    assert response.status_code == 422, response.text
