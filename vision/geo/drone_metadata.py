"""Any drone's camera pose, each fact taken from wherever its file has it, and where that was.

Makers put the same facts in different places (`ImageMetadata.drone_xmp` holds the drone
namespaces' properties by URI). First found wins:
- position: XMP drone-dji GpsLatitude/GpsLongitude (DJI, and Autel, which writes DJI's
  namespace under the prefix `drone:`), XMP drone-skydio Latitude/Longitude, else EXIF GPS
  (older DJI firmware and thermal payloads, Parrot, senseFly, MicaSense);
- height above the take-off point: XMP drone-dji/drone-skydio RelativeAltitude, else XMP
  Camera:AboveGroundAltitude (Parrot);
- altitude above sea level: XMP drone-dji/drone-skydio AbsoluteAltitude, else EXIF GPSAltitude;
- attitude: XMP drone-dji Gimbal{Yaw,Pitch,Roll}Degree, drone-skydio CameraOrientationNED,
  drone-parrot Camera{Yaw,Pitch,Roll}Degree, then Camera:Yaw/Pitch/Roll (Pix4D and senseFly);
- focal length: vision.geo.drone_intrinsics.

Angle conventions:
- DJI, Skydio and Parrot (drone-parrot) give the camera's heading, pitch (-90 straight down)
  and roll, the convention of vision.geo.camera: used as they are.
- Pix4D and senseFly `Camera:Yaw/Pitch/Roll` are the angles of a camera fixed looking down:
  all zero is straight down with the top of the image to the north, and they are the NED
  yaw-pitch-roll (Z-Y-X) of a body whose forward axis is the top of the image (Pix4D's
  definition, which orthority and OpenDroneMap read too). They are turned into
  vision.geo.camera's angles through the rotation itself: a fixed-wing eBee's roll tilts the
  view sideways, it does not turn the image about its centre as a gimbal's roll does.
- MicaSense writes the attitude of its sun sensor (DLS), not of the camera: not used.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
from pydantic import BaseModel, ConfigDict

from vision.geo.camera import Intrinsics, Orientation
from vision.geo.camera_table import CameraTable, default_camera_table
from vision.geo.drone import DronePose, PoseSources
from vision.geo.drone_intrinsics import drone_intrinsics, xmp_float
from vision.geo.exif_gps import PhotoGps, parse_gps_ifd
from vision.geo.types import in_wgs84_range
from vision.geo.xmp import (
    DJI_NAMESPACE,
    MICASENSE_NAMESPACE,
    PARROT_NAMESPACE,
    PIX4D_CAMERA_NAMESPACE,
    SENSEFLY_CAMERA_NAMESPACE,
    SKYDIO_NAMESPACE,
)
from vision.sources import GPS_IFD_TAG, ImageMetadata

# Which maker a namespace says wrote the file (Autel writes DJI's namespace).
_MAKERS: tuple[tuple[str, str], ...] = (
    (DJI_NAMESPACE, "dji"), (SKYDIO_NAMESPACE, "skydio"), (PARROT_NAMESPACE, "parrot"),
    (SENSEFLY_CAMERA_NAMESPACE, "sensefly"), (MICASENSE_NAMESPACE, "micasense"),
    (PIX4D_CAMERA_NAMESPACE, "pix4d"),
)
_EMPTY: Mapping[str, str] = {}


class DroneMetadata(BaseModel):
    """Every pose fact a drone photo's file has, each with where it came from (`sources`);
    `reasons` says what is missing or was refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    maker: str
    lon: float | None = None
    lat: float | None = None
    relative_altitude_m: float | None = None
    absolute_altitude_m: float | None = None
    orientation: Orientation | None = None
    yaw_from: str | None = None
    flight_yaw_deg: float | None = None
    rtk_flag: int | None = None
    rtk_std_m: tuple[float, float, float] | None = None
    gps_xy_accuracy_m: float | None = None
    intrinsics: Intrinsics | None = None
    sources: PoseSources = PoseSources()
    reasons: tuple[str, ...] = ()

    @property
    def full_pose(self) -> bool:
        """Position, an altitude (above take-off or sea level), attitude and focal length."""
        s = self.sources
        return None not in (s.position, s.altitude, s.attitude, s.focal_length)

    def pose(self) -> DronePose | None:
        """The pose for a camera model: None without a position or an attitude."""
        if self.lon is None or self.lat is None or self.orientation is None:
            return None
        o = self.orientation
        return DronePose(
            lon=self.lon, lat=self.lat, relative_altitude_m=self.relative_altitude_m,
            absolute_altitude_m=self.absolute_altitude_m, yaw_deg=o.yaw_deg % 360.0,
            pitch_deg=o.pitch_deg, roll_deg=o.roll_deg, yaw_from=self.yaw_from or "",
            flight_yaw_deg=self.flight_yaw_deg, rtk_flag=self.rtk_flag, rtk_std_m=self.rtk_std_m,
            gps_xy_accuracy_m=self.gps_xy_accuracy_m, sources=self.sources,
        )

    def summary(self) -> dict[str, object]:
        """What `patrol geotag` prints: the maker, whether the pose is full, each fact's source."""
        return {"maker": self.maker, "full_pose": self.full_pose, "sources": self.sources.model_dump()}


def read_drone_metadata(meta: ImageMetadata, table: CameraTable | None = None) -> DroneMetadata | None:
    """The pose facts of a drone photo; None when its XMP has no drone namespace (a phone photo)."""
    xmp: Mapping[str, Mapping[str, str]] = meta.drone_xmp or ({DJI_NAMESPACE: meta.dji} if meta.dji else {})
    maker = next((name for uri, name in _MAKERS if uri in xmp), None)
    if maker is None:
        return None
    reasons: list[str] = []
    dji, skydio = xmp.get(DJI_NAMESPACE, _EMPTY), xmp.get(SKYDIO_NAMESPACE, _EMPTY)
    gps = parse_gps_ifd(meta.exif.get_ifd(GPS_IFD_TAG))
    position = _position(dji, skydio, gps, reasons)
    relative, relative_from = _first(
        (dji, "RelativeAltitude", "XMP drone-dji RelativeAltitude"),
        (skydio, "RelativeAltitude", "XMP drone-skydio RelativeAltitude"),
        (xmp.get(PIX4D_CAMERA_NAMESPACE, _EMPTY), "AboveGroundAltitude", "XMP Camera:AboveGroundAltitude"),
    )
    absolute, absolute_from = _first(
        (dji, "AbsoluteAltitude", "XMP drone-dji AbsoluteAltitude"),
        (skydio, "AbsoluteAltitude", "XMP drone-skydio AbsoluteAltitude"),
    )
    if absolute is None and isinstance(gps, PhotoGps) and gps.altitude_m is not None:
        absolute, absolute_from = gps.altitude_m, "EXIF GPSAltitude"
    if relative is None and absolute is None:
        reasons.append("no altitude: no XMP RelativeAltitude/AbsoluteAltitude/AboveGroundAltitude, no EXIF "
                       "GPSAltitude")
    orientation, attitude_from, yaw_from = _attitude(xmp, reasons)
    width, height = meta.stored_wh
    intrinsics, focal_from, notes = drone_intrinsics(
        xmp, meta.exif, meta.make, meta.model, width, height, table or default_camera_table())
    reasons.extend(notes)
    if intrinsics is None:
        reasons.append(focal_from)
    accuracy, _ = _first((xmp.get(PIX4D_CAMERA_NAMESPACE, _EMPTY), "GPSXYAccuracy", ""),
                         (xmp.get(SENSEFLY_CAMERA_NAMESPACE, _EMPTY), "GPSXYAccuracy", ""))
    stds = [xmp_float(dji, n) for n in ("RtkStdLon", "RtkStdLat", "RtkStdHgt")]
    rtk_flag = xmp_float(dji, "RtkFlag")
    altitude_from = (f"{relative_from} (above take-off)" if relative is not None
                     else f"{absolute_from} (above sea level)" if absolute is not None else None)
    return DroneMetadata(
        maker=maker,
        lon=None if position is None else position[0],
        lat=None if position is None else position[1],
        relative_altitude_m=relative,
        absolute_altitude_m=absolute,
        orientation=orientation,
        yaw_from=yaw_from,
        flight_yaw_deg=xmp_float(dji, "FlightYawDegree"),
        rtk_flag=None if rtk_flag is None else int(rtk_flag),
        rtk_std_m=(stds[0], stds[1], stds[2]) if all(s is not None and s >= 0 for s in stds) else None,
        gps_xy_accuracy_m=accuracy if accuracy is not None and accuracy > 0 else None,
        intrinsics=intrinsics,
        sources=PoseSources(
            position=None if position is None else position[2],
            altitude=altitude_from,
            attitude=attitude_from,
            focal_length=None if intrinsics is None else focal_from,
        ),
        reasons=tuple(reasons),
    )


def _first(*candidates: tuple[Mapping[str, str], str, str]) -> tuple[float | None, str | None]:
    for tags, name, source in candidates:
        value = xmp_float(tags, name)
        if value is not None:
            return value, source
    return None, None


def _position(dji: Mapping[str, str], skydio: Mapping[str, str], gps: object,
              reasons: list[str]) -> tuple[float, float, str] | None:
    """(lon, lat, source): XMP first, then EXIF GPS; each refusal is a reason."""
    candidates = (
        ("XMP drone-dji GpsLatitude/GpsLongitude", dji, ("GpsLatitude", "Latitude"),
         ("GpsLongitude", "GpsLongtitude", "Longitude")),  # some firmware spells it "Longtitude"
        ("XMP drone-skydio Latitude/Longitude", skydio, ("Latitude",), ("Longitude",)),
    )
    for source, tags, lat_names, lon_names in candidates:
        if not any(n in tags for n in (*lat_names, *lon_names)):
            continue
        lat, lon = xmp_float(tags, *lat_names), xmp_float(tags, *lon_names)
        if lat is None or lon is None:
            reasons.append(f"{source}: not usable numbers (GpsLatitude {tags.get(lat_names[0])!r})")
        elif not in_wgs84_range(lon, lat):
            reasons.append(f"{source}: position out of range: latitude {lat}, longitude {lon}")
        elif lat == 0 and lon == 0:
            reasons.append(f"{source}: position is exactly 0,0 (no GNSS fix)")
        else:
            return lon, lat, source
    if isinstance(gps, PhotoGps):
        return gps.lon, gps.lat, "EXIF GPS"
    reasons.append(f"no position: {getattr(gps, 'reason', 'no EXIF GPS')}")
    return None


def _attitude(xmp: Mapping[str, Mapping[str, str]],
              reasons: list[str]) -> tuple[Orientation | None, str | None, str | None]:
    """(orientation, source, where the heading came from) from the first namespace with one."""
    dji = xmp.get(DJI_NAMESPACE)
    if dji is not None and any(k.startswith(("Gimbal", "FlightYaw")) for k in dji):
        return _gimbal(dji, "XMP drone-dji", "GimbalYawDegree", "GimbalPitchDegree", "GimbalRollDegree",
                       reasons, flight_yaw="FlightYawDegree")
    skydio = xmp.get(SKYDIO_NAMESPACE, _EMPTY)
    if any(k.startswith("CameraOrientationNED/") for k in skydio):
        return _gimbal(skydio, "XMP drone-skydio CameraOrientationNED", "CameraOrientationNED/Yaw",
                       "CameraOrientationNED/Pitch", "CameraOrientationNED/Roll", reasons)
    parrot = xmp.get(PARROT_NAMESPACE, _EMPTY)
    if "CameraPitchDegree" in parrot:
        return _gimbal(parrot, "XMP drone-parrot", "CameraYawDegree", "CameraPitchDegree", "CameraRollDegree",
                       reasons)
    for uri, label in ((PIX4D_CAMERA_NAMESPACE, "XMP Camera:Yaw/Pitch/Roll (Pix4D)"),
                       (SENSEFLY_CAMERA_NAMESPACE, "XMP Camera:Yaw/Pitch/Roll (senseFly)")):
        tags = xmp.get(uri, _EMPTY)
        angles = [xmp_float(tags, n) for n in ("Yaw", "Pitch", "Roll")]
        if all(a is not None for a in angles):
            yaw, pitch, roll = (float(a) for a in angles)  # type: ignore[arg-type]
            return nadir_body_orientation(yaw, pitch, roll), label, "Yaw"
    if MICASENSE_NAMESPACE in xmp:
        reasons.append("no attitude: MicaSense writes its sun sensor's (DLS) attitude, not the camera's")
    else:
        reasons.append("no attitude: the XMP has no gimbal or camera Yaw/Pitch/Roll")
    return None, None, None


def _gimbal(
    tags: Mapping[str, str], label: str, yaw_name: str, pitch_name: str, roll_name: str,
    reasons: list[str], flight_yaw: str | None = None,
) -> tuple[Orientation | None, str | None, str | None]:
    pitch = xmp_float(tags, pitch_name)
    if pitch is None or not -90.5 <= pitch <= 90:
        reasons.append(f"{label} has no usable {pitch_name} (got {tags.get(pitch_name)!r})")
        return None, None, None
    yaw, yaw_from = xmp_float(tags, yaw_name), yaw_name
    if yaw is None and flight_yaw is not None:
        yaw, yaw_from = xmp_float(tags, flight_yaw), flight_yaw
        if yaw is not None:
            reasons.append(f"no {yaw_name}: heading taken from {flight_yaw}")
    if yaw is None:
        reasons.append(f"{label} has neither {yaw_name} nor FlightYawDegree")
        return None, None, None
    roll = xmp_float(tags, roll_name) or 0.0
    if not -180 <= roll <= 180:
        reasons.append(f"{label} {roll_name} {roll} is out of range")
        return None, None, None
    orientation = Orientation(yaw_deg=yaw % 360.0, pitch_deg=max(-90.0, pitch), roll_deg=roll)
    names = "/".join(n.split("/")[-1] for n in (yaw_name, pitch_name, roll_name))
    return orientation, f"{label} {names}", yaw_from


def nadir_body_orientation(yaw_deg: float, pitch_deg: float, roll_deg: float) -> Orientation:
    """vision.geo.camera's angles of a camera fixed looking down on a body with these NED
    yaw/pitch/roll (Z-Y-X, degrees), the top of the image along the body's forward axis."""
    y, p, r = (math.radians(a) for a in (yaw_deg, pitch_deg, roll_deg))
    rz = np.array([[math.cos(y), -math.sin(y), 0], [math.sin(y), math.cos(y), 0], [0, 0, 1]])
    ry = np.array([[math.cos(p), 0, math.sin(p)], [0, 1, 0], [-math.sin(p), 0, math.cos(p)]])
    rx = np.array([[1, 0, 0], [0, math.cos(r), -math.sin(r)], [0, math.sin(r), math.cos(r)]])
    body_to_ned = rz @ ry @ rx
    ned_to_enu = np.array([[0, 1, 0], [1, 0, 0], [0, 0, -1]], dtype=np.float64)
    # Camera axes in the body: right = body right (y), image down = body backward (-x),
    # optical axis = body down (z).
    to_enu = ned_to_enu @ body_to_ned
    right, forward = to_enu @ np.array([0.0, 1, 0]), to_enu @ np.array([0.0, 0, 1])
    return orientation_from_axes(forward, right)


def orientation_from_axes(forward: np.ndarray, right: np.ndarray) -> Orientation:
    """The yaw/pitch/roll whose `Orientation.camera_to_world()` has these optical and right axes (ENU)."""
    pitch = math.degrees(math.asin(max(-1.0, min(1.0, float(forward[2])))))
    if math.hypot(forward[0], forward[1]) > 1e-9:
        yaw = math.atan2(forward[0], forward[1])
    else:  # straight down or up: the heading is that of the image's top, 90 degrees left of its right
        yaw = math.atan2(-right[1], right[0])
    right0 = np.array([math.cos(yaw), -math.sin(yaw), 0.0])
    down0 = -np.cross(right0, forward)
    roll = math.degrees(math.atan2(float(np.dot(right, down0)), float(np.dot(right, right0))))
    return Orientation(yaw_deg=math.degrees(yaw) % 360.0, pitch_deg=pitch, roll_deg=roll)
