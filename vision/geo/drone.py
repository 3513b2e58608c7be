"""Drone photos (DJI and similar): pose from XMP `drone-dji:` tags, intrinsics from XMP or EXIF.

Assumptions, stated because DJI does not document them all:
- GimbalYawDegree is the camera heading relative to true north (true for current DJI
  models; when it is missing, FlightYawDegree is used and a reason says so).
- GimbalPitchDegree is -90 for nadir, 0 for horizontal; GimbalRollDegree positive turns the
  camera right side down.
- RelativeAltitude is height above the take-off point; on flat ground that is the height
  above the ground. AbsoluteAltitude is used only with a DEM and no take-off elevation, in
  whatever vertical datum the DEM has (often not true for DJI: pass the take-off elevation).
- CalibratedFocalLength and CalibratedOpticalCenterX/Y are in pixels of the full image.
- Lens distortion (DewarpData) is not applied: a few pixels at the corners of wide lenses.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from vision.errors import GeoError
from vision.geo.camera import FrameCamera, Intrinsics, Orientation
from vision.geo.dem import Dem, DemGround
from vision.geo.frame_projector import FrameProjector, PoseUncertainty
from vision.geo.local_frame import LocalFrame
from vision.geo.surface import FlatGround
from vision.geo.types import Latitude, Longitude, in_wgs84_range
from vision.sources import EXIF_IFD_TAG

FOCAL_LENGTH, FOCAL_35MM = 0x920A, 0xA405
FOCAL_PLANE_X_RES, FOCAL_PLANE_UNIT, PIXEL_X_DIMENSION = 0xA20E, 0xA210, 0xA002
# FocalPlaneResolutionUnit -> millimetres per unit (EXIF 2.32: 2 inch, 3 cm, 4 mm, 5 um).
_UNIT_MM = {2: 25.4, 3: 10.0, 4: 1.0, 5: 0.001}
RTK_FIXED = 50


class DroneGeometryError(GeoError):
    """The drone metadata is present but cannot give a camera model."""


class DronePose(BaseModel):
    """Where the camera was and where it pointed, as read from the XMP."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    lon: Longitude
    lat: Latitude
    relative_altitude_m: float | None = None
    absolute_altitude_m: float | None = None
    yaw_deg: float
    pitch_deg: float = Field(ge=-90, le=90)
    roll_deg: float = 0.0
    yaw_from: str = "GimbalYawDegree"
    flight_yaw_deg: float | None = None
    rtk_flag: int | None = None
    rtk_std_m: tuple[float, float, float] | None = Field(default=None, description="RtkStdLon/Lat/Hgt.")


def _float(tags: Mapping[str, str], *names: str) -> float | None:
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


def read_dji_pose(tags: Mapping[str, str]) -> tuple[DronePose | None, list[str]]:
    """The pose from `drone-dji:` tags, or None and the reasons it cannot be had."""
    reasons: list[str] = []
    lat = _float(tags, "GpsLatitude", "Latitude")
    lon = _float(tags, "GpsLongitude", "GpsLongtitude", "Longitude")  # some firmware spells it "Longtitude"
    if lat is None or lon is None:
        return None, ["XMP drone-dji has no usable GpsLatitude/GpsLongitude"]
    if not in_wgs84_range(lon, lat):
        return None, [f"XMP drone-dji position out of range: latitude {lat}, longitude {lon}"]
    if lat == 0 and lon == 0:
        return None, ["XMP drone-dji position is exactly 0,0 (no GNSS fix)"]
    pitch = _float(tags, "GimbalPitchDegree")
    if pitch is None or not -90.5 <= pitch <= 90:
        return None, [
            f"XMP drone-dji has no usable GimbalPitchDegree (got {tags.get('GimbalPitchDegree')!r})"
        ]
    yaw = _float(tags, "GimbalYawDegree")
    yaw_from = "GimbalYawDegree"
    flight_yaw = _float(tags, "FlightYawDegree")
    if yaw is None:
        if flight_yaw is None:
            return None, ["XMP drone-dji has neither GimbalYawDegree nor FlightYawDegree"]
        yaw, yaw_from = flight_yaw, "FlightYawDegree"
        reasons.append("no GimbalYawDegree: heading taken from FlightYawDegree")
    rtk_flag_value = _float(tags, "RtkFlag")
    stds = [_float(tags, n) for n in ("RtkStdLon", "RtkStdLat", "RtkStdHgt")]
    pose = DronePose(
        lon=lon,
        lat=lat,
        relative_altitude_m=_float(tags, "RelativeAltitude"),
        absolute_altitude_m=_float(tags, "AbsoluteAltitude"),
        yaw_deg=yaw % 360.0,
        pitch_deg=max(-90.0, pitch),
        roll_deg=_float(tags, "GimbalRollDegree") or 0.0,
        yaw_from=yaw_from,
        flight_yaw_deg=flight_yaw,
        rtk_flag=None if rtk_flag_value is None else int(rtk_flag_value),
        rtk_std_m=tuple(stds) if all(s is not None and s >= 0 for s in stds) else None,
    )
    return pose, reasons


def _exif_number(ifd: Mapping[int, Any], tag: int) -> float | None:
    try:
        value = float(ifd[tag])
    except (KeyError, TypeError, ValueError, ZeroDivisionError):
        return None
    return value if math.isfinite(value) and value > 0 else None


def drone_intrinsics(
    tags: Mapping[str, str], exif: Any, width: int, height: int
) -> tuple[Intrinsics | None, str]:
    """Intrinsics from the best source available; (None, reason) when there is none."""
    f_px = _float(tags, "CalibratedFocalLength")
    if f_px is not None and f_px > 0:
        cx = _float(tags, "CalibratedOpticalCenterX")
        cy = _float(tags, "CalibratedOpticalCenterY")
        cx = cx if cx is not None and 0 < cx < width else width / 2.0
        cy = cy if cy is not None and 0 < cy < height else height / 2.0
        return Intrinsics(
            width=width, height=height, fx=f_px, fy=f_px, cx=cx, cy=cy
        ), "XMP CalibratedFocalLength (pixels)"
    ifd: Mapping[int, Any] = exif.get_ifd(EXIF_IFD_TAG) if hasattr(exif, "get_ifd") else {}
    focal_mm = _exif_number(ifd, FOCAL_LENGTH)
    x_res = _exif_number(ifd, FOCAL_PLANE_X_RES)
    unit = ifd.get(FOCAL_PLANE_UNIT, 2)
    if focal_mm and x_res and unit in _UNIT_MM:
        pixels_wide = _exif_number(ifd, PIXEL_X_DIMENSION) or width
        sensor_width_mm = pixels_wide / x_res * _UNIT_MM[unit]
        return (
            Intrinsics.from_focal_mm(width, height, focal_mm, sensor_width_mm),
            f"EXIF FocalLength {focal_mm:g} mm and sensor width {sensor_width_mm:.2f} mm "
            "(FocalPlaneXResolution)",
        )
    focal_35 = _exif_number(ifd, FOCAL_35MM)
    if focal_35:
        return Intrinsics.from_35mm_equivalent(
            width, height, focal_35
        ), f"EXIF FocalLengthIn35mmFilm {focal_35:g} mm"
    return None, (
        "no focal length: neither XMP CalibratedFocalLength nor EXIF FocalLength with "
        "FocalPlaneXResolution nor FocalLengthIn35mmFilm"
    )


def drone_uncertainty(pose: DronePose) -> PoseUncertainty:
    """One-sigma error budget: RTK-fixed GNSS when the XMP says so, else standalone GNSS."""
    if pose.rtk_flag == RTK_FIXED:
        horizontal, vertical = 0.03, 0.05
        if pose.rtk_std_m is not None:
            horizontal = max(pose.rtk_std_m[0], pose.rtk_std_m[1], 0.01)
            vertical = max(pose.rtk_std_m[2], 0.01)
        return PoseUncertainty(horizontal_m=horizontal, vertical_m=vertical, pitch_roll_deg=0.3, yaw_deg=1.0)
    return PoseUncertainty(horizontal_m=1.5, vertical_m=0.5, pitch_roll_deg=0.3, yaw_deg=1.0)


def build_drone_projector(
    pose: DronePose,
    intrinsics: Intrinsics,
    *,
    dem_path: str | Path | None = None,
    takeoff_elevation_m: float | None = None,
    uncertainty: PoseUncertainty | None = None,
    max_range_m: float = 2000.0,
    description: dict[str, Any] | None = None,
) -> FrameProjector:
    """A FrameProjector for the photo: flat ground at take-off height, or terrain from a DEM."""
    frame = LocalFrame(pose.lon, pose.lat)
    orientation = Orientation(yaw_deg=pose.yaw_deg, pitch_deg=pose.pitch_deg, roll_deg=pose.roll_deg)
    if dem_path is None:
        if pose.relative_altitude_m is None or pose.relative_altitude_m <= 0.5:
            raise DroneGeometryError(
                f"expected RelativeAltitude above 0.5 m for flat ground, got {pose.relative_altitude_m}"
            )
        position = (0.0, 0.0, pose.relative_altitude_m)
        surface: Any = FlatGround(reference_elevation_m=takeoff_elevation_m)
        vertical = "RelativeAltitude above flat ground at take-off height"
    else:
        if takeoff_elevation_m is not None and pose.relative_altitude_m is not None:
            elevation = takeoff_elevation_m + pose.relative_altitude_m
            vertical = "take-off elevation + RelativeAltitude over the DEM"
        elif pose.absolute_altitude_m is not None:
            elevation = pose.absolute_altitude_m
            vertical = "AbsoluteAltitude over the DEM (assumed in the DEM's vertical datum)"
        else:
            raise DroneGeometryError(
                "a DEM needs the camera elevation: give the take-off elevation or a photo "
                "with AbsoluteAltitude"
            )
        position = (0.0, 0.0, elevation)
        dem = Dem.from_geotiff(dem_path, frame, radius_m=max_range_m)
        below = float(dem.elevation_at(np.array([0.0]), np.array([0.0]))[0])
        if math.isfinite(below) and elevation <= below:
            raise DroneGeometryError(
                f"camera elevation {elevation:.1f} m is not above the DEM's {below:.1f} m under the drone "
                "(different vertical datums?); give the take-off elevation in the DEM's datum"
            )
        surface = DemGround(dem, max_range_m=max_range_m)
    camera = FrameCamera(intrinsics=intrinsics, orientation=orientation, position_enu=position)
    info = {
        "vertical": vertical,
        "yaw_from": pose.yaw_from,
        "rtk_flag": pose.rtk_flag,
        "relative_altitude_m": pose.relative_altitude_m,
        "absolute_altitude_m": pose.absolute_altitude_m,
    }
    info.update(description or {})
    return FrameProjector(
        camera=camera,
        frame=frame,
        surface=surface,
        uncertainty=uncertainty or drone_uncertainty(pose),
        source="drone",
        max_range_m=max_range_m,
        description=info,
    )
