"""Tower cameras: config files, ray-to-ground, GCP homographies, expected error, DEM terrain."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from affine import Affine

from tests.vision.geo.conftest import flat_ground_projector, write_jpeg, write_raster
from vision.geo.camera import FrameCamera, Intrinsics, Orientation
from vision.geo.dem import Dem, DemGround
from vision.geo.frame_projector import FrameProjector, PoseUncertainty
from vision.geo.georeference import georeference_image, locate_points
from vision.geo.homography import HomographyError, HomographyProjector
from vision.geo.local_frame import LocalFrame
from vision.geo.tower import TowerCameraConfig, TowerConfigError, build_tower_projector, expected_error
from vision.geo.types import GroundPosition, NoLocation

LON, LAT = 117.2272, 31.8206
W, H = 1920, 1080


def config(**overrides: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "name": "tower-7",
        "lon": LON,
        "lat": LAT,
        "mount_height_m": 40.0,
        "heading_deg": 90.0,
        "tilt_deg": -10.0,
        "image_width": W,
        "image_height": H,
        "hfov_deg": {1: 60.0, 10: 6.5},
        "presets": [{"id": 1, "pan_deg": 30.0, "tilt_deg": -5.0, "zoom": 1}, {"id": "zoomed", "zoom": 10}],
    }
    raw.update(overrides)
    return raw


def local(pos: GroundPosition | dict[str, Any]) -> tuple[float, float]:
    lon, lat = (pos.lon, pos.lat) if isinstance(pos, GroundPosition) else (pos["lon"], pos["lat"])
    x, y = LocalFrame(LON, LAT).to_local(lon, lat)
    return float(x), float(y)


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_config_loads_from_yaml_and_json(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"cam{suffix}"
    text = json.dumps(config()) if suffix == ".json" else yaml.safe_dump(config())
    path.write_text(text, encoding="utf-8")
    cfg = TowerCameraConfig.load(path)
    assert cfg.preset("1").pan_deg == 30.0 and cfg.hfov_deg[10.0] == 6.5


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"colour": "red"}, "Extra inputs"),
        ({"mount_height_m": -1}, "greater than 0"),
        ({"hfov_deg": {}}, "at least one zoom"),
        ({"hfov_deg": {1: 190}}, "0 < hfov < 180"),
        ({"presets": [{"id": 1}, {"id": "1"}]}, "unique preset"),
    ],
)
def test_invalid_configs_are_refused(tmp_path: Path, overrides: dict[str, Any], match: str) -> None:
    path = tmp_path / "cam.yaml"
    path.write_text(yaml.safe_dump(config(**overrides)), encoding="utf-8")
    with pytest.raises(TowerConfigError, match=match):
        TowerCameraConfig.load(path)


def test_unknown_preset_and_zoom_range() -> None:
    cfg = TowerCameraConfig.model_validate(config())
    with pytest.raises(TowerConfigError, match="unknown preset"):
        cfg.preset("nope")
    with pytest.raises(TowerConfigError, match="outside the calibrated range"):
        cfg.hfov_at(20)
    # Zoom 5.5 lies between focal lengths for 60 deg and 6.5 deg (linear in focal length).
    f1, f10 = 1 / math.tan(math.radians(30)), 1 / math.tan(math.radians(3.25))
    assert cfg.hfov_at(5.5) == pytest.approx(math.degrees(2 * math.atan(1 / ((f1 + f10) / 2))))


@pytest.mark.parametrize(("preset", "bearing", "tilt"), [(None, 90.0, -10.0), ("1", 120.0, -5.0)])
def test_centre_pixel_lands_at_the_analytic_distance(preset: str | None, bearing: float, tilt: float) -> None:
    proj = build_tower_projector(TowerCameraConfig.model_validate(config()), preset)
    pos = proj.locate(np.array([[W / 2, H / 2]]))[0]
    assert isinstance(pos, GroundPosition)
    x, y = local(pos)
    distance = 40.0 / math.tan(math.radians(-tilt))
    # The Earth's curvature moves a point at 450 m by ~0.1 m.
    assert math.hypot(x, y) == pytest.approx(distance, abs=0.01 * distance)
    assert math.degrees(math.atan2(x, y)) % 360 == pytest.approx(bearing, abs=1e-6)


def test_sky_has_no_location_and_far_edge_error_is_larger() -> None:
    proj = build_tower_projector(TowerCameraConfig.model_validate(config()), "1")
    sky = proj.locate(np.array([[W / 2, 0.0]]))[0]
    assert isinstance(sky, NoLocation)
    report = expected_error(proj)
    assert report["centre"]["distance_m"] == pytest.approx(40 / math.tan(math.radians(5)), rel=0.01)
    assert report["far_edge"]["pixel"][1] > 0  # the top row is sky: the far edge is lower
    assert report["far_edge"]["distance_m"] > report["centre"]["distance_m"]
    assert report["far_edge"]["error_m"] > 3 * report["centre"]["error_m"]


def ray_projector(tilt: float = -8.0) -> FrameProjector:
    cam = FrameCamera(
        intrinsics=Intrinsics.from_hfov(W, H, 50.0),
        orientation=Orientation(yaw_deg=200.0, pitch_deg=tilt, roll_deg=1.0),
        position_enu=(0, 0, 35.0),
    )
    return flat_ground_projector(cam, LON, LAT, curvature=False, source="camera")


@pytest.mark.parametrize("n_gcps", [4, 9])
def test_homography_from_gcps_reproduces_the_ray_model(n_gcps: int) -> None:
    truth = ray_projector()
    rng = np.random.default_rng(n_gcps)
    corners = np.array([[150, 700], [1750, 700], [1800, 1050], [100, 1050]], float)
    gcp_px = np.concatenate(
        (corners, np.column_stack((rng.uniform(200, 1700, n_gcps - 4), rng.uniform(650, 1050, n_gcps - 4))))
    )
    gcp_ll = np.array([[p.lon, p.lat] for p in truth.locate(gcp_px)])  # type: ignore[union-attr]
    homography = HomographyProjector.fit(gcp_px, gcp_ll, LocalFrame(LON, LAT), W, H)
    assert homography.sigma_assumed is (n_gcps == 4)
    check = np.array([[960, 800], [300, 900], [1600, 1000]], float)
    for got, want in zip(homography.locate(check), truth.locate(check), strict=True):
        assert isinstance(got, GroundPosition) and isinstance(want, GroundPosition)
        assert math.dist(local(got), local(want)) < 0.05
    # The horizon of the fitted plane: the top of this image is sky.
    assert isinstance(homography.locate(np.array([[960.0, 0.0]]))[0], NoLocation)


def test_collinear_gcps_are_refused() -> None:
    px = np.array([[100, 500], [200, 500], [300, 500], [400, 500]], float)
    ll = np.array([[LON + i * 1e-4, LAT] for i in range(4)])
    with pytest.raises(HomographyError):
        HomographyProjector.fit(px, ll, LocalFrame(LON, LAT), W, H)


def test_too_few_gcps_use_the_ray_model_and_enough_use_the_homography() -> None:
    truth = ray_projector()
    px = np.array([[150, 700], [1750, 700], [1800, 1050], [100, 1050], [960, 850]], float)
    gcps = [{"pixel": list(p), "lon": g.lon, "lat": g.lat} for p, g in zip(px, truth.locate(px), strict=True)]
    few = TowerCameraConfig.model_validate(config(presets=[{"id": "p", "gcps": gcps[:3]}]))
    many = TowerCameraConfig.model_validate(config(presets=[{"id": "p", "gcps": gcps}]))
    assert isinstance(build_tower_projector(few, "p"), FrameProjector)
    assert isinstance(build_tower_projector(many, "p"), HomographyProjector)


def test_geotag_with_camera_config_and_size_check(tmp_path: Path) -> None:
    cam = tmp_path / "cam.yaml"
    cam.write_text(yaml.safe_dump(config()), encoding="utf-8")
    ok = georeference_image(write_jpeg(tmp_path / "frame.jpg", (W, H)), camera=cam, preset="1")
    assert ok.source == "camera"
    points = locate_points(ok)
    assert isinstance(points[0]["lon"], float) and points[1]["location"] is None  # top-left corner is sky
    wrong = georeference_image(write_jpeg(tmp_path / "small.jpg", (640, 360)), camera=cam)
    assert wrong.projector is None and any("1920x1080" in r for r in wrong.reasons)


def write_dem(
    path: Path, crs: str, elevation: Any, frame: LocalFrame, radius: float = 600.0, pixel_m: float = 5.0
) -> Path:
    """A DEM whose value at each pixel centre is `elevation(x_local, y_local)`."""
    from pyproj import Transformer

    to_crs = Transformer.from_crs(frame.crs, crs, always_xy=True)
    xs, ys = to_crs.transform([-radius, radius], [-radius, radius])
    px = pixel_m / 111_320.0 if crs == "EPSG:4326" else pixel_m
    width, height = int((xs[1] - xs[0]) / px), int((ys[1] - ys[0]) / px)
    transform = Affine(px, 0, xs[0], 0, -px, ys[1])
    cols, rows = np.meshgrid(np.arange(width) + 0.5, np.arange(height) + 0.5)
    cx, cy = transform @ (cols, rows)
    lx, ly = Transformer.from_crs(crs, frame.crs, always_xy=True).transform(cx, cy)
    data = elevation(np.asarray(lx), np.asarray(ly)).astype(np.float32)
    return write_raster(path, data[None], crs, transform, nodata=-9999.0)


@pytest.mark.parametrize("crs", ["EPSG:32650", "EPSG:4326"])
def test_dem_terrain_matches_an_analytic_slope(tmp_path: Path, crs: str) -> None:
    frame = LocalFrame(LON, LAT)
    dem_path = write_dem(tmp_path / "dem.tif", crs, lambda x, y: 50.0 + 0.1 * y, frame)
    dem = Dem.from_geotiff(dem_path, frame, radius_m=500.0)
    surface = DemGround(dem, max_range_m=500.0, earth_curvature=False)
    cam = FrameCamera(
        intrinsics=Intrinsics.from_hfov(W, H, 60.0),
        orientation=Orientation(yaw_deg=0, pitch_deg=-30),
        position_enu=(0.0, 0.0, 150.0),
    )
    proj = FrameProjector(
        camera=cam, frame=frame, surface=surface, uncertainty=PoseUncertainty(), source="drone"
    )
    pixels = np.array([[960.0, 540.0], [100.0, 1000.0], [1800.0, 300.0]])
    rays = cam.rays(pixels)
    t = (150.0 - 50.0) / (0.1 * rays[:, 1] - rays[:, 2])  # camera z + t dz = 50 + 0.1 * t dy
    expected = rays * t[:, None] + [0, 0, 150.0]
    got = proj.ground_enu(pixels)
    np.testing.assert_allclose(got[:, :2], expected[:, :2], atol=0.3)
    elevations = [p.elevation_m for p in proj.locate(pixels)]  # type: ignore[union-attr]
    np.testing.assert_allclose(elevations, 50.0 + 0.1 * expected[:, 1], atol=0.05)


def test_dem_outside_coverage_is_an_error(tmp_path: Path) -> None:
    from vision.geo.dem import DemError

    dem_path = write_dem(tmp_path / "dem.tif", "EPSG:32650", lambda x, y: 0 * x + 10.0, LocalFrame(LON, LAT))
    with pytest.raises(DemError, match="does not cover"):
        Dem.from_geotiff(dem_path, LocalFrame(LON + 1.0, LAT), radius_m=500.0)


def test_each_projector_says_why_a_pixel_has_no_location() -> None:
    rays = ray_projector()
    corners = np.array([[150, 700], [1750, 700], [1800, 1050], [100, 1050]], float)
    gcp_ll = np.array([[p.lon, p.lat] for p in rays.locate(corners)])  # type: ignore[union-attr]
    homography = HomographyProjector.fit(corners, gcp_ll, LocalFrame(LON, LAT), W, H)
    outside, sky, far, ground = np.array([[-10.0, 800.0], [960.0, 0.0], [960.0, 260.0], [960.0, 900.0]])

    def reasons(proj: FrameProjector | HomographyProjector, pixels: list[np.ndarray]) -> list[str]:
        return [p.reason if isinstance(p, NoLocation) else "located" for p in proj.locate(np.array(pixels))]

    ray_reasons = reasons(rays, [outside, sky, far, ground])
    assert ray_reasons[:2] + ray_reasons[3:] == [
        "pixel (-10, 800) is outside the 1920x1080 image",
        "the pixel's ray does not meet the ground (at or above the horizon)",
        "located",
    ]
    assert ray_reasons[2].startswith("the ground point is ")
    assert ray_reasons[2].endswith("beyond max_range_m=3000")
    assert reasons(homography, [outside, sky, ground]) == [
        "pixel (-10, 800) is outside the 1920x1080 image",
        "the pixel is above the horizon of the fitted ground plane or beyond max_range_m=3000",
        "located",
    ]
