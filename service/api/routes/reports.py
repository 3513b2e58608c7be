"""GET /v1/reports/ranking: the monthly 红黑榜 per village and grid, as JSON or CSV."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response

from service.api.deps import AUTHENTICATED, SessionDep, StateDep, require_role
from service.api.schemas import RankingReport
from service.auth import Role
from service.reports import RANK_RULE, ranking, to_csv

router = APIRouter(prefix="/v1/reports", tags=["reports"], dependencies=AUTHENTICATED)

READERS = (Role.reviewer, Role.worker)


@router.get(
    "/ranking",
    response_model=RankingReport,
    name="ranking",
    responses={200: {"content": {"text/csv": {}}, "description": "JSON, or CSV with format=csv."}},
)
def get_ranking(
    state: StateDep,
    session: SessionDep,
    _: Annotated[object, require_role(*READERS)],
    month: Annotated[str, Query(description="YYYY-MM, in the office's time zone.", examples=["2026-11"])],
    format: Annotated[Literal["json", "csv"], Query()] = "json",
) -> RankingReport | Response:
    rows = ranking(session, month, state.settings.timezone)
    if format == "csv":
        return Response(
            to_csv(rows),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="ranking-{month}.csv"'},
        )
    return RankingReport(
        month=month,
        timezone=state.settings.timezone,
        rule=RANK_RULE,
        rows=rows,
    )
