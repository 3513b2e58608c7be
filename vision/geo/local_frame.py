"""A local metric frame around a point: east/north metres in an azimuthal equidistant projection.

Camera geometry, footprints and areas are computed here, then converted to WGS-84. The
projection is exact for distances from its centre and its scale error is below 1e-8 within
a few kilometres, so areas measured in it are good to far better than 0.01 %.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from pyproj import CRS, Transformer
import shapely
from shapely.geometry import Polygon
from shapely.geometry.base import BaseGeometry

WGS84 = CRS.from_epsg(4326)


def check_lon_lat(lon: float, lat: float) -> None:
    if not (math.isfinite(lon) and math.isfinite(lat) and -180 <= lon <= 180 and -90 <= lat <= 90):
        raise ValueError(f"expected lon in [-180, 180] and lat in [-90, 90], got {lon}, {lat}")


@dataclass(frozen=True)
class LocalFrame:
    """East (x) and north (y) metres from an origin given in WGS-84 degrees."""

    lon0: float
    lat0: float
    _to_local: Transformer = field(init=False, repr=False, compare=False)
    _to_wgs84: Transformer = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        check_lon_lat(self.lon0, self.lat0)
        crs = CRS.from_proj4(f"+proj=aeqd +lat_0={self.lat0!r} +lon_0={self.lon0!r} +datum=WGS84 +units=m")
        object.__setattr__(self, "_to_local", Transformer.from_crs(WGS84, crs, always_xy=True))
        object.__setattr__(self, "_to_wgs84", Transformer.from_crs(crs, WGS84, always_xy=True))

    @property
    def crs(self) -> CRS:
        return self._to_local.target_crs

    def to_local(self, lon: np.ndarray | float, lat: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
        x, y = self._to_local.transform(np.asarray(lon, float), np.asarray(lat, float))
        return np.asarray(x, float), np.asarray(y, float)

    def to_lonlat(self, x: np.ndarray | float, y: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
        lon, lat = self._to_wgs84.transform(np.asarray(x, float), np.asarray(y, float))
        return np.asarray(lon, float), np.asarray(lat, float)

    def polygon_to_wgs84(self, polygon: BaseGeometry) -> BaseGeometry:
        return transform_geometry(polygon, self._to_wgs84)

    def polygon_to_local(self, polygon: BaseGeometry) -> BaseGeometry:
        return transform_geometry(polygon, self._to_local)


def transform_geometry(geometry: BaseGeometry, transformer: Transformer) -> BaseGeometry:
    """A shapely geometry through a pyproj transformer (always_xy), all coordinates at once."""
    def _apply(xy: np.ndarray) -> np.ndarray:
        x, y = transformer.transform(xy[:, 0], xy[:, 1])
        return np.column_stack((x, y))

    return shapely.transform(geometry, _apply)


def area_m2(polygon_wgs84: Polygon) -> float:
    """Area of a WGS-84 polygon in square metres, measured in a frame centred on it."""
    if polygon_wgs84.is_empty:
        return 0.0
    centre = polygon_wgs84.centroid
    frame = LocalFrame(float(centre.x), float(centre.y))
    return float(frame.polygon_to_local(polygon_wgs84).area)
