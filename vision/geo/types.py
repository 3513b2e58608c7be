"""Results of geotagging: where a pixel or a detection is on the ground, or why it is not.

Coordinates are WGS-84 longitude/latitude in degrees (CGCS2000 is treated as WGS-84: the
two differ by centimetres). Uncertainties are radii in metres within which the true
position lies with about 95 % confidence.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Annotated, Any

from pydantic import Field
from shapely.geometry import Polygon, mapping

from vision.errors import GeoError
from vision.sources import SourceKind
from vision.taxonomy import GroundAnchor as GroundAnchor  # which box point touches the ground; per class

# The same ranges as bounds on pydantic fields (configs, poses, request bodies).
Longitude = Annotated[float, Field(ge=-180, le=180, description="WGS-84 longitude in degrees.")]
Latitude = Annotated[float, Field(ge=-90, le=90, description="WGS-84 latitude in degrees.")]


def in_wgs84_range(lon: float, lat: float) -> bool:
    """The one WGS-84 range check: finite degrees, lon in [-180, 180] and lat in [-90, 90]."""
    return math.isfinite(lon) and math.isfinite(lat) and -180 <= lon <= 180 and -90 <= lat <= 90


def check_lon_lat(lon: float, lat: float) -> None:
    """GeoError (a ValueError) naming the expected ranges unless `in_wgs84_range(lon, lat)`."""
    if not in_wgs84_range(lon, lat):
        raise GeoError(f"expected lon in [-180, 180] and lat in [-90, 90], got {lon}, {lat}")


def valid_lon_lat(lon: float | None, lat: float | None) -> bool:
    """A usable position: in range (`in_wgs84_range`) and not (0, 0), which is what a missing GPS fix
    looks like."""
    if lon is None or lat is None or not in_wgs84_range(lon, lat):
        return False
    return not (abs(lon) < 1e-6 and abs(lat) < 1e-6)


@dataclass(frozen=True)
class NoLocation:
    """A pixel or detection that has no place on the ground, and why (e.g. above the horizon)."""

    reason: str

    def to_json(self) -> dict[str, Any]:
        return {"reason": self.reason}


@dataclass(frozen=True)
class GroundPosition:
    """One point on the ground in WGS-84 with its ~95 % uncertainty radius in metres."""

    lon: float
    lat: float
    uncertainty_m: float
    elevation_m: float | None = None

    def __post_init__(self) -> None:
        check_lon_lat(self.lon, self.lat)
        if not self.uncertainty_m >= 0:
            raise ValueError(f"expected uncertainty_m >= 0, got {self.uncertainty_m}")

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "lon": round(self.lon, 8),
            "lat": round(self.lat, 8),
            "uncertainty_m": round(self.uncertainty_m, 3),
        }
        if self.elevation_m is not None:
            out["elevation_m"] = round(self.elevation_m, 3)
        return out


@dataclass(frozen=True)
class Footprint:
    """The ground area a detection covers: a WGS-84 polygon and its area in square metres.

    `method` says how it was derived: "projected_box" (the box outline projected onto the
    ground), "bottom_edge_square" (standing object seen obliquely: the projected bottom edge
    extended away from the camera by its own width, an approximation), "raster_box"
    (an orthomosaic box through the raster's affine transform), "raster_outline" (a rule's
    outline, `Detections.data["footprint_xy"]`, the same way), "relief_corrected_box" and
    "bottom_edge_height_prior" (a standing class with a height prior, seen from nearly above
    or obliquely: see `vision.geo.standing`).

    `area_uncertainty_m2` is the ~95 % half-width of the area (1.96 sigma, propagated from the
    pose's error budget, box jitter and the height prior), None where the model has no budget.
    """

    polygon: Polygon
    area_m2: float
    method: str
    area_uncertainty_m2: float | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "geometry": mapping(self.polygon),
            "area_m2": round(self.area_m2, 3),
            "method": self.method,
        }
        if self.area_uncertainty_m2 is not None:
            out["area_uncertainty_m2"] = round(self.area_uncertainty_m2, 3)
        return out


@dataclass(frozen=True)
class Geotag:
    """Where one detection is: a ground point, and a footprint when the geometry allows one."""

    point: GroundPosition
    anchor: GroundAnchor
    source: SourceKind  # citizen (a phone's position), drone, camera (a tower preset) or orthomosaic
    footprint: Footprint | None = None
    footprint_reason: str | None = None
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def area_m2(self) -> float | None:
        return None if self.footprint is None else self.footprint.area_m2

    @property
    def area_uncertainty_m2(self) -> float | None:
        return None if self.footprint is None else self.footprint.area_uncertainty_m2

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "point": self.point.to_json(),
            "anchor": self.anchor,
            "source": self.source,
            "footprint": None if self.footprint is None else self.footprint.to_json(),
        }
        if self.footprint_reason:
            out["footprint_reason"] = self.footprint_reason
        return out


GeotagResult = Geotag | NoLocation
