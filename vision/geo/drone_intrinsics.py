"""A drone camera's pinhole intrinsics from the best source its file has, and which one it was.

Order (the first that gives a focal length in pixels wins):
1. DJI `DewarpData`: the per-unit factory calibration, "date;fx,fy,cx,cy,k1,k2,p1,p2,k3", fx/fy
   in pixels of the full sensor image and cx/cy as offsets of the principal point from the
   image centre (CalibratedOpticalCenterX/Y, else the middle of the image). Applied: fx, fy and
   the principal point. NOT applied: the distortion coefficients. DJI does not document their
   convention, and applying coefficients of the wrong model or sign adds the distortion
   instead of removing it; they are parsed and reported so that a later change can apply them
   once they are checked against a calibration target.
2. DJI `CalibratedFocalLength` / `CalibratedOpticalCenterX/Y` (pixels of the full image).
3. Pix4D `Camera:PerspectiveFocalLength` (millimetres, MicaSense and Parrot Sequoia) and
   `Camera:PrincipalPoint` (millimetres), with the sensor width from the camera table.
4. EXIF FocalLength (millimetres) with the sensor width from the camera table
   (vision/data/cameras.yaml), keyed by EXIF Make/Model.
5. EXIF FocalLength with the sensor width from FocalPlaneXResolution; refused when that gives
   an impossible sensor (a resized photo keeps the resolution tag of the original pixels).
6. EXIF FocalLengthIn35mmFilm.

Pixel calibrations (1, 2) describe the full sensor image. A file resized as a whole (the
multispectral TIFFs photogrammetry tools write, thumbnails) is detected by its width against
twice CalibratedOpticalCenterX with the same aspect ratio, and the calibration is scaled to it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from vision.geo.camera import Intrinsics
from vision.geo.camera_table import CameraTable
from vision.geo.xmp import DJI_NAMESPACE, PIX4D_CAMERA_NAMESPACE
from vision.sources import EXIF_IFD_TAG, ExifTags

FOCAL_LENGTH, FOCAL_35MM = 0x920A, 0xA405
FOCAL_PLANE_X_RES, FOCAL_PLANE_UNIT, PIXEL_X_DIMENSION = 0xA20E, 0xA210, 0xA002
# FocalPlaneResolutionUnit -> millimetres per unit (EXIF 2.32: 2 inch, 3 cm, 4 mm, 5 um).
_UNIT_MM = {2: 25.4, 3: 10.0, 4: 1.0, 5: 0.001}
# Sensors of cameras that fly: from a 1/4-inch thermal core to medium format.
_SENSOR_WIDTH_MM = (1.0, 60.0)
# A calibration for another size is taken as a resize when the sizes differ by more than this.
_RESIZE_TOLERANCE = 0.05


class DewarpData(BaseModel):
    """DJI's DewarpData, parsed (see the module docstring for what is applied)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    calibrated_on: str = Field(description="The date before the ';', as DJI writes it.")
    fx: float = Field(gt=0)
    fy: float = Field(gt=0)
    cx_offset: float
    cy_offset: float
    distortion: tuple[float, ...] = Field(description="k1, k2, p1, p2, k3 as written; not applied.")


def parse_dewarp(text: str) -> DewarpData | str:
    """DewarpData from its text, or the reason it cannot be read."""
    date, _, numbers = text.strip().rpartition(";")
    try:
        values = [float(v) for v in numbers.split(",")]
    except ValueError:
        return f"XMP DewarpData is not a list of numbers: {text[:80]!r}"
    if len(values) != 9 or not all(math.isfinite(v) for v in values) or min(values[:2]) <= 0:
        return f"XMP DewarpData: expected 9 finite numbers with positive fx, fy, got {text[:80]!r}"
    fx, fy, cx, cy, *distortion = values
    return DewarpData(calibrated_on=date.strip(), fx=fx, fy=fy, cx_offset=cx, cy_offset=cy,
                      distortion=tuple(distortion))


def xmp_float(tags: Mapping[str, str], *names: str) -> float | None:
    """The first of `names` present in the tags, as a finite float; None when absent or not a number."""
    for name in names:
        raw = tags.get(name)
        if raw is None:
            continue
        try:
            value = float(raw)
        except ValueError:
            return None
        return value if math.isfinite(value) else None
    return None


def _exif_number(ifd: Mapping[int, Any], tag: int) -> float | None:
    try:
        value = float(ifd[tag])
    except (KeyError, TypeError, ValueError, ZeroDivisionError):
        return None
    return value if math.isfinite(value) and value > 0 else None


def _pixel_scale(dji: Mapping[str, str], width: int, height: int,
                 notes: list[str]) -> tuple[float, float, float]:
    """(scale, centre x, centre y) of a pixel calibration in this file's pixels (module docstring)."""
    cx = xmp_float(dji, "CalibratedOpticalCenterX")
    cy = xmp_float(dji, "CalibratedOpticalCenterY")
    if cx is None or cy is None or cx <= 0 or cy <= 0:
        return 1.0, width / 2.0, height / 2.0
    scale_x, scale_y = width / (2 * cx), height / (2 * cy)
    if abs(scale_x - 1) <= _RESIZE_TOLERANCE and abs(scale_y - 1) <= _RESIZE_TOLERANCE:
        return 1.0, cx, cy
    if abs(scale_x - scale_y) <= 0.02 * scale_x:
        notes.append(f"the calibration is for {2 * cx:.0f}x{2 * cy:.0f} pixels, the image {width}x{height}: "
                     f"scaled by {scale_x:.4f}")
        return scale_x, cx * scale_x, cy * scale_x
    notes.append(f"CalibratedOpticalCenter {cx:g},{cy:g} does not fit a {width}x{height} image (cropped?): "
                 "principal point at the image centre")
    return 1.0, width / 2.0, height / 2.0


def _from_dji(dji: Mapping[str, str], width: int, height: int,
              notes: list[str]) -> tuple[Intrinsics, str] | None:
    raw = dji.get("DewarpData")
    dewarp = parse_dewarp(raw) if raw else None
    if isinstance(dewarp, str):
        notes.append(dewarp)
    f_px = xmp_float(dji, "CalibratedFocalLength")
    if not isinstance(dewarp, DewarpData) and (f_px is None or f_px <= 0):
        return None
    scale, cx, cy = _pixel_scale(dji, width, height, notes)
    if isinstance(dewarp, DewarpData):
        intr = Intrinsics(width=width, height=height, fx=dewarp.fx * scale, fy=dewarp.fy * scale,
                          cx=cx + dewarp.cx_offset * scale, cy=cy + dewarp.cy_offset * scale)
        return intr, (f"XMP drone-dji DewarpData (calibrated {dewarp.calibrated_on}): fx, fy and principal "
                      "point offset applied; distortion coefficients not applied")
    assert f_px is not None
    return (Intrinsics(width=width, height=height, fx=f_px * scale, fy=f_px * scale, cx=cx, cy=cy),
            "XMP drone-dji CalibratedFocalLength (pixels)")


def _sensor_width(exif: ExifTags, make: str | None, model: str | None, table: CameraTable,
                  width: int, notes: list[str]) -> tuple[float, str] | None:
    """The sensor width in mm and where it came from: the camera table, else a plausible
    FocalPlaneXResolution."""
    spec = table.lookup(make, model)
    if spec is not None:
        return spec.sensor_width_mm, f"camera table: {spec.make} {spec.model}"
    ifd = exif.get_ifd(EXIF_IFD_TAG)
    x_res = _exif_number(ifd, FOCAL_PLANE_X_RES)
    unit = ifd.get(FOCAL_PLANE_UNIT, 2)
    if x_res is None or unit not in _UNIT_MM:
        return None
    pixels_wide = _exif_number(ifd, PIXEL_X_DIMENSION) or width
    sensor_mm = pixels_wide / x_res * _UNIT_MM[unit]
    if not _SENSOR_WIDTH_MM[0] <= sensor_mm <= _SENSOR_WIDTH_MM[1]:
        notes.append(f"EXIF FocalPlaneXResolution gives a {sensor_mm:.3g} mm wide sensor (a resized photo?): "
                     f"not used; add {make} {model} to vision/data/cameras.yaml")
        return None
    return sensor_mm, "FocalPlaneXResolution"


def _from_pix4d(camera: Mapping[str, str], sensor: tuple[float, str] | None, width: int,
                height: int) -> tuple[Intrinsics, str] | None:
    focal = xmp_float(camera, "PerspectiveFocalLength")
    units = camera.get("PerspectiveFocalLengthUnits", "mm").strip().lower()
    if focal is None or focal <= 0 or units not in ("mm", "millimeter", "millimeters"):
        return None
    if sensor is None:
        return None
    sensor_mm, sensor_from = sensor
    px_per_mm = width / sensor_mm
    cx, cy = width / 2.0, height / 2.0
    point = camera.get("PrincipalPoint", "").split(",")
    if len(point) == 2:
        try:
            px, py = (float(v) * px_per_mm for v in point)
        except ValueError:
            px = py = -1.0
        if 0 < px < width and 0 < py < height:
            cx, cy = px, py
    intr = Intrinsics(width=width, height=height, fx=focal * px_per_mm, fy=focal * px_per_mm, cx=cx, cy=cy)
    return intr, (f"XMP Camera:PerspectiveFocalLength {focal:g} mm, sensor {sensor_mm:g} mm wide "
                  f"({sensor_from})")


def drone_intrinsics(
    xmp: Mapping[str, Mapping[str, str]], exif: ExifTags, make: str | None, model: str | None,
    width: int, height: int, table: CameraTable,
) -> tuple[Intrinsics | None, str, list[str]]:
    """(intrinsics or None, where they came from or why there are none, notes) for a photo of
    `width` x `height` stored pixels; `xmp` is the drone namespaces' properties by URI."""
    notes: list[str] = []
    dji = _from_dji(xmp.get(DJI_NAMESPACE, {}), width, height, notes)
    if dji is not None:
        return dji[0], dji[1], notes
    sensor = _sensor_width(exif, make, model, table, width, notes)
    pix4d = _from_pix4d(xmp.get(PIX4D_CAMERA_NAMESPACE, {}), sensor, width, height)
    if pix4d is not None:
        return pix4d[0], pix4d[1], notes
    ifd = exif.get_ifd(EXIF_IFD_TAG)
    focal_mm = _exif_number(ifd, FOCAL_LENGTH)
    if focal_mm is not None and sensor is not None:
        return (Intrinsics.from_focal_mm(width, height, focal_mm, sensor[0]),
                f"EXIF FocalLength {focal_mm:g} mm and sensor width {sensor[0]:.2f} mm ({sensor[1]})", notes)
    focal_35 = _exif_number(ifd, FOCAL_35MM)
    if focal_35 is not None:
        intr = Intrinsics.from_35mm_equivalent(width, height, focal_35)
        return intr, f"EXIF FocalLengthIn35mmFilm {focal_35:g} mm", notes
    return None, (
        "no focal length: neither XMP CalibratedFocalLength/DewarpData nor Camera:PerspectiveFocalLength, "
        "nor EXIF FocalLength with a known sensor width (vision/data/cameras.yaml or FocalPlaneXResolution), "
        "nor FocalLengthIn35mmFilm"
    ), notes
