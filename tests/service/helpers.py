"""Small request helpers shared by the API tests."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from tests.service.conftest import Keys

# Admin paths from a fresh candidate to each state, through allowed moves only.
PATH_TO: dict[str, list[str]] = {
    "candidate": [],
    "confirmed": ["confirmed"],
    "rejected": ["rejected"],
    "dispatched": ["confirmed", "dispatched"],
    "rectified": ["confirmed", "dispatched", "rectified"],
    "verified": ["confirmed", "dispatched", "rectified", "verified"],
    "closed": ["confirmed", "dispatched", "rectified", "verified", "closed"],
    "rebound": ["confirmed", "dispatched", "rectified", "verified", "rebound"],
}


def upload(
    client: TestClient,
    keys: Keys,
    image: bytes,
    *,
    who: str = "citizen",
    lon: float | None = None,
    lat: float | None = None,
    filename: str = "photo.png",
    **fields: str,
) -> Any:
    data = dict(fields)
    if lon is not None:
        data["lon"] = repr(lon)
    if lat is not None:
        data["lat"] = repr(lat)
    return client.post(
        "/v1/photos", headers=keys.headers(who), files={"file": (filename, image, "image/png")}, data=data
    )


def upload_ok(client: TestClient, keys: Keys, image: bytes, **kwargs: Any) -> dict[str, Any]:
    response = upload(client, keys, image, **kwargs)
    assert response.status_code in (200, 201), response.text
    return response.json()


def move(
    client: TestClient, keys: Keys, issue_id: int, to: str, *, who: str = "admin", reason: str = ""
) -> Any:
    return client.post(
        f"/v1/issues/{issue_id}/transitions", headers=keys.headers(who), json={"to": to, "reason": reason}
    )


def drive(client: TestClient, keys: Keys, issue_id: int, state: str) -> None:
    for target in PATH_TO[state]:
        response = move(client, keys, issue_id, target)
        assert response.status_code == 200, response.text


def issue(client: TestClient, keys: Keys, issue_id: int) -> dict[str, Any]:
    response = client.get(f"/v1/issues/{issue_id}", headers=keys.headers("reviewer"))
    assert response.status_code == 200, response.text
    return response.json()


def issues(client: TestClient, keys: Keys, **params: Any) -> list[dict[str, Any]]:
    response = client.get("/v1/issues", headers=keys.headers("reviewer"), params=params)
    assert response.status_code == 200, response.text
    return response.json()["features"]
