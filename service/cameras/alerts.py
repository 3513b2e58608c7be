"""Alert rules applied to recorded findings: which new issue alerts whom, now or in a daily digest.

Only a finding that opened an issue or reopened one (rebound) alerts: a pile the ledger
already knows joins its issue and stays quiet, however often a camera sees it. A rule
matches on class, camera and region (the issue's village or grid, or any region containing
it). `immediate` rules queue their deliveries in the transaction that records the finding,
so an alert exists exactly when its finding does; `digest` rules collect alerts that one
message per rule and webhook carries at the rule's local hour (`queue_digests`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.cameras.config import AlertRule, CameraConfig, WatchConfig
from service.cameras.models import Alert, Delivery, DeliveryKind, DeliveryState
from service.db.models import Region
from service.ledger.intake import ObservationOutcome, Outcome
from vision.taxonomy import Taxonomy

ALERTING_OUTCOMES = frozenset({Outcome.opened, Outcome.rebound})


def region_names(session: Session, region_id: int | None) -> list[str]:
    """The issue's region and every region containing it, smallest first."""
    names: list[str] = []
    seen: set[int] = set()
    while region_id is not None and region_id not in seen:
        seen.add(region_id)
        region = session.get(Region, region_id)
        if region is None:
            break
        names.append(region.name)
        region_id = region.parent_id
    return names


def matching_rules(
    rules: Iterable[AlertRule], *, class_key: str, camera_id: str, regions: list[str]
) -> list[AlertRule]:
    return [
        rule
        for rule in rules
        if class_key in rule.classes
        and (not rule.cameras or camera_id in rule.cameras)
        and (not rule.regions or set(rule.regions) & set(regions))
    ]


def raise_alerts(
    session: Session,
    config: WatchConfig,
    taxonomy: Taxonomy,
    *,
    camera: CameraConfig,
    preset: str,
    outcomes: Iterable[ObservationOutcome],
    frame_time_s: float,
    now: datetime,
    due: datetime,
) -> list[Alert]:
    """Alerts (and their immediate deliveries, first attempt at `due` on the dispatcher's clock)
    for the findings that opened or reopened an issue; `now` is the ledger's time."""
    alerts = []
    for item in outcomes:
        if item.outcome not in ALERTING_OUTCOMES:
            continue
        obs, issue = item.observation, item.issue
        regions = region_names(session, issue.region_id)
        for rule in matching_rules(
            config.rules, class_key=obs.class_key, camera_id=camera.id, regions=regions
        ):
            alert = Alert(
                rule=rule.name,
                delivery=rule.delivery,
                camera_id=camera.id,
                preset=preset,
                class_key=obs.class_key,
                issue_id=issue.id,
                observation_id=obs.id,
                score=obs.score,
                lon=obs.lon,
                lat=obs.lat,
                region=regions[0] if regions else None,
                frame_time_s=frame_time_s,
                observed_at=obs.observed_at,
                created_at=now,
            )
            session.add(alert)
            session.flush()
            if rule.delivery == "immediate":
                _queue_immediate(session, config, taxonomy, rule, camera, alert, item.outcome, due)
            alerts.append(alert)
    return alerts


def alert_payload(alert: Alert, taxonomy: Taxonomy, *, camera_name: str, outcome: str) -> dict[str, Any]:
    return {
        "type": "alert",
        "alert_id": alert.id,
        "rule": alert.rule,
        "camera": {"id": alert.camera_id, "name": camera_name, "preset": alert.preset},
        "class_key": alert.class_key,
        "class_zh": taxonomy.get(alert.class_key).name_zh,
        "score": round(alert.score, 4),
        "outcome": outcome,
        "issue_id": alert.issue_id,
        "issue_url": f"/v1/issues/{alert.issue_id}",
        "lon": alert.lon,
        "lat": alert.lat,
        "region": alert.region,
        "observed_at": alert.observed_at.isoformat(),
        "frame_time_s": round(alert.frame_time_s, 3),
    }


def _queue_immediate(
    session: Session,
    config: WatchConfig,
    taxonomy: Taxonomy,
    rule: AlertRule,
    camera: CameraConfig,
    alert: Alert,
    outcome: str,
    due: datetime,
) -> None:
    body = _json(alert_payload(alert, taxonomy, camera_name=camera.name, outcome=outcome))
    for hook in rule.webhooks:
        add_delivery(session, DeliveryKind.webhook, hook, body, due, alert_id=alert.id)
    if rule.loudspeaker:
        text = rule.message.format_map(
            _Fill(camera=camera.name, class_zh=taxonomy.get(alert.class_key).name_zh)
        )
        for speaker in camera.loudspeakers:
            speech = _json({"speaker": speaker, "text": text, "camera": camera.id, "alert_id": alert.id})
            add_delivery(session, DeliveryKind.loudspeaker, speaker, speech, due, alert_id=alert.id)


def queue_digests(
    session: Session, config: WatchConfig, taxonomy: Taxonomy, now: datetime, timezone: str, *, due: datetime
) -> int:
    """For each digest rule whose local hour has come today: one message per webhook listing its
    alerts not yet digested that were raised before that hour (`now`: the ledger's time; `due`:
    the first attempt, on the dispatcher's clock). Returns the deliveries queued."""
    local = now.astimezone(ZoneInfo(timezone))
    queued = 0
    for rule in config.rules:
        if rule.delivery != "digest" or local.hour < rule.digest_hour:
            continue
        cutoff = local.replace(hour=rule.digest_hour, minute=0, second=0, microsecond=0)
        alerts = session.scalars(
            select(Alert)
            .where(
                Alert.rule == rule.name,
                Alert.delivery == "digest",
                Alert.digested_at.is_(None),
                Alert.created_at < cutoff,
            )
            .order_by(Alert.id)
        ).all()
        if not alerts:
            continue
        names = {c.id: c.name for c in config.cameras}
        body = _json(
            {
                "type": "digest",
                "rule": rule.name,
                "day": local.date().isoformat(),
                "until": cutoff.isoformat(),
                "alerts": [
                    alert_payload(
                        a, taxonomy, camera_name=names.get(a.camera_id, a.camera_id), outcome="digest"
                    )
                    for a in alerts
                ],
            }
        )
        for hook in rule.webhooks:
            add_delivery(session, DeliveryKind.webhook, hook, body, due, alert_id=None)
            queued += 1
        for alert in alerts:
            alert.digested_at = now
    return queued


def add_delivery(
    session: Session, kind: DeliveryKind, target: str, body: str, now: datetime, *, alert_id: int | None
) -> Delivery:
    """A pending delivery of `body` to `target`, due `now` (the dispatcher sends it)."""
    delivery = Delivery(
        alert_id=alert_id,
        kind=kind,
        target=target,
        body=body,
        state=DeliveryState.pending,
        attempts=0,
        next_attempt_at=now,
        created_at=now,
    )
    session.add(delivery)
    return delivery


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


class _Fill(dict[str, str]):
    """Template fields: a name the template uses but we do not know stays as written."""

    def __missing__(self, key: str) -> str:
        return "{" + key + "}"
