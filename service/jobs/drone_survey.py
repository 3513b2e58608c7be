"""A zip of drone photos: each photo analysed like an upload (DJI XMP pose -> footprints and coverage).

The production analyzer places each detection through vision.geo (drone pose, else EXIF
GPS) and gives drone frames their ground coverage, which lets a survey verify rectified
issues it shows clear (回头看). Photos are analysed a few at a time so the shared
inference queue can batch them; they are recorded in archive order.
"""

from __future__ import annotations

import logging
import zipfile
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from service.analysis import PhotoAnalysis, content_hash
from service.jobs.archive import ZipMember, open_archive, read_member
from service.jobs.errors import SurveyInputError
from service.jobs.inputs import zip_limits
from service.jobs.items import JobSpec, Progress, recorded_frame_id, write_item, write_progress
from service.jobs.lease import Lease
from service.jobs.member_header import read_header
from service.jobs.models import ItemOutcome
from service.jobs.retry import detect_with_retry
from service.jobs.store import JobInputStore
from service.runtime import Runtime
from vision.errors import ImageLoadError

logger = logging.getLogger(__name__)
STAGE = "analysing photos"


def run_drone_survey(ctx: Runtime, spec: JobSpec, done: set[int], lease: Lease) -> None:
    path = JobInputStore(ctx.settings.data_dir).path_of(spec.input_path)
    zf, members = open_archive(path, zip_limits(ctx.settings))
    with zf:
        todo = [m for m in members if m.seq not in done]
        count = len(done)
        write_progress(ctx, spec, lease, Progress(count, len(members), STAGE))
        in_flight = max(1, min(4, ctx.pipeline().batcher_config.max_batch))
        pending: deque[tuple[ZipMember, Future[_Prepared]]] = deque()
        with ThreadPoolExecutor(in_flight, thread_name_prefix=f"survey-{spec.id[:8]}") as pool:
            try:
                for member in todo:
                    lease.check()
                    pending.append((member, pool.submit(_prepare, ctx, spec, zf, member)))
                    if len(pending) >= in_flight:
                        count = _write(ctx, spec, lease, *pending.popleft(), count, len(members))
                while pending:
                    lease.check()
                    count = _write(ctx, spec, lease, *pending.popleft(), count, len(members))
            finally:
                for _, future in pending:
                    future.cancel()


@dataclass(frozen=True)
class _Prepared:
    """A member after reading and analysis: an analysis, a frame already recorded, or a skip reason."""

    analysis: PhotoAnalysis | None = None
    frame_id: int | None = None
    skip_reason: str | None = None

    def item(self) -> dict[str, Any]:
        """What `write_item` records for this member."""
        if self.analysis is not None:
            return {"analysis": self.analysis}
        if self.frame_id is not None:
            return {"outcome": ItemOutcome.already_recorded, "frame_id": self.frame_id}
        return {"outcome": ItemOutcome.skipped, "reason": self.skip_reason}


def _prepare(ctx: Runtime, spec: JobSpec, zf: zipfile.ZipFile, member: ZipMember) -> _Prepared:
    if member.skip_reason is not None:
        return _Prepared(skip_reason=member.skip_reason)
    header = read_header(zf, member, max_pixels=ctx.settings.max_image_pixels)
    if header.skip_reason is not None:  # not a photo, or too many pixels: decided before reading it whole
        return _Prepared(skip_reason=header.skip_reason)
    try:
        # zipfile reads through one shared file handle; ZipFile.open serialises access to it.
        data = read_member(zf, member)
    except SurveyInputError as exc:
        return _Prepared(skip_reason=str(exc))
    frame_id = recorded_frame_id(ctx, content_hash(data), spec.model_version)
    if frame_id is not None:
        return _Prepared(frame_id=frame_id)
    try:
        # A survey's photos are drone photos, whether or not their XMP says so (not every
        # drone writes DJI XMP): tiled like drone photos, never left whole like a citizen's.
        image = ctx.read_image(data, name=f"survey photo {member.seq}", default_kind="drone")
    except ImageLoadError as exc:
        return _Prepared(skip_reason=f"{exc.reason}: {exc.detail}")
    return _Prepared(analysis=detect_with_retry(lambda: ctx.analyzer.analyze(image, lon=None, lat=None)))


def _write(
    ctx: Runtime,
    spec: JobSpec,
    lease: Lease,
    member: ZipMember,
    future: Future[_Prepared],
    count: int,
    total: int,
) -> int:
    prepared = future.result()
    if prepared.skip_reason is not None:
        logger.info("job %s: skipped %s: %s", spec.id, member.label, prepared.skip_reason)
    write_item(
        ctx,
        spec,
        lease,
        seq=member.seq,
        label=member.label,
        progress=Progress(count + 1, total, STAGE),
        **prepared.item(),
    )
    return count + 1
