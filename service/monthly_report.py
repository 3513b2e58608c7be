"""The monthly report per village and grid, and its 红黑榜 labelled by rules that are data.

For a month in the office's time zone and each region (counting issues in the region or in
any region nested inside it, like `service.reports.ranking`):
- found: issues first seen in the month, by capture time (`first_seen_at`, the capture time
  of the issue's earliest observation), not by when the photo was uploaded;
- reviewed: issues confirmed or rejected in the month; confirmed: confirmed in the month;
- rectified, rectified_on_time: rectified in the month, and of those, within
  `rectify_within_days` of the dispatch before it;
- closed (销号) and rebounds (反弹) in the month;
- area_m2_by_class: ground area of the month's found issues, by class; rejected issues are no
  violation and count nothing;
- closure_rate = closed / confirmed, on_time_rate = rectified_on_time / rectified (None when
  the divisor is 0).
The labels come from `board_rules.yaml` beside this module (see the comments there).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal, cast

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from service.db.models import Issue, IssueEvent
from service.errors import ServiceError
from service.ledger.regions import all_regions, region_chain
from service.ledger.states import State
from service.reports import RegionKind, RegionMonth, bom_csv, month_bounds, transitions_between
from vision.config_files import load_config_file

RULES_FILE = Path(__file__).with_name("board_rules.yaml")
Metric = Literal["closure_rate", "on_time_rate", "rebounds", "found"]


class BoardRulesError(ServiceError):
    """The 红黑榜 rules file is unreadable or invalid (a deployment error, not a request's)."""


class LabelRule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    label: str = Field(min_length=1, description="Machine name, e.g. red.")
    name_zh: str = Field(min_length=1, description="Display name, e.g. 红榜.")
    metric: Metric
    order: Literal["highest", "lowest"]
    count: int = Field(ge=1, le=100)
    min_reviewed: int = Field(ge=1, description="Fewer issues reviewed in the month: never labelled.")


class BoardRules(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    rectify_within_days: float = Field(gt=0, le=365)
    labels: list[LabelRule] = Field(min_length=1)

    @classmethod
    def load(cls, path: Path = RULES_FILE) -> BoardRules:
        return load_config_file(cls, path, "红黑榜 rules", BoardRulesError)


class MonthlyRow(RegionMonth):
    """One region's month; a JSON row in the API, a CSV row, a table row on the page and in the PDF."""

    reviewed: int
    confirmed: int
    rectified: int
    rectified_on_time: int
    closed: int
    rebounds: int
    closure_rate: float | None
    on_time_rate: float | None
    area_m2_by_class: dict[str, float]
    label: str | None = None  # a rule's `label`, e.g. red or black


class MonthlyReport(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    month: str
    timezone: str
    rules: BoardRules
    rows: list[MonthlyRow]


_COUNTED = (State.confirmed, State.rejected, State.dispatched, State.rectified, State.closed, State.rebound)


def monthly_report(session: Session, month: str, timezone: str, rules: BoardRules) -> MonthlyReport:
    start, end = month_bounds(month, timezone)
    regions = all_regions(session)
    ancestors = {rid: [r.id for r in region_chain(regions, rid)] for rid in regions}

    found: dict[int, int] = defaultdict(int)
    area: dict[int, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for region_id, class_key, area_m2, state in session.execute(
        select(Issue.region_id, Issue.class_key, Issue.area_m2, Issue.state).where(
            Issue.first_seen_at >= start, Issue.first_seen_at < end, Issue.region_id.is_not(None)
        )
    ):
        if region_id is None:
            continue  # excluded by the query; narrows the type
        for rid in ancestors.get(region_id, []):
            found[rid] += 1
            if state != State.rejected.value:
                area[rid][class_key] += area_m2 or 0.0

    by_state = _issues_moved(session, start, end, ancestors)
    on_time = _rectified_on_time(session, start, end, ancestors, timedelta(days=rules.rectify_within_days))

    rows = []
    for region in regions.values():
        rid = region.id

        def n(state: State, rid: int = rid) -> int:
            return len(by_state[(rid, state.value)])

        confirmed, rectified, closed = n(State.confirmed), n(State.rectified), n(State.closed)
        parent = regions.get(region.parent_id) if region.parent_id is not None else None
        rows.append(
            MonthlyRow(
                region_id=rid,
                name=region.name,
                kind=cast(RegionKind, region.kind),  # the regions table's CHECK constraint
                parent_name=parent.name if parent else None,
                found=found[rid],
                reviewed=len(by_state[(rid, State.confirmed.value)] | by_state[(rid, State.rejected.value)]),
                confirmed=confirmed,
                rectified=rectified,
                rectified_on_time=len(on_time[rid]),
                closed=closed,
                rebounds=n(State.rebound),
                closure_rate=_rate(closed, confirmed),
                on_time_rate=_rate(len(on_time[rid]), rectified),
                area_m2_by_class={k: round(v, 1) for k, v in sorted(area[rid].items())},
            )
        )
    rows.sort(key=lambda r: (r.kind != "village", r.parent_name or "", r.name, r.region_id))
    return MonthlyReport(month=month, timezone=timezone, rules=rules, rows=apply_labels(rows, rules))


def _rate(numerator: int, denominator: int) -> float | None:
    return round(numerator / denominator, 4) if denominator else None


def _issues_moved(
    session: Session, start: datetime, end: datetime, ancestors: dict[int, list[int]]
) -> dict[tuple[int, str], set[int]]:
    """(region, state) -> ids of issues moved to that state in [start, end)."""
    moved: dict[tuple[int, str], set[int]] = defaultdict(set)
    for issue_id, to_state, region_id in session.execute(
        transitions_between(
            [s.value for s in _COUNTED], start, end, IssueEvent.issue_id, IssueEvent.to_state, Issue.region_id
        ).where(Issue.region_id.is_not(None))
    ):
        if region_id is None:
            continue  # excluded by the query; narrows the type
        for rid in ancestors.get(region_id, []):
            moved[(rid, str(to_state))].add(issue_id)  # to_state is set on every transition
    return moved


def _rectified_on_time(
    session: Session, start: datetime, end: datetime, ancestors: dict[int, list[int]], limit: timedelta
) -> dict[int, set[int]]:
    """region -> issues rectified in [start, end) within `limit` of the latest dispatch before."""
    events = session.execute(
        select(IssueEvent.issue_id, IssueEvent.to_state, IssueEvent.at, Issue.region_id)
        .join(Issue, Issue.id == IssueEvent.issue_id)
        .where(
            IssueEvent.kind == "transition",
            IssueEvent.to_state.in_([State.dispatched.value, State.rectified.value]),
            IssueEvent.at < end,
            Issue.region_id.is_not(None),
        )
        .order_by(IssueEvent.issue_id, IssueEvent.at, IssueEvent.id)
    ).all()
    dispatched_at: dict[int, datetime] = {}
    on_time: dict[int, set[int]] = defaultdict(set)
    for issue_id, to_state, at, region_id in events:
        if to_state == State.dispatched.value:
            dispatched_at[issue_id] = at
            continue
        since = dispatched_at.get(issue_id)
        if at >= start and since is not None and at - since <= limit and region_id is not None:
            for rid in ancestors.get(region_id, []):
                on_time[rid].add(issue_id)
    return on_time


def apply_labels(rows: Iterable[MonthlyRow], rules: BoardRules) -> list[MonthlyRow]:
    """`rows` with each rule's label set, villages among villages and grids among grids."""
    rows = list(rows)
    labels: dict[int, str] = {}
    for kind in ("village", "grid"):
        group = [r for r in rows if r.kind == kind]
        for rule in rules.labels:
            eligible = [
                r
                for r in group
                if r.region_id not in labels
                and r.reviewed >= rule.min_reviewed
                and getattr(r, rule.metric) is not None
            ]
            sign = -1.0 if rule.order == "highest" else 1.0
            eligible.sort(key=lambda r: (sign * float(getattr(r, rule.metric)), r.name, r.region_id))
            if not eligible:
                continue
            cut = getattr(eligible[min(rule.count, len(eligible)) - 1], rule.metric)
            for position, row in enumerate(eligible):
                if position >= rule.count and getattr(row, rule.metric) != cut:
                    break  # ties at the cut share the label
                labels[row.region_id] = rule.label
    return [r.model_copy(update={"label": labels.get(r.region_id)}) for r in rows]


CSV_COLUMNS = (
    "kind",
    "name",
    "parent",
    "found",
    "reviewed",
    "confirmed",
    "rectified",
    "rectified_on_time",
    "closed",
    "rebounds",
    "closure_rate",
    "on_time_rate",
    "label",
)


def to_csv(report: MonthlyReport, class_keys: Iterable[str]) -> str:
    """CSV with a UTF-8 BOM (Excel then shows the Chinese names), one m² column per class."""
    keys = list(class_keys)
    return bom_csv(
        [*CSV_COLUMNS, *(f"area_m2_{k}" for k in keys)],
        (
            [
                r.kind,
                r.name,
                r.parent_name or "",
                r.found,
                r.reviewed,
                r.confirmed,
                r.rectified,
                r.rectified_on_time,
                r.closed,
                r.rebounds,
                "" if r.closure_rate is None else f"{r.closure_rate:.4f}",
                "" if r.on_time_rate is None else f"{r.on_time_rate:.4f}",
                r.label or "",
                *(f"{r.area_m2_by_class.get(k, 0.0):.1f}" for k in keys),
            ]
            for r in report.rows
        ),
    )
