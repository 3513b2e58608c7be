"""The cameras' tables: configured cameras, their state changes, alerts, deliveries and attempts.

Every alert and every delivery attempt is a row, kept: what was sent is stored as sent (the
exact body), so a resend repeats it byte for byte and a receiver can check its signature
again. Reviewer-rejected false alarms need no table: they are the ledger's `rejected`
issues seen by a camera preset (`service.cameras.memory`).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Boolean, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from service.db.base import Base, UTCDateTime, one_of


class CameraState(StrEnum):
    online = "online"
    degraded = "degraded"
    offline = "offline"


class DeliveryKind(StrEnum):
    webhook = "webhook"
    loudspeaker = "loudspeaker"


class DeliveryState(StrEnum):
    pending = "pending"  # due at next_attempt_at
    delivered = "delivered"
    skipped = "skipped"  # the loudspeaker spoke less than min_interval_s ago
    dead = "dead"  # max_attempts failed: the dead letter, until `patrol alerts resend`


class CameraRow(Base):
    """A camera configured through the API (the `service.cameras.config.CameraConfig` as JSON)."""

    __tablename__ = "cameras"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    config: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class CameraStateChange(Base):
    """A camera's state from `at` on; its current state is its latest row."""

    __tablename__ = "camera_states"
    __table_args__ = (
        one_of("state", CameraState),
        Index("ix_camera_states_camera_id_at", "camera_id", "at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    camera_id: Mapped[str] = mapped_column(String(40))
    state: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(UTCDateTime)


class Alert(Base):
    """A finding that met an alert rule: the issue it opened (or reopened) and where."""

    __tablename__ = "alerts"
    __table_args__ = (
        one_of("delivery", ("immediate", "digest")),
        Index("ix_alerts_delivery_digested", "delivery", "digested_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    rule: Mapped[str] = mapped_column(String(60))
    delivery: Mapped[str] = mapped_column(String(16))
    camera_id: Mapped[str] = mapped_column(String(40), index=True)
    preset: Mapped[str] = mapped_column(String(100))
    class_key: Mapped[str] = mapped_column(String(40))
    issue_id: Mapped[int] = mapped_column(ForeignKey("issues.id"), index=True)
    observation_id: Mapped[int] = mapped_column(ForeignKey("observations.id"))
    score: Mapped[float] = mapped_column(Float)
    lon: Mapped[float | None] = mapped_column(Float)
    lat: Mapped[float | None] = mapped_column(Float)
    region: Mapped[str | None] = mapped_column(String(200))
    frame_time_s: Mapped[float] = mapped_column(Float, doc="Time of the frame in its stream.")
    observed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    digested_at: Mapped[datetime | None] = mapped_column(UTCDateTime, doc="When a digest took it.")
    clip_path: Mapped[str | None] = mapped_column(
        String(200), doc="The MP4 around the event under the data dir, once written (service.cameras.clips)."
    )


class Delivery(Base):
    """One message to one target: an alert's webhook or broadcast, or a digest of alerts."""

    __tablename__ = "alert_deliveries"
    __table_args__ = (
        one_of("kind", DeliveryKind),
        one_of("state", DeliveryState),
        Index("ix_alert_deliveries_state_next_attempt_at", "state", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    alert_id: Mapped[int | None] = mapped_column(
        ForeignKey("alerts.id", ondelete="CASCADE"),
        index=True,
        doc="None for a digest (its body lists them).",
    )
    kind: Mapped[str] = mapped_column(String(16))
    target: Mapped[str] = mapped_column(String(60), doc="The webhook's or loudspeaker's name.")
    body: Mapped[str] = mapped_column(Text, doc="The JSON sent, exactly.")
    state: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class DeliveryAttempt(Base):
    __tablename__ = "alert_delivery_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    delivery_id: Mapped[int] = mapped_column(
        ForeignKey("alert_deliveries.id", ondelete="CASCADE"), index=True
    )
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    ok: Mapped[bool] = mapped_column(Boolean)
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    duration_ms: Mapped[float] = mapped_column(Float)
