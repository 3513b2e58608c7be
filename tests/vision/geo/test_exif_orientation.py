"""EXIF orientation: upright pixels (what load_image and detections use) vs the stored frame the
drone camera model comes from."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from tests.vision.geo.conftest import dji_xmp
from vision.detections import Detections
from vision.geo.camera import FrameCamera, Intrinsics, Orientation
from vision.geo.exif_orientation import (
    OrientationError,
    stored_to_upright,
    upright_camera,
    upright_size,
    upright_to_stored,
)
from vision.geo.frame_projector import FrameProjector
from vision.geo.georeference import georeference_image, locate_points
from vision.geo.geotagging import geotag_detections
from vision.geo.local_frame import LocalFrame
from vision.geo.types import Geotag, NoLocation
from vision.image_io import load_image

LAT, LON = 31.8206, 117.2272
W, H = 400, 240
ORIENTATION_TAG = 0x0112
MARK = (296, 96, 304, 104)  # an 8x8 white block on the JPEG grid, centred on stored pixel (300, 100)


def _stored_pixels() -> np.ndarray:
    pixels = np.full((H, W, 3), 40, np.uint8)
    x1, y1, x2, y2 = MARK
    pixels[y1:y2, x1:x2] = 255
    return pixels


def _save(path: Path, pixels: np.ndarray, orientation: int, xmp: bytes | None = None) -> Path:
    image = Image.fromarray(pixels[:, :, ::-1].copy())
    exif = image.getexif()
    exif[ORIENTATION_TAG] = orientation
    extra: dict[str, Any] = {"exif": exif}
    if xmp is not None:
        extra["xmp"] = xmp
    if path.suffix == ".png":
        image.save(path, "PNG", **extra)
    else:
        image.save(path, "JPEG", quality=95, **extra)
    return path


def _mark_box(pixels: np.ndarray) -> np.ndarray:
    """The white block's box (x1, y1, x2, y2) in continuous pixels, found in the decoded image."""
    ys, xs = np.nonzero(pixels.min(axis=2) > 128)
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float64)


# -- pixel mappings agree with what load_image does ----------------------------------------------


@pytest.mark.parametrize("orientation", range(1, 9))
def test_pixel_mapping_matches_load_image(tmp_path: Path, orientation: int) -> None:
    loaded = load_image(_save(tmp_path / "o.png", _stored_pixels(), orientation))
    assert loaded.resolution_wh == upright_size((W, H), orientation)
    found = _mark_box(loaded.pixels)
    corners = stored_to_upright(np.array([MARK[:2], MARK[2:]], np.float64), (W, H), orientation)
    expected = np.concatenate([corners.min(axis=0), corners.max(axis=0)])
    np.testing.assert_allclose(found, expected)
    back = upright_to_stored(corners, (W, H), orientation)
    np.testing.assert_allclose(back, [MARK[:2], MARK[2:]], atol=1e-9)


@pytest.mark.parametrize("orientation", [0, 9, -1])
def test_orientations_outside_the_exif_range_are_refused(orientation: int) -> None:
    with pytest.raises(OrientationError, match="1..8"):
        upright_size((W, H), orientation)


# -- the camera turned into the upright frame ----------------------------------------------------


def _camera(yaw: float, pitch: float, roll: float, distortion: tuple[float, ...] = ()) -> FrameCamera:
    intrinsics = Intrinsics(width=W, height=H, fx=310.0, fy=300.0, cx=207.5, cy=113.0, distortion=distortion)
    orientation = Orientation(yaw_deg=yaw, pitch_deg=pitch, roll_deg=roll)
    return FrameCamera(intrinsics=intrinsics, orientation=orientation, position_enu=(0.0, 0.0, 80.0))


CAMERAS = [
    _camera(0.0, -90.0, 0.0),
    _camera(37.0, -55.0, 4.0),
    _camera(300.0, -30.0, -175.0),                                        # roll wraps around
    _camera(120.0, -60.0, 2.0, (-0.12, 0.03, 0.002, -0.004, 0.01)),       # radial + tangential
    _camera(200.0, -70.0, 0.0, (-0.1, 0.02, 0.001, 0.003, 0.0, 0.0, 0.0, 0.0, 0.002, -0.001, 0.003, 0.001)),
]


@pytest.mark.parametrize("orientation", [1, 3, 6, 8])
@pytest.mark.parametrize("camera", CAMERAS)
def test_the_upright_camera_sees_the_ground_where_the_stored_one_does(camera: FrameCamera,
                                                                      orientation: int) -> None:
    upright = upright_camera(camera, orientation)
    assert (upright.intrinsics.width, upright.intrinsics.height) == upright_size((W, H), orientation)
    stored_px = np.array([[0.0, 0.0], [W, H], [207.5, 113.0], [30.0, 200.0], [390.0, 12.0]])
    upright_px = stored_to_upright(stored_px, (W, H), orientation)
    np.testing.assert_allclose(upright.rays(upright_px), camera.rays(stored_px), atol=1e-9)
    # and back: ground points project to the same pixels in both frames
    ground = camera.position_enu + 60.0 * camera.rays(stored_px)
    np.testing.assert_allclose(upright.project(ground), stored_to_upright(camera.project(ground), (W, H),
                                                                           orientation), atol=1e-6)


@pytest.mark.parametrize("orientation", [2, 4, 5, 7])
def test_a_mirrored_photo_has_no_camera(orientation: int) -> None:
    with pytest.raises(OrientationError, match="mirrors"):
        upright_camera(CAMERAS[1], orientation)


def test_a_tilted_sensor_model_is_not_rotated() -> None:
    tilted = _camera(0.0, -90.0, 0.0, (0.0,) * 12 + (0.01, 0.0))
    with pytest.raises(OrientationError, match="tauX"):
        upright_camera(tilted, 6)
    assert upright_camera(tilted, 1) == tilted


# -- a drone photo stored rotated (EXIF orientation 6) --------------------------------------------


def _dji(**overrides: str) -> dict[str, str]:
    tags = {"GpsLatitude": f"{LAT}", "GpsLongitude": f"{LON}", "RelativeAltitude": "+100.00",
            "GimbalRollDegree": "+0.00", "GimbalYawDegree": "+30.00", "GimbalPitchDegree": "-60.00",
            "CalibratedFocalLength": f"{(W / 2) / math.tan(math.radians(40)):.6f}",
            "CalibratedOpticalCenterX": f"{W / 2 + 7}", "CalibratedOpticalCenterY": f"{H / 2 - 5}"}
    tags.update(overrides)
    return tags


@pytest.fixture
def drone_photos(tmp_path: Path) -> dict[int, Path]:
    """The same stored pixels and XMP pose, saved upright (1) and rotated for display (6, 3, 8)."""
    xmp = dji_xmp(**_dji())
    return {o: _save(tmp_path / f"DJI_{o}.JPG", _stored_pixels(), o, xmp) for o in (1, 3, 6, 8)}


def _box_geotag(path: Path, projector: Any) -> tuple[Geotag | NoLocation, np.ndarray]:
    """Detect the white block as load_image gives it (upright) and geotag it as a garbage pile."""
    box = _mark_box(load_image(path).pixels)
    dets = Detections(xyxy=box[None].astype(np.float32), confidence=np.array([0.9], np.float32),
                      class_id=np.array([0]), data={"class_key": np.array(["garbage_pile"])})
    (tag,) = geotag_detections(dets, projector)
    return tag, box


def _metres(a: Geotag, b: Geotag) -> float:
    x, y = LocalFrame(a.point.lon, a.point.lat).to_local(b.point.lon, b.point.lat)
    return math.hypot(float(x), float(y))


@pytest.mark.parametrize("orientation", [6, 3, 8])
def test_a_rotated_drone_photo_geotags_its_detections_where_the_upright_one_does(
        drone_photos: dict[int, Path], orientation: int) -> None:
    reference = georeference_image(drone_photos[1])
    rotated = georeference_image(drone_photos[orientation])
    assert isinstance(rotated.projector, FrameProjector) and rotated.source == "drone"
    assert rotated.orientation == orientation
    assert (rotated.width, rotated.height) == load_image(drone_photos[orientation]).resolution_wh
    assert not any("orientation" in reason for reason in rotated.reasons)

    expected, stored_box = _box_geotag(drone_photos[1], reference.projector)
    found, upright_box = _box_geotag(drone_photos[orientation], rotated.projector)
    assert isinstance(expected, Geotag) and isinstance(found, Geotag)
    assert upright_box.tolist() != stored_box.tolist()  # the detector saw the block elsewhere
    assert _metres(expected, found) < 0.01
    # The pixel-jitter term shifts the pixel by +2 px along the image axes, which are other
    # directions of the sensor in a turned image: equal to first order, not to the last digit.
    assert found.point.uncertainty_m == pytest.approx(expected.point.uncertainty_m, rel=0.01)
    assert found.footprint is not None and expected.footprint is not None
    assert found.footprint.area_m2 == pytest.approx(expected.footprint.area_m2, rel=1e-6)
    # What the old code did, pixels of the upright image read in the stored frame: far off, or
    # outside the stored image altogether.
    wrong, _ = _box_geotag(drone_photos[orientation], reference.projector)
    assert isinstance(wrong, NoLocation) or _metres(expected, wrong) > 20.0


def test_the_corners_of_a_rotated_photo_are_its_upright_corners(drone_photos: dict[int, Path]) -> None:
    reference = georeference_image(drone_photos[1])
    rotated = georeference_image(drone_photos[6])
    assert (rotated.width, rotated.height) == (H, W)
    # Tag 6: upright (x, y) is stored (y, H - x); the upright top-left corner is the stored bottom-left.
    stored_equivalents = np.array([[W / 2, H / 2], [0, H], [0, 0], [W, 0], [W, H]], np.float64)
    for got, want in zip(locate_points(rotated), locate_points(reference, stored_equivalents), strict=True):
        assert (got["lon"], got["lat"]) == pytest.approx((want["lon"], want["lat"]), abs=1e-9)


@pytest.mark.parametrize("orientation", [2, 5])
def test_a_mirrored_drone_photo_gets_no_drone_model_and_says_why(tmp_path: Path, orientation: int) -> None:
    path = _save(tmp_path / "m.jpg", _stored_pixels(), orientation, dji_xmp(**_dji()))
    ref = georeference_image(path)
    assert ref.projector is None
    assert any(f"EXIF orientation {orientation} mirrors" in reason for reason in ref.reasons)
