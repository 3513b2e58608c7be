"""Synthetic photos for the service tests: painted objects, as PNG or as JPEG with EXIF GPS / DJI XMP.

Objects are painted with tests/vision/fakes.paint_box: label "garbage" (-> garbage_pile),
"smoke" (-> straw_burning), "garbage_bin" (a helper label, no violation).
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import numpy as np
from PIL import Image
from PIL.TiffImagePlugin import IFDRational
from pyproj import Geod

from tests.vision.fakes import FAKE_LABELS, paint_box

GPS_IFD = 0x8825
EXIF_IFD = 0x8769
GEOD = Geod(ellps="WGS84")
BASE_LON, BASE_LAT = 117.2272, 31.8206  # a village near Hefei

# A nadir drone photo: 400 x 300 px, focal 400 px, 50 m up -> 0.125 m per pixel, 50 m x 37.5 m.
DRONE_WH = (400, 300)
DRONE_FOCAL_PX = 400.0
DRONE_ALTITUDE_M = 50.0
DRONE_M_PER_PX = DRONE_ALTITUDE_M / DRONE_FOCAL_PX

Painted = tuple[str, tuple[int, int, int, int], float]  # label, xyxy, score


def offset(lon: float, lat: float, east_m: float = 0.0, north_m: float = 0.0) -> tuple[float, float]:
    """The point `east_m` east and `north_m` north of (lon, lat), on the ellipsoid."""
    if east_m:
        lon, lat, _ = GEOD.fwd(lon, lat, 90.0, east_m)
    if north_m:
        lon, lat, _ = GEOD.fwd(lon, lat, 0.0, north_m)
    return float(lon), float(lat)


def painted(
    objects: Sequence[Painted] = (), size_wh: tuple[int, int] = (320, 240), shade: int = 0
) -> np.ndarray:
    """A dark BGR image with painted objects; `shade` (< 24) varies the bytes without adding objects."""
    image = np.full((size_wh[1], size_wh[0], 3), shade, np.uint8)
    for label, xyxy, score in objects:
        paint_box(image, xyxy, FAKE_LABELS.index(label), score)
    return image


def png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels[:, :, ::-1]).save(buffer, "PNG")
    return buffer.getvalue()


def jpeg(
    pixels: np.ndarray,
    *,
    gps: Mapping[int, Any] | None = None,
    xmp: bytes | None = None,
    taken: datetime | None = None,
) -> bytes:
    image = Image.fromarray(pixels[:, :, ::-1])
    exif = image.getexif()
    if gps is not None:
        exif.get_ifd(GPS_IFD).update(gps)
    if taken is not None:  # DateTimeOriginal with its UTC offset
        offset_text = taken.strftime("%z")
        exif.get_ifd(EXIF_IFD).update(
            {0x9003: taken.strftime("%Y:%m:%d %H:%M:%S"), 0x9011: f"{offset_text[:3]}:{offset_text[3:]}"}
        )
    kwargs: dict[str, Any] = {"exif": exif, "quality": 95}
    if xmp is not None:
        kwargs["xmp"] = xmp
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", **kwargs)
    return buffer.getvalue()


def _dms(value: float) -> tuple[IFDRational, IFDRational, IFDRational]:
    degrees = int(value)
    minutes_f = (value - degrees) * 60
    minutes = int(minutes_f)
    return (
        IFDRational(degrees, 1),
        IFDRational(minutes, 1),
        IFDRational(round((minutes_f - minutes) * 600000), 10000),
    )


def exif_gps(lon: float, lat: float) -> dict[int, Any]:
    return {1: "N" if lat >= 0 else "S", 2: _dms(abs(lat)), 3: "E" if lon >= 0 else "W", 4: _dms(abs(lon))}


def dji_xmp(
    lon: float,
    lat: float,
    *,
    altitude_m: float = DRONE_ALTITUDE_M,
    yaw: float = 0.0,
    pitch: float = -90.0,
    focal_px: float = DRONE_FOCAL_PX,
) -> bytes:
    tags = {
        "GpsLatitude": lat,
        "GpsLongitude": lon,
        "RelativeAltitude": f"+{altitude_m}",
        "GimbalYawDegree": yaw,
        "GimbalPitchDegree": pitch,
        "GimbalRollDegree": 0.0,
        "FlightYawDegree": yaw,
        "CalibratedFocalLength": focal_px,
    }
    attrs = "\n".join(f'   drone-dji:{k}="{v}"' for k, v in tags.items())
    return f"""<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description rdf:about="DJI Meta Data" xmlns:drone-dji="http://www.dji.com/drone-dji/1.0/"
{attrs}>
  </rdf:Description>
 </rdf:RDF>
</x:xmpmeta>
<?xpacket end="w"?>""".encode()


def drone_photo(
    lon: float, lat: float, objects: Sequence[Painted] = (), shade: int = 0, taken: datetime | None = None
) -> bytes:
    """A nadir drone JPEG centred on (lon, lat), north up, with painted objects."""
    return jpeg(painted(objects, DRONE_WH, shade), xmp=dji_xmp(lon, lat), taken=taken)


def drone_box_at(east_m: float, north_m: float, half_px: int = 20) -> tuple[int, int, int, int]:
    """The pixel box, in a drone photo, centred on the ground point east/north of the photo centre."""
    cx = DRONE_WH[0] / 2 + east_m / DRONE_M_PER_PX
    cy = DRONE_WH[1] / 2 - north_m / DRONE_M_PER_PX
    return int(cx - half_px), int(cy - half_px), int(cx + half_px), int(cy + half_px)


GARBAGE = ("garbage", (100, 80, 180, 160), 0.9)
SMOKE = ("smoke", (200, 60, 260, 200), 0.8)
BIN = ("garbage_bin", (20, 20, 60, 60), 0.9)
