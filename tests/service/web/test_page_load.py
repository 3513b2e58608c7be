"""Page-load time with 5,000 issues, beside the same page with 50: printed as a ratio, not asserted.

The ledger is filled by direct inserts (5,000 photo uploads would measure the detector, not the
page); the page's own figure is the time from sign-in to every issue placed on the map and listed
(`data-loaded-ms`, from the fetches of /v1/issues to the markers in the cluster layer).
"""

from __future__ import annotations

import json
import random
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect

from service.db.models import Issue
from service.db.session import make_engine, make_session_factory, session_scope
from service.ledger.states import State
from tests.service.images import BASE_LAT, BASE_LON
from tests.service.web.live import live_server
from tests.service.web.test_page_browser import browser  # noqa: F401  (the module's Chromium fixture)

pytestmark = [pytest.mark.browser, pytest.mark.slow]
CLASSES = ("garbage_pile", "straw_burning", "roadside_clutter", "illegal_structure", "blue_steel_roof")


def fill(database_url: str, n: int) -> None:
    rng = random.Random(16)
    start = datetime(2026, 11, 1, tzinfo=UTC)
    engine = make_engine(database_url)
    with session_scope(make_session_factory(engine)) as session:
        for i in range(n):
            at = start + timedelta(minutes=i)
            session.add(
                Issue(
                    class_key=CLASSES[i % len(CLASSES)],
                    state=rng.choice(list(State)).value,
                    needs_location=False,
                    lon=BASE_LON + rng.uniform(-0.05, 0.05),
                    lat=BASE_LAT + rng.uniform(-0.05, 0.05),
                    max_score=0.9,
                    first_seen_at=at,
                    last_seen_at=at,
                    state_changed_at=at,
                    created_at=at,
                    updated_at=at,
                )
            )
    engine.dispose()


def load_ms(browser: Browser, tmp: Path, n: int) -> dict[str, int]:  # noqa: F811
    with live_server(tmp) as server:
        fill(server.settings.database_url, n)
        context = browser.new_context(viewport={"width": 1400, "height": 900})
        page = context.new_page()
        page.goto(server.url + "/")
        started = time.perf_counter()
        page.fill("#key-input", server.keys.tokens["reviewer"])
        page.click("#sign-in button[type=submit]")
        expect(page.locator("body")).to_have_attribute("data-issues", str(n), timeout=120_000)
        sign_in_ms = (time.perf_counter() - started) * 1000
        issues_ms = int(page.locator("body").get_attribute("data-loaded-ms") or -1)
        markers = page.evaluate("() => document.querySelectorAll('.leaflet-overlay-pane path.issue').length"
                                " + [...document.querySelectorAll('.marker-cluster span')]"
                                ".reduce((sum, s) => sum + Number(s.textContent), 0)")
        context.close()
    assert markers == n  # every issue is on the map, as a marker or inside a cluster's count
    return {"issues": n, "sign_in_to_map_ms": round(sign_in_ms), "issues_fetch_and_draw_ms": issues_ms}


def test_page_load_with_5000_issues(browser: Browser, tmp_path: Path) -> None:  # noqa: F811
    small = load_ms(browser, tmp_path / "small", 50)
    large = load_ms(browser, tmp_path / "large", 5000)
    print(
        "page load:",
        json.dumps(
            {
                "small": small,
                "large": large,
                "ratio_5000_to_50": round(large["sign_in_to_map_ms"] / max(small["sign_in_to_map_ms"], 1), 2),
            }
        ),
    )
