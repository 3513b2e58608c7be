"""The office's orthomosaics as map layers: XYZ PNG tiles and their TileJSON.

GET /v1/tiles                         the orthomosaic surveys, newest first, each with its TileJSON URL
GET /v1/tiles/{job_id}/tilejson.json  TileJSON 3.0.0: bounds, minzoom, maxzoom, the tile URL template
GET /v1/tiles/{job_id}/{z}/{x}/{y}.png  a 256 px tile, nodata transparent (service/jobs/ortho_tiles.py)

Who: staff (worker, reviewer; admin), the people who read the ledger on the map: the imagery is
the evidence the issues were found in. Unlike GET /v1/jobs (the submitting ingest key's own
business: progress, failures), the layers are the office's, so they are not limited to the key
that uploaded them, and ingest and citizen keys, which never read the ledger, get 403.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from service.api.deps import AUTHENTICATED, SessionDep, StateDep, require_role
from service.auth import Role
from service.jobs.models import Job, JobKind
from service.jobs.ortho_tiles import TILE_SIZE_PX, layer_info, orthomosaic_path, render_tile

router = APIRouter(prefix="/v1/tiles", tags=["tiles"], dependencies=AUTHENTICATED)

READERS = (Role.worker, Role.reviewer)
JobId = Annotated[str, Path(pattern=r"^[0-9a-f]{32}$", description="An orthomosaic survey's job id.")]
# A job's input never changes, so neither do its tiles; `private`: they are behind a key.
IMMUTABLE = "private, max-age=86400, immutable"


class _Public(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TileLayerPublic(_Public):
    job_id: str
    note: str
    state: str = Field(description="The survey job's state; its imagery is served whatever the state.")
    created_at: datetime
    tilejson: str = Field(description="URL of the layer's TileJSON.")


class TileJson(_Public):
    tilejson: str = "3.0.0"
    name: str
    scheme: str = "xyz"
    tiles: list[str] = Field(description="URL template; send the same Authorization header.")
    bounds: tuple[float, float, float, float] = Field(description="west, south, east, north (WGS-84)")
    center: tuple[float, float, int]
    minzoom: int
    maxzoom: int
    tile_size: int = Field(TILE_SIZE_PX, serialization_alias="tileSize")


@router.get("", response_model=list[TileLayerPublic], name="tile_layers")
def tile_layers(session: SessionDep, _: Annotated[object, require_role(*READERS)]) -> list[TileLayerPublic]:
    jobs = session.scalars(
        select(Job).where(Job.kind == JobKind.orthomosaic.value).order_by(Job.created_at.desc())
    )
    return [
        TileLayerPublic(
            job_id=job.id,
            note=job.note,
            state=job.state,
            created_at=job.created_at,
            tilejson=f"/v1/tiles/{job.id}/tilejson.json",
        )
        for job in jobs
    ]


@router.get(
    "/{job_id}/tilejson.json",
    response_model=TileJson,
    response_model_by_alias=True,
    name="tilejson",
    responses={404: {"description": "No such job, or not an orthomosaic."}},
)
def tilejson(
    job_id: JobId,
    request: Request,
    state: StateDep,
    session: SessionDep,
    _: Annotated[object, require_role(*READERS)],
) -> TileJson:
    path = orthomosaic_path(session, state.settings.data_dir, job_id)
    session.rollback()  # no transaction stays open while GDAL reads
    layer = layer_info(path)
    base = str(request.base_url).rstrip("/")
    return TileJson(
        name=f"orthomosaic {job_id}",
        tiles=[f"{base}/v1/tiles/{job_id}/{{z}}/{{x}}/{{y}}.png"],
        bounds=layer.bounds_lonlat,
        center=layer.center,
        minzoom=layer.minzoom,
        maxzoom=layer.maxzoom,
    )


@router.get(
    "/{job_id}/{z}/{x}/{y}.png",
    name="tile",
    response_class=Response,
    responses={
        200: {"content": {"image/png": {}}, "description": f"A {TILE_SIZE_PX} px RGBA PNG."},
        404: {"description": "No such orthomosaic, a zoom outside its range, or a tile outside it."},
    },
)
def tile(
    job_id: JobId,
    z: Annotated[int, Path(ge=0, le=30)],
    x: Annotated[int, Path(ge=0)],
    y: Annotated[int, Path(ge=0)],
    state: StateDep,
    session: SessionDep,
    _: Annotated[object, require_role(*READERS)],
) -> Response:
    path = orthomosaic_path(session, state.settings.data_dir, job_id)
    session.rollback()
    return Response(render_tile(path, z, x, y), media_type="image/png", headers={"Cache-Control": IMMUTABLE})
