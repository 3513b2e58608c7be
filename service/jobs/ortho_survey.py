"""An orthomosaic GeoTIFF: tiles through the shared inference queue, seams merged, tiles into the ledger.

Two passes over the raster, one window in memory at a time (vision.geo.orthomosaic):
1. detect: `detect_orthomosaic` streams every tile through the pipeline's shared queue
   (`Pipeline.detect_raster`: the pipeline's thresholds, seams merged across tiles) and
   geotags the findings through the raster's transform, so an object cut by a seam is one
   finding; its progress callback renews the lease and writes the job's progress.
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
from datetime import datetime

import numpy as np

from service.analysis import PhotoAnalysis, in_office_zone, observation_drafts
from service.jobs.errors import SurveyInputError
from service.jobs.items import JobSpec, Progress, write_item, write_progress
from service.jobs.lease import Lease
from service.jobs.models import ItemOutcome
from service.jobs.store import JobInputStore
from service.runtime import Runtime
from vision.geo.local_frame import transform_geometry
from vision.geo.orthomosaic import (
    OrthoDetections,
    OrthomosaicError,
    OrthoTile,
    detect_orthomosaic,
    iter_tiles,
    pixel_box_polygon,
)
from vision.tiling import TileWindow

STAGE_DETECT = "detecting tiles"
STAGE_RECORD = "recording tiles"
MIN_VALID_FRACTION = 0.99  # a tile vouches for the ground it shows only when (nearly) all of it is data
PROGRESS_EVERY = 8  # tiles between progress writes in the detection pass


def run_orthomosaic(ctx: Runtime, spec: JobSpec, done: set[int], lease: Lease) -> None:
    from rasterio.errors import RasterioError

    path = JobInputStore(ctx.settings.data_dir).path_of(spec.input_path)
    pipeline = ctx.pipeline()

    def on_progress(detected: int, total: int) -> None:
        lease.check()  # a cancelled job or a lost lease stops detection here
        if detected % PROGRESS_EVERY == 0 or detected == total:
            write_progress(ctx, spec, lease, Progress(detected, 2 * total, STAGE_DETECT))

    try:
        found = detect_orthomosaic(path, pipeline, on_progress=on_progress)
        windows, georef = found.windows, found.georef
        owners = assign_to_tiles(found.detections.xyxy, windows)
        captured_at = in_office_zone(georef.captured_at, ctx.settings.timezone)
        recorded = len(done)
        # the windows detection read (larger than a model tile when the raster was shrunk to the target GSD)
        for seq, tile in enumerate(iter_tiles(path, found.window_px, pipeline.tiling.overlap)):
            if seq in done:
                continue
            lease.check()
            recorded += 1
            progress = Progress(len(windows) + recorded, 2 * len(windows), STAGE_RECORD)
            _record_tile(ctx, spec, lease, seq, tile, found, owners == seq, captured_at, progress)
    except (RasterioError, OrthomosaicError) as exc:
        raise SurveyInputError(f"corrupt or unusable GeoTIFF: {exc}") from None


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
    ctx: Runtime,
    spec: JobSpec,
    lease: Lease,
    seq: int,
    tile: OrthoTile,
    found: OrthoDetections,
    mine: np.ndarray,
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
    index = np.flatnonzero(mine)
    mine_only = found.detections[index]
    # Boxes drawn on this tile's evidence image: tile pixels, clipped to the tile.
    boxes = mine_only.xyxy.astype(np.float64) - (window.x, window.y, window.x, window.y)
    boxes = np.clip(boxes, 0, (window.width, window.height, window.width, window.height))
    drafts = observation_drafts(
        mine_only, [found.geotags[i] for i in index], "no location", ctx.taxonomy, boxes_xyxy=boxes
    )
    coverage = None
    if valid >= MIN_VALID_FRACTION:
        georef = found.georef
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
