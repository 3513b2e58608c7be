"""An orthomosaic GeoTIFF: tiles through the shared inference queue, seams merged, tiles into the ledger.

Two passes over the raster, one window in memory at a time (vision.geo.orthomosaic):
1. detect: every tile goes through the Pipeline's batcher; the per-tile findings are
   merged across seams (`merge_tile_detections`) and geotagged through the raster's
   transform (`tile_detections_to_geotags`), so an object cut by a seam is one finding.
2. record: each tile becomes a ledger frame (evidence image, ground coverage) with the
   findings assigned to it (the tile that holds the whole box, nearest its centre).
   Tiles are frames because a frame's coverage is what lets a survey verify rectified
   issues it shows clear (回头看); a tile that is partly nodata never vouches for anything,
   and one with no data at all is skipped.

Detections are not stored between the passes, so a resumed job detects again; recording
resumes after the last tile written. Progress counts tiles detected, then tiles recorded.
"""

from __future__ import annotations

import hashlib
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime
from functools import partial
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np

from service.analysis import GroundPoint, ObservationDraft, PhotoAnalysis
from service.jobs.context import JobContext
from service.jobs.errors import SurveyInputError
from service.jobs.items import JobSpec, Progress, write_item, write_progress
from service.jobs.lease import Lease
from service.jobs.models import ItemOutcome
from service.jobs.retry import detect_with_retry
from service.jobs.store import JobInputStore
from service.ledger.geometry import valid_lon_lat
from vision.detections import Detections
from vision.geo.local_frame import transform_geometry
from vision.geo.orthomosaic import (
    OrthoGeoreference,
    OrthomosaicError,
    OrthoTile,
    iter_tiles,
    pixel_box_polygon,
    tile_detections_to_geotags,
)
from vision.geo.types import Geotag, NoLocation
from vision.pipeline import Pipeline
from vision.tiling import TileWindow, merge_tile_detections, tile_windows

STAGE_DETECT = "detecting tiles"
STAGE_RECORD = "recording tiles"
MIN_VALID_FRACTION = 0.99  # a tile vouches for the ground it shows only when (nearly) all of it is data
PROGRESS_EVERY = 8  # tiles between progress writes in the detection pass


def run_orthomosaic(ctx: JobContext, spec: JobSpec, done: set[int], lease: Lease) -> None:
    from rasterio.errors import RasterioError

    path = JobInputStore(ctx.settings.data_dir).path_of(spec.input_path)
    pipeline = ctx.pipeline()
    tile_size = pipeline.tiling.tile_size or pipeline.detector.input_size
    overlap = pipeline.tiling.overlap
    try:
        georef = OrthoGeoreference.from_path(path)
        windows = tile_windows((georef.width, georef.height), tile_size, overlap)
        per_tile = _detect_tiles(ctx, spec, lease, pipeline, path, tile_size, overlap, len(windows))
        merged = merge_tile_detections(
            per_tile,
            iou_threshold=pipeline.tiling.iou_threshold,
            match_threshold=pipeline.tiling.match_threshold,
            resolution_wh=(georef.width, georef.height),
        )
        geotags = tile_detections_to_geotags(merged, georef.transform, georef.crs, to_wgs84=georef.to_wgs84())
        owners = assign_to_tiles(merged.xyxy, windows)
        captured_at = capture_time(path, ctx.settings.timezone)
        recorded = len(done)
        for seq, tile in enumerate(iter_tiles(path, tile_size, overlap)):
            if seq in done:
                continue
            lease.check()
            recorded += 1
            progress = Progress(len(windows) + recorded, 2 * len(windows), STAGE_RECORD)
            _record_tile(
                ctx, spec, lease, seq, tile, merged, geotags, owners == seq, georef, captured_at, progress
            )
    except (RasterioError, OrthomosaicError) as exc:
        raise SurveyInputError(f"corrupt or unusable GeoTIFF: {exc}") from None


def _detect_tiles(
    ctx: JobContext,
    spec: JobSpec,
    lease: Lease,
    pipeline: Pipeline,
    path: Path,
    tile_size: int,
    overlap: float,
    n_tiles: int,
) -> list[tuple[TileWindow, Detections]]:
    in_flight = max(2, 2 * pipeline.batcher_config.max_batch)  # enough for the batcher to fill a batch
    pending: deque[tuple[TileWindow, Future[Detections]]] = deque()
    per_tile: list[tuple[TileWindow, Detections]] = []

    def collect() -> None:
        window, future = pending.popleft()
        per_tile.append((window, future.result()))
        if len(per_tile) % PROGRESS_EVERY == 0:
            write_progress(ctx, spec, lease, Progress(len(per_tile), 2 * n_tiles, STAGE_DETECT))

    write_progress(ctx, spec, lease, Progress(0, 2 * n_tiles, STAGE_DETECT))
    with ThreadPoolExecutor(in_flight, thread_name_prefix=f"ortho-{spec.id[:8]}") as pool:
        try:
            for tile in iter_tiles(path, tile_size, overlap):
                lease.check()
                call = partial(pipeline.detect, tile.image, tiled=False)
                pending.append((tile.tile, pool.submit(detect_with_retry, call)))
                if len(pending) >= in_flight:
                    collect()
            while pending:
                collect()
        finally:
            for _, future in pending:
                future.cancel()
    write_progress(ctx, spec, lease, Progress(n_tiles, 2 * n_tiles, STAGE_DETECT))
    return per_tile


def assign_to_tiles(xyxy: np.ndarray, windows: list[TileWindow]) -> np.ndarray:
    """For each box (raster pixels), the index of the tile that shows it best.

    A tile holding the whole box wins, the one whose centre is nearest the box's centre
    first; a box larger than any tile's view goes to the tile nearest its centre.
    """
    if len(xyxy) == 0:
        return np.zeros(0, np.int64)
    tiles = np.array([w.xyxy for w in windows], np.float64)  # (T, 4)
    boxes = xyxy.astype(np.float64)  # (N, 4)
    inside = (
        (boxes[:, None, 0] >= tiles[None, :, 0])
        & (boxes[:, None, 1] >= tiles[None, :, 1])
        & (boxes[:, None, 2] <= tiles[None, :, 2])
        & (boxes[:, None, 3] <= tiles[None, :, 3])
    )
    box_centres = (boxes[:, :2] + boxes[:, 2:]) / 2
    tile_centres = (tiles[:, :2] + tiles[:, 2:]) / 2
    distance = np.linalg.norm(box_centres[:, None, :] - tile_centres[None, :, :], axis=2)
    penalty = np.where(inside, 0.0, 1e12)  # containing tiles first
    return np.argmin(distance + penalty, axis=1)


def _record_tile(
    ctx: JobContext,
    spec: JobSpec,
    lease: Lease,
    seq: int,
    tile: OrthoTile,
    merged: Detections,
    geotags: list[Geotag | NoLocation],
    mine: np.ndarray,
    georef: OrthoGeoreference,
    captured_at: datetime | None,
    progress: Progress,
) -> None:
    window = tile.tile
    label = f"tile {seq} at x={window.x}, y={window.y} ({window.width}x{window.height} px)"
    valid = float(tile.image.any(axis=2).mean())
    if valid == 0.0:
        write_item(
            ctx,
            spec,
            lease,
            seq=seq,
            label=label,
            progress=progress,
            outcome=ItemOutcome.skipped,
            reason="no data in this tile (outside the mosaic)",
        )
        return
    drafts = []
    for i in np.flatnonzero(mine):
        box = merged.xyxy[i].astype(np.float64) - (window.x, window.y, window.x, window.y)
        box = np.clip(box, 0, (window.width, window.height, window.width, window.height))
        key = str(merged.data["class_key"][i])
        tag = geotags[i]
        if isinstance(tag, Geotag) and valid_lon_lat(tag.point.lon, tag.point.lat):
            footprint = tag.footprint
            drafts.append(
                ObservationDraft(
                    key,
                    float(merged.confidence[i]),
                    tuple(float(v) for v in box),  # type: ignore[arg-type]
                    GroundPoint(tag.point.lon, tag.point.lat, tag.point.uncertainty_m),
                    footprint=footprint.polygon if footprint else None,
                    area_m2=footprint.area_m2 if footprint else None,
                )
            )
        else:
            drafts.append(
                ObservationDraft(
                    key,
                    float(merged.confidence[i]),
                    tuple(float(v) for v in box),
                    None,  # type: ignore[arg-type]
                    location_reason=getattr(tag, "reason", "no location")[:300],
                )
            )
    coverage = None
    if valid >= MIN_VALID_FRACTION:
        outline = pixel_box_polygon(window.xyxy, georef.transform)
        coverage = transform_geometry(outline, georef.to_wgs84())
    analysis = PhotoAnalysis(
        content_hash=tile_hash(spec.content_hash, window),
        model_version=spec.model_version,
        pixels=tile.image,
        observations=tuple(drafts),
        captured_at=captured_at,
        coverage=coverage,
    )
    write_item(ctx, spec, lease, seq=seq, label=label, progress=progress, analysis=analysis)


def tile_hash(raster_hash: str, window: TileWindow) -> str:
    """A tile's identity: the raster's content hash and the window (the same tile is the same frame)."""
    text = f"orthomosaic-tile:{raster_hash}:{window.x},{window.y},{window.width},{window.height}"
    return hashlib.sha256(text.encode()).hexdigest()


def capture_time(path: Path, timezone: str) -> datetime | None:
    """TIFFTAG_DATETIME (local time without offset, by the TIFF spec) in the office's zone, if present."""
    import rasterio

    with rasterio.open(path) as src:
        raw = src.tags().get("TIFFTAG_DATETIME")
    if not raw:
        return None
    try:
        return datetime.strptime(raw.strip(), "%Y:%m:%d %H:%M:%S").replace(tzinfo=ZoneInfo(timezone))
    except ValueError:
        return None
