"""Read-side views of cameras and alerts for the API and the CLI: plain dicts, never ORM rows."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service.cameras.models import Alert, CameraStateChange, Delivery, DeliveryAttempt


def delivery_view(row: Delivery, attempts: list[DeliveryAttempt] | None = None) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": row.id,
        "kind": row.kind,
        "target": row.target,
        "state": row.state,
        "attempts": row.attempts,
        "next_attempt_at": row.next_attempt_at.isoformat() if row.state == "pending" else None,
        "last_error": row.last_error,
        "finished_at": row.finished_at.isoformat() if row.finished_at else None,
    }
    if attempts is not None:
        view["attempt_log"] = [
            {
                "at": a.at.isoformat(),
                "ok": a.ok,
                "status_code": a.status_code,
                "error": a.error,
                "duration_ms": a.duration_ms,
            }
            for a in attempts
        ]
    return view


def alert_view(session: Session, alert: Alert, *, with_attempts: bool = False) -> dict[str, Any]:
    deliveries = session.scalars(
        select(Delivery).where(Delivery.alert_id == alert.id).order_by(Delivery.id)
    ).all()
    views = []
    for row in deliveries:
        attempts = None
        if with_attempts:
            attempts = list(
                session.scalars(
                    select(DeliveryAttempt)
                    .where(DeliveryAttempt.delivery_id == row.id)
                    .order_by(DeliveryAttempt.id)
                )
            )
        views.append(delivery_view(row, attempts))
    return {
        "id": alert.id,
        "rule": alert.rule,
        "delivery": alert.delivery,
        "camera_id": alert.camera_id,
        "preset": alert.preset,
        "class_key": alert.class_key,
        "issue_id": alert.issue_id,
        "observation_id": alert.observation_id,
        "score": alert.score,
        "lon": alert.lon,
        "lat": alert.lat,
        "region": alert.region,
        "frame_time_s": alert.frame_time_s,
        "observed_at": alert.observed_at.isoformat(),
        "created_at": alert.created_at.isoformat(),
        "digested_at": alert.digested_at.isoformat() if alert.digested_at else None,
        "clip": f"/v1/alerts/{alert.id}/clip" if alert.clip_path else None,  # MP4 around the event
        "deliveries": views,
    }


def alert_listing(session: Session, *, limit: int = 100, offset: int = 0) -> list[dict[str, Any]]:
    alerts = session.scalars(select(Alert).order_by(Alert.id.desc()).limit(limit).offset(offset)).all()
    return [alert_view(session, alert) for alert in alerts]


def camera_states(session: Session) -> dict[str, dict[str, Any]]:
    """Each camera's latest state row: state, reason and since when."""
    latest = (
        select(CameraStateChange.camera_id, func.max(CameraStateChange.id).label("id"))
        .group_by(CameraStateChange.camera_id)
        .subquery()
    )
    rows = session.scalars(select(CameraStateChange).join(latest, CameraStateChange.id == latest.c.id)).all()
    return {r.camera_id: {"state": r.state, "reason": r.reason, "since": r.at.isoformat()} for r in rows}
