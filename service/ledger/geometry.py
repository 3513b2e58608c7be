"""Small geodesy helpers: distances on the WGS-84 ellipsoid, search boxes, GeoJSON text.

Geometry is stored as GeoJSON text; shapely does the exact tests after SQL has narrowed
the candidates down with plain lat/lon range conditions on indexed columns.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

from pyproj import Geod
from shapely.geometry import mapping, shape
from shapely.geometry.base import BaseGeometry

WGS84_GEOD = Geod(ellps="WGS84")  # immutable; safe to share
# Metres per degree: latitude is at least 110 574 m per degree (at the equator); longitude
# at least 111 319.49 m x cos(lat) (the ellipsoid is never narrower than that sphere), so
# degree spans derived from these never cut off a point within the radius.
MIN_M_PER_DEG_LAT = 110_574.0
M_PER_DEG_LON_AT_EQUATOR = 111_319.49


@dataclass(frozen=True)
class SearchBox:
    min_lon: float
    min_lat: float
    max_lon: float
    max_lat: float


def distance_m(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """Geodesic distance on the WGS-84 ellipsoid in metres."""
    _, _, dist = WGS84_GEOD.inv(lon1, lat1, lon2, lat2)
    return float(dist)


def search_box(lon: float, lat: float, radius_m: float) -> SearchBox:
    """A lon/lat box that contains every point within `radius_m` of (lon, lat).

    Boxes that would cross the antimeridian are not split: patrol areas never do.
    """
    dlat = radius_m / MIN_M_PER_DEG_LAT
    widest = min(89.9, abs(lat) + dlat)
    dlon = min(180.0, radius_m / (M_PER_DEG_LON_AT_EQUATOR * math.cos(math.radians(widest))))
    return SearchBox(lon - dlon, max(-90.0, lat - dlat), lon + dlon, min(90.0, lat + dlat))


def to_geojson_text(geometry: BaseGeometry) -> str:
    return json.dumps(mapping(geometry), separators=(",", ":"))


def from_geojson_text(text: str) -> BaseGeometry:
    return shape(json.loads(text))
