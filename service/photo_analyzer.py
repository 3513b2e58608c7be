"""The production `PhotoAnalyzer`: ONNX pipeline for detection, vision.geo for where things are.

It takes the image as the source reader made it (`vision.image_io.LoadedImage`: pixels,
metadata, kind and content hash read in one pass), so nothing here opens or parses the
image again. The model loads on the first photo (a ledger without a model still serves its
data; a photo then gets 503 naming the missing model). Location, in vision.geo's order: a
manual lon/lat from the form (unless it is 0,0), a drone pose in the XMP, the phone's EXIF
GPS; bogus GPS (0,0, out of range, 0/0 rationals) gives "no location" with the reason, and
the ledger opens `needs_location` candidates for it. Frames whose geometry is known (drone)
also get their ground coverage, which lets them verify rectified issues (回头看).

A blank frame (one colour: a covered lens, a black screen, a zero-filled pixel bomb) is not
shown to the detector: models trained on smoke see "smoke" in a flat dark or grey frame, and
a black photo must never open a straw_burning issue. Its analysis has no observations and
says why (`skipped_reason`).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

import cv2
import numpy as np
import numpy.typing as npt

from service.analysis import GroundPoint, PhotoAnalysis, in_office_zone, model_version_of, observation_drafts
from service.settings import Settings
from vision.detections import Detections
from vision.geo.georeference import ImageGeoreference, georeference_image
from vision.geo.geotagging import geotag_detections
from vision.geo.projector import GroundProjector
from vision.geo.types import Footprint, valid_lon_lat
from vision.image_io import LoadedImage
from vision.taxonomy import Taxonomy

if TYPE_CHECKING:
    from vision.pipeline import Pipeline

QUEUE_WAIT_S = 30.0  # longer than this in the inference queue: 503 "busy", the client retries
# A frame whose grey levels (on a 64-px thumbnail, darkest to brightest) span at most this many
# levels is blank. The thumbnail averages JPEG and sensor noise away; the whole range, not
# percentiles, so one small fire in a dark night frame keeps it a picture; a foggy or smoky
# photo still spans tens of levels.
BLANK_SPREAD_LEVELS = 3
BLANK_THUMBNAIL_PX = 64


class PipelineAnalyzer:
    def __init__(
        self, settings: Settings, taxonomy: Taxonomy | None = None, *, pipeline: Pipeline | None = None
    ) -> None:
        """`pipeline`: one already built (any detector behind it); else the settings' model, loaded
        on first use."""
        self._settings = settings
        self._taxonomy = taxonomy or Taxonomy.default()
        self._pipeline: Pipeline | None = pipeline
        self._lock = threading.Lock()

    def pipeline(self) -> Pipeline:
        with self._lock:
            if self._pipeline is None:
                from vision.pipeline import Pipeline  # onnxruntime or openvino; never torch
                from vision.rules import load_rules

                self._pipeline = Pipeline.from_model(
                    self._settings.model,
                    models_dir=self._settings.models_dir,
                    device=self._settings.device,
                    engine=self._settings.engine,
                    max_pixels=self._settings.max_image_pixels,
                    rules=load_rules(self._settings.rules),
                )
            return self._pipeline

    def close(self) -> None:
        with self._lock:
            if self._pipeline is not None:
                self._pipeline.close()
                self._pipeline = None

    def analyze(self, image: LoadedImage, *, lon: float | None, lat: float | None) -> PhotoAnalysis:
        """Detect (the image's kind decides tiling: a citizen's photo is never tiled, a drone
        photo is), geotag, and make the ledger's drafts. `lon`/`lat`: a position given by hand."""
        pipeline = self.pipeline()
        skipped = blank_frame_reason(image.pixels)
        detections = Detections.empty() if skipped else pipeline.detect(image, timeout=QUEUE_WAIT_S)
        georef = georeference_upload(image, lon, lat)
        tags = (
            geotag_detections(detections, georef.projector, taxonomy=self._taxonomy)
            if georef.projector is not None
            else None
        )
        width, height = image.full_wh
        return PhotoAnalysis(
            content_hash=image.content_hash,
            model_version=model_version_of(pipeline.card),
            pixels=image.pixels,
            observations=tuple(
                observation_drafts(detections, tags, "; ".join(georef.reasons), self._taxonomy)
            ),
            captured_at=in_office_zone(georef.captured_at, self._settings.timezone),
            camera_point=camera_point(georef.projector),
            coverage=coverage(georef.projector, width, height),
            location_reason=None
            if georef.projector is not None
            else ("; ".join(georef.reasons) or "no location"),
            skipped_reason=skipped,
            source_wh=image.source_wh,
        )


def blank_frame_reason(pixels: npt.NDArray[np.uint8]) -> str | None:
    """Why `pixels` is not worth a detector's look (one flat colour), or None for a real picture."""
    thumb = grey_thumbnail(pixels, BLANK_THUMBNAIL_PX)
    spread = int(thumb.max()) - int(thumb.min())
    if spread > BLANK_SPREAD_LEVELS:
        return None
    return f"blank frame: one flat colour (grey levels span {spread}); not analysed"


def grey_thumbnail(pixels: npt.NDArray[np.uint8], side: int) -> npt.NDArray[np.uint8]:
    """The grey image area-averaged down to `side` pixels on its long side (never enlarged).

    Halved first, 2x2 means at a time, while it stays at least 4x the thumbnail: OpenCV's area
    resize has a vectorised path for exact halves only, and one area resize by a large factor
    (25 for a 1600x1200 photo) cost 4.5x more (9.4 ms against 2.1 ms on one core, on every
    upload); the thumbnail stays within two grey levels of the one-resize one
    (tests/service/test_photo_analyzer.py).
    Every pixel counts (an odd edge row or column is repeated, not dropped: a small fire in
    the corner of a night frame keeps it a picture). Grey first: averaging and the grey
    weights commute, and the halvings then move a third of the bytes.
    """
    height, width = pixels.shape[:2]
    scale = min(1.0, side / max(height, width))
    size_wh = (max(1, round(width * scale)), max(1, round(height * scale)))
    grey = cv2.cvtColor(pixels, cv2.COLOR_BGR2GRAY)
    while grey.shape[1] >= 4 * size_wh[0] and grey.shape[0] >= 4 * size_wh[1]:
        odd_h, odd_w = grey.shape[0] % 2, grey.shape[1] % 2
        if odd_h or odd_w:
            grey = cv2.copyMakeBorder(grey, 0, odd_h, 0, odd_w, cv2.BORDER_REPLICATE)
        grey = cv2.resize(grey, (grey.shape[1] // 2, grey.shape[0] // 2), interpolation=cv2.INTER_AREA)
        grey = grey.astype(np.float32, copy=False)  # no rounding between halvings (a 4th of the bytes now)
    thumb = cv2.resize(grey, size_wh, interpolation=cv2.INTER_AREA)
    return np.asarray(np.rint(thumb), dtype=np.uint8)


def georeference_upload(image: LoadedImage, lon: float | None, lat: float | None) -> ImageGeoreference:
    """vision.geo's georeference of an upload from its metadata; a 0,0 or otherwise unreal
    manual position is ignored."""
    manual = (lon, lat) if lon is not None and lat is not None and valid_lon_lat(lon, lat) else None
    georef = georeference_image(image, manual_lonlat=manual)
    if lon is not None and manual is None:
        georef.reasons.append(f"manual position {lon},{lat} is not a real place and was ignored")
    return georef


def camera_point(projector: GroundProjector | None) -> GroundPoint | None:
    if projector is None:
        return None
    described = projector.describe()
    lon, lat = described.get("lon"), described.get("lat")
    if lon is None or lat is None or not valid_lon_lat(float(lon), float(lat)):
        return None
    return GroundPoint(float(lon), float(lat))


def coverage(projector: GroundProjector | None, width: int, height: int):  # type: ignore[no-untyped-def]
    """The ground the whole frame shows, when the camera geometry gives one (not for phone photos)."""
    if projector is None or projector.source == "citizen":
        return None
    outline = projector.footprint(np.array([0.0, 0.0, float(width), float(height)]), "center")
    return outline.polygon if isinstance(outline, Footprint) else None
