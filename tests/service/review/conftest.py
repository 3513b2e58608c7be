"""The service's app with the review bridge's secrets set (the webhook's and the URL signer's)."""

from __future__ import annotations

import pytest

from service.api.app import create_app
from service.review.settings import ReviewSettings

WEBHOOK_SECRET = "webhook-secret-for-tests-0123456789"
URL_SECRET = "url-signing-secret-for-tests-0123456789"


@pytest.fixture
def review_settings() -> ReviewSettings:
    return ReviewSettings(review_webhook_secret=WEBHOOK_SECRET, review_url_secret=URL_SECRET)


@pytest.fixture
def app(settings, analyzer, clock, review_settings):  # type: ignore[no-untyped-def]
    return create_app(settings, analyzer=analyzer, clock=clock, review=review_settings)
