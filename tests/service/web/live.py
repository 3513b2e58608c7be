"""The service on a loopback port for the browser tests, as `patrol serve` runs it, with a seeded ledger.

The app is `create_app` with the production analyzer over the painted-box detector (the same
as the API tests), served by uvicorn in a thread; the ledger is seeded through the API itself
(regions, photos, state changes), so evidence images are real files. Screenshots go under
artifacts/browser/ (ignored by git; CI keeps the folder).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import uvicorn

from service.api.app import create_app
from service.auth import Role, create_key
from service.db.session import make_engine, make_session_factory, session_scope
from service.photo_analyzer import PipelineAnalyzer
from service.review.settings import ReviewSettings
from service.settings import Settings
from tests.servers.core import free_port
from tests.service.conftest import Keys, painted_card
from tests.vision.fakes import PaintedBoxDetector
from vision.batcher import BatcherConfig
from vision.pipeline import Pipeline

ARTIFACTS = Path(__file__).resolve().parents[3] / "artifacts" / "browser"
LOOPBACK = "127.0.0.1"


@dataclass
class LiveServer:
    url: str
    settings: Settings
    keys: Keys

    def client(self, who: str | None = None) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=self.keys.headers(who), timeout=60)


def make_keys(settings: Settings) -> Keys:
    engine = make_engine(settings.database_url)
    tokens = {}
    with session_scope(make_session_factory(engine)) as session:
        for role in Role:
            tokens[role.value] = create_key(
                session, role=role, name=f"测试 {role.value}", now=datetime.now(UTC)
            )[1]
    engine.dispose()
    return Keys(tokens)


@contextmanager
def live_server(tmp: Path, review: ReviewSettings | None = None, **settings: Any) -> Iterator[LiveServer]:
    config = Settings(database_url=f"sqlite:///{tmp / 'ledger.db'}", data_dir=tmp / "data", **settings)
    pipeline = Pipeline(
        PaintedBoxDetector(input_size=640), painted_card(), batcher=BatcherConfig(max_batch=2, max_wait_ms=1)
    )
    app = create_app(config, analyzer=PipelineAnalyzer(config, pipeline=pipeline), review=review)
    port = free_port(LOOPBACK)
    server = uvicorn.Server(
        uvicorn.Config(app, host=LOOPBACK, port=port, log_level="warning", access_log=False)
    )
    thread = threading.Thread(target=server.run, name="live-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the service did not start on the loopback port")
        time.sleep(0.05)
    try:
        yield LiveServer(f"http://{LOOPBACK}:{port}", config, make_keys(config))
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        pipeline.close()


def outside_requests(urls: list[str]) -> list[str]:
    """Requests the page made to anywhere but the loopback server (data: and blob: stay in the browser)."""
    return [
        u for u in urls if urlsplit(u).scheme not in ("data", "blob") and urlsplit(u).hostname != LOOPBACK
    ]
