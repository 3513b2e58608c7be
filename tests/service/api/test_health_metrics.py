"""GET /health and GET /metrics (Prometheus), both public."""

from __future__ import annotations

import shutil
from pathlib import Path

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from service.api.app import create_app
from service.migrations.runner import head_revision
from service.settings import Settings
from tests.service.helpers import move, upload_ok
from tests.service.images import BASE_LAT, BASE_LON, GARBAGE, SMOKE, painted, png

VERSIONS = Path(__file__).resolve().parents[3] / "service" / "migrations" / "versions"


def _samples(client) -> dict[tuple[str, tuple], float]:  # type: ignore[no-untyped-def]
    text = client.get("/metrics").text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_health_names_the_schema_revision(client):
    # The app migrates to the newest revision on start: health names it (the newest file's).
    newest = max(p.name.split("_")[0] for p in VERSIONS.glob("[0-9]*_*.py"))
    assert head_revision() == newest
    assert client.get("/health").json() == {"status": "ok", "database": "ok", "schema_revision": newest}


def test_health_is_503_when_the_database_is_gone(tmp_path):
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'db' / 'x.db'}", data_dir=tmp_path / "data")
    with TestClient(create_app(settings, analyzer=object())) as client:
        client.app.state.service.engine.dispose()  # drop pooled connections to the file
        shutil.rmtree(tmp_path / "db")  # SQLite cannot open a file in a folder that is gone
        response = client.get("/health")
    assert response.status_code == 503 and response.json()["status"] == "degraded"


def test_metrics_count_requests_by_route_template_and_the_ledger(client, keys):
    body = upload_ok(client, keys, png(painted([GARBAGE, SMOKE])), lon=BASE_LON, lat=BASE_LAT)
    issue_id = body["issues"][0]["id"]
    move(client, keys, issue_id, "confirmed", who="reviewer")
    client.get(f"/v1/issues/{issue_id}", headers=keys.headers("reviewer"))
    samples = _samples(client)
    assert (
        samples[
            (
                "patrol_http_requests_total",
                (("method", "GET"), ("route", "/v1/issues/{issue_id}"), ("status", "200")),
            )
        ]
        == 1
    )
    assert not any(f"/v1/issues/{issue_id}" in dict(labels).get("route", "") for _, labels in samples)
    assert samples[("patrol_issues", (("class_key", "garbage_pile"), ("state", "confirmed")))] == 1
    assert samples[("patrol_issues", (("class_key", "straw_burning"), ("state", "candidate")))] == 1
    assert samples[("patrol_observations_total", (("class_key", "garbage_pile"), ("outcome", "opened")))] == 1
    assert samples[("patrol_transitions_total", (("actor", "key"), ("to_state", "confirmed")))] == 1


def test_rejected_uploads_are_counted_by_reason(client, keys):
    client.post(
        "/v1/photos", headers=keys.headers("citizen"), files={"file": ("a.jpg", b"%PDF-1.4", "image/jpeg")}
    )
    assert _samples(client)[("patrol_rejected_uploads_total", (("reason", "unsupported_format"),))] == 1


REQUESTS = "patrol_http_requests_total"


def test_metrics_labels_stay_bounded_whatever_clients_send(client):
    """Made-up methods and paths are counted, but as `other` and one unmatched route: /metrics
    does not grow with them (issue #13: 5,000 made-up methods grew it to 8.8 MB)."""
    for i in range(300):
        client.request(f"M{i}X", "/health")
        client.get(f"/no/such/path/{i}")
    assert len(client.get("/metrics").text.encode()) < 100_000
    samples = {labels: value for (name, labels), value in _samples(client).items() if name == REQUESTS}
    assert {dict(labels)["method"] for labels in samples} == {"GET", "other"}
    assert samples[(("method", "other"), ("route", "/health"), ("status", "405"))] == 300
    unmatched = [labels for labels in samples if ("route", "<unmatched>") in labels]
    assert len(unmatched) == 1 and samples[unmatched[0]] == 300
