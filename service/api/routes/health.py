"""Public routes: liveness with a database check, and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Response, status
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from service.api.deps import StateDep
from service.api.schemas import HealthPublic
from service.migrations.runner import current_revision

router = APIRouter(tags=["operations"])


@router.get("/health", response_model=HealthPublic, name="health")
def health(state: StateDep, response: Response) -> HealthPublic:
    try:
        with state.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        revision = current_revision(state.engine)
    except SQLAlchemyError as exc:
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
        return HealthPublic(
            status="degraded", database=f"unreachable: {type(exc).__name__}", schema_revision=None
        )
    return HealthPublic(status="ok", database="ok", schema_revision=revision)


@router.get(
    "/metrics",
    name="metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text format."}},
)
def metrics(state: StateDep) -> Response:
    return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
