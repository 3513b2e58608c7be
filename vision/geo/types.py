"""Results of geotagging: where a pixel or a detection is on the ground, or why it is not.

Coordinates are WGS-84 longitude/latitude in degrees (CGCS2000 is treated as WGS-84: the
two differ by centimetres). Uncertainties are radii in metres within which the true
position lies with about 95 % confidence.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from shapely.geometry import Polygon, mapping

GroundAnchor = Literal["center", "bottom_center"]
GeoSourceKind = Literal["phone", "drone", "tower", "orthomosaic"]


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
        if not (-180.0 <= self.lon <= 180.0 and -90.0 <= self.lat <= 90.0):
            raise ValueError(f"expected lon in [-180, 180] and lat in [-90, 90], got {self.lon}, {self.lat}")
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
    extended away from the camera by its own width, an approximation) or "raster_box"
    (an orthomosaic box through the raster's affine transform).
    """

    polygon: Polygon
    area_m2: float
    method: str

    def to_json(self) -> dict[str, Any]:
        return {"geometry": mapping(self.polygon), "area_m2": round(self.area_m2, 3), "method": self.method}


@dataclass(frozen=True)
class Geotag:
    """Where one detection is: a ground point, and a footprint when the geometry allows one."""

    point: GroundPosition
    anchor: GroundAnchor
    source: GeoSourceKind
    footprint: Footprint | None = None
    footprint_reason: str | None = None
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def area_m2(self) -> float | None:
        return None if self.footprint is None else self.footprint.area_m2

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
