"""Which issue a new observation belongs to: same class, close enough, recent enough.

Rules, for an observation of class k at point p taken at time t:
- candidates are issues of class k within k's radius of p (taxonomy `dedup_radius_m`,
  overridable in settings), from any source;
- an open issue (candidate, confirmed, dispatched, rebound) matches when t lies within
  k's time window of the issue's sightings (first seen - window .. last seen + window);
  the observation joins it;
- a rectified issue matches at any time; a detection taken after the rectification
  reopens it as `rebound` (回头看 found it again);
- a verified or closed issue matches when t is within the rebound window after it was
  verified/closed, and reopens it as `rebound` (反弹);
- an observation taken *before* the state change it would reverse (an old photo arriving
  late) joins as evidence and changes nothing;
- the nearest match wins, open issues first on a tie; no match opens a new candidate,
  unless a rejected issue nearby suppresses it (see `suppression`).

SQL narrows the search to a lat/lon box on the (class_key, lat, lon) index; the exact
geodesic distance is computed for the few rows left.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from service.db.models import Issue
from service.ledger.geometry import distance_m, search_box
from service.ledger.states import OPEN_STATES, REBOUNDABLE_STATES, State
from service.settings import Settings
from vision.taxonomy import Taxonomy


class MatchAction(StrEnum):
    # "join" shadows str.join (never called on an action): hence the ignore.
    join = "join"  # type: ignore[assignment]  # add the observation, state unchanged
    rebound = "rebound"  # add the observation and reopen the issue


@dataclass(frozen=True)
class DedupRules:
    radius_m: dict[str, float]
    window: dict[str, timedelta]
    rebound_window: timedelta

    @classmethod
    def from_settings(cls, settings: Settings, taxonomy: Taxonomy) -> DedupRules:
        radius = {spec.key: settings.dedup_radius_m.get(spec.key, spec.dedup_radius_m) for spec in taxonomy}
        window = {
            spec.key: timedelta(
                days=settings.dedup_window_days_by_class.get(spec.key, settings.dedup_window_days)
            )
            for spec in taxonomy
        }
        return cls(radius, window, timedelta(days=settings.rebound_window_days))

    def radius_for(self, class_key: str) -> float:
        try:
            return self.radius_m[class_key]
        except KeyError:
            raise KeyError(
                f"no dedup radius for class {class_key!r}; known: {', '.join(self.radius_m)}"
            ) from None

    def window_for(self, class_key: str) -> timedelta:
        return self.window[class_key]


# Built once: building it (four conditions) and its cache key cost ~0.3-0.8 ms of CPU per
# recorded detection (issue #13).
_NEARBY = (
    select(Issue)
    .where(
        Issue.class_key == bindparam("class_key"),
        Issue.state.in_(bindparam("states", expanding=True)),
        Issue.lat.between(bindparam("min_lat"), bindparam("max_lat")),
        Issue.lon.between(bindparam("min_lon"), bindparam("max_lon")),
    )
    .order_by(Issue.id)
)


@dataclass(frozen=True)
class Match:
    issue: Issue
    distance_m: float
    action: MatchAction


def find_match(
    session: Session, rules: DedupRules, *, class_key: str, lon: float, lat: float, observed_at: datetime
) -> Match | None:
    states = OPEN_STATES | REBOUNDABLE_STATES
    best: tuple[float, int, Match] | None = None
    for issue, dist in nearby_issues(session, class_key, lon, lat, rules.radius_for(class_key), states):
        action = _action(issue, rules, class_key, observed_at)
        if action is None:
            continue
        key = (dist, 0 if State(issue.state) in OPEN_STATES else 1)
        if best is None or key < best[:2]:
            best = (*key, Match(issue, dist, action))
    return None if best is None else best[2]


def nearby_issues(
    session: Session, class_key: str, lon: float, lat: float, radius_m: float, states: Iterable[State]
) -> list[tuple[Issue, float]]:
    """Issues of `class_key` in `states` within `radius_m` of (lon, lat), with their distance, by id."""
    box = search_box(lon, lat, radius_m)
    rows = session.scalars(
        _NEARBY,
        {
            "class_key": class_key,
            "states": [s.value for s in states],
            "min_lat": box.min_lat,
            "max_lat": box.max_lat,
            "min_lon": box.min_lon,
            "max_lon": box.max_lon,
        },
    )
    found = []
    for issue in rows:
        dist = distance_m(lon, lat, issue.lon, issue.lat)  # type: ignore[arg-type]  # selected by lon/lat between(): never NULL
        if dist <= radius_m:
            found.append((issue, dist))
    return found


def _action(issue: Issue, rules: DedupRules, class_key: str, observed_at: datetime) -> MatchAction | None:
    state = State(issue.state)
    if state in OPEN_STATES:
        window = rules.window_for(class_key)
        seen = issue.first_seen_at - window <= observed_at <= issue.last_seen_at + window
        return MatchAction.join if seen else None
    if observed_at <= issue.state_changed_at:
        return MatchAction.join  # older than the rectification/verification: evidence only
    if state == State.rectified:
        return MatchAction.rebound
    if observed_at - issue.state_changed_at <= rules.rebound_window:
        return MatchAction.rebound
    return None
