"""Bad input is a clear 4xx on both backends and changes nothing (issue #13, item 5).

Each case here was a 500 before: a 422 body that could not be serialised (NaN), integers
the driver cannot bind (beyond 32 bits on PostgreSQL, 64 on SQLite), NUL characters that
PostgreSQL refuses and SQLite stores, and months whose bounds leave what datetime holds.
"""

from __future__ import annotations

import json

import pytest

from service.api.schemas import MAX_OFFSET, MAX_ROW_ID
from tests.service.helpers import issue, issues, move, upload, upload_ok
from tests.service.images import GARBAGE, painted, png


@pytest.fixture
def unlocated(client, keys) -> int:  # type: ignore[no-untyped-def]
    """An issue without a location: the one a reviewer places by hand."""
    return upload_ok(client, keys, png(painted([GARBAGE])))["issues"][0]["id"]


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_non_finite_location_is_422_and_places_nothing(client, keys, unlocated, number):
    before = issue(client, keys, unlocated)
    response = client.put(
        f"/v1/issues/{unlocated}/location",
        headers={**keys.headers("reviewer"), "content-type": "application/json"},
        content=f'{{"lon": {number}, "lat": 31.8, "reason": "by hand"}}'.encode(),
    )
    assert response.status_code == 422, response.text
    errors = json.loads(response.text)["detail"]  # strict JSON: no bare NaN in the answer
    assert errors[0]["loc"] == ["body", "lon"]
    assert errors[0]["input"] in ("nan", "inf", "-inf")
    assert issue(client, keys, unlocated) == before


@pytest.mark.parametrize(
    "path",
    [
        "/v1/issues/99999999999999999999",  # beyond 64 bits
        f"/v1/issues/{MAX_ROW_ID + 1}",  # beyond the 32-bit INTEGER column of PostgreSQL
        "/v1/issues/0",
        f"/v1/issues/{2**63}/evidence/1",
    ],
)
def test_ids_beyond_the_column_are_422(client, keys, path):
    response = client.get(path, headers=keys.headers("reviewer"))
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == ["path", "issue_id"]


def test_the_largest_id_is_a_plain_404(client, keys):
    response = client.get(f"/v1/issues/{MAX_ROW_ID}", headers=keys.headers("reviewer"))
    assert response.status_code == 404, response.text


@pytest.mark.parametrize("method, suffix, body", [
    ("POST", "/transitions", {"to": "confirmed"}),
    ("PUT", "/location", {"lon": 117.2, "lat": 31.8}),
])
def test_writes_to_ids_beyond_the_column_are_422(client, keys, method, suffix, body):
    response = client.request(
        method, f"/v1/issues/{2**40}{suffix}", headers=keys.headers("reviewer"), json=body
    )
    assert response.status_code == 422, response.text


@pytest.mark.parametrize(
    "params, status_code",
    [
        ({"offset": str(2**64)}, 422),
        ({"offset": str(MAX_OFFSET + 1)}, 422),
        ({"offset": str(MAX_OFFSET)}, 200),  # past the end: an empty page
        ({"region": str(2**40)}, 422),
    ],
)
def test_list_bounds(client, keys, unlocated, params, status_code):
    response = client.get("/v1/issues", headers=keys.headers("reviewer"), params=params)
    assert response.status_code == status_code, response.text
    if status_code == 200:
        assert response.json()["features"] == [] and response.json()["total"] == 1


def test_nul_in_a_transition_reason_is_422_and_moves_nothing(client, keys, unlocated):
    response = move(client, keys, unlocated, "rejected", who="reviewer", reason="dup\x00licate")
    assert response.status_code == 422, response.text
    assert "NUL" in response.text
    after = issue(client, keys, unlocated)["properties"]
    assert after["state"] == "candidate" and [e["kind"] for e in after["history"]] == ["opened"]


def test_nul_in_a_location_reason_is_422_and_places_nothing(client, keys, unlocated):
    response = client.put(
        f"/v1/issues/{unlocated}/location",
        headers=keys.headers("reviewer"),
        json={"lon": 117.2, "lat": 31.8, "reason": "\x00"},
    )
    assert response.status_code == 422, response.text
    assert issue(client, keys, unlocated)["properties"]["needs_location"] is True


def test_nul_in_a_photo_note_is_422_and_stores_nothing(client, keys):
    response = upload(client, keys, png(painted([GARBAGE])), note="seen at\x00dawn")
    assert response.status_code == 422, response.text
    assert "note" in response.json()["detail"] and "NUL" in response.json()["detail"]
    assert issues(client, keys) == []


@pytest.mark.parametrize("month", ["9999-12", "0001-01", "1969-12"])
@pytest.mark.parametrize("format_", ["json", "csv"])
def test_months_out_of_range_are_422(client, keys, month, format_):
    response = client.get(
        "/v1/reports/ranking", headers=keys.headers("reviewer"), params={"month": month, "format": format_}
    )
    assert response.status_code == 422, response.text
    assert "1970-01 to 9998-12" in response.json()["detail"]


@pytest.mark.parametrize("month", ["1970-01", "9998-12"])
def test_the_first_and_last_months_are_answered(client, keys, month):
    response = client.get("/v1/reports/ranking", headers=keys.headers("reviewer"), params={"month": month})
    assert response.status_code == 200, response.text
