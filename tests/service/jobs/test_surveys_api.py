"""POST /v1/surveys and GET /v1/jobs/{id} on SQLite and PostgreSQL: a zip of drone photos end to end,
idempotency, skipped members, cancel, and bad input refused with nothing kept."""

from __future__ import annotations

import io
import zipfile
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from service.api.app import create_app
from service.db.models import Frame, Issue, Observation
from service.db.session import make_engine, make_session_factory
from service.jobs.models import Job
from tests.service.helpers import drive, issue, upload_ok
from tests.service.images import BASE_LAT, BASE_LON, GARBAGE, drone_box_at, drone_photo, painted, png
from tests.service.jobs.surveys import (
    drone_photos,
    drone_zip,
    finished_job,
    submit,
    wait_for_job,
    write_geotiff,
    zip_bytes,
)


def counts(settings) -> dict[str, int]:  # type: ignore[no-untyped-def]
    engine = make_engine(settings.database_url)
    with make_session_factory(engine)() as session:
        out = {
            name: session.scalar(select(func.count()).select_from(model))
            for name, model in (
                ("frames", Frame),
                ("observations", Observation),
                ("issues", Issue),
                ("jobs", Job),
            )
        }
    engine.dispose()
    return out  # type: ignore[return-value]


def test_a_drone_zip_becomes_a_job_that_records_each_photo(client, keys, settings):
    response = submit(client, keys, drone_zip(3), note="村道航拍 11月")
    assert response.status_code == 202, response.text
    body = response.json()
    assert response.headers["location"] == f"/v1/jobs/{body['id']}" == body["url"]
    assert body["kind"] == "drone_photos" and body["state"] in ("queued", "running", "succeeded")

    job = wait_for_job(client, keys, body["id"])
    assert job["state"] == "succeeded", job
    assert job["progress"] == {"done": 3, "total": 3}
    summary = job["summary"]
    assert (summary["items"], summary["recorded"], summary["skipped"]) == (3, 3, 0)
    assert (summary["observations"], summary["issues_opened"]) == (3, 3)  # 200 m apart: three piles
    assert job["model_version"] == "painted:1:000000000000" and job["attempts"] == 1
    assert counts(settings) == {"frames": 3, "observations": 3, "issues": 3, "jobs": 1}

    # Each photo was placed through its DJI pose: the pile at the centre of photo 0 is at its position.
    first = issue(client, keys, 1)
    assert first["geometry"]["coordinates"] == pytest.approx([BASE_LON, BASE_LAT], abs=2e-5)
    assert first["properties"]["evidence"][0]["source_kind"] == "drone"


def test_the_same_survey_again_is_the_same_job_and_adds_nothing(client, keys, settings):
    data = drone_zip(2)
    job = finished_job(client, keys, data)
    again = submit(client, keys, data, who="admin")
    assert again.status_code == 200, again.text
    assert again.json()["id"] == job["id"]
    assert counts(settings) == {"frames": 2, "observations": 2, "issues": 2, "jobs": 1}


def test_photos_seen_before_are_not_recorded_twice(client, keys, settings):
    photos = drone_photos(3)
    first = finished_job(client, keys, zip_bytes([("a.jpg", photos[0]), ("b.jpg", photos[1])]))
    # A second survey shares b.jpg (renamed) and brings one new photo.
    second = finished_job(client, keys, zip_bytes([("x/b-copy.jpg", photos[1]), ("x/c.jpg", photos[2])]))
    assert first["id"] != second["id"]
    summary = second["summary"]
    assert (summary["recorded"], summary["already_recorded"], summary["observations"]) == (1, 1, 1)
    assert counts(settings) == {"frames": 3, "observations": 3, "issues": 3, "jobs": 2}


def test_a_photo_uploaded_before_is_not_recorded_again_by_a_survey(client, keys, settings):
    photo = drone_photo(BASE_LON, BASE_LAT, [("garbage", drone_box_at(0, 0), 0.9)])
    upload_ok(client, keys, photo, filename="p.jpg")
    job = finished_job(client, keys, zip_bytes([("p.jpg", photo)]))
    assert job["summary"]["already_recorded"] == 1 and job["summary"]["observations"] == 0
    assert counts(settings)["observations"] == 1


def test_members_that_are_not_usable_photos_are_skipped_with_reasons(client, keys, settings):
    good = drone_photos(1)[0]
    data = zip_bytes(
        [
            ("flight/DJI_0001.JPG", good),
            ("flight/", b""),  # a directory entry: not an item
            ("flight/DJI_0001.MRK", b"1\t123.4\t[2026,11,02]"),
            ("flight/broken.jpg", good[: len(good) // 3]),
            ("flight/empty.jpg", b""),
            ("flight/nested.zip", zip_bytes([("x.jpg", good)])),
        ]
    )
    job = finished_job(client, keys, data)
    assert job["state"] == "succeeded", job
    summary = job["summary"]
    assert (summary["items"], summary["recorded"], summary["skipped"]) == (5, 1, 4)
    reasons = {item["label"]: item["reason"] for item in summary["skipped_items"]}
    assert reasons["flight/DJI_0001.MRK"].startswith("unsupported_format")
    assert reasons["flight/broken.jpg"].startswith("corrupt")
    assert reasons["flight/empty.jpg"].startswith("empty")
    assert reasons["flight/nested.zip"].startswith("unsupported_format")
    assert counts(settings)["observations"] == 1


def _zip_with_raw_names(names: list[str], data: bytes) -> bytes:
    """A zip whose entry names are written as given (zipfile would keep '../' as is, too)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name in names:
            zf.writestr(zipfile.ZipInfo(name), data)
    return buffer.getvalue()


PHOTO = drone_photos(1)[0]


REFUSED = [  # (case, upload, what the 422 says)
    ("dotdot", _zip_with_raw_names(["ok.jpg", "../../etc/cron.d/x.jpg"], PHOTO), "'..' path"),
    ("absolute", _zip_with_raw_names(["/etc/passwd"], PHOTO), "absolute"),
    ("backslash-dotdot", _zip_with_raw_names(["..\\..\\win.jpg"], PHOTO), "'..' path"),
    ("drive", _zip_with_raw_names(["C:/Windows/x.jpg"], PHOTO), "absolute"),
    ("too-many", zip_bytes([(f"{i}.jpg", b"x") for i in range(7)]), "7 entries, more than the 6 allowed"),
    ("bomb", zip_bytes([("bomb.bin", b"\0" * 300_000)]), "zip bomb"),
    ("empty-zip", b"PK\x05\x06" + b"\0" * 18, "holds no files"),
    ("not-zip", b"PK\x03\x04 not really a zip", "not a readable zip archive"),
    ("jpeg", PHOTO, "got a single JPEG"),
    ("gif", b"GIF89a....", "expected a zip of drone photos or a GeoTIFF"),
]


def test_refused_uploads_are_422_and_leave_nothing_behind(client, keys, settings):
    limited = client.app.state.service.settings  # the limits come from the app's settings
    assert limited.max_survey_members == 6 and limited.max_survey_uncompressed_bytes == 200_000
    for case, data, message in REFUSED:  # one app for all cases: each request is independent
        response = submit(client, keys, data)
        assert response.status_code == 422, (case, response.text)
        assert message in response.json()["detail"], (case, response.json())
    assert counts(settings)["jobs"] == 0
    assert not any(p.is_file() for p in (settings.data_dir / "jobs").rglob("*"))


def test_geotiffs_that_are_no_orthomosaic_are_422(client, keys, tmp_path):
    plain = write_geotiff(tmp_path / "plain.tif", painted([GARBAGE]), crs=None)
    response = submit(client, keys, plain.read_bytes())
    assert response.status_code == 422 and "not georeferenced" in response.json()["detail"]

    whole = write_geotiff(tmp_path / "ortho.tif", painted([GARBAGE], size_wh=(600, 600))).read_bytes()
    response = submit(client, keys, whole[: len(whole) // 2])  # cut short in transfer
    assert response.status_code == 422, response.text
    assert "not a readable GeoTIFF" in response.json()["detail"]

    # A TIFF whose directory is garbage: GDAL's message names the file it read, the server's temp
    # file (jobs/incoming/<uuid>.part), which the answer must not show (#13).
    response = submit(client, keys, b"II*\x00\x08\x00\x00\x00" + b"\x01" * 200)
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert detail.startswith("not a readable GeoTIFF: upload: ") and ".part" not in detail, detail


def test_a_body_over_the_survey_limit_is_413(client, keys, settings):
    limit = client.app.state.service.settings.max_survey_bytes
    response = submit(client, keys, b"PK\x03\x04" + b"\0" * limit)
    assert response.status_code == 413
    assert not any(p.is_file() for p in (settings.data_dir / "jobs").rglob("*"))


def test_unknown_and_malformed_requests(client, keys):
    headers = keys.headers("ingest")
    assert client.get("/v1/jobs/" + "0" * 32, headers=headers).status_code == 404
    assert client.get("/v1/jobs/not-a-job-id", headers=headers).status_code == 422
    response = client.post(
        "/v1/surveys",
        headers=headers,
        content=b"PK",
    )
    assert response.status_code == 415
    response = client.post(
        "/v1/surveys", headers=headers, files={"file": ("a.zip", drone_zip(1))}, data={"lon": "117"}
    )
    assert response.status_code == 422 and "unexpected form fields ['lon']" in response.json()["detail"]


def test_cancel_a_finished_job_is_409_and_a_queued_one_is_cancelled(client, keys, settings):
    job = finished_job(client, keys, drone_zip(1))
    response = client.post(f"/v1/jobs/{job['id']}/cancel", headers=keys.headers("ingest"))
    assert response.status_code == 409

    # A job nobody runs yet: the runner is stopped first, so the job stays queued.
    client.app.state.jobs.dispatcher.runner.stop()
    queued = submit(client, keys, drone_zip(2, shade=3)).json()
    response = client.post(f"/v1/jobs/{queued['id']}/cancel", headers=keys.headers("admin"))
    assert response.status_code == 200 and response.json()["state"] == "cancelled"
    # Submitting it again queues it again.
    requeued = submit(client, keys, drone_zip(2, shade=3))
    assert requeued.status_code == 202 and requeued.json()["state"] == "queued"
    assert requeued.json()["id"] == queued["id"]


def test_a_photo_upload_and_a_survey_share_one_model_version(client, keys):
    photo = upload_ok(client, keys, png(painted([GARBAGE])), lon=BASE_LON, lat=BASE_LAT)
    job = finished_job(client, keys, drone_zip(1))
    assert job["model_version"] == photo["model_version"]


def test_a_survey_that_shows_a_rectified_pile_gone_verifies_it(client, keys, clock):
    """回头看: two clear drone photos over the place, taken after the rectification and 60 min apart."""
    pile = drone_photo(BASE_LON, BASE_LAT, [("garbage", drone_box_at(0, 0), 0.9)])
    issue_id = upload_ok(client, keys, pile, filename="p.jpg")["issues"][0]["id"]
    drive(client, keys, issue_id, "rectified")
    rectified_at = clock.now
    clock.advance(hours=3)
    clear = [
        drone_photo(BASE_LON, BASE_LAT, [], shade=shade, taken=rectified_at + timedelta(minutes=minutes))
        for shade, minutes in ((1, 30), (2, 90))
    ]
    job = finished_job(client, keys, zip_bytes([("1.jpg", clear[0]), ("2.jpg", clear[1])]))
    assert job["summary"]["issues_verified"] == 1, job
    assert issue(client, keys, issue_id)["properties"]["state"] == "verified"


def test_without_a_model_a_survey_is_503_but_bad_input_is_still_422(settings, keys_factory, tmp_path):
    no_model = {"model": "no-such-model", "models_dir": tmp_path / "models"}
    app = create_app(settings.model_copy(update=no_model))
    with TestClient(app) as client:
        keys = keys_factory()
        response = submit(client, keys, drone_zip(1))
        assert response.status_code == 503, response.text
        assert "no-such-model" in response.json()["detail"]
        assert submit(client, keys, b"GIF89a").status_code == 422  # refused before the model is needed
    assert counts(settings)["jobs"] == 0
