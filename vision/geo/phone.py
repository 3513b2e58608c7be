"""Phone photos (随手拍): every pixel is placed at the photographer's position, with a radius.

Without the phone's orientation and the object's distance, the best honest answer for any
pixel is where the photo was taken plus a radius that covers the GPS error and the distance
to the subject. No footprint or area is derived.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from vision.geo.exif_gps import PhotoGps
from vision.geo.projector import footprint_each
from vision.geo.types import Footprint, GroundAnchor, GroundPosition, NoLocation
from vision.taxonomy import HeightPrior


class PhonePositionPolicy(BaseModel):
    """How wide a phone photo's uncertainty radius is."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    default_uncertainty_m: float = Field(
        default=30.0, gt=0, le=10_000, description="Radius when the EXIF gives no positioning error."
    )
    subject_distance_m: float = Field(
        default=10.0,
        ge=0,
        le=1_000,
        description="Added to GPSHPositioningError: how far the subject usually is from the photographer.",
    )
    manual_uncertainty_m: float = Field(
        default=10.0, gt=0, le=10_000, description="Radius of a position the user supplied by hand."
    )


@dataclass(frozen=True)
class PhotographerProjector:
    """Pixel -> the photographer's position for phone photos (or a manual position)."""

    lon: float
    lat: float
    uncertainty_m: float
    origin: Literal["exif", "manual"]
    captured_at: datetime | None = None
    gps: PhotoGps | None = None
    source: Literal["citizen"] = "citizen"

    @classmethod
    def from_exif(
        cls, gps: PhotoGps, policy: PhonePositionPolicy | None = None, captured_at: datetime | None = None
    ) -> PhotographerProjector:
        policy = policy or PhonePositionPolicy()
        if gps.h_positioning_error_m is not None:
            radius = gps.h_positioning_error_m + policy.subject_distance_m
        else:
            radius = policy.default_uncertainty_m
        return cls(gps.lon, gps.lat, radius, "exif", captured_at or gps.timestamp, gps)

    @classmethod
    def from_manual(
        cls,
        lon: float,
        lat: float,
        policy: PhonePositionPolicy | None = None,
        captured_at: datetime | None = None,
    ) -> PhotographerProjector:
        policy = policy or PhonePositionPolicy()
        return cls(lon, lat, policy.manual_uncertainty_m, "manual", captured_at)

    def locate(self, pixels_xy: np.ndarray) -> list[GroundPosition | NoLocation]:
        n = len(np.asarray(pixels_xy).reshape(-1, 2))
        elevation = self.gps.altitude_m if self.gps is not None else None
        return [GroundPosition(self.lon, self.lat, self.uncertainty_m, elevation) for _ in range(n)]

    def effective_anchor(self, xyxy: np.ndarray, anchor: GroundAnchor) -> GroundAnchor:
        return anchor

    def footprint(
        self, xyxy: np.ndarray, anchor: GroundAnchor, height: HeightPrior | None = None
    ) -> Footprint | NoLocation:
        return NoLocation("phone photo: the position is the photographer's; no camera pose, so no footprint")

    def footprints(
        self, xyxy: np.ndarray, anchors: Sequence[GroundAnchor], heights: Sequence[HeightPrior | None]
    ) -> list[Footprint | NoLocation]:
        return footprint_each(self, xyxy, anchors, heights)

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "type": "citizen",
            "position_from": self.origin,
            "lon": self.lon,
            "lat": self.lat,
            "uncertainty_m": self.uncertainty_m,
            "captured_at": None if self.captured_at is None else self.captured_at.isoformat(),
        }
        if self.gps is not None:
            out.update(
                {
                    "altitude_m": self.gps.altitude_m,
                    "direction_deg": self.gps.direction_deg,
                    "direction_ref": self.gps.direction_ref,
                    "h_positioning_error_m": self.gps.h_positioning_error_m,
                    "map_datum": self.gps.map_datum,
                }
            )
        return out
