"""The FastAPI application factory.

`create_app(settings)` wires settings, database, analyzer and clock into one app; start-up
runs the migrations and creates the bootstrap admin key. Nothing here imports torch: the
production analyzer loads the ONNX pipeline lazily on the first photo.

Deny by default: every router under /v1 requires an API key (a router-level dependency);
only the routes named in PUBLIC_ROUTES are reachable without one, and a test fails when
any other route lacks the dependency.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request, status
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.analysis import PhotoAnalyzer
from service.api.routes import health, issues, jobs, photos, regions, reports, surveys
from service.api.state import Clock, ServiceState, utc_now
from service.auth import ensure_bootstrap_admin
from service.db.session import make_engine, make_session_factory, session_scope
from service.errors import (
    IllegalTransitionError,
    InvalidInputError,
    NotFoundError,
    RoleNotAllowedError,
    TransitionConflictError,
)
from service.jobs.submit import JobServices
from service.ledger.dedup import DedupRules
from service.ledger.intake import IntakeContext
from service.ledger.verification import VerificationRules
from service.metrics import ServiceMetrics
from service.migrations import runner
from service.settings import Settings
from vision.errors import TaxonomyError
from vision.taxonomy import Taxonomy

# Route names reachable without an API key. Everything else is denied by default.
PUBLIC_ROUTES = frozenset(
    {"health", "metrics", "openapi", "swagger_ui_html", "swagger_ui_redirect", "redoc_html"}
)


def create_app(
    settings: Settings | None = None,
    *,
    analyzer: PhotoAnalyzer | None = None,
    clock: Clock | None = None,
    taxonomy: Taxonomy | None = None,
) -> FastAPI:
    settings = settings or Settings()
    taxonomy = taxonomy or Taxonomy.default()
    owns_analyzer = analyzer is None
    if analyzer is None:
        from service.photo_analyzer import PipelineAnalyzer  # torch-free; loads the model on first use

        analyzer = PipelineAnalyzer(settings, taxonomy)
    engine = make_engine(settings.database_url)
    session_factory = make_session_factory(engine)
    metrics = ServiceMetrics()
    metrics.watch_ledger(session_factory)
    state = ServiceState(
        settings=settings,
        engine=engine,
        session_factory=session_factory,
        analyzer=analyzer,
        clock=clock or utc_now,
        taxonomy=taxonomy,
        intake=IntakeContext(
            taxonomy, DedupRules.from_settings(settings, taxonomy), VerificationRules.from_settings(settings)
        ),
        metrics=metrics,
    )

    job_services = JobServices.for_app(state)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        start(state)
        job_services.start()  # resumes unfinished jobs (runner thread, or resent to Celery)
        yield
        job_services.close()  # the current photo or tile finishes; the job is queued again
        close = getattr(state.analyzer, "close", None)
        if owns_analyzer and close is not None:
            close()  # the pipeline's batcher thread
        engine.dispose()

    app = FastAPI(
        title="patrol-vision ledger",
        version="1",
        lifespan=lifespan,
        description="Photos and surveys in, deduplicated candidate issues out: states, history, "
        "villages and grids, roles. Authenticate with `Authorization: Bearer <key>`.",
    )
    app.state.service = state
    app.state.jobs = job_services
    for module in (health, photos, issues, regions, reports, surveys, jobs):
        app.include_router(module.router)
    _add_error_handlers(app)
    app.add_middleware(RequestMetrics, metrics=metrics)
    return app


def start(state: ServiceState) -> None:
    """Migrate the database to head and make sure the bootstrap admin key exists."""
    runner.upgrade(state.engine)
    state.settings.data_dir.mkdir(parents=True, exist_ok=True)
    if state.settings.bootstrap_admin_key is not None:
        with session_scope(state.session_factory) as session:
            ensure_bootstrap_admin(
                session, state.settings.bootstrap_admin_key.get_secret_value(), state.clock()
            )


def _add_error_handlers(app: FastAPI) -> None:
    def handler(code: int):  # type: ignore[no-untyped-def]
        async def handle(request: Request, exc: Exception) -> JSONResponse:
            return JSONResponse({"detail": str(exc)}, status_code=code)

        return handle

    async def illegal(request: Request, exc: IllegalTransitionError) -> JSONResponse:
        return JSONResponse(
            {"detail": str(exc), "state": exc.state, "allowed": list(exc.allowed)},
            status_code=status.HTTP_409_CONFLICT,
        )

    app.add_exception_handler(NotFoundError, handler(status.HTTP_404_NOT_FOUND))
    app.add_exception_handler(RoleNotAllowedError, handler(status.HTTP_403_FORBIDDEN))
    app.add_exception_handler(TransitionConflictError, handler(status.HTTP_409_CONFLICT))
    app.add_exception_handler(InvalidInputError, handler(status.HTTP_422_UNPROCESSABLE_CONTENT))
    app.add_exception_handler(TaxonomyError, handler(status.HTTP_422_UNPROCESSABLE_CONTENT))
    app.add_exception_handler(IllegalTransitionError, illegal)  # type: ignore[arg-type]


class RequestMetrics:
    """Counts requests and their latency by route template (pure ASGI: does not buffer bodies)."""

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status_code = [500]

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_code[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route: Any = scope.get("route")
            template = getattr(route, "path", "<unmatched>")
            self.metrics.requests.labels(scope["method"], template, str(status_code[0])).inc()
            self.metrics.latency.labels(scope["method"], template).observe(time.perf_counter() - started)
