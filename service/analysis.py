"""What the ledger needs from an analysed image, and the interface that produces it.

The API depends on `PhotoAnalyzer`, not on the model: the app gets one injected (the
ONNX pipeline plus geotagging in production, `service.photo_analyzer.PipelineAnalyzer`),
so the ledger can be tested with any analyzer that yields real `PhotoAnalysis` values.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt
from shapely.geometry.base import BaseGeometry

from vision.detections import Detections
from vision.geo.geotagging import class_keys_of
from vision.geo.types import Geotag, NoLocation, valid_lon_lat
from vision.image_io import LoadedImage
from vision.model_card import ModelCard
from vision.taxonomy import Taxonomy


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
    area_uncertainty_m2: float | None = None  # ~95 % half-width of area_m2 (vision.geo.types.Footprint)
    # How the finding was made, beyond class and score (a change's kind, the epochs' registration
    # error): JSON-serialisable, stored with the observation for reviewers.
    details: Mapping[str, Any] | None = None

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
    skipped_reason: str | None = None  # why the detector did not look at it (a blank frame)
    # The frame's evidence JPEG made beforehand (service.evidence.frame_jpeg), outside the
    # ledger's lock; None: the evidence store encodes `pixels` while recording.
    frame_jpeg: bytes | None = field(default=None, repr=False)
    # The full upright (W, H) when `pixels` are a reduced decode (LoadedImage.source_wh): the
    # frame's size, which observation boxes are in; None: the size of `pixels`.
    source_wh: tuple[int, int] | None = None
    # The same ground in an earlier survey on the same pixel grid (a change between surveys):
    # each observation keeps its crop of it as before-evidence beside its own (after) crop.
    earlier_pixels: npt.NDArray[np.uint8] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if len(self.content_hash) != 64:
            raise ValueError(f"expected a sha256 hex digest as content_hash, got {self.content_hash!r}")
        if self.pixels.ndim != 3 or self.pixels.shape[2] != 3 or self.pixels.dtype != np.uint8:
            got = f"{self.pixels.dtype} {self.pixels.shape}"
            raise ValueError(f"expected BGR uint8 (H, W, 3) pixels, got {got}")
        if self.captured_at is not None and self.captured_at.tzinfo is None:
            raise ValueError(f"expected an aware captured_at, got naive {self.captured_at.isoformat()}")
        if self.earlier_pixels is not None and self.earlier_pixels.shape != self.pixels.shape:
            raise ValueError(
                f"expected earlier_pixels of the frame's shape {self.pixels.shape}, "
                f"got {self.earlier_pixels.shape}"
            )

    @property
    def resolution_wh(self) -> tuple[int, int]:
        """(W, H) of the frame, which boxes are in (`pixels` may be a reduced decode of it)."""
        return self.source_wh or (int(self.pixels.shape[1]), int(self.pixels.shape[0]))


class PhotoAnalyzer(Protocol):
    def analyze(self, image: LoadedImage, *, lon: float | None, lat: float | None) -> PhotoAnalysis:
        """Detect and geotag one image as the source reader made it (vision.image_io.load_image).

        Raises vision.errors.ModelError when no model can be loaded and QueueFullError when
        the inference queue stays full. `lon`/`lat` are a position the user gave by hand.
        """
        ...


def content_hash(data: bytes) -> str:
    """sha256 of encoded bytes, as `LoadedImage.content_hash` (checked before decoding a duplicate)."""
    return hashlib.sha256(data).hexdigest()


def model_version_of(card: ModelCard) -> str:
    """The version string frames and jobs carry for a model: name, version, weights' hash."""
    return f"{card.name}:{card.version}:{card.sha256[:12]}"


def in_office_zone(taken: datetime | None, timezone: str) -> datetime | None:
    """A capture time made aware: EXIF or TIFF local time without an offset is taken as the
    office's zone (the best guess for local photos and surveys); aware times are kept."""
    if taken is None or taken.tzinfo is not None:
        return taken
    return taken.replace(tzinfo=ZoneInfo(timezone))


def observation_drafts(
    detections: Detections,
    geotags: Sequence[Geotag | NoLocation] | None,
    no_location_reason: str,
    taxonomy: Taxonomy,
    *,
    boxes_xyxy: np.ndarray | None = None,
) -> list[ObservationDraft]:
    """One draft per finding of a taxonomy class, placed by its geotag or with the reason it
    has none (`geotags` None: the image has no georeference). `boxes_xyxy` replaces the
    detections' boxes in the drafts (an orthomosaic finding drawn on its tile)."""
    keys = class_keys_of(detections)
    boxes = detections.xyxy if boxes_xyxy is None else boxes_xyxy
    drafts = []
    for i, key in enumerate(keys):
        if key is None or key not in taxonomy:
            continue  # helper labels (garbage_bin ...) are no violation
        x1, y1, x2, y2 = (float(v) for v in boxes[i])
        score = float(detections.confidence[i])
        tag = geotags[i] if geotags is not None else None
        if isinstance(tag, Geotag) and valid_lon_lat(tag.point.lon, tag.point.lat):
            footprint = tag.footprint
            drafts.append(
                ObservationDraft(
                    key,
                    score,
                    (x1, y1, x2, y2),
                    GroundPoint(tag.point.lon, tag.point.lat, tag.point.uncertainty_m),
                    footprint=footprint.polygon if footprint else None,
                    area_m2=footprint.area_m2 if footprint else None,
                    area_uncertainty_m2=footprint.area_uncertainty_m2 if footprint else None,
                )
            )
        else:
            reason = tag.reason if isinstance(tag, NoLocation) else (no_location_reason or "no location")
            drafts.append(ObservationDraft(key, score, (x1, y1, x2, y2), None, location_reason=reason[:300]))
    return drafts
