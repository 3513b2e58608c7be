"""What the ledger needs from an analysed image, and the interface that produces it.

The API depends on `PhotoAnalyzer`, not on the model: the app gets one injected (the
ONNX pipeline plus geotagging in production, `service.photo_analyzer.PipelineAnalyzer`),
so the ledger can be tested with any analyzer that yields real `PhotoAnalysis` values.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

import numpy as np
import numpy.typing as npt
from shapely.geometry.base import BaseGeometry

from service.ledger.geometry import valid_lon_lat


@dataclass(frozen=True)
class GroundPoint:
    """WGS-84 degrees and a ~95 % uncertainty radius in metres (None when unknown)."""

    lon: float
    lat: float
    uncertainty_m: float | None = None

    def __post_init__(self) -> None:
        if not valid_lon_lat(self.lon, self.lat):
            raise ValueError(f"expected a real WGS-84 position, got lon={self.lon}, lat={self.lat}")
        if self.uncertainty_m is not None and not (
            math.isfinite(self.uncertainty_m) and self.uncertainty_m >= 0
        ):
            raise ValueError(f"expected uncertainty_m >= 0, got {self.uncertainty_m}")


@dataclass(frozen=True)
class ObservationDraft:
    """One detection ready for the ledger: where it is on the ground, or why that is unknown."""

    class_key: str
    score: float
    box_xyxy: tuple[float, float, float, float]
    point: GroundPoint | None
    location_reason: str | None = None
    footprint: BaseGeometry | None = None
    area_m2: float | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.score <= 1.0:
            raise ValueError(f"expected a score in [0, 1], got {self.score}")
        x1, y1, x2, y2 = self.box_xyxy
        if not (x2 >= x1 and y2 >= y1):
            raise ValueError(f"expected x2 >= x1 and y2 >= y1, got {self.box_xyxy}")
        if (self.point is None) == (self.location_reason is None):
            raise ValueError("expected exactly one of point and location_reason")


@dataclass(frozen=True)
class PhotoAnalysis:
    """One analysed image: its identity, pixels for evidence, ground coverage and detections.

    `coverage` is the ground the image shows (a WGS-84 polygon) when the geometry is known
    (drone, orthomosaic, calibrated camera); phone photos have none, so they can find an
    issue but never vouch that a place is clear.
    """

    content_hash: str
    model_version: str
    pixels: npt.NDArray[np.uint8] = field(repr=False)
    observations: tuple[ObservationDraft, ...]
    captured_at: datetime | None = None
    camera_point: GroundPoint | None = None
    coverage: BaseGeometry | None = None
    location_reason: str | None = None

    def __post_init__(self) -> None:
        if len(self.content_hash) != 64:
            raise ValueError(f"expected a sha256 hex digest as content_hash, got {self.content_hash!r}")
        if self.pixels.ndim != 3 or self.pixels.shape[2] != 3 or self.pixels.dtype != np.uint8:
            got = f"{self.pixels.dtype} {self.pixels.shape}"
            raise ValueError(f"expected BGR uint8 (H, W, 3) pixels, got {got}")
        if self.captured_at is not None and self.captured_at.tzinfo is None:
            raise ValueError(f"expected an aware captured_at, got naive {self.captured_at.isoformat()}")

    @property
    def resolution_wh(self) -> tuple[int, int]:
        return int(self.pixels.shape[1]), int(self.pixels.shape[0])


class PhotoAnalyzer(Protocol):
    def analyze(
        self, image_bytes: bytes, *, name: str, lon: float | None, lat: float | None
    ) -> PhotoAnalysis:
        """Decode, detect and geotag one upload.

        Raises vision.errors.ImageLoadError for unusable bytes and vision.errors.ModelError
        when no model can be loaded. `lon`/`lat` are a position the user gave by hand.
        """
        ...


def content_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
