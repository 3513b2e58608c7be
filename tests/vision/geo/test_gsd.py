"""Ground sampling distance from a drone pose: exact at nadir, coarser oblique, none at the horizon."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.vision.geo.conftest import dji_xmp, write_jpeg
from vision.geo.camera import Intrinsics
from vision.geo.drone import DronePose, build_drone_projector
from vision.geo.gsd import frame_gsd_m, photo_gsd_m
from vision.image_io import load_image

WIDTH, HEIGHT, FOCAL_PX = 5472, 3648, 3648.0


def _projector(altitude_m: float, pitch_deg: float):
    pose = DronePose(lon=116.4, lat=39.9, relative_altitude_m=altitude_m, yaw_deg=30.0, pitch_deg=pitch_deg)
    intrinsics = Intrinsics(width=WIDTH, height=HEIGHT, fx=FOCAL_PX, fy=FOCAL_PX, cx=WIDTH / 2, cy=HEIGHT / 2)
    return build_drone_projector(pose, intrinsics)


@pytest.mark.parametrize("altitude_m", [40.0, 100.0, 120.0])
def test_a_nadir_photo_over_flat_ground_has_height_over_focal_metres_per_pixel(altitude_m):
    # looking straight down on a plane, ground = height x pixel / focal everywhere in the frame
    assert frame_gsd_m(_projector(altitude_m, -90.0)) == pytest.approx(altitude_m / FOCAL_PX, rel=1e-4)


def test_an_oblique_photo_reports_its_coarsest_part():
    nadir = frame_gsd_m(_projector(100.0, -90.0))
    oblique = frame_gsd_m(_projector(100.0, -60.0))
    assert nadir is not None and oblique is not None
    assert oblique > 1.5 * nadir  # the far edge, 60 - 13 degrees below the horizon, is much coarser


def test_a_photo_that_sees_the_horizon_has_no_gsd():
    assert frame_gsd_m(_projector(100.0, -10.0)) is None


def test_a_dji_photo_gives_its_gsd_and_a_phone_photo_none(tmp_path: Path):
    xmp = dji_xmp(GpsLatitude=39.9, GpsLongitude=116.4, RelativeAltitude="+80.0", GimbalYawDegree=0.0,
                  GimbalPitchDegree=-90.0, GimbalRollDegree=0.0, CalibratedFocalLength=400.0)
    drone = load_image(write_jpeg(tmp_path / "DJI_0001.JPG", (400, 300), xmp=xmp))
    assert photo_gsd_m(drone) == pytest.approx(80.0 / 400.0, rel=1e-4)
    assert photo_gsd_m(load_image(write_jpeg(tmp_path / "phone.jpg", (400, 300)))) is None
