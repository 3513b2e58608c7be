"""GET /v1/taxonomy: the classes the office reports in (key, 中文名, colour), for maps and legends."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter

from service.api.deps import AUTHENTICATED, StateDep, require_role
from service.api.schemas import ClassPublic, TaxonomyPublic
from service.auth import Role
from service.db.models import ApiKey

router = APIRouter(prefix="/v1/taxonomy", tags=["taxonomy"], dependencies=AUTHENTICATED)


@router.get("", response_model=TaxonomyPublic, name="get_taxonomy")
def get_taxonomy(state: StateDep, _: Annotated[ApiKey, require_role(Role.citizen)]) -> TaxonomyPublic:
    return TaxonomyPublic(
        classes=[
            ClassPublic(
                key=c.key, name_zh=c.name_zh, name_en=c.name_en, colour=c.colour, sources=list(c.sources)
            )
            for c in state.taxonomy.classes
        ]
    )
