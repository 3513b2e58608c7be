"""Deny by default, and the role matrix on every route.

Callers: anonymous, citizen, worker, reviewer, ingest, admin.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi import FastAPI

from service.api.app import PUBLIC_ROUTES, create_app
from service.api.deps import current_key, dependency_calls, route_table
from tests.service.api.test_regions import TOWNSHIP
from tests.service.helpers import upload_ok
from tests.service.images import BASE_LAT, BASE_LON, GARBAGE, painted, png
from tests.service.jobs.surveys import drone_zip, finished_job

CALLERS = (None, "citizen", "worker", "reviewer", "ingest", "admin")


def unprotected_routes(app: FastAPI) -> list[str]:
    """Routes outside PUBLIC_ROUTES that do not depend on `current_key`."""
    return [
        f"{sorted(r.methods)} {r.path}"
        for r in route_table(app)
        if r.name not in PUBLIC_ROUTES and current_key not in dependency_calls(r.dependant)
    ]


def test_every_non_public_route_requires_a_key(app):
    assert len(
        [r for r in route_table(app) if r.path.startswith("/v1/") and r.name not in PUBLIC_ROUTES]
    ) == len(MATRIX)  # the walk sees them all
    assert unprotected_routes(app) == []


def test_the_check_catches_a_route_without_auth(settings):
    app = create_app(settings, analyzer=object())

    @app.get("/v1/leak")
    def leak() -> dict[str, str]:
        return {"secret": "ledger"}

    assert unprotected_routes(app) == ["['GET'] /v1/leak"]


def test_only_health_metrics_and_docs_are_public(client):
    public = {r.path for r in route_table(client.app) if r.name in PUBLIC_ROUTES}
    assert public == {
        "/health", "/metrics", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc",
        "/", "/web/config.json", "/static",  # the office's page shell, its map settings, its JS and CSS
        "/report",  # the monthly report's shell; the report itself comes from /v1 with a key
        # Label Studio's: a signed, expiring frame URL (and a change's earlier crop) and the webhook
        # with its secret header (tests/service/review/test_review_routes.py: 403 and 401 without them)
        "/v1/review/frames/{frame_id}.jpg", "/v1/review/frames/{frame_id}/before.jpg", "/v1/review/webhook",
    }
    for path in ("/health", "/metrics", "/openapi.json", "/docs", "/", "/web/config.json", "/report"):
        assert client.get(path).status_code == 200, path


@dataclass(frozen=True)
class Case:
    method: str
    path: str  # with {issue_id}, {n} and {job_id} filled in from the fixture
    allowed: frozenset[str]
    success: int
    request: Callable[[int], dict[str, Any]]  # caller index -> extra request arguments


def _photo(i: int) -> dict[str, Any]:
    return {
        "files": {"file": ("p.png", png(painted([GARBAGE], shade=10 + i)), "image/png")},
        "data": {"lon": str(BASE_LON + 0.01 * (i + 1)), "lat": str(BASE_LAT)},
    }


def _survey(i: int) -> dict[str, Any]:
    return {"files": {"file": ("s.zip", drone_zip(1, shade=10 + i), "application/zip")}}


STAFF = frozenset({"worker", "reviewer", "admin"})
CAMERA = {
    "name": "east tower",
    "url": "rtsp://192.0.2.10/stream1",
    "tower": {"name": "east tower", "lon": BASE_LON, "lat": BASE_LAT, "mount_height_m": 30, "heading_deg": 90,
              "tilt_deg": -15, "image_width": 1920, "image_height": 1080, "hfov_deg": {"1": 60}},
}
INGEST = frozenset({"ingest", "admin"})
MATRIX = [
    Case("POST", "/v1/photos", frozenset(CALLERS[1:]), 201, _photo),
    Case("GET", "/v1/issues", STAFF, 200, lambda i: {}),
    Case("GET", "/v1/issues/{issue_id}", STAFF, 200, lambda i: {}),
    Case("GET", "/v1/issues/{issue_id}/evidence/{n}", STAFF, 200, lambda i: {}),
    # candidate -> closed does not exist: callers past the role gate get 409, the others 403
    Case("POST", "/v1/issues/{issue_id}/transitions", STAFF, 409, lambda i: {"json": {"to": "closed"}}),
    Case(
        "PUT",
        "/v1/issues/{issue_id}/location",
        frozenset({"reviewer", "admin"}),
        200,
        lambda i: {"json": {"lon": BASE_LON, "lat": BASE_LAT}},
    ),
    Case(
        "POST",
        "/v1/regions",
        frozenset({"admin"}),
        201,
        lambda i: {
            "content": json.dumps(TOWNSHIP).encode(),
            "headers": {"content-type": "application/geo+json"},
        },
    ),
    Case("GET", "/v1/regions", frozenset(CALLERS[1:]), 200, lambda i: {}),
    Case("GET", "/v1/taxonomy", frozenset(CALLERS[1:]), 200, lambda i: {}),
    Case("GET", "/v1/me", frozenset(CALLERS[1:]), 200, lambda i: {}),
    Case("GET", "/v1/reports/ranking", STAFF, 200, lambda i: {"params": {"month": "2026-11"}}),
    Case("GET", "/v1/reports/monthly", STAFF, 200, lambda i: {"params": {"month": "2026-11"}}),
    Case("GET", "/v1/reports/totals", STAFF, 200, lambda i: {"params": {"from": "2026-11"}}),
    # orthomosaic tiles (routes/tiles.py); {job_id} is a drone-photo job: past the role gate, 404
    Case("GET", "/v1/tiles", STAFF, 200, lambda i: {}),
    Case("GET", "/v1/tiles/{job_id}/tilejson.json", STAFF, 404, lambda i: {}),
    Case("GET", "/v1/tiles/{job_id}/{z}/{x}/{y}.png", STAFF, 404, lambda i: {}),
    Case("POST", "/v1/surveys", INGEST, 202, _survey),
    # {job_id} is a drone-photo job and the earlier survey does not exist: past the role gate, 404
    Case("POST", "/v1/surveys/{job_id}/changes", INGEST, 404, lambda i: {"json": {"before": "0" * 32}}),
    # {job_id} is a drone-photo job, and the file no DSM: past the role gate, 422
    Case("PUT", "/v1/surveys/{job_id}/dsm", INGEST, 422, lambda i: {"files": {"file": ("d.tif", b"no", "")}}),
    Case("GET", "/v1/jobs/{job_id}", INGEST, 200, lambda i: {}),
    # the job has finished: callers past the role gate get 409, the others 403
    Case("POST", "/v1/jobs/{job_id}/cancel", INGEST, 409, lambda i: {}),
    # cameras and alerts (service/api/routes/cameras.py); none stored: past the role gate, 404
    Case("GET", "/v1/cameras", STAFF, 200, lambda i: {}),
    Case("GET", "/v1/cameras/{camera_id}", STAFF, 404, lambda i: {}),
    Case("PUT", "/v1/cameras/{camera_id}", frozenset({"admin"}), 200, lambda i: {"json": CAMERA}),
    Case("DELETE", "/v1/cameras/{camera_id}", frozenset({"admin"}), 404, lambda i: {}),
    Case("GET", "/v1/alerts", STAFF, 200, lambda i: {}),
    Case("GET", "/v1/alerts/{alert_id}", STAFF, 404, lambda i: {}),
    Case("GET", "/v1/alerts/{alert_id}/clip", STAFF, 404, lambda i: {}),
    Case("POST", "/v1/alerts/{alert_id}/resend", frozenset({"reviewer", "admin"}), 404, lambda i: {}),
]


def test_matrix_covers_every_route(app):
    routes = {(m, r.path) for r in route_table(app) if r.name not in PUBLIC_ROUTES for m in r.methods}
    assert routes == {(c.method, c.path) for c in MATRIX}


@pytest.mark.parametrize("case", MATRIX, ids=lambda c: f"{c.method} {c.path}")
def test_role_matrix(client, keys, case):
    issue_id = upload_ok(client, keys, png(painted([GARBAGE])), lon=BASE_LON, lat=BASE_LAT)["issues"][0]["id"]
    job_id = finished_job(client, keys, drone_zip(1))["id"] if "{job_id}" in case.path else ""
    path = case.path.format(
        issue_id=issue_id, n=1, job_id=job_id, camera_id="east-tower", alert_id=999_999, z=20, x=1, y=1
    )
    for i, caller in enumerate(CALLERS):
        extra = case.request(i)
        headers = {**extra.pop("headers", {}), **keys.headers(caller)}
        response = client.request(case.method, path, headers=headers, **extra)
        if caller is None:
            expected = 401
        elif caller in case.allowed:
            expected = case.success
        else:
            expected = 403
        assert response.status_code == expected, (caller, response.text)
        if expected == 401:
            assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(
    "authorization", ["Bearer pv_not-a-real-key", "Basic dXNlcjpwYXNz", "Bearer", "pv_x"]
)
def test_bad_credentials_are_401(client, keys, authorization):
    response = client.get("/v1/regions", headers={"Authorization": authorization})
    assert response.status_code == 401
