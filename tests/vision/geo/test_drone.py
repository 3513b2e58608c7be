"""DJI photos: pose and intrinsics from XMP/EXIF written by the test, projected to the ground."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL.TiffImagePlugin import IFDRational

from tests.vision.geo.conftest import dji_xmp, dms, write_jpeg
from vision.geo.frame_projector import FrameProjector
from vision.geo.georeference import georeference_image, locate_points
from vision.geo.local_frame import LocalFrame
from vision.geo.phone import PhotographerProjector
from vision.geo.types import GroundPosition

LAT, LON = 31.8206, 117.2272
W, H = 400, 300


def dji(**overrides: Any) -> dict[str, Any]:
    tags = {
        "GpsLatitude": f"{LAT}",
        "GpsLongitude": f"{LON}",
        "AbsoluteAltitude": "+150.20",
        "RelativeAltitude": "+100.00",
        "GimbalRollDegree": "+0.00",
        "GimbalYawDegree": "+0.00",
        "GimbalPitchDegree": "-90.00",
        "FlightYawDegree": "+12.30",
        "CalibratedFocalLength": f"{(W / 2) / math.tan(math.radians(42)):.6f}",  # hfov 84 deg
        "CalibratedOpticalCenterX": f"{W / 2}",
        "CalibratedOpticalCenterY": f"{H / 2}",
    }
    tags.update(overrides)
    return {k: v for k, v in tags.items() if v is not None}


def local(pos: dict[str, Any]) -> tuple[float, float]:
    x, y = LocalFrame(LON, LAT).to_local(pos["lon"], pos["lat"])
    return float(x), float(y)


def test_nadir_dji_photo_corners(tmp_path: Path) -> None:
    path = write_jpeg(tmp_path / "DJI_0001.JPG", (W, H), xmp=dji_xmp(**dji()))
    ref = georeference_image(path)
    assert isinstance(ref.projector, FrameProjector) and ref.source == "drone"
    points = locate_points(ref)
    half_w = 100 * math.tan(math.radians(42))
    half_h = half_w * H / W
    expected = [(0, 0), (-half_w, half_h), (half_w, half_h), (half_w, -half_h), (-half_w, -half_h)]
    for p, (ex, ey) in zip(points, expected, strict=True):
        x, y = local(p)
        assert math.hypot(x - ex, y - ey) < 0.1
        assert 0 < p["uncertainty_m"] < 20
    described = ref.projector.describe()
    assert described["intrinsics"]["fx"] == pytest.approx((W / 2) / math.tan(math.radians(42)), rel=1e-6)
    assert described["vertical"].startswith("RelativeAltitude")


def test_oblique_dji_photo_centre(tmp_path: Path) -> None:
    path = write_jpeg(
        tmp_path / "o.jpg", (W, H), xmp=dji_xmp(**dji(GimbalYawDegree="+90.0", GimbalPitchDegree="-45.0"))
    )
    ref = georeference_image(path)
    x, y = local(locate_points(ref, np.array([[W / 2, H / 2]]))[0])
    assert (x, y) == pytest.approx((100.0, 0.0), abs=0.05)  # 100 m east (the Earth's curvature: < 1 mm)


def test_missing_gimbal_yaw_falls_back_to_flight_yaw(tmp_path: Path) -> None:
    path = write_jpeg(
        tmp_path / "y.jpg", (W, H), xmp=dji_xmp(**dji(GimbalYawDegree=None, GimbalPitchDegree="-45.0"))
    )
    ref = georeference_image(path)
    assert isinstance(ref.projector, FrameProjector)
    assert ref.projector.camera.orientation.yaw_deg == pytest.approx(12.3)
    assert any("FlightYawDegree" in r for r in ref.reasons)


@pytest.mark.parametrize(
    ("exif_ifd", "expected_fx"),
    [
        # FocalLength 8.8 mm, 1-inch sensor 13.2 mm wide over W px: FocalPlaneXResolution in px/cm.
        ({0x920A: IFDRational(88, 10), 0xA20E: IFDRational(W * 100, 132), 0xA210: 3}, 8.8 * W / 13.2),
        ({0xA405: 24}, 24 * math.hypot(W, H) / math.hypot(36, 24)),
    ],
)
def test_intrinsics_from_exif_when_xmp_has_no_calibration(
    tmp_path: Path, exif_ifd: dict[int, Any], expected_fx: float
) -> None:
    xmp = dji_xmp(
        **dji(CalibratedFocalLength=None, CalibratedOpticalCenterX=None, CalibratedOpticalCenterY=None)
    )
    ref = georeference_image(write_jpeg(tmp_path / "e.jpg", (W, H), xmp=xmp, exif_ifd=exif_ifd))
    assert isinstance(ref.projector, FrameProjector)
    assert ref.projector.camera.intrinsics.fx == pytest.approx(expected_fx, rel=1e-4)


def test_rtk_fixed_tightens_the_radius(tmp_path: Path) -> None:
    plain = georeference_image(write_jpeg(tmp_path / "a.jpg", (W, H), xmp=dji_xmp(**dji())))
    rtk = georeference_image(
        write_jpeg(
            tmp_path / "b.jpg",
            (W, H),
            xmp=dji_xmp(**dji(RtkFlag="50", RtkStdLon="0.012", RtkStdLat="0.015", RtkStdHgt="0.03")),
        )
    )
    p, r = locate_points(plain)[0], locate_points(rtk)[0]
    assert r["uncertainty_m"] < 0.7 * p["uncertainty_m"]
    assert isinstance(rtk.projector, FrameProjector)
    assert rtk.projector.uncertainty.horizontal_m == pytest.approx(0.015)


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"GimbalPitchDegree": None}, "GimbalPitchDegree"),
        ({"GimbalPitchDegree": "abc"}, "GimbalPitchDegree"),
        ({"GpsLatitude": "0", "GpsLongitude": "0"}, "0,0"),
        ({"GpsLatitude": "123.0"}, "out of range"),
        ({"GpsLatitude": "nan"}, "GpsLatitude"),
        ({"RelativeAltitude": None}, "RelativeAltitude"),
        ({"RelativeAltitude": "-3.0"}, "RelativeAltitude"),
        ({"GimbalYawDegree": None, "FlightYawDegree": None}, "YawDegree"),
        ({"CalibratedFocalLength": None}, "no focal length"),
    ],
)
def test_unusable_drone_metadata_gives_reasons(
    tmp_path: Path, overrides: dict[str, Any], reason: str
) -> None:
    path = write_jpeg(tmp_path / "bad.jpg", (W, H), xmp=dji_xmp(**dji(**overrides)))
    ref = georeference_image(path)
    assert ref.projector is None
    assert any(reason in r for r in ref.reasons), ref.reasons


def test_drone_without_pose_falls_back_to_exif_gps(tmp_path: Path) -> None:
    gps = {1: "N", 2: dms(LAT), 3: "E", 4: dms(LON)}
    path = write_jpeg(tmp_path / "f.jpg", (W, H), gps=gps, xmp=dji_xmp(**dji(GimbalPitchDegree=None)))
    ref = georeference_image(path)
    assert isinstance(ref.projector, PhotographerProjector)
    assert any("GimbalPitchDegree" in r for r in ref.reasons)


def test_longtitude_misspelling_is_accepted(tmp_path: Path) -> None:
    xmp = dji_xmp(**dji(GpsLongitude=None, GpsLongtitude=f"{LON}"))
    ref = georeference_image(write_jpeg(tmp_path / "l.jpg", (W, H), xmp=xmp))
    assert ref.drone is not None and ref.drone.lon == pytest.approx(LON)
    assert ref.source == "drone"


def test_pixels_outside_the_image_have_no_location(tmp_path: Path) -> None:
    ref = georeference_image(write_jpeg(tmp_path / "n.jpg", (W, H), xmp=dji_xmp(**dji())))
    out = locate_points(ref, np.array([[W + 10, 0], [W / 2, H / 2]]))
    assert out[0]["location"] is None and "outside" in out[0]["reason"]
    assert isinstance(ref.projector, FrameProjector)
    assert isinstance(ref.projector.locate(np.array([[W / 2, H / 2]]))[0], GroundPosition)


def test_dem_with_takeoff_elevation_matches_flat_ground_on_level_terrain(tmp_path: Path) -> None:
    from tests.vision.geo.test_tower import write_dem

    dem = write_dem(
        tmp_path / "dem.tif", "EPSG:32650", lambda x, y: 0 * x + 20.0, LocalFrame(LON, LAT), pixel_m=10.0
    )
    photo = write_jpeg(
        tmp_path / "o.jpg", (W, H), xmp=dji_xmp(**dji(GimbalPitchDegree="-50.0", GimbalYawDegree="30"))
    )
    flat = locate_points(georeference_image(photo))
    terrain = georeference_image(photo, dem_path=dem, takeoff_elevation_m=20.0)
    assert isinstance(terrain.projector, FrameProjector)
    on_dem = locate_points(terrain)
    for a, b in zip(flat, on_dem, strict=True):
        assert math.dist(local(a), local(b)) < 0.05
        assert b["elevation_m"] == pytest.approx(20.0)
    # AbsoluteAltitude 150.2 m over a DEM at 20 m works; a DEM at 400 m means mismatched datums.
    assert georeference_image(photo, dem_path=dem).source == "drone"
    high = write_dem(tmp_path / "high.tif", "EPSG:32650", lambda x, y: 0 * x + 400.0, LocalFrame(LON, LAT))
    refused = georeference_image(photo, dem_path=high)
    assert refused.projector is None and any("vertical datums" in r for r in refused.reasons)
