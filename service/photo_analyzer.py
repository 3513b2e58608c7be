"""The production `PhotoAnalyzer`: ONNX pipeline for detection, vision.geo for where things are.

The model loads on the first photo (a ledger without a model still serves its data; a
photo then gets 503 naming the missing model). Location, in vision.geo's order: a manual
lon/lat from the form (unless it is 0,0), a drone pose in the XMP, the phone's EXIF GPS;
bogus GPS (0,0, out of range, 0/0 rationals) gives "no location" with the reason, and the
ledger opens `needs_location` candidates for it. Frames whose geometry is known (drone)
also get their ground coverage, which lets them verify rectified issues (回头看).
"""

from __future__ import annotations

import tempfile
import threading
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import numpy as np

from service.analysis import GroundPoint, ObservationDraft, PhotoAnalysis, content_hash
from service.ledger.geometry import valid_lon_lat
from service.settings import Settings
from vision.detections import Detections
from vision.geo.georeference import ImageGeoreference, georeference_image
from vision.geo.geotagging import class_keys_of, geotag_detections
from vision.geo.projector import GroundProjector
from vision.geo.types import Footprint, Geotag
from vision.image_io import load_image
from vision.taxonomy import Taxonomy
from vision.tiling import sniff_source_kind

if TYPE_CHECKING:
    from vision.pipeline import Pipeline

QUEUE_WAIT_S = 30.0  # longer than this in the inference queue: 503 "busy", the client retries


class PipelineAnalyzer:
    def __init__(
        self, settings: Settings, taxonomy: Taxonomy | None = None, *, pipeline: Pipeline | None = None
    ) -> None:
        """`pipeline`: one already built (any detector behind it); else the settings' model, loaded
        on first use."""
        self._settings = settings
        self._taxonomy = taxonomy or Taxonomy.default()
        self._zone = ZoneInfo(settings.timezone)
        self._pipeline: Pipeline | None = pipeline
        self._lock = threading.Lock()

    def pipeline(self) -> Pipeline:
        with self._lock:
            if self._pipeline is None:
                from vision.pipeline import Pipeline  # onnxruntime only; never torch

                self._pipeline = Pipeline.from_model(
                    self._settings.model,
                    models_dir=self._settings.models_dir,
                    max_pixels=self._settings.max_image_pixels,
                )
            return self._pipeline

    def close(self) -> None:
        with self._lock:
            if self._pipeline is not None:
                self._pipeline.close()
                self._pipeline = None

    def analyze(
        self, image_bytes: bytes, *, name: str, lon: float | None, lat: float | None
    ) -> PhotoAnalysis:
        image = load_image(
            image_bytes,
            name=name,
            max_pixels=self._settings.max_image_pixels,
            max_bytes=self._settings.max_upload_bytes,
        )
        pipeline = self.pipeline()
        # Uploads are citizens' photos (never tiled: tiles would cut the close-up pile), unless
        # DJI XMP says a drone took it (tiled beyond the model input: its objects are small).
        source = sniff_source_kind(image_bytes, default="citizen")
        detections = pipeline.detect(image, source=source, timeout=QUEUE_WAIT_S)
        georef = georeference_upload(image_bytes, lon, lat)
        drafts = observation_drafts(detections, georef.projector, "; ".join(georef.reasons), self._taxonomy)
        width, height = image.resolution_wh
        return PhotoAnalysis(
            content_hash=content_hash(image_bytes),
            model_version=f"{pipeline.card.name}:{pipeline.card.version}:{pipeline.card.sha256[:12]}",
            pixels=image.pixels,
            observations=tuple(drafts),
            captured_at=self._aware(georef.captured_at),
            camera_point=camera_point(georef.projector),
            coverage=coverage(georef.projector, width, height),
            location_reason=None
            if georef.projector is not None
            else ("; ".join(georef.reasons) or "no location"),
        )

    def _aware(self, taken: datetime | None) -> datetime | None:
        # EXIF local time without an offset: the office's zone is the best guess for local photos.
        if taken is None or taken.tzinfo is not None:
            return taken
        return taken.replace(tzinfo=self._zone)


def georeference_upload(image_bytes: bytes, lon: float | None, lat: float | None) -> ImageGeoreference:
    """vision.geo's georeference of uploaded bytes; a 0,0 or otherwise unreal manual position is ignored."""
    manual = (lon, lat) if valid_lon_lat(lon, lat) else None
    # vision.geo reads files; the bytes go to a temporary file with a name of our own.
    with tempfile.TemporaryDirectory(prefix="patrol-photo-") as folder:
        path = Path(folder) / "upload.img"
        path.write_bytes(image_bytes)
        georef = georeference_image(path, manual_lonlat=manual)  # type: ignore[arg-type]
    if lon is not None and manual is None:
        georef.reasons.append(f"manual position {lon},{lat} is not a real place and was ignored")
    return georef


def observation_drafts(
    detections: Detections, projector: GroundProjector | None, no_location_reason: str, taxonomy: Taxonomy
) -> list[ObservationDraft]:
    keys = class_keys_of(detections)
    tags = geotag_detections(detections, projector, taxonomy=taxonomy) if projector is not None else None
    drafts = []
    for i, key in enumerate(keys):
        if key is None or key not in taxonomy:
            continue  # helper labels (garbage_bin ...) are no violation
        box = tuple(float(v) for v in detections.xyxy[i])
        score = float(detections.confidence[i])
        tag = tags[i] if tags is not None else None
        if isinstance(tag, Geotag) and valid_lon_lat(tag.point.lon, tag.point.lat):
            footprint = tag.footprint
            drafts.append(
                ObservationDraft(
                    key,
                    score,
                    box,  # type: ignore[arg-type]
                    GroundPoint(tag.point.lon, tag.point.lat, tag.point.uncertainty_m),
                    footprint=footprint.polygon if footprint else None,
                    area_m2=footprint.area_m2 if footprint else None,
                )
            )
        else:
            reason = (
                tag.reason
                if tag is not None and not isinstance(tag, Geotag)
                else (no_location_reason or "no location")
            )
            drafts.append(ObservationDraft(key, score, box, None, location_reason=reason[:300]))  # type: ignore[arg-type]
    return drafts


def camera_point(projector: GroundProjector | None) -> GroundPoint | None:
    if projector is None:
        return None
    described = projector.describe()
    lon, lat = described.get("lon"), described.get("lat")
    return GroundPoint(float(lon), float(lat)) if valid_lon_lat(lon, lat) else None


def coverage(projector: GroundProjector | None, width: int, height: int):  # type: ignore[no-untyped-def]
    """The ground the whole frame shows, when the camera geometry gives one (not for phone photos)."""
    if projector is None or projector.source == "phone":
        return None
    outline = projector.footprint(np.array([0.0, 0.0, float(width), float(height)]), "center")
    return outline.polygon if isinstance(outline, Footprint) else None
