"""An orthomosaic GeoTIFF as a job: tiles through the pipeline, seams merged, tiles as frames."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import numpy as np
import pytest
from pyproj import Transformer
from sqlalchemy import select

from service.db.models import Frame, Issue, Observation
from service.jobs.models import JobItem
from service.jobs.ortho_survey import assign_to_tiles
from service.jobs.work import RunOutcome, claim_and_execute
from tests.service.jobs.conftest import enqueue, job_row, ledger_counts
from tests.service.jobs.surveys import UTM50N, ortho_pixels, write_geotiff
from vision.tiling import TileWindow

PIXEL_M = 0.1
# 1300 x 1152 px at 0.1 m; 640 px tiles (the detector's input) overlap by 20 %:
# columns at x = 0, 512, 660 and rows at y = 0, 512, so six tiles.
SIZE_WH = (1300, 1152)
ACROSS_SEAMS = ("garbage", (420, 100, 760, 200), 0.9)  # wider than the overlap: cut in every tile
IN_TWO_TILES = ("smoke", (900, 100, 1000, 200), 0.8)  # whole in two overlapping tiles


def _mosaic(tmp_path, **kwargs):  # type: ignore[no-untyped-def]
    pixels = ortho_pixels([ACROSS_SEAMS, IN_TWO_TILES], SIZE_WH)
    pixels[pixels.sum(axis=2) == 0] = 10  # ground: dark, but data
    pixels[512:, 660:] = 0  # no data: outside the flown area
    return write_geotiff(tmp_path / "ortho.tif", pixels, pixel_m=PIXEL_M, **kwargs)


def test_an_orthomosaic_is_tiled_merged_across_seams_and_recorded_per_tile(job_ctx, tmp_path):
    path = _mosaic(tmp_path, tags={"TIFFTAG_DATETIME": "2026:11:01 10:00:00"})
    job_id = enqueue(job_ctx, path.read_bytes())
    assert claim_and_execute(job_ctx) == (job_id, RunOutcome.succeeded)
    job = job_row(job_ctx, job_id)
    assert (job.kind, job.progress_done, job.progress_total) == (
        "orthomosaic",
        12,
        12,
    )  # 6 detected + 6 recorded

    counts = ledger_counts(job_ctx)
    assert (counts["items"], counts["frames"], counts["observations"], counts["issues"]) == (6, 5, 2, 2)
    with job_ctx.session_factory() as session:
        items = {i.label: i for i in session.scalars(select(JobItem))}
        frames = {f.id: f for f in session.scalars(select(Frame))}
        issues = {i.class_key: i for i in session.scalars(select(Issue))}
        observations = session.scalars(select(Observation)).all()
    empty = items["tile 5 at x=660, y=512 (640x640 px)"]
    assert empty.outcome == "skipped" and "no data" in empty.reason
    # Only tiles that are all data vouch for the ground they show (回头看).
    covered = {label for label, item in items.items() if item.frame_id and frames[item.frame_id].coverage}
    assert covered == {"tile 0 at x=0, y=0 (640x640 px)", "tile 3 at x=0, y=512 (640x640 px)"}

    # The pile cut by two seams is one observation with the whole box's footprint: 34 m x 10 m.
    pile = issues["garbage_pile"]
    assert pile.area_m2 == pytest.approx(340.0, rel=0.01)
    to_utm = Transformer.from_crs("EPSG:4326", UTM50N, always_xy=True)
    x0, y0 = to_utm.transform(*json.loads(frames[1].coverage)["coordinates"][0][0])  # tile 0's top-left
    x, y = to_utm.transform(pile.lon, pile.lat)
    assert (x - x0, y0 - y) == pytest.approx((59.0, 15.0), abs=0.05)  # box centre (590, 150) px
    assert issues["straw_burning"].area_m2 == pytest.approx(100.0, rel=0.01)
    # TIFFTAG_DATETIME is local time in the office's zone (Asia/Shanghai, UTC+8).
    assert {o.observed_at for o in observations} == {datetime(2026, 11, 1, 2, 0, tzinfo=UTC)}


def test_a_corrupt_orthomosaic_fails_its_job_with_the_reason(job_ctx, tmp_path):
    whole = _mosaic(tmp_path).read_bytes()
    job_id = enqueue(job_ctx, whole[: len(whole) // 2])  # queued without the submit-time check
    assert claim_and_execute(job_ctx) == (job_id, RunOutcome.failed)
    job = job_row(job_ctx, job_id)
    assert job.state == "failed" and job.error.startswith("corrupt or unusable GeoTIFF")
    assert ledger_counts(job_ctx)["frames"] == 0


@pytest.mark.parametrize(
    ("box", "expected"),
    [
        ((10, 10, 50, 50), 0),  # only in the first tile
        ((600, 10, 620, 50), 1),  # in both: the tile whose centre is nearer wins
        ((520, 10, 560, 50), 0),  # in both, nearer the first tile's centre
        ((100, 10, 1100, 50), 1),  # in neither whole: nearest centre
    ],
)
def test_each_finding_goes_to_the_tile_that_shows_it_best(box, expected):
    windows = [TileWindow(0, 0, 640, 640), TileWindow(460, 0, 640, 640)]
    assert assign_to_tiles(np.array([box], np.float32), windows).tolist() == [expected]
