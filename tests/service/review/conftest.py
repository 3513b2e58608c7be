"""The service's app with the review bridge's secrets set (the webhook's and the URL signer's), and
what the tests against a real Label Studio share: the service on a loopback port with those
secrets, an SDK client, the service's ledger, a photo uploaded and a project set up."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from service.api.app import create_app
from service.db.session import make_engine, make_session_factory
from service.review.project import SetupResult, setup
from service.review.settings import ReviewSettings
from service.review.signing import UrlSigner
from service.review.tasks import UrlPolicy
from tests.servers.label_studio_server import split_url
from tests.service.images import BASE_LAT, GARBAGE, SMOKE, painted, png
from tests.service.web.live import LiveServer, live_server
from vision.taxonomy import Taxonomy

if TYPE_CHECKING:
    from label_studio_sdk import LabelStudio

WEBHOOK_SECRET = "webhook-secret-for-tests-0123456789"
URL_SECRET = "url-signing-secret-for-tests-0123456789"
TAXONOMY = Taxonomy.default()


@pytest.fixture
def review_settings() -> ReviewSettings:
    return ReviewSettings(review_webhook_secret=WEBHOOK_SECRET, review_url_secret=URL_SECRET)


@pytest.fixture
def app(settings, analyzer, clock, review_settings):  # type: ignore[no-untyped-def]
    return create_app(settings, analyzer=analyzer, clock=clock, review=review_settings)


@pytest.fixture
def service(tmp_path: Path, review_settings: ReviewSettings) -> Iterator[LiveServer]:
    """The service on a loopback port, where Label Studio's webhooks and image fetches reach it."""
    with live_server(tmp_path, review=review_settings) as live:
        yield live


@pytest.fixture
def ls(label_studio_url: str) -> LabelStudio:
    from label_studio_sdk import LabelStudio

    base, token = split_url(label_studio_url)
    return LabelStudio(base_url=base, api_key=token, timeout=60)


@pytest.fixture
def ledger(service: LiveServer) -> Iterator[sessionmaker[Session]]:
    """Sessions on the live service's ledger, as `patrol review push` and reconcile open them."""
    engine = make_engine(service.settings.database_url)
    try:
        yield make_session_factory(engine)
    finally:
        engine.dispose()


def url_policy(live: LiveServer) -> UrlPolicy:
    return UrlPolicy(live.url, UrlSigner(URL_SECRET.encode()), 3600)


def new_project(ls: LabelStudio, live: LiveServer) -> tuple[str, SetupResult]:
    """(title, setup's result) of a project of its own for one test, its webhook at `live`."""
    title = f"patrol test {uuid.uuid4().hex[:8]}"
    made = setup(ls, title=title, taxonomy=TAXONOMY, public_url=live.url, webhook_secret=WEBHOOK_SECRET)
    return title, made


def upload(live: LiveServer, shade: int, lon: float) -> list[dict[str, Any]]:
    """A citizen's photo of a garbage pile and smoke at (lon, BASE_LAT): the issues it opened."""
    with live.client("citizen") as http:
        response = http.post(
            "/v1/photos",
            files={"file": ("p.png", png(painted([GARBAGE, SMOKE], shade=shade)), "image/png")},
            data={"lon": str(lon), "lat": str(BASE_LAT)},
        )
    assert response.status_code == 201, response.text
    return list(response.json()["issues"])
