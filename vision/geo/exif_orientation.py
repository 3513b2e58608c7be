"""EXIF orientation: the upright frame detections live in vs the stored frame the camera recorded.

`vision.image_io.load_image` applies the EXIF Orientation tag (as PIL.ImageOps.exif_transpose
does), so detection boxes are pixels of the upright image. A camera model read from the
file (DJI XMP pose and calibrated intrinsics) describes the stored, unrotated sensor image.
`upright_camera` moves the camera model into the upright frame, so every projector method
(points, footprints, anchors, the image-bounds check) takes upright pixels as they are:

- a rotation of the image (tags 3, 6, 8) is a rotation about the optical axis: the roll
  changes by 180 / -90 / +90 degrees, and the intrinsics are those of the rotated sensor
  (width and height, fx and fy swapped for quarter turns; principal point mapped; the
  tangential and thin-prism distortion terms rotated with the image);
- a mirrored image (tags 2, 4, 5, 7) has no physical camera: `OrientationError`.

Pixels are continuous, (0, 0) the top-left corner of the image, (W, H) the bottom-right
(vision.geo.camera's convention), so the mappings are exact, without half-pixel terms.
"""

from __future__ import annotations

import numpy as np

from vision.errors import GeoError
from vision.geo.camera import FrameCamera, Intrinsics, Orientation

MIRRORED = (2, 4, 5, 7)
QUARTER_TURNS = (5, 6, 7, 8)  # width and height swap


class OrientationError(GeoError):
    """The EXIF orientation cannot be applied to a camera model (a mirrored image, or bad input)."""


def _check(orientation: int) -> None:
    if orientation not in range(1, 9):
        raise OrientationError(f"expected an EXIF orientation 1..8, got {orientation!r}")


def upright_size(stored_wh: tuple[int, int], orientation: int) -> tuple[int, int]:
    """(W, H) of the upright image."""
    _check(orientation)
    width, height = stored_wh
    return (height, width) if orientation in QUARTER_TURNS else (width, height)


def stored_to_upright_matrix(stored_wh: tuple[int, int], orientation: int) -> np.ndarray:
    """3x3 affine matrix taking stored pixels (u, v, 1) to upright ones.

    The transposes are load_image's (and ImageOps.exif_transpose's): 2 flip left-right,
    3 rotate 180, 4 flip top-bottom, 5 transpose, 6 rotate 90 clockwise, 7 transverse,
    8 rotate 90 counter-clockwise.
    """
    _check(orientation)
    w, h = (float(v) for v in stored_wh)
    rows = {
        1: ((1, 0, 0), (0, 1, 0)),
        2: ((-1, 0, w), (0, 1, 0)),
        3: ((-1, 0, w), (0, -1, h)),
        4: ((1, 0, 0), (0, -1, h)),
        5: ((0, 1, 0), (1, 0, 0)),
        6: ((0, -1, h), (1, 0, 0)),
        7: ((0, -1, h), (-1, 0, w)),
        8: ((0, 1, 0), (-1, 0, w)),
    }[orientation]
    return np.array([*rows, (0, 0, 1)], np.float64)


def _apply(matrix: np.ndarray, pixels_xy: np.ndarray) -> np.ndarray:
    pts = np.asarray(pixels_xy, np.float64).reshape(-1, 2)
    return pts @ matrix[:2, :2].T + matrix[:2, 2]


def stored_to_upright(pixels_xy: np.ndarray, stored_wh: tuple[int, int], orientation: int) -> np.ndarray:
    """(N, 2) stored-image pixels -> (N, 2) upright pixels."""
    return _apply(stored_to_upright_matrix(stored_wh, orientation), pixels_xy)


def upright_to_stored(pixels_xy: np.ndarray, stored_wh: tuple[int, int], orientation: int) -> np.ndarray:
    """(N, 2) upright pixels (what detections use) -> (N, 2) stored-image pixels."""
    return _apply(np.linalg.inv(stored_to_upright_matrix(stored_wh, orientation)), pixels_xy)


# A rotation of the image is a roll about the optical axis. Tag 6 (stored image turned
# clockwise for display): the upright camera's right axis is the stored one's up (-down) and
# its down axis the stored right, which Orientation.camera_to_world gives for roll - 90.
_ROLL_DEG = {1: 0.0, 3: 180.0, 6: -90.0, 8: 90.0}


def _rotated_distortion(coefficients: tuple[float, ...], orientation: int) -> tuple[float, ...]:
    """OpenCV distortion (k1, k2, p1, p2[, k3[, k4, k5, k6[, s1, s2, s3, s4[, tx, ty]]]]) of the
    sensor rotated with the image. Radial terms do not depend on direction; the tangential
    (p1, p2) and thin-prism (s1..s4) terms rotate with the axes (derived from OpenCV's model
    with x = y', y = -x' for tag 6, x = -y', y = x' for tag 8, x = -x', y = -y' for tag 3)."""
    if not coefficients or orientation == 1:
        return coefficients
    c = list(coefficients)
    if len(c) == 14 and (c[12] or c[13]):
        raise OrientationError("a tilted-sensor distortion model (tauX, tauY) cannot be rotated; "
                               "calibrate the camera on upright images")
    p1, p2 = c[2], c[3]
    c[2], c[3] = {3: (-p1, -p2), 6: (p2, -p1), 8: (-p2, p1)}[orientation]
    if len(c) >= 12:
        s1, s2, s3, s4 = c[8:12]
        c[8:12] = {3: (-s1, -s2, -s3, -s4), 6: (-s3, -s4, s1, s2), 8: (s3, s4, -s1, -s2)}[orientation]
    return tuple(c)


def upright_intrinsics(intrinsics: Intrinsics, orientation: int) -> Intrinsics:
    """The intrinsics of the sensor turned with the image (tags 1, 3, 6, 8)."""
    _check(orientation)
    if orientation in MIRRORED:
        raise OrientationError(f"EXIF orientation {orientation} mirrors the image: no camera pose "
                               f"describes a mirrored photo")
    i = intrinsics
    if orientation == 1:
        return i
    cx, cy = stored_to_upright(np.array([[i.cx, i.cy]]), (i.width, i.height), orientation)[0]
    width, height = upright_size((i.width, i.height), orientation)
    fx, fy = (i.fy, i.fx) if orientation in QUARTER_TURNS else (i.fx, i.fy)
    return Intrinsics(width=width, height=height, fx=fx, fy=fy, cx=float(cx), cy=float(cy),
                      distortion=_rotated_distortion(tuple(i.distortion), orientation))


def upright_camera(camera: FrameCamera, orientation: int) -> FrameCamera:
    """The same camera, described in the frame of the upright image (see the module doc).

    Raises OrientationError for mirrored orientations.
    """
    intrinsics = upright_intrinsics(camera.intrinsics, orientation)
    if orientation == 1:
        return camera
    o = camera.orientation
    roll = (o.roll_deg + _ROLL_DEG[orientation] + 180.0) % 360.0 - 180.0
    return FrameCamera(intrinsics=intrinsics,
                       orientation=Orientation(yaw_deg=o.yaw_deg, pitch_deg=o.pitch_deg, roll_deg=roll),
                       position_enu=camera.position_enu)
