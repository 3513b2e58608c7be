"""POST /v1/photos: a citizen's photo (随手拍) in, observations and the issues they opened or joined out."""

from __future__ import annotations

import json
import math
from typing import Annotated

from fastapi import APIRouter, HTTPException, Request, Response, status
from fastapi.concurrency import run_in_threadpool

from service.analysis import PhotoAnalysis
from service.api.deps import AUTHENTICATED, StateDep, require_role
from service.api.schemas import IssueRef, ObservationPublic, PhotoResult
from service.api.state import ServiceState
from service.api.uploads import read_single_file_form
from service.auth import Role
from service.db.models import ApiKey
from service.db.session import session_scope
from service.ledger.events import Actor
from service.ledger.intake import IntakeResult, SourceRef, record_analysis
from vision.errors import ImageLoadError, ModelError, QueueFullError

router = APIRouter(prefix="/v1/photos", tags=["photos"], dependencies=AUTHENTICATED)

FORM_FIELDS = ("lon", "lat", "note")
MAX_NOTE_CHARS = 2000
UPLOAD_LABEL = "upload"  # the name used in messages; the client's filename is never used

_FORM_DOC = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {
                            "type": "string",
                            "format": "binary",
                            "description": "JPEG, PNG, TIFF, WEBP or BMP; at most PATROL_MAX_UPLOAD_BYTES.",
                        },
                        "lon": {
                            "type": "number",
                            "description": "WGS-84 longitude, when the user placed the photo by hand.",
                        },
                        "lat": {"type": "number", "description": "WGS-84 latitude, with lon."},
                        "note": {"type": "string", "maxLength": MAX_NOTE_CHARS},
                    },
                }
            }
        },
    }
}


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=PhotoResult,
    name="upload_photo",
    openapi_extra=_FORM_DOC,
    responses={
        200: {"description": "This image was analysed before; the earlier result."},
        413: {"description": "The body exceeds the upload limit; nothing was read."},
        422: {"description": "Not a usable image (reason and detail say why); nothing stored."},
    },
)
async def upload_photo(
    request: Request, response: Response, state: StateDep, key: Annotated[ApiKey, require_role(Role.citizen)]
) -> PhotoResult:
    form = await read_single_file_form(
        request, limit=state.settings.max_upload_bytes, allowed_fields=FORM_FIELDS
    )
    lon, lat = _manual_position(form.fields)
    note = form.fields.get("note", "")
    if len(note) > MAX_NOTE_CHARS:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, f"note: at most {MAX_NOTE_CHARS} characters"
        )
    try:
        analysis = await run_in_threadpool(
            state.analyzer.analyze, form.file_bytes, name=UPLOAD_LABEL, lon=lon, lat=lat
        )
    except ImageLoadError as exc:
        state.metrics.rejected_uploads.labels(exc.reason).inc()
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, {"reason": exc.reason, "detail": exc.detail}
        ) from None
    except ModelError as exc:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, f"no detection model is available: {exc}"
        ) from None
    except QueueFullError:
        # Back-pressure from the shared inference queue: the client should retry, not give up.
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            "the detector is busy; retry in a few seconds",
            headers={"Retry-After": "5"},
        ) from None
    result = await run_in_threadpool(_record, state, key, analysis, note)
    if result.duplicate:
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
    if not (math.isfinite(lon) and math.isfinite(lat) and -180 <= lon <= 180 and -90 <= lat <= 90):
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            f"expected lon in [-180, 180] and lat in [-90, 90], got {lon}, {lat}",
        )
    return lon, lat


def _record(state: ServiceState, key: ApiKey, analysis: PhotoAnalysis, note: str) -> PhotoResult:
    now = state.clock()
    store = state.evidence_store()
    source = SourceRef(kind="citizen", name=f"key {key.id} ({key.name})", api_key_id=key.id)
    try:
        with session_scope(state.session_factory) as session:
            result = record_analysis(
                session,
                state.intake,
                analysis=analysis,
                source=source,
                store=store,
                actor=Actor.from_key(key),
                now=now,
                note=note,
            )
            body = photo_result(result, state, analysis)
    except BaseException:
        store.discard_written()  # the rows are gone; do not leave their images behind
        raise
    store.commit_written()
    for item in result.observations:
        state.metrics.observations.labels(item.observation.class_key, item.outcome.value).inc()
    for passed in result.passes:
        if passed.verified:
            state.metrics.transitions.labels("verified", "system").inc()
    return body


def photo_result(result: IntakeResult, state: ServiceState, analysis: PhotoAnalysis) -> PhotoResult:
    frame = result.frame
    observations, issues, seen = [], [], set()
    for item in result.observations:
        obs, issue = item.observation, item.issue
        observations.append(
            ObservationPublic(
                id=obs.id,
                class_key=obs.class_key,
                name_zh=state.taxonomy.get(obs.class_key).name_zh,
                score=round(obs.score, 4),
                box_xyxy=(obs.x1, obs.y1, obs.x2, obs.y2),
                lon=obs.lon,
                lat=obs.lat,
                location_uncertainty_m=obs.location_uncertainty_m,
                location_reason=obs.location_reason,
                footprint=json.loads(obs.footprint) if obs.footprint else None,
                area_m2=obs.area_m2,
                observed_at=obs.observed_at,
                model_version=frame.model_version,
                content_hash=frame.content_hash,
                issue_id=issue.id,
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
        location_reason=analysis.location_reason,
        observations=observations,
        issues=issues,
        verified_issue_ids=[p.issue_id for p in result.passes if p.verified],
    )
