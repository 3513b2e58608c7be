"""Request (…Create) and response (…Public) models. Routes never return ORM rows."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import Path
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from service.errors import check_no_nul
from service.ledger.states import State
from service.reports import RankingRow
from vision.geo.types import Latitude, Longitude


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- inputs ---------------------------------------------------------------------------------------

# Bounds from the column types, so that an out-of-range number is a 422 here and never reaches
# the driver (an OverflowError or a DataError, i.e. a 500): row ids are INTEGER columns, 32-bit
# on PostgreSQL (SQLite's hold 64 bits, but the two backends answer alike); LIMIT and OFFSET
# take 64-bit integers on both.
MAX_ROW_ID = 2**31 - 1
MAX_OFFSET = 2**63 - 1
RowId = Annotated[int, Path(ge=1, le=MAX_ROW_ID, description="A row id (1 to 2^31-1).")]

# Free text that is stored: no NUL character (service.errors.check_no_nul).
StoredText = Annotated[str, AfterValidator(lambda value: check_no_nul("text", value))]


class TransitionCreate(_In):
    to: State = Field(description="Target state.")
    reason: StoredText = Field(default="", max_length=2000, description="Why; shown in the issue's history.")


class LocationUpdate(_In):
    lon: Longitude
    lat: Latitude
    reason: StoredText = Field(default="", max_length=2000)


# -- photos ---------------------------------------------------------------------------------------


class ObservationPublic(_Out):
    id: int
    class_key: str
    name_zh: str
    score: float
    box_xyxy: tuple[float, float, float, float]
    lon: float | None
    lat: float | None
    location_uncertainty_m: float | None
    location_reason: str | None
    footprint: dict[str, Any] | None
    area_m2: float | None
    area_uncertainty_m2: float | None = Field(
        default=None, description="About 95 % half-width of area_m2 (pose, box and height-prior errors)."
    )
    observed_at: datetime
    model_version: str
    content_hash: str
    issue_id: int


class IssueRef(_Out):
    id: int
    class_key: str
    name_zh: str
    state: State
    needs_location: bool
    outcome: Literal["opened", "joined", "rebound", "suppressed", "recorded"]
    url: str


class PhotoResult(_Out):
    frame_id: int
    content_hash: str
    model_version: str
    duplicate: bool = Field(description="True when this image was analysed before; nothing new was stored.")
    location_reason: str | None = Field(description="Why the photo has no location, when it has none.")
    detection_skipped: str | None = Field(
        default=None, description="Why no detector looked at the photo (a blank, one-colour frame)."
    )
    observations: list[ObservationPublic]
    issues: list[IssueRef]
    verified_issue_ids: list[int] = Field(default_factory=list)


# -- issues ---------------------------------------------------------------------------------------


class IssueProperties(_Out):
    id: int
    class_key: str
    name_zh: str
    name_en: str
    state: State
    needs_location: bool
    region_id: int | None
    village: str | None
    grid: str | None
    regions: list[str] = Field(description="Names of the containing regions, outermost first.")
    observation_count: int
    source_count: int
    max_score: float
    location_uncertainty_m: float | None
    area_m2: float | None
    area_uncertainty_m2: float | None = Field(
        default=None, description="About 95 % half-width of area_m2 (pose, box and height-prior errors)."
    )
    footprint: dict[str, Any] | None
    first_seen_at: datetime
    last_seen_at: datetime
    state_changed_at: datetime
    created_at: datetime
    updated_at: datetime


class PointGeometry(_Out):
    type: Literal["Point"] = "Point"
    coordinates: tuple[float, float]


class IssueFeature(_Out):
    type: Literal["Feature"] = "Feature"
    id: int
    geometry: PointGeometry | None
    properties: IssueProperties


class IssueCollection(_Out):
    type: Literal["FeatureCollection"] = "FeatureCollection"
    features: list[IssueFeature]
    total: int = Field(description="Matching issues before limit/offset.")


class EventPublic(_Out):
    id: int
    at: datetime
    kind: str
    actor: str
    from_state: str | None
    to_state: str | None
    reason: str
    observation_id: int | None
    frame_id: int | None


class EvidencePublic(_Out):
    n: int = Field(description="Position in the issue's evidence, from 1; GET .../evidence/{n}.")
    kind: Literal["detection", "clear_pass"]
    frame_id: int
    observation_id: int | None
    source_kind: str
    source_name: str
    captured_at: datetime
    score: float | None
    crop_url: str | None
    before_url: str | None = Field(
        default=None,
        description="A change between surveys: the same ground in the earlier survey (crop_url: the later).",
    )
    frame_url: str
    box_xyxy: tuple[float, float, float, float] | None = Field(
        default=None, description="The detection's box in frame pixels (none for a clear pass)."
    )
    frame_wh: tuple[int, int] = Field(description="The frame's width and height in pixels.")
    details: dict[str, Any] | None = Field(
        default=None,
        description="How the finding was made (a change's kind, the epochs' registration error).",
    )


class IssueDetailProperties(IssueProperties):
    history: list[EventPublic]
    evidence: list[EvidencePublic]
    allowed_transitions: list[State]


class IssueDetail(_Out):
    type: Literal["Feature"] = "Feature"
    id: int
    geometry: PointGeometry | None
    properties: IssueDetailProperties


# -- regions --------------------------------------------------------------------------------------


class RegionProperties(_Out):
    id: int
    name: str
    kind: Literal["village", "grid"]
    parent_id: int | None
    parent_name: str | None
    area_m2: float


class RegionFeature(_Out):
    type: Literal["Feature"] = "Feature"
    id: int
    geometry: dict[str, Any] | None = Field(
        description="The Polygon or MultiPolygon with `geometry=true`; null otherwise (GeoJSON allows it)."
    )
    properties: RegionProperties


class RegionCollection(_Out):
    type: Literal["FeatureCollection"] = "FeatureCollection"
    features: list[RegionFeature]


class RegionImportResult(_Out):
    created: list[RegionProperties]
    skipped: list[str] = Field(description="Names of features identical to regions already stored.")
    issues_reassigned: int


# -- reports --------------------------------------------------------------------------------------


class RankingReport(_Out):
    month: str
    timezone: str
    rule: str
    rows: list[RankingRow]


class HealthPublic(_Out):
    status: Literal["ok", "degraded"]
    database: str
    schema_revision: str | None


class ClassPublic(_Out):
    key: str
    name_zh: str
    name_en: str
    colour: str = Field(description="#RRGGBB, for maps and annotated evidence.")
    sources: list[str] = Field(description="Imagery kinds the class applies to.")


class TaxonomyPublic(_Out):
    classes: list[ClassPublic]


class MovePublic(_Out):
    from_state: State
    to_state: State


class KeyPublic(_Out):
    """Who the caller is, and the state changes their role may make (the API still checks each)."""

    id: int
    name: str
    role: str
    moves: list[MovePublic]
