"""Turn one analysed image into ledger rows: frame, observations, issues opened or joined, 回头看.

The caller runs the analysis first (slow, no lock held) and commits after. Here, inside one
transaction: take the ledger lock, return the earlier result if this (content hash, model
version) was already recorded, write the evidence images, then for each detection join
the matching issue (see `dedup`) or open a candidate, and finally let a frame with a
known ground coverage vouch for rectified issues it shows empty (see `verification`). A
detection that matches no open issue but lies at a rejected false alarm's place joins that
rejected issue instead of opening a candidate, unless it is much stronger or the rejection
is old (see `suppression`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from service.analysis import ObservationDraft, PhotoAnalysis
from service.db.models import ApiKey, Frame, Issue, Observation, Source
from service.db.session import lock_ledger
from service.evidence import EvidenceStore
from service.ledger.dedup import DedupRules, MatchAction, find_match
from service.ledger.events import Actor, record_event, transition
from service.ledger.geometry import to_geojson_text
from service.ledger.regions import smallest_region_containing
from service.ledger.states import State
from service.ledger.suppression import RejectedMatch, SuppressionRules, Verdict, bundled_rules, judge_rejected
from service.ledger.verification import PassOutcome, VerificationRules, check_rectified_issues
from vision.taxonomy import Taxonomy

# The recording path's lookups, built once: building a select() and its cache key cost
# 0.1-0.4 ms of CPU each time, and a photo ran them three times (issue #13).
_SOURCE_BY_NAME = select(Source).where(
    Source.kind == bindparam("kind"), Source.name == bindparam("name"), Source.preset == bindparam("preset")
)
_FRAME_BY_HASH = select(Frame).where(
    Frame.content_hash == bindparam("content_hash"), Frame.model_version == bindparam("model_version")
)


class Outcome(StrEnum):
    opened = "opened"  # a new candidate issue
    joined = "joined"  # added to an existing issue
    rebound = "rebound"  # added to a rectified/verified/closed issue and reopened it
    suppressed = "suppressed"  # added to a rejected issue, which stays rejected
    recorded = "recorded"  # this image was recorded before; nothing new was written


@dataclass(frozen=True)
class SourceRef:
    kind: str  # citizen | drone | camera (the ledger's source kinds: service.db.models.SOURCE_KINDS)
    name: str
    preset: str = ""
    api_key_id: int | None = None

    @classmethod
    def of_key(cls, kind: str, key: ApiKey) -> SourceRef:
        """The source an API key's uploads come from (one per key, named after it)."""
        return cls(kind=kind, name=f"key {key.id} ({key.name})", api_key_id=key.id)


@dataclass(frozen=True)
class ObservationOutcome:
    observation: Observation
    issue: Issue
    outcome: Outcome


@dataclass(frozen=True)
class IntakeResult:
    frame: Frame
    duplicate: bool
    observations: list[ObservationOutcome]
    passes: list[PassOutcome]


@dataclass(frozen=True)
class IntakeContext:
    """Everything intake needs besides the session; built once per app."""

    taxonomy: Taxonomy
    dedup: DedupRules
    verification: VerificationRules
    suppression: SuppressionRules = field(default_factory=bundled_rules)


def record_analysis(
    session: Session,
    ctx: IntakeContext,
    *,
    analysis: PhotoAnalysis,
    source: SourceRef,
    store: EvidenceStore,
    actor: Actor,
    now: datetime,
    note: str = "",
) -> IntakeResult:
    lock_ledger(session, now)
    earlier = recorded_result(session, analysis.content_hash, analysis.model_version)
    if earlier is not None:
        return earlier
    for draft in analysis.observations:
        ctx.taxonomy.get(draft.class_key)  # TaxonomyError for a class the ledger does not know

    source_row = _source(session, source, now)
    # A camera clock in the future would make the observation look newer than everything.
    captured_at = min(analysis.captured_at, now) if analysis.captured_at is not None else now
    frame = _frame(session, analysis, source_row, store, captured_at, now, note)
    outcomes = [
        _place_observation(session, ctx, frame, draft, analysis, store, actor, now)
        for draft in analysis.observations
    ]
    passes: list[PassOutcome] = []
    if analysis.coverage is not None:
        passes = check_rectified_issues(
            session,
            frame=frame,
            coverage=analysis.coverage,
            observations=[o.observation for o in outcomes],
            dedup=ctx.dedup,
            rules=ctx.verification,
            now=now,
        )
    return IntakeResult(frame, False, outcomes, passes)


def _source(session: Session, ref: SourceRef, now: datetime) -> Source:
    name = ref.name[:200]  # the column's width: look up what would be stored
    row = session.scalars(_SOURCE_BY_NAME, {"kind": ref.kind, "name": name, "preset": ref.preset}).first()
    if row is None:
        row = Source(kind=ref.kind, name=name, preset=ref.preset, api_key_id=ref.api_key_id, created_at=now)
        session.add(row)
        session.flush()
    return row


def _frame(
    session: Session,
    analysis: PhotoAnalysis,
    source: Source,
    store: EvidenceStore,
    captured_at: datetime,
    now: datetime,
    note: str,
) -> Frame:
    width, height = analysis.resolution_wh
    coverage = analysis.coverage
    bounds = coverage.bounds if coverage is not None else (None, None, None, None)
    frame = Frame(
        source_id=source.id,
        content_hash=analysis.content_hash,
        model_version=analysis.model_version,
        captured_at=captured_at,
        received_at=now,
        width=width,
        height=height,
        camera_lon=analysis.camera_point.lon if analysis.camera_point else None,
        camera_lat=analysis.camera_point.lat if analysis.camera_point else None,
        coverage=to_geojson_text(coverage) if coverage is not None else None,
        cov_min_lon=bounds[0],
        cov_min_lat=bounds[1],
        cov_max_lon=bounds[2],
        cov_max_lat=bounds[3],
        image_path=store.save_frame(analysis.pixels, analysis.content_hash, analysis.frame_jpeg),
        note=note,
    )
    session.add(frame)
    session.flush()
    return frame


def _place_observation(
    session: Session,
    ctx: IntakeContext,
    frame: Frame,
    draft: ObservationDraft,
    analysis: PhotoAnalysis,
    store: EvidenceStore,
    actor: Actor,
    now: datetime,
) -> ObservationOutcome:
    observed_at = frame.captured_at
    match = None
    rejected: RejectedMatch | None = None
    refined: str | None = None
    footprint = to_geojson_text(draft.footprint) if draft.footprint is not None else None
    if draft.point is not None:
        lon, lat = draft.point.lon, draft.point.lat
        match = find_match(
            session, ctx.dedup, class_key=draft.class_key, lon=lon, lat=lat, observed_at=observed_at
        )
        if match is None:
            rejected = judge_rejected(
                session,
                ctx.suppression,
                ctx.dedup,
                class_key=draft.class_key,
                lon=lon,
                lat=lat,
                observed_at=observed_at,
                score=draft.score,
            )
    if rejected is not None and rejected.verdict == Verdict.suppressed:
        issue = rejected.issue
        outcome = Outcome.suppressed
        # max_score stays what the reviewer rejected: the bar a stronger sighting must clear.
        _widen_seen(issue, observed_at, now)
    elif match is None:
        issue = _open_issue(session, draft, observed_at, now)
        outcome = Outcome.opened
    else:
        issue = match.issue
        outcome = Outcome.rebound if match.action == MatchAction.rebound else Outcome.joined
        _widen_seen(issue, observed_at, now)
        issue.max_score = max(issue.max_score, draft.score)
        refined = _take_tighter_area(issue, draft, footprint)
    obs = Observation(
        frame_id=frame.id,
        issue_id=issue.id,
        class_key=draft.class_key,
        score=draft.score,
        x1=draft.box_xyxy[0],
        y1=draft.box_xyxy[1],
        x2=draft.box_xyxy[2],
        y2=draft.box_xyxy[3],
        lon=draft.point.lon if draft.point else None,
        lat=draft.point.lat if draft.point else None,
        location_uncertainty_m=draft.point.uncertainty_m if draft.point else None,
        location_reason=draft.location_reason,
        footprint=footprint,
        area_m2=draft.area_m2,
        area_uncertainty_m2=draft.area_uncertainty_m2,
        crop_path=store.save_crop(analysis.pixels, draft.box_xyxy, analysis.resolution_wh),
        before_crop_path=store.save_crop(analysis.earlier_pixels, draft.box_xyxy, analysis.resolution_wh)
        if analysis.earlier_pixels is not None
        else None,
        details=json.dumps(draft.details, ensure_ascii=False) if draft.details is not None else None,
        observed_at=observed_at,
    )
    session.add(obs)
    session.flush()
    distance = match.distance_m if match is not None else 0.0  # every outcome but opened has a match
    if outcome == Outcome.opened:
        record_event(
            session,
            issue,
            kind="opened",
            actor=actor,
            at=now,
            to_state=State.candidate.value,
            observation_id=obs.id,
            reason=_opened_reason(draft)
            if rejected is None
            else f"{_opened_reason(draft)}: {rejected.reason}",
        )
    else:
        record_event(
            session,
            issue,
            kind="joined",
            actor=actor,
            at=now,
            observation_id=obs.id,
            reason=rejected.reason
            if rejected is not None
            else f"{draft.class_key} seen again, {distance:.1f} m away" + (f"; {refined}" if refined else ""),
        )
    if outcome == Outcome.rebound:
        was = issue.state
        transition(
            session,
            issue,
            State.rebound,
            actor=Actor.system(),
            at=now,
            observation_id=obs.id,
            reason=f"{draft.class_key} seen again at a {was} place "
            f"({distance:.1f} m away, observation {obs.id})",
        )
    return ObservationOutcome(obs, issue, outcome)


def _widen_seen(issue: Issue, observed_at: datetime, now: datetime) -> None:
    issue.first_seen_at = min(issue.first_seen_at, observed_at)
    issue.last_seen_at = max(issue.last_seen_at, observed_at)
    # What the event recorded next sets too: set here, the observation's flush writes the issue
    # once, and the event's flush finds nothing left to update (one UPDATE per join, not two).
    issue.updated_at = now


def _take_tighter_area(issue: Issue, draft: ObservationDraft, footprint: str | None) -> str | None:
    """The sighting's footprint (`footprint`, its GeoJSON text) and area for the issue's when the
    sighting measured it with a smaller uncertainty; what changed, for the joining event, else None.

    Why: a survey sees a shed in several overlapping photos, and the one that opened the issue
    may have seen it far off nadir, where its area is least certain (benchmarks/geo.py: p95
    error 4 % straight down, 12 % at 30 degrees); the office reports the issues' m². Only an
    area measured before is replaced: an issue without one was placed by hand (its footprint
    cleared) or had no camera pose, and a reviewer's placement is not overwritten.
    """
    if issue.area_m2 is None or issue.area_uncertainty_m2 is None:
        return None
    if draft.area_m2 is None or draft.area_uncertainty_m2 is None or footprint is None:
        return None
    if draft.area_uncertainty_m2 >= issue.area_uncertainty_m2:
        return None
    was = f"{issue.area_m2:.1f} ± {issue.area_uncertainty_m2:.1f} m²"
    issue.area_m2, issue.area_uncertainty_m2 = draft.area_m2, draft.area_uncertainty_m2
    issue.footprint = footprint
    return f"area now {draft.area_m2:.1f} ± {draft.area_uncertainty_m2:.1f} m² from this sighting (was {was})"


def _open_issue(session: Session, draft: ObservationDraft, observed_at: datetime, now: datetime) -> Issue:
    point = draft.point
    region = smallest_region_containing(session, point.lon, point.lat) if point is not None else None
    issue = Issue(
        class_key=draft.class_key,
        state=State.candidate.value,
        needs_location=point is None,
        lon=point.lon if point else None,
        lat=point.lat if point else None,
        location_uncertainty_m=point.uncertainty_m if point else None,
        footprint=to_geojson_text(draft.footprint) if draft.footprint is not None and point else None,
        area_m2=draft.area_m2 if point else None,
        area_uncertainty_m2=draft.area_uncertainty_m2 if point else None,
        region_id=region.id if region else None,
        max_score=draft.score,
        first_seen_at=observed_at,
        last_seen_at=observed_at,
        state_changed_at=now,
        created_at=now,
        updated_at=now,
    )
    session.add(issue)
    session.flush()
    return issue


def _opened_reason(draft: ObservationDraft) -> str:
    if draft.point is None:
        return (
            f"new {draft.class_key} candidate without a location ({draft.location_reason}); "
            "a reviewer must place it"
        )
    return f"new {draft.class_key} candidate"


def recorded_result(session: Session, content_hash: str, model_version: str) -> IntakeResult | None:
    """The earlier result when this image was recorded under this model, else None; writes nothing
    (a photo route asks before decoding, so a duplicate costs no inference)."""
    existing = session.scalars(
        _FRAME_BY_HASH, {"content_hash": content_hash, "model_version": model_version}
    ).first()
    return None if existing is None else _earlier_result(session, existing)


def _earlier_result(session: Session, frame: Frame) -> IntakeResult:
    rows = session.execute(
        select(Observation, Issue)
        .join(Issue, Observation.issue_id == Issue.id)
        .where(Observation.frame_id == frame.id)
        .order_by(Observation.id)
    ).all()
    return IntakeResult(frame, True, [ObservationOutcome(o, i, Outcome.recorded) for o, i in rows], [])
