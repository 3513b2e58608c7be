"""回头看: a rectified issue is verified when later imagery of its place shows nothing there.

A frame counts as a clear pass over a rectified issue when
- the frame has a ground coverage that covers the issue's footprint (or its point when it
  has none): phone photos have no coverage and never count;
- it was taken after the issue was rectified;
- it has no detection of the issue's class within the class's dedup radius of the issue,
  and no detection of that class without a location (which could be anywhere in view).
A detection there instead makes the issue `rebound` (see `dedup`). After
`verification_passes` clear passes taken at least `verification_min_gap_minutes` apart,
the ledger moves the issue to `verified`, with the last frame as evidence.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from shapely.geometry import Point
from shapely.geometry.base import BaseGeometry
from sqlalchemy import select
from sqlalchemy.orm import Session

from service.db.models import Frame, Issue, IssueEvent, Observation
from service.ledger.dedup import DedupRules
from service.ledger.events import Actor, last_transition_to, record_event, transition
from service.ledger.geometry import distance_m, from_geojson_text
from service.ledger.states import State
from service.settings import Settings


@dataclass(frozen=True)
class VerificationRules:
    passes: int
    min_gap: timedelta

    @classmethod
    def from_settings(cls, settings: Settings) -> VerificationRules:
        return cls(settings.verification_passes, timedelta(minutes=settings.verification_min_gap_minutes))


@dataclass(frozen=True)
class PassOutcome:
    issue_id: int
    verified: bool


def check_rectified_issues(
    session: Session,
    *,
    frame: Frame,
    coverage: BaseGeometry,
    observations: list[Observation],
    dedup: DedupRules,
    rules: VerificationRules,
    now: datetime,
) -> list[PassOutcome]:
    """Record a clear pass for every rectified issue this frame shows empty; verify when enough."""
    min_lon, min_lat, max_lon, max_lat = coverage.bounds
    issues = session.scalars(
        select(Issue)
        .where(
            Issue.state == State.rectified.value,
            Issue.lon.between(min_lon, max_lon),
            Issue.lat.between(min_lat, max_lat),
        )
        .order_by(Issue.id)
    )
    outcomes = []
    for issue in issues:
        if frame.captured_at <= issue.state_changed_at or not coverage.covers(_place(issue)):
            continue
        if _seen_here(issue, observations, dedup):
            continue
        record_event(
            session,
            issue,
            kind="clear_pass",
            actor=Actor.system(),
            at=now,
            frame_id=frame.id,
            reason=f"frame {frame.id} shows the place with no {issue.class_key}",
        )
        frames = _clear_pass_frames(session, issue)
        if _separate_passes(frames, rules.min_gap) >= rules.passes:
            ids = ", ".join(str(f.id) for f in frames)
            transition(
                session,
                issue,
                State.verified,
                actor=Actor.system(),
                at=now,
                frame_id=frame.id,
                reason=f"回头看: no {issue.class_key} seen on {rules.passes} separate passes (frames {ids})",
            )
            outcomes.append(PassOutcome(issue.id, True))
        else:
            outcomes.append(PassOutcome(issue.id, False))
    return outcomes


def _place(issue: Issue) -> BaseGeometry:
    return from_geojson_text(issue.footprint) if issue.footprint else Point(issue.lon, issue.lat)  # type: ignore[arg-type]  # selected by lon/lat between(): never NULL


def _seen_here(issue: Issue, observations: list[Observation], dedup: DedupRules) -> bool:
    radius = dedup.radius_for(issue.class_key)
    for obs in observations:
        if obs.class_key != issue.class_key:
            continue
        if obs.lon is None or obs.lat is None:
            return True  # somewhere in view: cannot vouch for the place
        if distance_m(obs.lon, obs.lat, issue.lon, issue.lat) <= radius:  # type: ignore[arg-type]  # selected by lon/lat between(): never NULL
            return True
    return False


def _clear_pass_frames(session: Session, issue: Issue) -> list[Frame]:
    """Frames of clear passes since the issue was last rectified, by capture time."""
    rectified = last_transition_to(session, issue.id, State.rectified)
    since_id = 0 if rectified is None else rectified.id
    return list(
        session.scalars(
            select(Frame)
            .join(IssueEvent, IssueEvent.frame_id == Frame.id)
            .where(IssueEvent.issue_id == issue.id, IssueEvent.kind == "clear_pass", IssueEvent.id > since_id)
            .distinct()
            .order_by(Frame.captured_at, Frame.id)
        )
    )


def _separate_passes(frames: list[Frame], min_gap: timedelta) -> int:
    """How many frames are at least `min_gap` after the previous counted one."""
    count, last = 0, None
    for frame in frames:
        if last is None or frame.captured_at - last >= min_gap:
            count += 1
            last = frame.captured_at
    return count
