"""Cameras and their alerts: configured cameras (CRUD), their states, alerts with every delivery
attempt and the clip around their event, and resending a dead-lettered alert.

Cameras stored here (the cameras file's schema) are watched by every running camera service
(`patrol serve` with PATROL_CAMERAS_FILE, `patrol watch`) within its reload interval (5 s),
without a restart; a stored camera overrides the file's camera of the same id
(`service.cameras.runner.CameraService`).
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response, status
from fastapi.responses import FileResponse
from pydantic import ValidationError
from sqlalchemy import select

from service.api.deps import AUTHENTICATED, NowDep, SessionDep, StateDep, require_role
from service.api.schemas import MAX_OFFSET, MAX_ROW_ID  # bounds of the id and OFFSET columns
from service.auth import Role
from service.cameras.config import CameraConfig, CameraConfigError
from service.cameras.delivery import resend_alert
from service.cameras.models import Alert, CameraRow
from service.cameras.views import alert_listing, alert_view, camera_states
from service.errors import NotFoundError

router = APIRouter(prefix="/v1", tags=["cameras"], dependencies=AUTHENTICATED)

READERS = (Role.worker, Role.reviewer)
CameraId = Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9_-]{0,39}$")]


def _camera_public(row: CameraRow, states: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return {
        "id": row.id,
        "config": json.loads(row.config),
        "state": states.get(row.id),
        "updated_at": row.updated_at.isoformat(),
    }


@router.get("/cameras", dependencies=[require_role(*READERS)])
def list_cameras(session: SessionDep) -> dict[str, Any]:
    """Cameras stored through the API, and the latest state of every camera a watcher reported."""
    states = camera_states(session)
    rows = session.scalars(select(CameraRow).order_by(CameraRow.id)).all()
    return {"cameras": [_camera_public(r, states) for r in rows], "states": states}


@router.get("/cameras/{camera_id}", dependencies=[require_role(*READERS)])
def get_camera(camera_id: CameraId, session: SessionDep) -> dict[str, Any]:
    row = session.get(CameraRow, camera_id)
    if row is None:
        raise NotFoundError(f"no camera {camera_id!r}")
    return _camera_public(row, camera_states(session))


@router.put("/cameras/{camera_id}", dependencies=[require_role(Role.admin)])
def put_camera(camera_id: CameraId, body: dict[str, Any], session: SessionDep, now: NowDep) -> dict[str, Any]:
    """Create or replace a camera (the cameras file's schema: service/cameras/config.py)."""
    try:
        config = CameraConfig.model_validate({**body, "id": camera_id})
    except ValidationError as exc:
        raise CameraConfigError(
            f"invalid camera: {exc.errors(include_url=False, include_input=False)}"
        ) from None
    row = session.get(CameraRow, camera_id)
    text = config.model_dump_json()
    if row is None:
        row = CameraRow(id=camera_id, config=text, created_at=now, updated_at=now)
        session.add(row)
    else:
        row.config, row.updated_at = text, now
    session.commit()
    return _camera_public(row, camera_states(session))


@router.delete(
    "/cameras/{camera_id}", status_code=status.HTTP_204_NO_CONTENT, dependencies=[require_role(Role.admin)]
)
def delete_camera(camera_id: CameraId, session: SessionDep) -> Response:
    row = session.get(CameraRow, camera_id)
    if row is None:
        raise NotFoundError(f"no camera {camera_id!r}")
    session.delete(row)
    session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/alerts", dependencies=[require_role(*READERS)])
def list_alerts(
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> dict[str, Any]:
    """Alerts, newest first, each with its deliveries' states."""
    return {"alerts": alert_listing(session, limit=limit, offset=offset)}


@router.get("/alerts/{alert_id}", dependencies=[require_role(*READERS)])
def get_alert(alert_id: Annotated[int, Path(ge=1, le=MAX_ROW_ID)], session: SessionDep) -> dict[str, Any]:
    """One alert with every delivery attempt (time, status, error)."""
    alert = session.get(Alert, alert_id)
    if alert is None:
        raise NotFoundError(f"no alert {alert_id}")
    return alert_view(session, alert, with_attempts=True)


@router.get(
    "/alerts/{alert_id}/clip",
    dependencies=[require_role(*READERS)],
    response_class=FileResponse,
    responses={200: {"content": {"video/mp4": {}}}},
)
def get_alert_clip(
    alert_id: Annotated[int, Path(ge=1, le=MAX_ROW_ID)], session: SessionDep, state: StateDep
) -> FileResponse:
    """The MP4 kept around the alert's event (404 until it is written, or when clips are off)."""
    alert = session.get(Alert, alert_id)
    if alert is None:
        raise NotFoundError(f"no alert {alert_id}")
    if alert.clip_path is None:
        raise NotFoundError(f"alert {alert_id} has no clip (yet)")
    return FileResponse(state.evidence_store().path_of(alert.clip_path), media_type="video/mp4")


@router.post("/alerts/{alert_id}/resend", dependencies=[require_role(Role.reviewer)])
def resend(
    alert_id: Annotated[int, Path(ge=1, le=MAX_ROW_ID)],
    session: SessionDep,
    now: NowDep,
    include_delivered: Annotated[bool, Query(alias="all")] = False,
) -> dict[str, Any]:
    """Queue the alert's dead-lettered deliveries (with all=true also delivered/skipped) again."""
    if session.get(Alert, alert_id) is None:
        raise NotFoundError(f"no alert {alert_id}")
    queued = resend_alert(session, alert_id, now, include_delivered=include_delivered)
    session.commit()
    return {"alert_id": alert_id, "queued": queued}
