"""Totals per region, class and month: how many issues, and how many square metres, were found,
confirmed, rectified and closed, so an office can report "demolished 1,234 m² of sheds".

Months are in the office's time zone. For each month and each class:
- found: issues first seen in the month by capture time (`first_seen_at`), like the monthly
  report; found m² leaves out issues since rejected (no violation), as the monthly report's
  area_m2_by_class does, so the two agree;
- confirmed, rectified, closed: issues moved to that state in the month (an issue moved there
  twice in one month counts once).
A region's row counts the issues in it and in every region nested inside it; the `all` row of
a month and class counts every issue, those outside any region included.

Where the m² come from: `issues.area_m2`, the ground area of the footprint of the observation
that opened the issue (vision.geo projects the detection's box onto the ground when the frame is
geotagged: `ObservationDraft.area_m2` in service/analysis.py, stored by `_open_issue` in
service/ledger/intake.py), replaced by a later sighting's when that one measured it with a
smaller uncertainty (`_take_tighter_area`, in the issue's history). An issue without one (no camera pose
or no footprint) counts in the number but adds nothing to the m²; `*_m2_missing` says how many
of the counted issues that is, so a total is never silently short.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, cast
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict
from sqlalchemy import select
from sqlalchemy.orm import Session

from service.db.models import Issue, IssueEvent, Region
from service.errors import InvalidInputError
from service.ledger.regions import all_regions, region_chain
from service.ledger.states import State
from service.reports import RegionKind, bom_csv, month_bounds, transitions_between

STAGES = ("found", "confirmed", "rectified", "closed")
Stage = Literal["found", "confirmed", "rectified", "closed"]
MOVES: tuple[Stage, ...] = ("confirmed", "rectified", "closed")  # the stages that are transitions
MAX_MONTHS = 120  # ten years in one answer; the rows are sparse but the scan is the whole range
ALL = "全部 all"


class StageTotal(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    count: int
    area_m2: float
    area_m2_missing: int  # of `count`, the issues with no stored area


class TotalsRow(BaseModel):
    """One region, class and month. `region_id` None: the whole ledger (`kind` all)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    month: str
    region_id: int | None
    region: str
    kind: Literal["village", "grid", "all"]
    parent_name: str | None
    class_key: str
    found: StageTotal
    confirmed: StageTotal
    rectified: StageTotal
    closed: StageTotal


class Totals(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    from_month: str
    to_month: str
    timezone: str
    rows: list[TotalsRow]


@dataclass
class _Tally:
    ids: set[int] = field(default_factory=set)
    area_m2: float = 0.0
    missing: int = 0

    def add(self, issue_id: int, area_m2: float | None, *, counts_area: bool) -> None:
        if issue_id in self.ids:
            return
        self.ids.add(issue_id)
        if not counts_area:
            return
        if area_m2 is None:
            self.missing += 1
        else:
            self.area_m2 += area_m2

    def total(self) -> StageTotal:
        return StageTotal(count=len(self.ids), area_m2=round(self.area_m2, 1), area_m2_missing=self.missing)


# (month, region id or None for the whole ledger, class, stage) -> tally
_Key = tuple[str, int | None, str, str]


def totals(session: Session, from_month: str, to_month: str, timezone: str) -> Totals:
    start, _ = month_bounds(from_month, timezone)
    _, end = month_bounds(to_month, timezone)
    span = _month_number(to_month) - _month_number(from_month) + 1
    if not 1 <= span <= MAX_MONTHS:
        raise InvalidInputError(
            f"expected `from` no later than `to` and at most {MAX_MONTHS} months in all, "
            f"got {from_month} to {to_month}"
        )
    zone = ZoneInfo(timezone)
    regions = all_regions(session)
    ancestors = {rid: [r.id for r in region_chain(regions, rid)] for rid in regions}
    tallies: dict[_Key, _Tally] = defaultdict(_Tally)

    def count(
        at: datetime,
        region_id: int | None,
        class_key: str,
        stage: str,
        issue_id: int,
        area_m2: float | None,
        *,
        counts_area: bool = True,
    ) -> None:
        month = at.astimezone(zone).strftime("%Y-%m")
        chain = ancestors.get(region_id, []) if region_id is not None else []
        for rid in (None, *chain):
            tallies[(month, rid, class_key, stage)].add(issue_id, area_m2, counts_area=counts_area)

    for issue_id, first_seen, region_id, class_key, area_m2, state in session.execute(
        select(
            Issue.id, Issue.first_seen_at, Issue.region_id, Issue.class_key, Issue.area_m2, Issue.state
        ).where(Issue.first_seen_at >= start, Issue.first_seen_at < end)
    ):
        # a finding since rejected was found all the same, but its area is no violation's
        count(
            first_seen,
            region_id,
            class_key,
            "found",
            issue_id,
            area_m2,
            counts_area=state != State.rejected.value,
        )
    moves = transitions_between(
        MOVES,
        start,
        end,
        IssueEvent.issue_id,
        IssueEvent.at,
        IssueEvent.to_state,
        Issue.region_id,
        Issue.class_key,
        Issue.area_m2,
    )
    for issue_id, at, to_state, region_id, class_key, area_m2 in session.execute(moves):
        count(at, region_id, class_key, str(to_state), issue_id, area_m2)  # to_state: set on every transition
    return Totals(from_month=from_month, to_month=to_month, timezone=timezone, rows=_rows(tallies, regions))


def _month_number(month: str) -> int:
    """YYYY-MM (already checked by month_bounds) as a count of months."""
    return int(month[:4]) * 12 + int(month[5:7]) - 1


def _rows(tallies: Mapping[_Key, _Tally], regions: Mapping[int, Region]) -> list[TotalsRow]:
    """One row per (month, region, class) with anything in it: the whole ledger's first, then
    villages, then grids, by name."""
    cells = {(month, rid, class_key) for month, rid, class_key, _ in tallies}  # sorted below, as rows
    rows = []
    for month, rid, class_key in cells:
        region = regions.get(rid) if rid is not None else None
        parent = (
            regions.get(region.parent_id) if region is not None and region.parent_id is not None else None
        )
        stage = {s: tallies.get((month, rid, class_key, s), _Tally()).total() for s in STAGES}
        rows.append(
            TotalsRow(
                month=month,
                region_id=rid,
                region=region.name if region is not None else ALL,
                kind=cast(RegionKind, region.kind) if region is not None else "all",  # the regions CHECK
                parent_name=parent.name if parent is not None else None,
                class_key=class_key,
                **stage,
            )
        )
    order = {"all": 0, "village": 1, "grid": 2}
    rows.sort(
        key=lambda r: (r.month, order[r.kind], r.parent_name or "", r.region, r.region_id or 0, r.class_key)
    )
    return rows


CSV_COLUMNS = (
    "month",
    "kind",
    "region",
    "parent",
    "class",
    "class_zh",
    *(f"{stage}{suffix}" for stage in STAGES for suffix in ("", "_m2", "_m2_missing")),
)


def to_csv(report: Totals, names_zh: Mapping[str, str]) -> str:
    """CSV with a UTF-8 BOM (Excel then shows the Chinese names), one row per region, class and month."""
    return bom_csv(
        CSV_COLUMNS,
        (
            [
                r.month,
                r.kind,
                r.region,
                r.parent_name or "",
                r.class_key,
                names_zh.get(r.class_key, ""),
                *(
                    value
                    for t in (r.found, r.confirmed, r.rectified, r.closed)
                    for value in (t.count, f"{t.area_m2:.1f}", t.area_m2_missing)
                ),
            ]
            for r in report.rows
        ),
    )
