"""The ledger's tables.

Geometry is stored as GeoJSON text (WGS-84) with bounding-box columns beside it: PostGIS
is not assumed (the test server has none), so spatial queries prefilter on indexed bbox
or lat/lon columns in SQL and finish the exact test with shapely in Python. Enumerations
are strings guarded by CHECK constraints; the issue states are defined here (`IssueState`,
which `service.ledger.states` moves between), the roles in `service.auth`, and the
migrations repeat the values, since they must not import app code.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import (
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from service.db.base import Base, UTCDateTime, one_of


class IssueState(StrEnum):
    """An issue's states, which its CHECK allows; the moves between them are service.ledger.states'."""

    candidate = "candidate"
    confirmed = "confirmed"
    rejected = "rejected"
    dispatched = "dispatched"
    rectified = "rectified"
    verified = "verified"
    closed = "closed"
    rebound = "rebound"


ISSUE_STATES = tuple(state.value for state in IssueState)
ROLES = ("citizen", "worker", "reviewer", "ingest", "admin")
REGION_KINDS = ("village", "grid")
SOURCE_KINDS = ("citizen", "drone", "camera")
EVENT_KINDS = ("opened", "joined", "transition", "located", "clear_pass", "reviewed")


class Region(Base):
    """A village or a grid (网格) polygon; `parent_id` is the smallest region containing it."""

    __tablename__ = "regions"
    __table_args__ = (
        one_of("kind", REGION_KINDS),
        Index("ix_regions_bbox", "min_lon", "max_lon", "min_lat", "max_lat"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("regions.id", ondelete="SET NULL"), index=True)
    geometry: Mapped[str] = mapped_column(Text, doc="GeoJSON Polygon or MultiPolygon, WGS-84.")
    min_lon: Mapped[float] = mapped_column(Float)
    min_lat: Mapped[float] = mapped_column(Float)
    max_lon: Mapped[float] = mapped_column(Float)
    max_lat: Mapped[float] = mapped_column(Float)
    area_m2: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ApiKey(Base):
    """An API key: only its sha256 is stored; `lookup` (the hash's first 16 hex digits) finds the row."""

    __tablename__ = "api_keys"
    __table_args__ = (one_of("role", ROLES),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(16))
    lookup: Mapped[str] = mapped_column(String(16), index=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Source(Base):
    """Where imagery comes from: a citizen's key, a drone, or a camera at a preset."""

    __tablename__ = "sources"
    __table_args__ = (
        one_of("kind", SOURCE_KINDS),
        UniqueConstraint("kind", "name", "preset"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(200))
    # "" rather than NULL: NULLs never collide in a unique constraint.
    preset: Mapped[str] = mapped_column(String(100), default="")
    api_key_id: Mapped[int | None] = mapped_column(ForeignKey("api_keys.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Frame(Base):
    """One analysed image. (content_hash, model_version) is unique: analysing twice adds nothing."""

    __tablename__ = "frames"
    __table_args__ = (
        UniqueConstraint("content_hash", "model_version"),
        Index("ix_frames_coverage_bbox", "cov_min_lon", "cov_max_lon", "cov_min_lat", "cov_max_lat"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("sources.id"), index=True)
    content_hash: Mapped[str] = mapped_column(String(64), doc="sha256 of the uploaded bytes.")
    model_version: Mapped[str] = mapped_column(String(120))
    captured_at: Mapped[datetime] = mapped_column(UTCDateTime)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    camera_lon: Mapped[float | None] = mapped_column(Float)
    camera_lat: Mapped[float | None] = mapped_column(Float)
    coverage: Mapped[str | None] = mapped_column(Text, doc="GeoJSON polygon of the ground the image shows.")
    cov_min_lon: Mapped[float | None] = mapped_column(Float)
    cov_min_lat: Mapped[float | None] = mapped_column(Float)
    cov_max_lon: Mapped[float | None] = mapped_column(Float)
    cov_max_lat: Mapped[float | None] = mapped_column(Float)
    image_path: Mapped[str] = mapped_column(String(200), doc="Server-generated path under the data dir.")
    note: Mapped[str] = mapped_column(Text, default="")


class Issue(Base):
    """A ledger item (台账条目): one violation at one place, seen by one or more observations."""

    __tablename__ = "issues"
    __table_args__ = (
        one_of("state", ISSUE_STATES),
        # The dedup search: same class, a lat band, then a lon band.
        Index("ix_issues_class_lat_lon", "class_key", "lat", "lon"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    class_key: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16), index=True)
    needs_location: Mapped[bool] = mapped_column(Boolean, default=False)
    lon: Mapped[float | None] = mapped_column(Float)
    lat: Mapped[float | None] = mapped_column(Float)
    location_uncertainty_m: Mapped[float | None] = mapped_column(Float)
    footprint: Mapped[str | None] = mapped_column(Text, doc="GeoJSON polygon of the opening observation.")
    area_m2: Mapped[float | None] = mapped_column(Float)
    area_uncertainty_m2: Mapped[float | None] = mapped_column(Float, doc="~95 % half-width of area_m2.")
    region_id: Mapped[int | None] = mapped_column(ForeignKey("regions.id", ondelete="SET NULL"), index=True)
    max_score: Mapped[float] = mapped_column(Float)
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    state_changed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class Observation(Base):
    """One detection in one frame, with its ground point and evidence crop."""

    __tablename__ = "observations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    frame_id: Mapped[int] = mapped_column(ForeignKey("frames.id"), index=True)
    issue_id: Mapped[int] = mapped_column(ForeignKey("issues.id"), index=True)
    class_key: Mapped[str] = mapped_column(String(64))
    score: Mapped[float] = mapped_column(Float)
    x1: Mapped[float] = mapped_column(Float)
    y1: Mapped[float] = mapped_column(Float)
    x2: Mapped[float] = mapped_column(Float)
    y2: Mapped[float] = mapped_column(Float)
    lon: Mapped[float | None] = mapped_column(Float)
    lat: Mapped[float | None] = mapped_column(Float)
    location_uncertainty_m: Mapped[float | None] = mapped_column(Float)
    location_reason: Mapped[str | None] = mapped_column(String(300), doc="Why there is no location.")
    footprint: Mapped[str | None] = mapped_column(Text)
    area_m2: Mapped[float | None] = mapped_column(Float)
    area_uncertainty_m2: Mapped[float | None] = mapped_column(Float, doc="~95 % half-width of area_m2.")
    crop_path: Mapped[str] = mapped_column(String(200))
    before_crop_path: Mapped[str | None] = mapped_column(
        String(200), doc="The same ground in an earlier survey (a change between surveys)."
    )
    details: Mapped[str | None] = mapped_column(
        Text, doc="JSON: how the finding was made (a change's kind, the epochs' registration error)."
    )
    observed_at: Mapped[datetime] = mapped_column(UTCDateTime)


class IssueEvent(Base):
    """Every change to an issue: opened, joined by an observation, moved, placed, passed clear."""

    __tablename__ = "issue_events"
    __table_args__ = (
        one_of("kind", EVENT_KINDS),
        Index("ix_issue_events_to_state_at", "to_state", "at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    issue_id: Mapped[int] = mapped_column(ForeignKey("issues.id"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    kind: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str] = mapped_column(String(120), doc="'system' or 'key:<id>:<name>'.")
    api_key_id: Mapped[int | None] = mapped_column(ForeignKey("api_keys.id", ondelete="SET NULL"))
    from_state: Mapped[str | None] = mapped_column(String(16))
    to_state: Mapped[str | None] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text, default="")
    observation_id: Mapped[int | None] = mapped_column(ForeignKey("observations.id"))
    frame_id: Mapped[int | None] = mapped_column(ForeignKey("frames.id"))


class LedgerLock(Base):
    """Rows that writers update first, which serialises ledger writes on SQLite and PostgreSQL alike."""

    __tablename__ = "ledger_locks"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    touched_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
