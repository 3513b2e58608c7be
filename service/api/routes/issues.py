"""The ledger: list and read issues, their evidence, state changes and placing unlocated ones."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query, status
from fastapi.responses import FileResponse
from sqlalchemy.orm import Session

from service.api.deps import AUTHENTICATED, NowDep, SessionDep, StateDep, require_role
from service.api.issue_views import IssueFilters, detail, evidence_rows, list_features
from service.api.schemas import (
    MAX_OFFSET,
    MAX_ROW_ID,
    IssueCollection,
    IssueDetail,
    LocationUpdate,
    RowId,
    TransitionCreate,
)
from service.auth import Role
from service.db.models import ApiKey, Issue
from service.db.session import lock_ledger
from service.errors import NotFoundError
from service.ledger.events import Actor, record_event, transition
from service.ledger.regions import all_regions, smallest_region_containing
from service.ledger.states import State
from service.reports import month_bounds
from vision.geo.types import valid_lon_lat
from vision.sources import SourceKind

router = APIRouter(prefix="/v1/issues", tags=["issues"], dependencies=AUTHENTICATED)

READERS = (Role.reviewer, Role.worker)
MOVERS = (Role.reviewer, Role.worker)  # which moves each may make is the state machine's business
PLACERS = (Role.reviewer,)
MAX_PAGE = 5000


def _issue(session: Session, issue_id: int) -> Issue:
    issue = session.get(Issue, issue_id)
    if issue is None:
        raise NotFoundError(f"no issue {issue_id}")
    return issue


def _bbox(text: str | None) -> tuple[float, float, float, float] | None:
    if text is None:
        return None
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if (
        len(values) != 4
        or not all(math.isfinite(v) for v in values)
        or values[0] > values[2]
        or values[1] > values[3]
    ):
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            f"expected bbox=min_lon,min_lat,max_lon,max_lat with min <= max, got {text!r}",
        )
    return values


@router.get("", response_model=IssueCollection, name="list_issues")
def list_issues(
    state: StateDep,
    session: SessionDep,
    _: Annotated[ApiKey, require_role(*READERS)],
    status_: Annotated[list[State] | None, Query(alias="status", description="Repeat for several.")] = None,
    class_: Annotated[
        list[str] | None, Query(alias="class", description="Class key; repeat for several.")
    ] = None,
    region: Annotated[
        int | None, Query(ge=1, le=MAX_ROW_ID, description="Region id; includes the regions nested in it.")
    ] = None,
    bbox: Annotated[str | None, Query(description="min_lon,min_lat,max_lon,max_lat (WGS-84).")] = None,
    since: Annotated[
        datetime | None, Query(description="Only issues changed at or after this time (ISO 8601).")
    ] = None,
    month: Annotated[
        str | None, Query(description="YYYY-MM: issues first captured in this month (office time zone).")
    ] = None,
    source: Annotated[
        list[SourceKind] | None, Query(description="Seen by a source of this kind; repeat for several.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 1000,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> IssueCollection:
    unknown = sorted(set(class_ or ()) - set(state.taxonomy.keys))
    if unknown:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            f"unknown class {unknown}; known: {', '.join(state.taxonomy.keys)}",
        )
    if since is not None and since.tzinfo is None:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            f"expected since with a time zone, e.g. 2026-11-01T00:00:00+08:00, got {since.isoformat()}",
        )
    regions = all_regions(session)
    if region is not None and region not in regions:
        raise NotFoundError(f"no region {region}")
    filters = IssueFilters(
        states=tuple(status_ or ()),
        class_keys=tuple(class_ or ()),
        region_id=region,
        bbox=_bbox(bbox),
        since=since,
        captured=month_bounds(month, state.settings.timezone) if month is not None else None,
        source_kinds=tuple(source or ()),
    )
    features, total = list_features(session, filters, regions, state.taxonomy, limit=limit, offset=offset)
    return IssueCollection(features=features, total=total)


@router.get("/{issue_id}", response_model=IssueDetail, name="get_issue")
def get_issue(
    issue_id: RowId, state: StateDep, session: SessionDep, _: Annotated[ApiKey, require_role(*READERS)]
) -> IssueDetail:
    return detail(session, _issue(session, issue_id), all_regions(session), state.taxonomy)


@router.get(
    "/{issue_id}/evidence/{n}",
    name="get_evidence",
    response_class=FileResponse,
    responses={200: {"content": {"image/jpeg": {}}, "description": "The evidence image."}},
)
def get_evidence(
    issue_id: RowId,
    n: int,
    state: StateDep,
    session: SessionDep,
    _: Annotated[ApiKey, require_role(*READERS)],
    view: Annotated[
        Literal["crop", "frame", "before"] | None,
        Query(
            description="crop (the detection), frame (the whole image) or before (a change between "
            "surveys: the same ground in the earlier survey); default: crop when there is one"
        ),
    ] = None,
) -> FileResponse:
    _issue(session, issue_id)
    items = evidence_rows(session, issue_id)
    if not 1 <= n <= len(items):
        raise NotFoundError(f"issue {issue_id} has evidence 1..{len(items)}, not {n}")
    item = items[n - 1]
    if view in ("crop", "before") and item.observation is None:
        raise NotFoundError(f"evidence {n} of issue {issue_id} is a clear pass: it has a frame but no crop")
    if item.observation is not None and view == "before":
        if item.observation.before_crop_path is None:
            raise NotFoundError(f"evidence {n} of issue {issue_id} is no change between surveys: no before")
        relative = item.observation.before_crop_path
    elif item.observation is not None and view != "frame":
        relative = item.observation.crop_path
    else:
        relative = item.frame.image_path
    path = state.evidence_store().path_of(relative)
    return FileResponse(path, media_type="image/jpeg")


@router.post(
    "/{issue_id}/transitions",
    response_model=IssueDetail,
    name="transition_issue",
    responses={
        403: {"description": "Your role may not make this move."},
        409: {"description": "No such move from the current state; the message lists the allowed ones."},
    },
)
def post_transition(
    issue_id: RowId,
    body: TransitionCreate,
    state: StateDep,
    session: SessionDep,
    now: NowDep,
    key: Annotated[ApiKey, require_role(*MOVERS)],
) -> IssueDetail:
    lock_ledger(session, now)
    issue = _issue(session, issue_id)
    event = transition(session, issue, body.to, actor=Actor.from_key(key), at=now, reason=body.reason)
    session.commit()
    state.metrics.transitions.labels(event.to_state, "key").inc()
    return detail(session, issue, all_regions(session), state.taxonomy)


@router.put("/{issue_id}/location", response_model=IssueDetail, name="place_issue")
def put_location(
    issue_id: RowId,
    body: LocationUpdate,
    state: StateDep,
    session: SessionDep,
    now: NowDep,
    key: Annotated[ApiKey, require_role(*PLACERS)],
) -> IssueDetail:
    if not valid_lon_lat(body.lon, body.lat):
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, "0,0 is not a place; give the issue's real position"
        )
    lock_ledger(session, now)
    issue = _issue(session, issue_id)
    before = "no location" if issue.lon is None else f"{issue.lon:.6f},{issue.lat:.6f}"
    issue.lon, issue.lat, issue.needs_location = body.lon, body.lat, False
    issue.location_uncertainty_m = None
    # the detected footprint no longer describes the new place
    issue.footprint, issue.area_m2, issue.area_uncertainty_m2 = None, None, None
    region = smallest_region_containing(session, body.lon, body.lat)
    issue.region_id = region.id if region else None
    reason = f"placed by hand at {body.lon:.6f},{body.lat:.6f} (was {before})" + (
        f": {body.reason}" if body.reason else ""
    )
    record_event(session, issue, kind="located", actor=Actor.from_key(key), at=now, reason=reason)
    session.commit()
    return detail(session, issue, all_regions(session), state.taxonomy)
