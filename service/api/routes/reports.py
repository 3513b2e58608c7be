"""GET /v1/reports/ranking: the monthly ranking per village and grid, as JSON or CSV.
GET /v1/reports/monthly: the monthly report with its 红黑榜, as JSON, CSV, HTML (the page) or PDF.
GET /v1/reports/totals: counts and m² found, confirmed, rectified and closed per region, class and month."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response

from service.api.deps import AUTHENTICATED, SessionDep, StateDep, require_role
from service.api.schemas import RankingReport
from service.auth import Role
from service.monthly_report import BoardRules, MonthlyReport, monthly_report
from service.monthly_report import to_csv as monthly_csv
from service.report_page.pdf import html_to_pdf
from service.report_page.render import report_html
from service.reports import RANK_RULE, ranking, to_csv
from service.totals import Totals, totals
from service.totals import to_csv as totals_csv

router = APIRouter(prefix="/v1/reports", tags=["reports"], dependencies=AUTHENTICATED)

READERS = (Role.reviewer, Role.worker)
Reader = Annotated[object, require_role(*READERS)]
Month = Annotated[str, Query(description="YYYY-MM, in the office's time zone.", examples=["2026-11"])]
JSON_OR_CSV: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/csv": {}}, "description": "JSON, or CSV with format=csv."}
}
CSV = "text/csv; charset=utf-8"


def _download(body: str | bytes, media_type: str, filename: str, *, inline: bool = False) -> Response:
    """A report as a file: saved under its name, or shown in place (the HTML page)."""
    disposition = "inline" if inline else "attachment"
    return Response(
        body, media_type=media_type, headers={"Content-Disposition": f'{disposition}; filename="{filename}"'}
    )


@router.get(
    "/ranking",
    response_model=RankingReport,
    name="ranking",
    responses=JSON_OR_CSV,
)
def get_ranking(
    state: StateDep,
    session: SessionDep,
    _: Reader,
    month: Month,
    format: Annotated[Literal["json", "csv"], Query()] = "json",
) -> RankingReport | Response:
    rows = ranking(session, month, state.settings.timezone)
    if format == "csv":
        return _download(to_csv(rows), CSV, f"ranking-{month}.csv")
    return RankingReport(
        month=month,
        timezone=state.settings.timezone,
        rule=RANK_RULE,
        rows=rows,
    )


@router.get(
    "/monthly",
    response_model=MonthlyReport,
    name="monthly_report",
    responses={
        200: {
            "content": {"text/csv": {}, "text/html": {}, "application/pdf": {}},
            "description": "JSON; CSV, HTML or a printable PDF with format=csv|html|pdf.",
        }
    },
)
def get_monthly_report(
    state: StateDep,
    session: SessionDep,
    _: Reader,
    month: Month,
    format: Annotated[Literal["json", "csv", "html", "pdf"], Query()] = "json",
) -> MonthlyReport | Response:
    report = monthly_report(session, month, state.settings.timezone, BoardRules.load())
    session.rollback()  # nothing written; no transaction stays open while a PDF renders
    if format == "json":
        return report
    if format == "csv":
        body: str | bytes = monthly_csv(report, state.taxonomy.keys)
        media_type = CSV
    elif format == "html":
        body, media_type = report_html(report, state.taxonomy), "text/html; charset=utf-8"
    else:
        body, media_type = html_to_pdf(report_html(report, state.taxonomy)), "application/pdf"
    return _download(body, media_type, f"report-{month}.{format}", inline=format == "html")


@router.get(
    "/totals",
    response_model=Totals,
    name="totals",
    responses=JSON_OR_CSV,
)
def get_totals(
    state: StateDep,
    session: SessionDep,
    _: Reader,
    from_month: Annotated[
        str, Query(alias="from", description="First month, YYYY-MM.", examples=["2026-01"])
    ],
    to_month: Annotated[
        str | None,
        Query(alias="to", description="Last month, YYYY-MM; default: `from`.", examples=["2026-12"]),
    ] = None,
    format: Annotated[Literal["json", "csv"], Query()] = "json",
) -> Totals | Response:
    """Per region (and the whole ledger), class and month: how many issues and how many m² were
    found, confirmed, rectified and closed (service/totals.py says where the m² come from)."""
    report = totals(session, from_month, to_month or from_month, state.settings.timezone)
    if format == "json":
        return report
    names_zh = {c.key: c.name_zh for c in state.taxonomy}
    return _download(totals_csv(report, names_zh), CSV, f"totals-{report.from_month}-{report.to_month}.csv")
