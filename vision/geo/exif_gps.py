"""GPS position of a phone photo from its EXIF GPS IFD (read with Pillow), refusing bogus values.

A phone's position is the photographer's, not the object's, so the geotag carries an
uncertainty radius. Values that cannot be a real fix (0/0 rationals, latitude 123 deg, a
missing N/S or E/W reference, NaN, exactly 0,0 "Null Island") give `NoLocation` with the
reason, never a point.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from vision.geo.types import NoLocation, check_lon_lat
from vision.sources import EXIF_IFD_TAG, ExifTags

# GPS IFD tag numbers (EXIF 2.32, section 4.6.6).
LAT_REF, LAT, LON_REF, LON = 1, 2, 3, 4
ALT_REF, ALT, TIME_STAMP = 5, 6, 7
IMG_DIRECTION_REF, IMG_DIRECTION, MAP_DATUM = 16, 17, 18
DATE_STAMP, H_POSITIONING_ERROR = 29, 31
# Exif IFD tags for capture time.
DATETIME_ORIGINAL, OFFSET_TIME_ORIGINAL = 0x9003, 0x9011


@dataclass(frozen=True)
class PhotoGps:
    """A plausible GPS fix read from EXIF."""

    lon: float
    lat: float
    altitude_m: float | None = None
    timestamp: datetime | None = None
    direction_deg: float | None = None
    direction_ref: str | None = None  # "T" true north, "M" magnetic north
    h_positioning_error_m: float | None = None
    map_datum: str | None = None


def _number(value: Any) -> float:
    """A rational, int or float as float; NaN for anything else (0/0 rationals become NaN too)."""
    try:
        return float(value)
    except (TypeError, ValueError, ZeroDivisionError):
        return math.nan


def _text(value: Any) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("ascii", errors="replace")
    if not isinstance(value, str):
        return None
    value = value.strip("\x00 ").upper()
    return value or None


def _dms_to_degrees(value: Any, name: str) -> float | NoLocation:
    parts: Sequence[Any] = value if isinstance(value, (tuple, list)) else (value,)
    if not 1 <= len(parts) <= 3:
        return NoLocation(f"{name}: expected 1-3 values (degrees, minutes, seconds), got {len(parts)}")
    numbers = [_number(p) for p in parts]
    if not all(math.isfinite(n) for n in numbers):
        return NoLocation(f"{name}: not a finite number (0/0 rational or NaN): {parts!r}")
    if any(n < 0 for n in numbers):
        return NoLocation(f"{name}: expected non-negative degrees/minutes/seconds with a ref, got {numbers}")
    if any(n >= 60 for n in numbers[1:]):
        return NoLocation(f"{name}: minutes and seconds must be below 60, got {numbers}")
    degrees = numbers[0] + sum(n / 60**i for i, n in enumerate(numbers[1:], start=1))
    return degrees


def parse_gps_ifd(gps: Mapping[int, Any] | None) -> PhotoGps | NoLocation:
    """Interpret a GPS IFD (tag number -> value, as Pillow's `get_ifd(0x8825)` gives it)."""
    if not gps:
        return NoLocation("no GPS information in the EXIF data")
    if LAT not in gps or LON not in gps:
        return NoLocation("EXIF GPS has no GPSLatitude/GPSLongitude")
    lat_ref, lon_ref = _text(gps.get(LAT_REF)), _text(gps.get(LON_REF))
    if lat_ref is None or lon_ref is None:
        return NoLocation("EXIF GPS latitude or longitude has no N/S or E/W reference")
    if lat_ref not in ("N", "S") or lon_ref not in ("E", "W"):
        return NoLocation(f"EXIF GPS references must be N/S and E/W, got {lat_ref!r} and {lon_ref!r}")
    lat = _dms_to_degrees(gps[LAT], "GPSLatitude")
    if isinstance(lat, NoLocation):
        return lat
    lon = _dms_to_degrees(gps[LON], "GPSLongitude")
    if isinstance(lon, NoLocation):
        return lon
    if lat > 90 or lon > 180:
        return NoLocation(f"EXIF GPS out of range: latitude {lat:.6f}, longitude {lon:.6f}")
    if lat == 0 and lon == 0:
        return NoLocation("EXIF GPS is exactly 0,0 (Null Island): an unset fix, not a position")
    lat = -lat if lat_ref == "S" else lat
    lon = -lon if lon_ref == "W" else lon

    altitude = _number(gps.get(ALT)) if ALT in gps else math.nan
    if math.isfinite(altitude) and _number(gps.get(ALT_REF, 0)) == 1:
        altitude = -altitude
    direction = _number(gps.get(IMG_DIRECTION)) if IMG_DIRECTION in gps else math.nan
    hpe = _number(gps.get(H_POSITIONING_ERROR)) if H_POSITIONING_ERROR in gps else math.nan
    return PhotoGps(
        lon=lon,
        lat=lat,
        altitude_m=altitude if math.isfinite(altitude) and abs(altitude) < 20_000 else None,
        timestamp=_gps_timestamp(gps),
        direction_deg=direction % 360.0 if math.isfinite(direction) else None,
        direction_ref=_text(gps.get(IMG_DIRECTION_REF)) if math.isfinite(direction) else None,
        h_positioning_error_m=hpe if math.isfinite(hpe) and hpe > 0 else None,
        map_datum=_text(gps.get(MAP_DATUM)),
    )


def _gps_timestamp(gps: Mapping[int, Any]) -> datetime | None:
    date, time = _text(gps.get(DATE_STAMP)), gps.get(TIME_STAMP)
    if date is None or not isinstance(time, (tuple, list)) or len(time) != 3:
        return None
    h, m, s = (_number(v) for v in time)
    try:
        day = datetime.strptime(date, "%Y:%m:%d").replace(tzinfo=UTC)
    except ValueError:
        return None
    if not all(math.isfinite(v) for v in (h, m, s)) or not (0 <= h < 24 and 0 <= m < 60 and 0 <= s < 61):
        return None
    return day + timedelta(hours=h, minutes=m, seconds=s)


def capture_time(exif: ExifTags | Mapping[int, Any], gps: PhotoGps | None = None) -> datetime | None:
    """When the photo was taken: the GPS (UTC) time, else DateTimeOriginal with its offset if any.

    A DateTimeOriginal without OffsetTimeOriginal is local time of unknown zone; it is returned
    naive so that callers do not mistake it for UTC.
    """
    if gps is not None and gps.timestamp is not None:
        return gps.timestamp
    exif_ifd: Mapping[int, Any] = exif.get_ifd(EXIF_IFD_TAG) if hasattr(exif, "get_ifd") else {}
    raw = _text(exif_ifd.get(DATETIME_ORIGINAL))
    if raw is None:
        return None
    try:
        taken = datetime.strptime(raw, "%Y:%m:%d %H:%M:%S")
    except ValueError:
        return None
    offset = _text(exif_ifd.get(OFFSET_TIME_ORIGINAL))
    if offset and len(offset) == 6 and offset[0] in "+-" and offset[3] == ":":
        try:
            sign = 1 if offset[0] == "+" else -1
            delta = timedelta(hours=int(offset[1:3]), minutes=int(offset[4:6]))
        except ValueError:
            return taken
        return taken.replace(tzinfo=timezone(sign * delta))
    return taken


def parse_manual_lonlat(text: str) -> tuple[float, float]:
    """'lon,lat' in decimal degrees (WGS-84) -> (lon, lat); ValueError with the expected form."""
    parts = [p.strip() for p in text.split(",")]
    if len(parts) != 2:
        raise ValueError(f"expected 'lon,lat' in decimal degrees, e.g. '117.2272,31.8206', got {text!r}")
    try:
        lon, lat = float(parts[0]), float(parts[1])
    except ValueError as exc:
        raise ValueError(f"expected 'lon,lat' as two numbers, got {text!r}") from exc
    check_lon_lat(lon, lat)
    if lon == 0 and lat == 0:
        raise ValueError("expected a real position, got 0,0 (Null Island)")
    return lon, lat
