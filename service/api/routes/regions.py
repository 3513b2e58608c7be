"""POST /v1/regions (import villages and grids from GeoJSON) and GET /v1/regions."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request, status
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.orm import Session

from service.api.deps import AUTHENTICATED, NowDep, SessionDep, StateDep, require_role
from service.api.schemas import (
    RegionCollection,
    RegionFeature,
    RegionImportResult,
    RegionProperties,
)
from service.api.uploads import read_json_body
from service.auth import Role
from service.db.models import ApiKey, Region
from service.db.session import lock_ledger
from service.ledger.regions import RegionDraft, all_regions, import_regions, parse_feature_collection

router = APIRouter(prefix="/v1/regions", tags=["regions"], dependencies=AUTHENTICATED)

MAX_REGIONS_BYTES = 50 * 1024 * 1024
GEOJSON_TYPES = ("application/geo+json", "application/json")

_BODY_DOC = {
    "requestBody": {
        "required": True,
        "description": "A GeoJSON FeatureCollection of Polygon/MultiPolygon features in WGS-84, each with "
        "properties `name` and `kind` (village or grid). Parents are found by containment.",
        "content": {t: {"schema": {"type": "object"}} for t in GEOJSON_TYPES},
    }
}


def _props(region: Region, regions: dict[int, Region]) -> RegionProperties:
    parent = regions.get(region.parent_id) if region.parent_id is not None else None
    return RegionProperties(
        id=region.id,
        name=region.name,
        kind=region.kind,
        parent_id=region.parent_id,
        parent_name=parent.name if parent else None,
        area_m2=round(region.area_m2, 1),
    )


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=RegionImportResult,
    name="import_regions",
    openapi_extra=_BODY_DOC,
)
async def post_regions(
    request: Request,
    state: StateDep,
    session: SessionDep,
    now: NowDep,
    _: Annotated[ApiKey, require_role(Role.admin)],
) -> RegionImportResult:
    body = await read_json_body(request, limit=MAX_REGIONS_BYTES, media_types=GEOJSON_TYPES)
    # Checking tens of thousands of vertices takes a while: off the event loop, like the database.
    drafts = await run_in_threadpool(
        parse_feature_collection, body, max_vertices=state.settings.max_region_vertices
    )
    return await run_in_threadpool(_store, session, drafts, now)


def _store(session: Session, drafts: list[RegionDraft], now: datetime) -> RegionImportResult:
    lock_ledger(session, now)  # issues are reassigned to the new regions
    result = import_regions(session, drafts, now)
    session.commit()
    regions = all_regions(session)
    return RegionImportResult(
        created=[_props(r, regions) for r in result.created],
        skipped=result.skipped,
        issues_reassigned=result.issues_reassigned,
    )


@router.get("", response_model=RegionCollection, name="list_regions")
def get_regions(
    session: SessionDep,
    _: Annotated[ApiKey, require_role(Role.citizen)],
    geometry: Annotated[
        bool, Query(description="Include each region's polygon (can be megabytes); null otherwise.")
    ] = False,
) -> RegionCollection:
    regions = all_regions(session, geometry=geometry)
    return RegionCollection(
        features=[
            RegionFeature(
                id=r.id, geometry=json.loads(r.geometry) if geometry else None, properties=_props(r, regions)
            )
            for r in regions.values()
        ]
    )
