"""POST /v1/surveys/{id}/changes on SQLite and PostgreSQL: two orthomosaic surveys of one area (synthetic
epochs written with rasterio by benchmarks/change_scenes.py: new sheds, a moved car, a season, 1.5 m of
misregistration) compared as a job; each new structure an illegal_structure candidate with its footprint,
area and uncertainty, before/after crops and the registration in its details; asked again or resumed, no
second candidate; pairs that cannot be compared refused with a 4xx and no job."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from fastapi.testclient import TestClient
from pyproj import Transformer
from sqlalchemy import select, update
from typer.testing import CliRunner

from benchmarks.change_scenes import CRS, EpochPairFiles
from patrol_cli.main import app as patrol
from service.db.models import Observation
from service.db.session import make_engine, make_session_factory, session_scope
from service.jobs.models import Job, JobState
from tests.service.conftest import Keys
from tests.service.helpers import issue, upload_ok
from tests.service.images import BASE_LAT, BASE_LON, GARBAGE, painted, png
from tests.service.jobs.conftest import enqueue, ledger_counts
from tests.service.jobs.surveys import drone_zip, finished_job, wait_for_job, write_geotiff
from tests.service.jobs.test_surveys_api import counts
from tests.service.survey_changes import SHIFT_M, candidates, compare, epoch_pair, survey
from vision.geo.local_frame import area_m2


@pytest.fixture
def settings(settings):  # type: ignore[no-untyped-def]
    """The job tests' settings with room for an 800 x 800 px RGB GeoTIFF (1.9 MB) per survey."""
    return settings.model_copy(update={"max_survey_bytes": 4_000_000})


@pytest.fixture(scope="module")
def epochs(tmp_path_factory: pytest.TempPathFactory) -> EpochPairFiles:
    return epoch_pair(tmp_path_factory.mktemp("epochs"))


def test_changes_become_candidates_with_before_and_after_evidence(client, keys, settings, epochs):
    before, after = survey(client, keys, epochs.before), survey(client, keys, epochs.after)
    response = compare(client, keys, after, before)
    assert response.status_code == 202, response.text
    job = wait_for_job(client, keys, response.json()["id"])
    assert (job["kind"], job["state"]) == ("changes", "succeeded"), job
    assert job["model_version"].startswith("change-rule@")
    assert job["summary"]["issues_opened"] == 2 and job["summary"]["recorded"] == 2
    # progress: the windows compared (one: 80 m of overlap in a 120 m window), then the changes recorded
    assert (job["progress"], job["stage"]) == ({"done": 3, "total": 3}, "succeeded")

    found = candidates(client, keys)
    assert len(found) == 2 and {f["properties"]["state"] for f in found} == {"candidate"}
    to_utm = Transformer.from_crs("EPSG:4326", CRS, always_xy=True)
    origin = np.array([500_000.0, 3_500_000.0])  # the earlier raster's top-left (change_scenes.ORIGIN)
    for feature in found:
        detail = issue(client, keys, feature["id"])
        props = detail["properties"]
        # the new structure at this place, by its centre in the earlier raster's pixels
        x, y = to_utm.transform(*detail["geometry"]["coordinates"])
        centre_px = np.array([x - origin[0], origin[1] - y]) / epochs.gsd_m
        truth = min(epochs.new, key=lambda o: float(np.linalg.norm(o.polygon_xy.mean(axis=0) - centre_px)))
        assert np.linalg.norm(truth.polygon_xy.mean(axis=0) - centre_px) * epochs.gsd_m < 1.0
        # area near the truth, within its stated uncertainty (~95 %), and a footprint of about that size
        assert abs(props["area_m2"] - truth.area_m2) <= props["area_uncertainty_m2"], (props, truth.area_m2)
        assert 0 < props["area_uncertainty_m2"] < 0.35 * truth.area_m2
        assert area_m2(_shape(props["footprint"])) == pytest.approx(truth.area_m2, rel=0.35)
        assert [e["kind"] for e in props["history"]] == ["opened"]
        (evidence,) = props["evidence"]
        details = evidence["details"]
        assert details["kind"] in ("appearance", "new_blue_roof")
        assert details["registration"]["shift_m"] == pytest.approx(SHIFT_M, abs=0.1)
        assert (details["before"]["survey"], details["after"]["survey"]) == (before, after)
        crops = [_jpeg(client, keys, evidence[url]) for url in ("before_url", "crop_url")]
        assert crops[0].shape == crops[1].shape  # the same ground in both epochs
        # the structure is new: the later crop differs from the earlier one
        assert float(np.abs(crops[0].astype(int) - crops[1].astype(int)).mean()) > 10


def test_asked_again_or_resumed_the_comparison_adds_no_second_candidate(client, keys, settings, epochs):
    before, after = survey(client, keys, epochs.before), survey(client, keys, epochs.after)
    first = compare(client, keys, after, before).json()
    wait_for_job(client, keys, first["id"])
    seen = counts(settings)
    again = compare(client, keys, after, before)
    assert again.status_code == 200 and again.json()["id"] == first["id"]  # the same job, finished
    # a job that failed after recording: queued again, it compares again and records nothing twice
    engine = make_engine(settings.database_url)
    with session_scope(make_session_factory(engine)) as session:
        session.execute(update(Job).where(Job.id == first["id"]).values(state=JobState.failed.value))
    engine.dispose()
    rerun = compare(client, keys, after, before)
    assert rerun.status_code == 202 and rerun.json()["id"] == first["id"]
    assert wait_for_job(client, keys, first["id"])["state"] == "succeeded"
    assert counts(settings) == seen
    assert len(candidates(client, keys)) == 2


def put_dsm(client: TestClient, keys: Keys, job_id: str, path: Path) -> Any:
    return client.put(
        f"/v1/surveys/{job_id}/dsm",
        headers=keys.headers("ingest"),
        files={"file": ("dsm.tif", path.read_bytes(), "image/tiff")},
    )


def test_with_both_surveys_dsms_a_comparison_by_height_joins_the_candidates(client, keys, settings, epochs):
    before, after = survey(client, keys, epochs.before), survey(client, keys, epochs.after)
    by_look = wait_for_job(client, keys, compare(client, keys, after, before).json()["id"])
    assert by_look["summary"]["issues_opened"] == 2
    assert epochs.dsm_before is not None and epochs.dsm_after is not None
    for job_id, dsm in ((before, epochs.dsm_before), (after, epochs.dsm_after)):
        response = put_dsm(client, keys, job_id, dsm)
        assert response.status_code == 200, response.text
        assert (response.json()["width"], response.json()["height"]) == (800, 800)
    response = compare(client, keys, after, before)
    assert response.status_code == 202 and response.json()["id"] != by_look["id"]  # another comparison
    by_height = wait_for_job(client, keys, response.json()["id"])
    assert by_height["state"] == "succeeded", by_height
    # the same two structures: their candidates joined, none opened
    assert (by_height["summary"]["issues_joined"], by_height["summary"]["issues_opened"]) == (2, 0)
    found = candidates(client, keys)
    assert len(found) == 2
    for feature in found:
        evidence = issue(client, keys, feature["id"])["properties"]["evidence"]
        assert [e["details"]["uses_dsm"] for e in evidence] == [False, True]
        height = evidence[1]["details"]
        assert height["kind"] == "height_gain" and 2.5 <= height["height_gain_m"] <= 4.5  # drawn 2.5-4.5 m


def test_a_dsm_is_refused_when_it_is_none_or_its_survey_no_orthomosaic(client, keys, settings, epochs):
    ortho = survey(client, keys, epochs.before)
    photos = finished_job(client, keys, drone_zip(1))["id"]
    response = put_dsm(client, keys, ortho, epochs.after)  # an RGB orthomosaic
    assert response.status_code == 422 and "expected a DSM" in response.json()["detail"]
    assert epochs.dsm_before is not None
    response = put_dsm(client, keys, photos, epochs.dsm_before)
    assert response.status_code == 422 and "only an orthomosaic survey has a DSM" in response.json()["detail"]
    assert not (settings.data_dir / "jobs" / photos / "dsm").exists()


def test_the_cli_compares_two_surveys_of_the_local_ledger(job_ctx, settings, epochs):
    before, after = (enqueue(job_ctx, path.read_bytes()) for path in (epochs.before, epochs.after))

    def patrol_changes(later: str, earlier: str) -> Any:
        args = ["surveys", "changes", later, "--before", earlier, "--database-url", settings.database_url]
        return CliRunner().invoke(patrol, args, env={"PATROL_DATA_DIR": str(settings.data_dir)})

    result = patrol_changes(after, before)
    assert result.exit_code == 0, result.output
    first = json.loads(result.stdout.strip().splitlines()[-1])
    assert (first["state"], first["issues_opened"], first["recorded"]) == ("succeeded", 2, 2)
    seen = ledger_counts(job_ctx)
    again = patrol_changes(after, before)  # the same job, finished: nothing added
    assert again.exit_code == 0 and json.loads(again.stdout.strip().splitlines()[-1])["job"] == first["job"]
    assert ledger_counts(job_ctx) == seen
    refused = patrol_changes(after, after)
    assert refused.exit_code == 2 and "the same one twice" in refused.output


def test_other_findings_have_no_before_crop_or_details(client, keys, settings):
    """Only a change carries a before crop and details: a photo's finding does not."""
    found = upload_ok(client, keys, png(painted([GARBAGE])), lon=BASE_LON, lat=BASE_LAT)
    (evidence,) = issue(client, keys, found["issues"][0]["id"])["properties"]["evidence"]
    assert (evidence["before_url"], evidence["details"]) == (None, None)
    before_url = evidence["crop_url"].replace("view=crop", "view=before")
    response = client.get(before_url, headers=keys.headers("reviewer"))
    assert response.status_code == 404 and "no change between surveys" in response.json()["detail"]
    engine = make_engine(settings.database_url)
    with make_session_factory(engine)() as session:
        rows = session.execute(select(Observation.before_crop_path, Observation.details)).all()
    engine.dispose()
    assert [tuple(r) for r in rows] == [(None, None)]


def far_away(tmp_path: Path) -> Path:
    pixels = np.full((200, 200, 3), 90, np.uint8)
    return write_geotiff(tmp_path / "far.tif", pixels, origin_lonlat=(117.5, 31.0))


def dated(tmp_path: Path, epochs: EpochPairFiles, when: str) -> Path:
    """The earlier epoch again, with a capture time (TIFFTAG_DATETIME): other bytes, another survey."""
    import rasterio

    path = tmp_path / f"dated {when[:10].replace(':', '-')}.tif"
    path.write_bytes(epochs.before.read_bytes())
    with rasterio.open(path, "r+") as dst:
        dst.update_tags(TIFFTAG_DATETIME=when)
    return path


def test_pairs_that_cannot_be_compared_are_refused_without_a_job(client, keys, settings, epochs, tmp_path):
    after, before = survey(client, keys, epochs.after), survey(client, keys, epochs.before)
    photos = finished_job(client, keys, drone_zip(1))["id"]
    far = survey(client, keys, far_away(tmp_path))
    november = survey(client, keys, dated(tmp_path, epochs, "2026:11:01 10:00:00"))
    december = survey(client, keys, dated(tmp_path, epochs, "2026:12:01 10:00:00"))
    jobs = counts(settings)["jobs"]
    cases = [
        (after, after, 422, "the same one twice"),
        (after, "0" * 32, 404, "no job"),
        (after, photos, 422, "not an orthomosaic"),
        (photos, before, 422, "not an orthomosaic"),
        (after, far, 422, "do not overlap"),
        (november, december, 422, "not before the later one"),
    ]
    for later, earlier, code, words in cases:
        response = compare(client, keys, later, earlier)
        assert response.status_code == code, (words, response.text)
        assert words in response.json()["detail"], response.text
    assert compare(client, keys, after, "not-an-id").status_code == 422
    # a survey whose GeoTIFF the data dir lost
    (settings.data_dir / "jobs" / before / "input").unlink()
    response = compare(client, keys, after, before)
    assert response.status_code == 422 and "no longer stored" in response.json()["detail"]
    assert counts(settings)["jobs"] == jobs  # none of them made a job
    # the right order is taken
    assert compare(client, keys, december, november).status_code == 202


def test_another_keys_survey_is_not_found(client, keys, settings, epochs, tmp_path):
    mine = survey(client, keys, epochs.after)
    theirs = survey(client, keys, far_away(tmp_path), "admin")
    response = compare(client, keys, mine, theirs)
    assert response.status_code == 404


def _shape(geometry: dict[str, Any]) -> Any:
    from shapely.geometry import shape

    return shape(geometry)


def _jpeg(client: TestClient, keys: Keys, url: str) -> np.ndarray:
    response = client.get(url, headers=keys.headers("reviewer"))
    assert response.status_code == 200 and response.headers["content-type"] == "image/jpeg"
    image = cv2.imdecode(np.frombuffer(response.content, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None
    return image
