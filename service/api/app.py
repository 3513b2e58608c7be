"""The FastAPI application factory.

`create_app(settings)` wires settings, database, analyzer and clock into one app (one
`service.runtime.Runtime`, shared with the in-process job runner); start-up
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

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.analysis import PhotoAnalyzer
from service.api.disconnects import add_disconnect_handler
from service.api.errors import add_error_handlers
from service.api.routes import cameras as camera_routes
from service.api.routes import health, issues, jobs, me, photos, regions, reports, surveys, tiles
from service.api.routes import review as review_routes
from service.api.routes import taxonomy as classes  # `taxonomy` is create_app's argument
from service.auth import ensure_bootstrap_admin
from service.cameras.runner import start_cameras
from service.db.session import session_scope
from service.jobs.submit import JobServices
from service.metrics import UNMATCHED_ROUTE, ServiceMetrics, method_label
from service.migrations import runner
from service.review.settings import ReviewSettings
from service.runtime import Clock, Runtime
from service.settings import Settings
from service.web import pages as web
from vision.taxonomy import Taxonomy

# Route names reachable without an API key. Everything else is denied by default.
PUBLIC_ROUTES = frozenset(
    {"health", "metrics", "openapi", "swagger_ui_html", "swagger_ui_redirect", "redoc_html"}
    # the office's page shell, its map settings and its static files (service/web); no data
    | {"web_page", "web_config", "static", "report_page"}
    # Label Studio's ways in (routes/review.py): a frame or a change's earlier crop by its signed,
    # expiring URL (403 unless the HMAC matches), and the webhook (401 unless its secret header
    # matches); no API key for any.
    | {"review_frame", "review_before", "review_webhook"}
)


def create_app(
    settings: Settings | None = None,
    *,
    analyzer: PhotoAnalyzer | None = None,
    clock: Clock | None = None,
    taxonomy: Taxonomy | None = None,
    review: ReviewSettings | None = None,
) -> FastAPI:
    state = Runtime.build(settings or Settings(), analyzer=analyzer, clock=clock, taxonomy=taxonomy)
    job_services = JobServices.for_app(state)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        start(state)
        job_services.start()  # resumes unfinished jobs (runner thread, or resent to Celery)
        cameras = start_cameras(state)  # PATROL_CAMERAS_FILE: the watchtower cameras, in this process
        yield
        if cameras is not None:
            cameras.stop()  # readers end within their read timeout; queued alerts stay queued
        job_services.close()  # the current photo or tile finishes; the job is queued again
        state.close()  # the pipeline's batcher thread, when the app built it; the engine's pool

    app = FastAPI(
        title="patrol-vision ledger",
        version="1",
        lifespan=lifespan,
        docs_url=None,  # served by service.web with local assets: FastAPI's own load from a CDN
        redoc_url=None,
        description="Photos and surveys in, deduplicated candidate issues out: states, history, "
        "villages and grids, roles. Authenticate with `Authorization: Bearer <key>`.",
    )
    app.state.service = state
    app.state.jobs = job_services
    app.state.review_settings = review or ReviewSettings()  # PATROL_REVIEW_* and PATROL_LABEL_STUDIO_*
    for module in (health, photos, issues, regions, reports, surveys, jobs, classes, me, tiles):
        app.include_router(module.router)
    app.include_router(camera_routes.router)  # cameras and their alerts
    app.include_router(review_routes.router)  # Label Studio: signed evidence URLs, the webhook
    web.mount(app, state.settings)
    add_error_handlers(app)
    add_disconnect_handler(app)
    app.add_middleware(RequestMetrics, metrics=state.metrics)
    return app


def start(state: Runtime) -> None:
    """Migrate the database to head and make sure the bootstrap admin key exists."""
    runner.upgrade(state.engine)
    state.settings.data_dir.mkdir(parents=True, exist_ok=True)
    if state.settings.bootstrap_admin_key is not None:
        with session_scope(state.session_factory) as session:
            ensure_bootstrap_admin(
                session, state.settings.bootstrap_admin_key.get_secret_value(), state.clock()
            )


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
            template = getattr(route, "path", UNMATCHED_ROUTE)
            method = method_label(scope["method"])
            self.metrics.requests.labels(method, template, str(status_code[0])).inc()
            self.metrics.latency.labels(method, template).observe(time.perf_counter() - started)
