"""POST /v1/photos: a citizen's photo (随手拍) in, observations and the issues they opened or joined out."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Annotated

from fastapi import APIRouter, HTTPException, Request, Response, status
from fastapi.concurrency import run_in_threadpool

from service.analysis import PhotoAnalysis, content_hash
from service.api.deps import AUTHENTICATED, StateDep, require_role
from service.api.rows import same_named_columns
from service.api.schemas import IssueRef, ObservationPublic, PhotoResult
from service.api.upload_forms import NOTE_FIELD, form_note, single_file_form_doc, upload_responses
from service.api.uploads import read_single_file_form
from service.auth import Role
from service.db.models import ApiKey
from service.evidence import frame_jpeg
from service.ledger.events import Actor
from service.ledger.intake import IntakeResult, SourceRef, recorded_result
from service.recording import unit_of_work
from service.runtime import Runtime
from vision.errors import GeoError, ImageLoadError, ModelError
from vision.geo.types import check_lon_lat

router = APIRouter(prefix="/v1/photos", tags=["photos"], dependencies=AUTHENTICATED)

FORM_FIELDS = ("lon", "lat", NOTE_FIELD)
UPLOAD_LABEL = "upload"  # the name used in messages; the client's filename is never used

_FORM_DOC = single_file_form_doc(
    "JPEG, PNG, TIFF, WEBP or BMP; at most PATROL_MAX_UPLOAD_BYTES.",
    lon={"type": "number", "description": "WGS-84 longitude, when the user placed the photo by hand."},
    lat={"type": "number", "description": "WGS-84 latitude, with lon."},
)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=PhotoResult,
    name="upload_photo",
    openapi_extra=_FORM_DOC,
    responses=upload_responses(
        earlier="This image was analysed before; the earlier result.",
        unusable="Not a usable image (reason and detail say why); nothing stored.",
    ),
)
async def upload_photo(
    request: Request, response: Response, state: StateDep, key: Annotated[ApiKey, require_role(Role.citizen)]
) -> PhotoResult:
    form = await read_single_file_form(
        request, limit=state.settings.max_upload_bytes, allowed_fields=FORM_FIELDS
    )
    lon, lat = _manual_position(form.fields)
    note = form_note(form.fields)
    try:
        result = await run_in_threadpool(_answer, state, key, form.file_bytes, lon, lat, note)
    except ImageLoadError as exc:  # answered by service.api.errors, like every deliberate error
        state.metrics.rejected_uploads.labels(exc.reason).inc()
        raise
    if result.duplicate:  # seen before (by its hash, or by a concurrent upload of the same bytes)
        response.status_code = status.HTTP_200_OK
    return result


def _manual_position(fields: dict[str, str]) -> tuple[float | None, float | None]:
    raw_lon, raw_lat = fields.get("lon", "").strip(), fields.get("lat", "").strip()
    if not raw_lon and not raw_lat:
        return None, None
    if not raw_lon or not raw_lat:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "give both lon and lat, or neither")
    try:
        lon, lat = float(raw_lon), float(raw_lat)
    except ValueError:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            f"expected decimal degrees for lon and lat, got {raw_lon!r}, {raw_lat!r}",
        ) from None
    try:
        check_lon_lat(lon, lat)
    except GeoError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
    return lon, lat


def _answer(
    state: Runtime, key: ApiKey, data: bytes, lon: float | None, lat: float | None, note: str
) -> PhotoResult:
    """The upload's whole work in one worker thread: each trip back to the event loop between
    stages cost a thread wake-up and a GIL hand-over under load, for nothing."""
    digest = content_hash(data)  # once: the decode below is told it (sha256 of a photo: ~1-2 ms)
    earlier = _recorded_before(state, digest)
    if earlier is not None:  # the same bytes under the same model: no decoding, no inference
        return earlier
    return _record(state, key, analyze_upload(state, data, lon, lat, digest=digest), note)


def _recorded_before(state: Runtime, digest: str) -> PhotoResult | None:
    """The earlier result for these exact bytes under the current model, looked up by their hash
    before anything decodes them. An analyzer without a pipeline (a test double) names its
    model version only in its analysis, so its uploads are checked at recording instead."""
    if not state.runs_surveys:
        return None
    try:
        version = state.model_version()
    except ModelError:
        return None  # analysis answers: 422 for bad bytes first, else 503 naming the model
    with state.session_factory() as session:
        result = recorded_result(session, digest, version)
        if result is None:
            return None
        frame = result.frame
        reasons = [item.observation.location_reason for item in result.observations]
        located = frame.camera_lon is not None or any(reason is None for reason in reasons)
        return photo_result(result, state, None if located else (reasons[0] if reasons else "no location"))


def analyze_upload(
    state: Runtime, data: bytes, lon: float | None, lat: float | None, *, digest: str | None = None
) -> PhotoAnalysis:
    """The bytes read once by the source reader (a citizen's photo unless its XMP says drone),
    with the frame's evidence JPEG made here, before the recording takes the ledger's lock.
    `digest`: their content hash when the caller has it."""
    image = state.read_image(data, name=UPLOAD_LABEL, default_kind="citizen", content_hash=digest)
    analysis = state.analyzer.analyze(image, lon=lon, lat=lat)
    return replace(analysis, frame_jpeg=frame_jpeg(image, data))


def _record(state: Runtime, key: ApiKey, analysis: PhotoAnalysis, note: str) -> PhotoResult:
    with unit_of_work(state) as work:
        result = work.record(
            analysis, source=SourceRef.of_key("citizen", key), actor=Actor.from_key(key), note=note
        )
        return photo_result(result, state, analysis.location_reason, analysis.skipped_reason)


def photo_result(
    result: IntakeResult, state: Runtime, location_reason: str | None, skipped_reason: str | None = None
) -> PhotoResult:
    frame = result.frame
    observations, issues, seen = [], [], set()
    for item in result.observations:
        obs, issue = item.observation, item.issue
        observations.append(
            ObservationPublic(
                **same_named_columns(obs, ObservationPublic)
                | dict(
                    name_zh=state.taxonomy.get(obs.class_key).name_zh,
                    score=round(obs.score, 4),
                    box_xyxy=(obs.x1, obs.y1, obs.x2, obs.y2),
                    footprint=json.loads(obs.footprint) if obs.footprint else None,
                    model_version=frame.model_version,
                    content_hash=frame.content_hash,
                )
            )
        )
        if issue.id not in seen:
            seen.add(issue.id)
            issues.append(
                IssueRef(
                    id=issue.id,
                    class_key=issue.class_key,
                    name_zh=state.taxonomy.get(issue.class_key).name_zh,
                    state=issue.state,
                    needs_location=issue.needs_location,
                    outcome=item.outcome.value,
                    url=f"/v1/issues/{issue.id}",
                )
            )
    return PhotoResult(
        frame_id=frame.id,
        content_hash=frame.content_hash,
        model_version=frame.model_version,
        duplicate=result.duplicate,
        location_reason=location_reason,
        detection_skipped=skipped_reason,
        observations=observations,
        issues=issues,
        verified_issue_ids=[p.issue_id for p in result.passes if p.verified],
    )
