"""Monthly figures per village and grid, ranked (红黑榜).

For a month (in the office's time zone) and each region, counting issues in the region or
in any region nested inside it:
- found: issues first seen in the month, by capture time (not upload time);
- confirmed: issues confirmed in the month;
- closed: issues closed (销号) in the month;
- closure_rate: closed / confirmed, or None when nothing was confirmed;
- median_days_to_close: median of (closed - first recorded) over the month's closures;
- rebounds: issues that rebounded (反弹) in the month.

Villages are ranked among villages and grids among grids: higher closure rate first
(regions with nothing confirmed rank as fully closed: they had nothing to fix), then
faster median closure (regions with no closures after those with some), then fewer
rebounds (a rebound means a fix did not hold), then fewer issues found. Regions equal on
all four share a rank (1, 2, 2, 4); the list shows them by name.
"""

from __future__ import annotations

import csv
import io
import re
import statistics
from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, Literal, cast
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict
from sqlalchemy import Select, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from service.db.models import Issue, IssueEvent
from service.errors import InvalidInputError
from service.ledger.regions import all_regions, region_chain
from service.ledger.states import State

RANK_RULE = (
    "within villages and within grids: higher closure rate (closed/confirmed; nothing confirmed "
    "counts as 1.0), then lower median days to close (none last), then fewer rebounds, then fewer found"
)
CSV_COLUMNS = (
    "kind",
    "name",
    "parent",
    "found",
    "confirmed",
    "closed",
    "closure_rate",
    "median_days_to_close",
    "rebounds",
    "rank",
)
_MONTH = re.compile(r"(\d{4})-(0[1-9]|1[0-2])")
# The months a report can be asked for. Outside them the month's bounds in the office's time zone
# leave what datetime can hold (9999-12 ends in year 10000; 0001-01 starts before year 1 in UTC);
# the ledger holds nothing from before 1970 anyway.
FIRST_YEAR, LAST_YEAR = 1970, 9998


RegionKind = Literal["village", "grid"]


class RegionMonth(BaseModel):
    """The leading columns of every per-region monthly row (the ranking's, the monthly report's):
    which region, and how many issues were found in it that month."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    region_id: int
    name: str
    kind: RegionKind
    parent_name: str | None
    found: int


class RankingRow(RegionMonth):
    """One region's figures for the month and its rank; a CSV row here, a JSON row in the API."""

    confirmed: int
    closed: int
    closure_rate: float | None
    median_days_to_close: float | None
    rebounds: int
    rank: int


def month_bounds(month: str, timezone: str) -> tuple[datetime, datetime]:
    """[start, end) of a YYYY-MM month in `timezone`, as UTC datetimes."""
    match = _MONTH.fullmatch(month)
    if match is None:
        raise InvalidInputError(f"expected month as YYYY-MM, e.g. 2026-11, got {month!r}")
    year, mon = int(match.group(1)), int(match.group(2))
    if not FIRST_YEAR <= year <= LAST_YEAR:
        raise InvalidInputError(f"expected a month from {FIRST_YEAR}-01 to {LAST_YEAR}-12, got {month!r}")
    zone = ZoneInfo(timezone)
    start = datetime(year, mon, 1, tzinfo=zone)
    end = datetime(year + (mon == 12), mon % 12 + 1, 1, tzinfo=zone)
    return start.astimezone(UTC), end.astimezone(UTC)


def transitions_between(
    states: Iterable[str], start: datetime, end: datetime, *columns: InstrumentedAttribute[Any]
) -> Select[Any]:
    """`columns` of each transition (IssueEvent) to one of `states` in [start, end), joined to its Issue."""
    return (
        select(*columns)
        .join(Issue, Issue.id == IssueEvent.issue_id)
        .where(
            IssueEvent.kind == "transition",
            IssueEvent.to_state.in_(list(states)),
            IssueEvent.at >= start,
            IssueEvent.at < end,
        )
    )


def ranking(session: Session, month: str, timezone: str) -> list[RankingRow]:
    start, end = month_bounds(month, timezone)
    regions = all_regions(session)
    ancestors = {rid: [r.id for r in region_chain(regions, rid)] for rid in regions}

    found: dict[int, int] = defaultdict(int)
    for region_id in session.scalars(
        select(Issue.region_id).where(
            Issue.first_seen_at >= start, Issue.first_seen_at < end, Issue.region_id.is_not(None)
        )
    ):
        if region_id is None:
            continue  # excluded by the query; narrows the type
        for rid in ancestors.get(region_id, []):
            found[rid] += 1

    counted = (State.confirmed.value, State.closed.value, State.rebound.value)
    events = session.execute(
        transitions_between(
            counted,
            start,
            end,
            IssueEvent.issue_id,
            IssueEvent.to_state,
            IssueEvent.at,
            Issue.region_id,
            Issue.created_at,
        ).where(Issue.region_id.is_not(None))
    ).all()
    issues_by: dict[tuple[int, str], set[int]] = defaultdict(set)
    close_days: dict[int, list[float]] = defaultdict(list)
    for issue_id, to_state, at, region_id, created_at in events:
        if region_id is None or to_state is None:
            continue  # excluded by the query; narrows the types
        for rid in ancestors.get(region_id, []):
            issues_by[(rid, to_state)].add(issue_id)
            if to_state == State.closed.value:
                close_days[rid].append((at - created_at).total_seconds() / 86400.0)

    rows = []
    for region in regions.values():
        confirmed = len(issues_by[(region.id, State.confirmed.value)])
        closed = len(issues_by[(region.id, State.closed.value)])
        days = close_days.get(region.id)
        parent = regions.get(region.parent_id) if region.parent_id is not None else None
        rows.append(
            RankingRow(
                region_id=region.id,
                name=region.name,
                kind=cast(RegionKind, region.kind),  # the regions table's CHECK constraint
                parent_name=parent.name if parent else None,
                found=found[region.id],
                confirmed=confirmed,
                closed=closed,
                closure_rate=round(closed / confirmed, 4) if confirmed else None,
                median_days_to_close=round(statistics.median(days), 2) if days else None,
                rebounds=len(issues_by[(region.id, State.rebound.value)]),
                rank=0,
            )
        )
    return _ranked(rows)


def _sort_key(row: RankingRow) -> tuple[float, ...]:
    rate = 1.0 if row.closure_rate is None else row.closure_rate
    days = float("inf") if row.median_days_to_close is None else row.median_days_to_close
    return (-rate, days, row.rebounds, row.found)


def _ranked(rows: list[RankingRow]) -> list[RankingRow]:
    out: list[RankingRow] = []
    for kind in ("village", "grid"):
        group = sorted((r for r in rows if r.kind == kind), key=lambda r: (_sort_key(r), r.name, r.region_id))
        previous_key, rank = None, 0
        for position, row in enumerate(group, start=1):
            key = _sort_key(row)
            if key != previous_key:
                rank, previous_key = position, key
            out.append(row.model_copy(update={"rank": rank}))
    return out


def to_csv(rows: list[RankingRow]) -> str:
    return bom_csv(
        CSV_COLUMNS,
        (
            [
                r.kind,
                r.name,
                r.parent_name or "",
                r.found,
                r.confirmed,
                r.closed,
                "" if r.closure_rate is None else f"{r.closure_rate:.4f}",
                "" if r.median_days_to_close is None else f"{r.median_days_to_close:.2f}",
                r.rebounds,
                r.rank,
            ]
            for r in rows
        ),
    )


def bom_csv(header: Iterable[object], rows: Iterable[Iterable[object]]) -> str:
    """CSV with a UTF-8 BOM, so that Excel shows the Chinese names correctly."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(rows)
    return "\ufeff" + buffer.getvalue()
