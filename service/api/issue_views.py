"""Issues as GeoJSON Features: the list query with its filters, the detail with history and evidence."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ScalarSelect, Select, distinct, func, select
from sqlalchemy.orm import Session

from service.api.rows import same_named_columns
from service.api.schemas import (
    EventPublic,
    EvidencePublic,
    IssueDetail,
    IssueDetailProperties,
    IssueFeature,
    IssueProperties,
    PointGeometry,
)
from service.db.models import Frame, Issue, IssueEvent, Observation, Region, Source
from service.ledger.events import history
from service.ledger.regions import descendants, region_chain
from service.ledger.states import State, allowed_targets
from vision.taxonomy import Taxonomy

EVIDENCE_KINDS = ("opened", "joined", "clear_pass")


@dataclass(frozen=True)
class IssueFilters:
    states: tuple[State, ...] = ()
    class_keys: tuple[str, ...] = ()
    region_id: int | None = None
    bbox: tuple[float, float, float, float] | None = None
    since: datetime | None = None
    captured: tuple[datetime, datetime] | None = None  # [start, end) of the first capture (UTC)
    source_kinds: tuple[str, ...] = ()  # seen by a source of one of these kinds


def _counts() -> tuple[ScalarSelect[int], ScalarSelect[int]]:
    observations = (
        select(func.count(Observation.id))
        .where(Observation.issue_id == Issue.id)
        .correlate(Issue)
        .scalar_subquery()
    )
    sources = (
        select(func.count(distinct(Frame.source_id)))
        .select_from(Observation)
        .join(Frame, Frame.id == Observation.frame_id)
        .where(Observation.issue_id == Issue.id)
        .correlate(Issue)
        .scalar_subquery()
    )
    return observations, sources


def filtered(filters: IssueFilters, regions: dict[int, Region]) -> Select[Issue]:
    query = select(Issue)
    if filters.states:
        query = query.where(Issue.state.in_([s.value for s in filters.states]))
    if filters.class_keys:
        query = query.where(Issue.class_key.in_(filters.class_keys))
    if filters.region_id is not None:
        query = query.where(Issue.region_id.in_(descendants(regions, filters.region_id)))
    if filters.bbox is not None:
        min_lon, min_lat, max_lon, max_lat = filters.bbox
        query = query.where(Issue.lon.between(min_lon, max_lon), Issue.lat.between(min_lat, max_lat))
    if filters.since is not None:
        query = query.where(Issue.updated_at >= filters.since)
    if filters.captured is not None:
        start, end = filters.captured
        query = query.where(Issue.first_seen_at >= start, Issue.first_seen_at < end)
    if filters.source_kinds:
        seen_by = (
            select(Observation.issue_id)
            .join(Frame, Frame.id == Observation.frame_id)
            .join(Source, Source.id == Frame.source_id)
            .where(Source.kind.in_(filters.source_kinds))
        )
        query = query.where(Issue.id.in_(seen_by))
    return query


def list_features(
    session: Session,
    filters: IssueFilters,
    regions: dict[int, Region],
    taxonomy: Taxonomy,
    *,
    limit: int,
    offset: int,
) -> tuple[list[IssueFeature], int]:
    base = filtered(filters, regions)
    total = session.scalar(select(func.count()).select_from(base.subquery())) or 0
    observations, sources = _counts()
    rows = session.execute(
        base.add_columns(observations, sources).order_by(Issue.id).limit(limit).offset(offset)
    )
    return [feature(issue, n_obs, n_src, regions, taxonomy) for issue, n_obs, n_src in rows], total


def properties(issue: Issue, n_obs: int, n_src: int, regions: dict[int, Region], taxonomy: Taxonomy) -> dict:
    spec = taxonomy.get(issue.class_key)
    chain = region_chain(regions, issue.region_id)
    by_kind = {r.kind: r.name for r in chain}  # innermost of each kind wins: chain is outermost first
    # The stored columns as they are (state validates into State); then what is computed or reshaped.
    return same_named_columns(issue, IssueProperties) | dict(
        name_zh=spec.name_zh,
        name_en=spec.name_en,
        village=by_kind.get("village"),
        grid=by_kind.get("grid"),
        regions=[r.name for r in chain],
        observation_count=n_obs,
        source_count=n_src,
        max_score=round(issue.max_score, 4),
        footprint=json.loads(issue.footprint) if issue.footprint else None,
    )


def _geometry(issue: Issue) -> PointGeometry | None:
    if issue.lon is None or issue.lat is None:
        return None
    return PointGeometry(coordinates=(issue.lon, issue.lat))


def feature(
    issue: Issue, n_obs: int, n_src: int, regions: dict[int, Region], taxonomy: Taxonomy
) -> IssueFeature:
    return IssueFeature(
        id=issue.id,
        geometry=_geometry(issue),
        properties=IssueProperties(**properties(issue, n_obs, n_src, regions, taxonomy)),
    )


def detail(session: Session, issue: Issue, regions: dict[int, Region], taxonomy: Taxonomy) -> IssueDetail:
    observations, sources = _counts()
    n_obs, n_src = session.execute(
        select(observations, sources).select_from(Issue).where(Issue.id == issue.id)
    ).one()
    events = history(session, issue.id)
    props = IssueDetailProperties(
        **properties(issue, n_obs, n_src, regions, taxonomy),
        history=[EventPublic.model_validate(e, from_attributes=True) for e in events],
        evidence=evidence_items(session, issue.id),
        allowed_transitions=list(allowed_targets(State(issue.state))),
    )
    return IssueDetail(id=issue.id, geometry=_geometry(issue), properties=props)


@dataclass(frozen=True)
class EvidenceItem:
    n: int
    kind: str
    frame: Frame
    source: Source
    observation: Observation | None


def evidence_rows(session: Session, issue_id: int) -> list[EvidenceItem]:
    """The issue's evidence in the order it arrived: detections and clear passes, numbered from 1."""
    rows = session.execute(
        select(IssueEvent, Frame, Source, Observation)
        .select_from(IssueEvent)
        .outerjoin(Observation, Observation.id == IssueEvent.observation_id)
        .join(Frame, Frame.id == func.coalesce(IssueEvent.frame_id, Observation.frame_id))
        .join(Source, Source.id == Frame.source_id)
        .where(IssueEvent.issue_id == issue_id, IssueEvent.kind.in_(EVIDENCE_KINDS))
        .order_by(IssueEvent.id)
    ).all()
    return [
        EvidenceItem(n, "clear_pass" if event.kind == "clear_pass" else "detection", frame, source, obs)
        for n, (event, frame, source, obs) in enumerate(rows, start=1)
    ]


def evidence_items(session: Session, issue_id: int) -> list[EvidencePublic]:
    base = f"/v1/issues/{issue_id}/evidence"
    return [
        EvidencePublic(
            n=item.n,
            kind=item.kind,
            frame_id=item.frame.id,
            observation_id=item.observation.id if item.observation else None,
            source_kind=item.source.kind,
            source_name=item.source.name,
            captured_at=item.frame.captured_at,
            score=round(item.observation.score, 4) if item.observation else None,
            crop_url=f"{base}/{item.n}?view=crop" if item.observation else None,
            before_url=f"{base}/{item.n}?view=before" if _has_before(item.observation) else None,
            frame_url=f"{base}/{item.n}?view=frame",
            box_xyxy=_box(item.observation),
            frame_wh=(item.frame.width, item.frame.height),
            details=_details(item.observation),
        )
        for item in evidence_rows(session, issue_id)
    ]


def _has_before(observation: Observation | None) -> bool:
    return observation is not None and observation.before_crop_path is not None


def _details(observation: Observation | None) -> dict[str, Any] | None:
    return json.loads(observation.details) if observation is not None and observation.details else None


def _box(observation: Observation | None) -> tuple[float, float, float, float] | None:
    if observation is None:
        return None
    return (observation.x1, observation.y1, observation.x2, observation.y2)
