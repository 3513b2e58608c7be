"""Known-answer geometry of the pinhole model over flat ground."""

from __future__ import annotations

import math

import numpy as np
import pytest
from shapely.geometry import Polygon

from tests.vision.geo.conftest import flat_ground_projector
from vision.geo.camera import FrameCamera, Intrinsics, Orientation
from vision.geo.frame_projector import FrameProjector, PoseUncertainty
from vision.geo.local_frame import LocalFrame, area_m2
from vision.geo.types import GroundPosition, NoLocation

LON0, LAT0 = 117.2272, 31.8206  # Hefei


def projector(
    yaw: float = 0.0,
    pitch: float = -90.0,
    roll: float = 0.0,
    height: float = 100.0,
    hfov: float = 84.0,
    size: tuple[int, int] = (4000, 3000),
    curvature: bool = True,
    distortion: tuple[float, ...] = (),
) -> FrameProjector:
    intr = Intrinsics.from_hfov(*size, hfov)
    if distortion:
        intr = intr.model_copy(update={"distortion": distortion})
    cam = FrameCamera(
        intrinsics=intr,
        orientation=Orientation(yaw_deg=yaw, pitch_deg=pitch, roll_deg=roll),
        position_enu=(0.0, 0.0, height),
    )
    return flat_ground_projector(cam, LON0, LAT0, curvature=curvature, source="drone")


def local_xy(pos: GroundPosition) -> tuple[float, float]:
    x, y = LocalFrame(LON0, LAT0).to_local(pos.lon, pos.lat)
    return float(x), float(y)


@pytest.mark.parametrize("yaw", [0.0, 90.0, 213.0])
def test_nadir_corners_land_at_the_analytic_offsets(yaw: float) -> None:
    hfov, width, height, h = 84.0, 4000, 3000, 100.0
    half_w = h * math.tan(math.radians(hfov / 2))  # ground half-width at the image's left/right edge
    half_h = half_w * height / width  # square pixels
    proj = projector(yaw=yaw, height=h, hfov=hfov, size=(width, height))
    corners_px = np.array([[0, 0], [width, 0], [width, height], [0, height], [width / 2, height / 2]])
    # In the camera's own axes (right, forward-in-image = up): top-left is (-w, +h) etc.
    image_axes = np.array(
        [[-half_w, half_h], [half_w, half_h], [half_w, -half_h], [-half_w, -half_h], [0, 0]]
    )
    t = math.radians(yaw)
    right, up = np.array([math.cos(t), -math.sin(t)]), np.array([math.sin(t), math.cos(t)])
    expected = image_axes[:, :1] * right + image_axes[:, 1:] * up
    for pixel, want in zip(corners_px, expected, strict=True):
        pos = proj.locate(pixel[None])[0]
        assert isinstance(pos, GroundPosition)
        x, y = local_xy(pos)
        assert math.hypot(x - want[0], y - want[1]) < 0.1, (pixel, (x, y), want)


def test_ten_metre_square_measures_100_m2() -> None:
    proj = projector(yaw=37.0, height=100.0)
    # Project a 10 m ground square (axis-aligned in the image for yaw 0 would be trivial; use yaw 37).
    t = math.radians(37.0)
    right, up = np.array([math.cos(t), -math.sin(t)]), np.array([math.sin(t), math.cos(t)])
    corners = [c[0] * right + c[1] * up for c in ((-5, -5), (5, -5), (5, 5), (-5, 5))]
    pixels = proj.camera.project(np.array([[x, y, 0.0] for x, y in corners]))
    x1, y1 = pixels.min(axis=0)
    x2, y2 = pixels.max(axis=0)
    footprint = proj.footprint(np.array([x1, y1, x2, y2]), "center")
    assert not isinstance(footprint, NoLocation)
    assert footprint.area_m2 == pytest.approx(100.0, rel=0.01)
    # The WGS-84 polygon measures the same when measured independently of the local frame.
    assert area_m2(footprint.polygon) == pytest.approx(100.0, rel=0.01)


@pytest.mark.parametrize(("yaw", "pitch", "roll"), [(0, -90, 0), (45, -60, 2), (300, -35, -3), (120, -10, 0)])
def test_project_then_locate_round_trips(yaw: float, pitch: float, roll: float) -> None:
    proj = projector(yaw=yaw, pitch=pitch, roll=roll, height=80.0)
    rng = np.random.default_rng(0)
    pixels = np.column_stack((rng.uniform(0, 4000, 50), rng.uniform(1500, 3000, 50)))
    ground = proj.ground_enu(pixels)
    ok = np.isfinite(ground).all(axis=1)
    assert ok.sum() > 20
    back = proj.camera.project(ground[ok])
    np.testing.assert_allclose(back, pixels[ok], atol=1e-6)


def test_distortion_is_undone_in_both_directions() -> None:
    proj = projector(pitch=-70.0, distortion=(-0.12, 0.03, 0.0, 0.0, 0.0))
    pixels = np.array([[100.0, 2900.0], [3900.0, 2500.0], [2000.0, 1500.0]])
    ground = proj.ground_enu(pixels)
    np.testing.assert_allclose(proj.camera.project(ground), pixels, atol=1e-3)
    undistorted = projector(pitch=-70.0).ground_enu(pixels)
    assert np.linalg.norm(ground[0] - undistorted[0]) > 1.0  # distortion matters at the corner


def test_orientation_conventions() -> None:
    # Oblique camera heading east (yaw 90) at 45 deg down from 100 m: the centre lands 100 m east.
    proj = projector(yaw=90.0, pitch=-45.0, height=100.0, curvature=False)
    x, y = local_xy(proj.locate(np.array([[2000.0, 1500.0]]))[0])  # type: ignore[arg-type]
    assert (x, y) == pytest.approx((100.0, 0.0), abs=1e-6)
    # Positive roll turns the camera right side down: the image centre row's right end lands nearer.
    rolled = projector(yaw=0.0, pitch=-30.0, roll=10.0, curvature=False)
    left = rolled.ground_enu(np.array([[0.0, 1500.0]]))[0]
    right = rolled.ground_enu(np.array([[4000.0, 1500.0]]))[0]
    assert right[1] < left[1]


def test_rays_above_the_horizon_have_no_location() -> None:
    proj = projector(pitch=-5.0, height=30.0)
    results = proj.locate(np.array([[2000.0, 0.0], [2000.0, 3000.0], [5000.0, 100.0]]))
    assert isinstance(results[0], NoLocation) and "horizon" in results[0].reason
    assert isinstance(results[1], GroundPosition)
    assert isinstance(results[2], NoLocation) and "outside" in results[2].reason


def test_uncertainty_grows_with_distance_and_with_the_error_budget() -> None:
    proj = projector(pitch=-10.0, height=50.0)
    near, far = proj.locate(np.array([[2000.0, 3000.0], [2000.0, 1600.0]]))
    assert isinstance(near, GroundPosition) and isinstance(far, GroundPosition)
    assert far.uncertainty_m > 2 * near.uncertainty_m
    rtk = FrameProjector(
        camera=proj.camera,
        frame=proj.frame,
        surface=proj.surface,
        source="drone",
        uncertainty=PoseUncertainty(
            horizontal_m=0.02, vertical_m=0.05, pitch_roll_deg=0.1, yaw_deg=0.1, pixel_px=1.0
        ),
    )
    near_rtk = rtk.locate(np.array([[2000.0, 3000.0]]))[0]
    assert isinstance(near_rtk, GroundPosition) and near_rtk.uncertainty_m < near.uncertainty_m / 2


def test_curvature_pulls_far_tower_points_closer() -> None:
    flat = projector(pitch=-1.0, height=40.0, curvature=False, hfov=30.0)
    curved = projector(pitch=-1.0, height=40.0, curvature=True, hfov=30.0)
    pixel = np.array([[2000.0, 1500.0]])
    d_flat = float(np.hypot(*flat.ground_enu(pixel)[0, :2]))
    d_curved = float(np.hypot(*curved.ground_enu(pixel)[0, :2]))
    assert d_flat == pytest.approx(40.0 / math.tan(math.radians(1.0)), rel=1e-9)
    # Level ground dropping away with the Earth is met further out, by tens of metres at 2.3 km.
    assert d_curved - d_flat > 20.0


@pytest.mark.parametrize(("hfov", "focal_mm", "sensor_mm"), [(84.0, None, None), (None, 8.8, 13.2)])
def test_intrinsics_constructors(hfov: float | None, focal_mm: float | None, sensor_mm: float | None) -> None:
    if hfov is not None:
        intr = Intrinsics.from_hfov(5472, 3648, hfov)
        assert intr.hfov_deg == pytest.approx(hfov)
    else:
        intr = Intrinsics.from_focal_mm(5472, 3648, focal_mm, sensor_mm)  # type: ignore[arg-type]
        assert intr.fx == pytest.approx(8.8 * 5472 / 13.2)
    eq35 = Intrinsics.from_35mm_equivalent(5472, 3648, 24.0)
    # 24 mm equivalent on a 3:2 sensor: the horizontal FOV is the full-frame one, 2*atan(18/24).
    assert eq35.hfov_deg == pytest.approx(math.degrees(2 * math.atan(18 / 24)), rel=1e-6)


@pytest.mark.parametrize("bad", [{"hfov": 0.0}, {"hfov": 180.0}])
def test_intrinsics_refuse_bad_fov(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="field of view"):
        Intrinsics.from_hfov(100, 100, bad["hfov"])


def test_footprint_of_a_standing_object_seen_obliquely_uses_its_bottom_edge() -> None:
    proj = projector(yaw=0.0, pitch=-20.0, height=30.0, curvature=False)
    box = np.array([1900.0, 1500.0, 2100.0, 2200.0])
    fp = proj.footprint(box, "bottom_center")
    assert not isinstance(fp, NoLocation) and fp.method == "bottom_edge_square"
    bottom = proj.ground_enu(np.array([[1900.0, 2200.0], [2100.0, 2200.0]]))
    width = float(np.linalg.norm(bottom[1, :2] - bottom[0, :2]))
    assert fp.area_m2 == pytest.approx(width**2, rel=1e-6)
    whole = proj.footprint(box, "center")
    assert not isinstance(whole, NoLocation) and whole.area_m2 > fp.area_m2
    # Seen from straight above, the same class takes the projected box.
    nadir = projector(pitch=-90.0, height=30.0).footprint(box, "bottom_center")
    assert not isinstance(nadir, NoLocation) and nadir.method == "projected_box"
    assert isinstance(Polygon(nadir.polygon.exterior.coords), Polygon)
