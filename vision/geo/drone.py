"""Drone photos: the pose (read by vision.geo.drone_metadata from any maker's XMP and EXIF) to a
camera model over flat ground or a DEM.

Assumptions, stated because DJI does not document them all:
- GimbalYawDegree is the camera heading relative to true north (true for current DJI
  models; when it is missing, FlightYawDegree is used and a reason says so).
- GimbalPitchDegree is -90 for nadir, 0 for horizontal; GimbalRollDegree positive turns the
  camera right side down.
- RelativeAltitude is height above the take-off point; on flat ground that is the height
  above the ground. AbsoluteAltitude is used only with a DEM and no take-off elevation, in
  whatever vertical datum the DEM has (often not true for DJI: pass the take-off elevation).
- CalibratedFocalLength and CalibratedOpticalCenterX/Y are in pixels of the full image.
- DewarpData: its focal lengths and principal point are applied, its distortion coefficients
  are not (vision.geo.drone_intrinsics says why): a few pixels at the corners of wide lenses.
"""

from __future__ import annotations

import math
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
from vision.geo.types import Latitude, Longitude

RTK_FIXED = 50


class DroneGeometryError(GeoError):
    """The drone metadata is present but cannot give a camera model."""


class PoseSources(BaseModel):
    """Where each fact of a drone pose was read, e.g. "XMP drone-dji GpsLatitude/GpsLongitude" or
    "EXIF GPS"; None when the file does not have it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    position: str | None = None
    altitude: str | None = None
    attitude: str | None = None
    focal_length: str | None = None


class DronePose(BaseModel):
    """Where the camera was and where it pointed, and where the file said so (`sources`)."""

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
    gps_xy_accuracy_m: float | None = Field(default=None, gt=0, description="XMP Camera:GPSXYAccuracy.")
    sources: PoseSources = PoseSources()


def drone_uncertainty(pose: DronePose) -> PoseUncertainty:
    """One-sigma error budget: RTK-fixed GNSS when the XMP says so, else standalone GNSS (its
    stated horizontal accuracy when the XMP has one)."""
    if pose.rtk_flag == RTK_FIXED:
        horizontal, vertical = 0.03, 0.05
        if pose.rtk_std_m is not None:
            horizontal = max(pose.rtk_std_m[0], pose.rtk_std_m[1], 0.01)
            vertical = max(pose.rtk_std_m[2], 0.01)
        return PoseUncertainty(horizontal_m=horizontal, vertical_m=vertical, pitch_roll_deg=0.3, yaw_deg=1.0)
    # The receiver's own horizontal accuracy (Parrot, senseFly, Pix4D-tagged cameras) when given;
    # the height stays barometric (RelativeAltitude), whatever the GNSS says about its own.
    horizontal = pose.gps_xy_accuracy_m if pose.gps_xy_accuracy_m is not None else 1.5
    return PoseUncertainty(horizontal_m=horizontal, vertical_m=0.5, pitch_roll_deg=0.3, yaw_deg=1.0)


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
        "sources": pose.sources.model_dump(),
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
