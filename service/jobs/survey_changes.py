"""Two orthomosaic surveys of one area compared: every new structure an `illegal_structure` candidate.

The job's input is a `ChangeRequest` (service.jobs.change_request): the earlier and the later
survey and their stored GeoTIFFs (and DSMs when both epochs have one). Two passes, as the
orthomosaic job:
1. detect: `vision.change.ChangeDetector` co-registers the epochs (refusing a shift beyond its
   limit) and compares them window by window, one window of both epochs in memory at a time;
   after each window the lease is checked and progress written.
2. record: each change becomes one item and one ledger frame through the recording unit of
   work, like a photo or a tile: the frame is the later epoch's crop around the change, its
   `earlier_pixels` the earlier epoch's crop of the same ground (the observation keeps both
   crops: before and after), the observation its footprint polygon, area and area uncertainty,
   with how it was found and the epochs' registration in its details. A frame carries no ground
   coverage: a crop around one change vouches for nothing else (the later survey's own job does).

A frame's identity is the job and the change's box, so a resumed run (which detects again: the
detector is deterministic) skips the items written, and a frame recorded before is not recorded
twice; the same structure found again by another pair of surveys joins its candidate (dedup by
class, distance and time, as for every source).
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from datetime import datetime
from typing import Any

import numpy as np

from service.analysis import PhotoAnalysis, in_office_zone, observation_drafts
from service.jobs.change_request import ChangeRequest
from service.jobs.errors import SurveyInputError
from service.jobs.items import JobSpec, Progress, write_item, write_progress
from service.jobs.lease import Lease
from service.jobs.store import JobInputStore
from service.runtime import Runtime
from vision.change.detector import ChangeDetector, ChangeResult
from vision.change.epochs import EpochPair
from vision.detections import Detections
from vision.errors import GeoError
from vision.geo.orthomosaic import OrthoGeoreference, tile_detections_to_geotags

STAGE_DETECT = "comparing windows"
STAGE_RECORD = "recording changes"


def run_changes(ctx: Runtime, spec: JobSpec, done: set[int], lease: Lease) -> None:
    from rasterio.errors import RasterioError

    store = JobInputStore(ctx.settings.data_dir)
    request = ChangeRequest.read(store.path_of(spec.input_path))
    before, after, dsm_before, dsm_after = request.paths(store)
    windows = 0

    def on_window(compared: int, total: int) -> None:
        nonlocal windows
        windows = total
        lease.check()  # a cancelled job or a lost lease stops the comparison here
        write_progress(ctx, spec, lease, Progress(compared, total, STAGE_DETECT))

    try:
        detector = ChangeDetector()
        result, pair = detector.run(
            before, after, dsm_before=dsm_before, dsm_after=dsm_after, on_window=on_window
        )
        taken = [OrthoGeoreference.from_path(p).captured_at for p in (before, after)]
    except (RasterioError, GeoError) as exc:
        detail = str(exc).replace(str(store.data_dir.resolve()), "data dir")
        raise SurveyInputError(f"the surveys cannot be compared: {detail}") from None
    found = result.detections
    geotags = tile_detections_to_geotags(found, pair.transform, pair.crs)
    captured = [in_office_zone(t, ctx.settings.timezone) for t in taken]
    shared = _shared_details(request, result, pair, captured)
    for seq in range(len(found)):
        if seq in done:
            continue
        lease.check()
        one = found[[seq]]
        analysis = _analysis(ctx, spec, one, geotags[seq], shared, captured[1])
        box = one.xyxy[0]
        label = (
            f"change {seq}: {one.data['kind'][0]}, {float(one.data['area_m2'][0]):.1f} m² "
            f"at x={box[0]:.0f}, y={box[1]:.0f} (earlier survey's grid, {pair.pixel_m:.2f} m/px)"
        )
        progress = Progress(windows + seq + 1, windows + len(found), STAGE_RECORD)
        write_item(ctx, spec, lease, seq=seq, label=label, progress=progress, analysis=analysis)


def _shared_details(
    request: ChangeRequest, result: ChangeResult, pair: EpochPair, captured: list[datetime | None]
) -> dict[str, Any]:
    """What every change of this comparison shares: the epochs, the registration, the thresholds."""
    reg = result.registration
    return {
        "thresholds": result.detections.metadata.get("model"),
        "uses_dsm": result.uses_dsm,
        "gsd_m": round(pair.pixel_m, 4),
        "registration": {
            "shift_m": round(reg.shift_m, 3),  # measured and corrected before differencing
            "shift_px": [round(v, 2) for v in reg.shift_px],
            "residual_spread_m": round(reg.spread_px * pair.pixel_m, 3),  # the windows' disagreement
            "windows_used": reg.windows_used,
            "windows_tried": reg.windows_tried,
        },
        "before": _epoch(request.before.job_id, captured[0]),
        "after": _epoch(request.after.job_id, captured[1]),
    }


def _epoch(job_id: str, taken: datetime | None) -> dict[str, Any]:
    return {"survey": job_id, "captured_at": taken.isoformat() if taken is not None else None}


def _analysis(
    ctx: Runtime,
    spec: JobSpec,
    one: Detections,
    geotag: Any,
    shared: dict[str, Any],
    captured_at: datetime | None,
) -> PhotoAnalysis:
    """One change as a frame (the later crop) with its earlier crop and its one observation."""
    after_crop = one.data["crop_after"][0]
    before_crop = one.data["crop_before"][0]
    box = one.data["box_in_crop_xyxy"].astype(np.float64)
    drafts = observation_drafts(one, [geotag], "no location", ctx.taxonomy, boxes_xyxy=box)
    if len(drafts) != 1:
        raise SurveyInputError("the ledger's taxonomy has no illegal_structure class to record changes as")
    gain = float(one.data["height_gain_m"][0])
    draft = dataclasses.replace(
        drafts[0],
        # the changed pixels' area, not the outline rectangle's (a ragged change would read more)
        area_m2=float(one.data["area_m2"][0]),
        area_uncertainty_m2=float(one.data["area_uncertainty_m2"][0]),
        details={
            "kind": str(one.data["kind"][0]),
            "height_gain_m": round(gain, 2) if math.isfinite(gain) else None,
            **shared,
        },
    )
    return PhotoAnalysis(
        content_hash=change_hash(spec.content_hash, one.xyxy[0]),
        model_version=spec.model_version,
        pixels=np.ascontiguousarray(after_crop),
        observations=(draft,),
        captured_at=captured_at,
        earlier_pixels=np.ascontiguousarray(before_crop),
    )


def change_hash(request_hash: str, xyxy: np.ndarray) -> str:
    """A change's identity: the comparison's and the box's (earlier grid pixels, rounded)."""
    box = ",".join(str(round(float(v))) for v in xyxy)
    return hashlib.sha256(f"survey-change:{request_hash}:{box}".encode()).hexdigest()
