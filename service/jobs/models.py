"""The job tables: one `jobs` row per survey, one `job_items` row per photo or tile it produced.

A job is unique on (content hash, model version): the same survey analysed by the same
model is one job, however often it is uploaded. Items are written in the same transaction
as the frame they record, so after a crash the items say exactly which parts are done and
a resumed run neither repeats nor double-counts them.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from service.db.base import Base, UTCDateTime, one_of


class JobState(StrEnum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"


FINAL_STATES = frozenset({JobState.succeeded, JobState.failed, JobState.cancelled})


class JobKind(StrEnum):
    drone_photos = "drone_photos"  # a zip of drone (or other geotagged) photos
    orthomosaic = "orthomosaic"  # a georeferenced GeoTIFF
    changes = "changes"  # what is new between two orthomosaic surveys (service.jobs.survey_changes)


class ItemOutcome(StrEnum):
    recorded = "recorded"  # analysed and written to the ledger now
    already_recorded = "already_recorded"  # this image and model were in the ledger before
    skipped = "skipped"  # not usable (not an image, corrupt, too large, no data); `reason` says why


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (
        one_of("state", JobState),
        one_of("kind", JobKind),
        UniqueConstraint("content_hash", "model_version"),
        # The claim query: the oldest queued job, or a running one whose lease ran out.
        Index("ix_jobs_state_created_at", "state", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, doc="uuid4 hex, server-generated.")
    kind: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16))
    content_hash: Mapped[str] = mapped_column(String(64), doc="sha256 of the uploaded file.")
    model_version: Mapped[str] = mapped_column(String(120))
    input_path: Mapped[str] = mapped_column(String(200), doc="Server-generated path under the data dir.")
    input_bytes: Mapped[int] = mapped_column(BigInteger)
    note: Mapped[str] = mapped_column(Text, default="")
    api_key_id: Mapped[int | None] = mapped_column(ForeignKey("api_keys.id", ondelete="SET NULL"))
    actor: Mapped[str] = mapped_column(String(120), doc="Who submitted it, as issue events name actors.")
    source_name: Mapped[str] = mapped_column(String(200), doc="The ledger source its frames belong to.")
    progress_done: Mapped[int] = mapped_column(Integer, default=0)
    progress_total: Mapped[int] = mapped_column(Integer, default=0)
    stage: Mapped[str] = mapped_column(String(32), default="queued", doc="What the runner is doing now.")
    attempts: Mapped[int] = mapped_column(
        Integer, default=0, doc="Runs started (a resume after a crash is one)."
    )
    lease_owner: Mapped[str | None] = mapped_column(String(120), doc="host:pid:token of the runner.")
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class JobItem(Base):
    """One photo of a zip or one tile of an orthomosaic, and what became of it."""

    __tablename__ = "job_items"
    __table_args__ = (
        one_of("outcome", ItemOutcome),
        UniqueConstraint("job_id", "seq"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    seq: Mapped[int] = mapped_column(Integer, doc="Position in the zip (sorted by name) or tile index.")
    label: Mapped[str] = mapped_column(String(200), doc="Member name or tile window, for display only.")
    outcome: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text)
    frame_id: Mapped[int | None] = mapped_column(ForeignKey("frames.id"))
    observations: Mapped[int] = mapped_column(Integer, default=0)
    issues_opened: Mapped[int] = mapped_column(Integer, default=0)
    issues_joined: Mapped[int] = mapped_column(Integer, default=0)
    issues_rebound: Mapped[int] = mapped_column(Integer, default=0)
    issues_verified: Mapped[int] = mapped_column(Integer, default=0)
