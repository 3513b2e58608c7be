"""The office's page in a real browser: headless Chromium (Debian package) driven by Playwright.

Against the service on a loopback port with a seeded ledger: sign in, filter by class and
village, open an issue, see its evidence load, confirm it as a reviewer, see the change on
the map and in the history; a reviewer cannot close (no button, and the API says 403). Every
request the browser makes is recorded and must stay on the loopback server, and the key
never appears in a URL. Screenshots of each step: artifacts/browser/<test>/.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.service.api.test_regions import TOWNSHIP
from tests.service.helpers import drive, upload_ok
from tests.service.images import BASE_LAT, BASE_LON, GARBAGE, SMOKE, offset, painted, png
from tests.service.web.live import ARTIFACTS, LiveServer, live_server, outside_requests
from vision.geo.gcj02 import wgs84_to_gcj02

pytestmark = pytest.mark.browser


@dataclass
class Seeded:
    server: LiveServer
    ids: dict[str, int] = field(default_factory=dict)  # name -> issue id


def _issue(server: LiveServer, image: bytes, east_m: float, north_m: float = 0.0) -> int:
    lon, lat = offset(BASE_LON, BASE_LAT, east_m, north_m)
    with server.client() as client:
        return int(upload_ok(client, server.keys, image, lon=lon, lat=lat)["issues"][0]["id"])


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    with live_server(tmp_path_factory.mktemp("live")) as server:
        with server.client("admin") as admin:
            response = admin.post(
                "/v1/regions", content=json.dumps(TOWNSHIP), headers={"content-type": "application/geo+json"}
            )
            assert response.status_code == 201, response.text
        seeded = Seeded(server)
        seeded.ids["east_garbage"] = _issue(server, png(painted([GARBAGE], shade=1)), -200)  # 东村第一网格
        seeded.ids["east_smoke"] = _issue(server, png(painted([SMOKE], shade=2)), 200)  # 东村第二网格
        seeded.ids["west_garbage"] = _issue(server, png(painted([GARBAGE], shade=3)), -2500)  # 西村
        seeded.ids["verified"] = _issue(server, png(painted([GARBAGE], shade=4)), 300, 200)  # 东村第二网格
        with server.client() as client:
            drive(client, server.keys, seeded.ids["verified"], "verified")  # type: ignore[arg-type]
        yield seeded


@pytest.fixture(scope="module")
def browser(chromium_path: str) -> Iterator[Browser]:
    with sync_playwright() as playwright:
        # --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start
        launched = playwright.chromium.launch(
            executable_path=chromium_path, headless=True, args=["--no-sandbox"]
        )
        yield launched
        launched.close()


@dataclass
class Session:
    page: Page
    shots: Path
    requests: list[str] = field(default_factory=list)
    console: list[str] = field(default_factory=list)
    step: int = 0

    def shot(self, name: str) -> None:
        self.step += 1
        self.page.screenshot(path=self.shots / f"{self.step:02d}-{name}.png", full_page=True)


@pytest.fixture
def session(browser: Browser, request: pytest.FixtureRequest) -> Iterator[Session]:
    shots = ARTIFACTS / request.node.name
    shots.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(viewport={"width": 1400, "height": 900}, locale="zh-CN")
    page = context.new_page()
    recorded = Session(page, shots)
    page.on("request", lambda r: recorded.requests.append(r.url))
    page.on("console", lambda m: recorded.console.append(m.text))
    page.on("pageerror", lambda e: recorded.console.append(f"page error: {e}"))
    yield recorded
    context.close()
    print(f"screenshots: {shots}")


def sign_in(session: Session, server: LiveServer, who: str, issues: int = 4) -> None:
    page = session.page
    page.goto(server.url + "/")
    expect(page.locator("#key-input")).to_be_visible()
    expect(page.locator("#map")).to_be_hidden()  # nothing of the ledger before a key
    session.shot("signed-out")
    page.fill("#key-input", server.keys.tokens[who])
    page.click("#sign-in button[type=submit]")
    expect(page.locator("#issue-count")).to_have_text(f"{issues} 条 issues")
    expect(page.locator("#who")).to_contain_text(who)


def listed(page: Page) -> set[int]:
    return {
        int(i) for i in page.locator("#issue-list li").evaluate_all("rows => rows.map(r => r.dataset.id)")
    }


def check_stayed_home(session: Session, server: LiveServer) -> None:
    assert session.requests, "the listener saw no requests"
    assert outside_requests(session.requests) == []
    assert not [u for u in session.requests if server.keys.tokens["reviewer"] in u]  # never in a URL
    assert not [m for m in session.console if server.keys.tokens["reviewer"] in m]  # never logged
    assert not [m for m in session.console if m.startswith("page error")], session.console


def test_reviewer_filters_opens_and_confirms_an_issue(seeded: Seeded, session: Session) -> None:
    server, page, target = seeded.server, session.page, seeded.ids["east_garbage"]
    sign_in(session, server, "reviewer")
    assert listed(page) == set(seeded.ids.values())
    # Both villages and all three grids are drawn as outlines (solid for villages, dashed for grids).
    expect(page.locator('.leaflet-overlay-pane path[stroke="#37474F"]')).to_have_count(2)
    expect(page.locator('.leaflet-overlay-pane path[stroke="#607D8B"]')).to_have_count(3)
    session.shot("signed-in")

    page.select_option("#filter-class", "garbage_pile")
    expect(page.locator("#issue-count")).to_have_text("3 条 issues")
    village = page.locator("#filter-region option", has_text="东村").first.get_attribute("value")
    page.select_option("#filter-region", village)
    expect(page.locator("#issue-count")).to_have_text("2 条 issues")
    assert listed(page) == {seeded.ids["east_garbage"], seeded.ids["verified"]}
    session.shot("filtered-garbage-in-east-village")

    page.click(f'#issue-list li[data-id="{target}"]')
    expect(page.locator("#issue-state")).to_have_attribute("data-state", "candidate")
    images = page.locator("#panel img.evidence-img")
    expect(images).to_have_count(2)  # the crop, and the frame with the box drawn over it
    page.wait_for_function(
        "() => [...document.querySelectorAll('#panel img.evidence-img')]"
        ".every(i => i.complete && i.naturalWidth > 0)"
    )
    assert images.evaluate_all("imgs => imgs.map(i => i.naturalWidth)") == [
        pytest.approx(w, abs=40)
        for w in (112, 320)  # crop of the 80 px box with margins; the 320 px frame
    ]
    expect(page.locator("#panel .box-overlay rect")).to_have_count(1)
    expect(page.locator(f"path.issue-{target}")).to_have_class(re.compile(r"\bstate-candidate\b"))
    session.shot("issue-open-with-evidence")

    expect(page.locator("#moves button[data-move]")).to_have_count(
        2
    )  # confirm and reject: a reviewer's moves
    page.fill("#reason", "现场核实 垃圾堆")
    page.click('#moves button[data-move="confirmed"]')
    expect(page.locator("#issue-state")).to_have_attribute("data-state", "confirmed")
    expect(page.locator("#history li").last).to_have_attribute("data-to", "confirmed")
    expect(page.locator("#history li").last).to_contain_text("现场核实 垃圾堆")
    expect(page.locator(f"path.issue-{target}")).to_have_class(re.compile(r"\bstate-confirmed\b"))
    expect(page.locator(f'#issue-list li[data-id="{target}"]')).to_have_attribute("data-state", "confirmed")
    session.shot("confirmed")

    with server.client("reviewer") as client:
        issue = client.get(f"/v1/issues/{target}").json()["properties"]
    assert issue["state"] == "confirmed" and issue["history"][-1]["reason"] == "现场核实 垃圾堆"
    check_stayed_home(session, server)


def test_a_reviewer_cannot_close(seeded: Seeded, session: Session) -> None:
    server, page, target = seeded.server, session.page, seeded.ids["verified"]
    sign_in(session, server, "reviewer")
    page.click(f'#issue-list li[data-id="{target}"]')
    expect(page.locator("#issue-state")).to_have_attribute("data-state", "verified")
    expect(page.locator('#moves button[data-move="closed"]')).to_have_count(0)
    expect(page.locator("#moves")).to_contain_text("no moves for your role")
    page.wait_for_function("() => document.querySelectorAll('#panel img.evidence-img').length > 0")
    session.shot("verified-issue-no-close-button")
    with server.client("reviewer") as client:
        response = client.post(
            f"/v1/issues/{target}/transitions", json={"to": "closed", "reason": "试图销号"}
        )
    assert response.status_code == 403, response.text
    with server.client("admin") as client:  # the move exists: it is the role that may not make it
        assert "closed" in client.get(f"/v1/issues/{target}").json()["properties"]["allowed_transitions"]
    check_stayed_home(session, server)


def test_a_wrong_key_shows_nothing(seeded: Seeded, session: Session) -> None:
    page = session.page
    page.goto(seeded.server.url + "/")
    page.fill("#key-input", "pv_not-a-key-" + "x" * 40)
    page.click("#sign-in button[type=submit]")
    expect(page.locator("#sign-in-error")).to_contain_text("401")
    expect(page.locator("#map")).to_be_hidden()
    assert page.evaluate("() => sessionStorage.getItem('patrol.key')") is None  # a refused key is not kept
    session.shot("refused-key")


@pytest.mark.parametrize(
    "path, ready", [("/docs", ".swagger-ui .info .title"), ("/redoc", ".api-info")], ids=["swagger", "redoc"]
)
def test_api_docs_load_with_nothing_from_outside(
    seeded: Seeded, session: Session, path: str, ready: str
) -> None:
    page = session.page
    page.goto(seeded.server.url + path)
    expect(page.locator(ready).first).to_be_visible(timeout=30_000)
    expect(page.locator(ready).first).to_contain_text("patrol-vision ledger")
    session.shot(path.strip("/"))
    assert outside_requests(session.requests) == []


def test_gcj02_shift_in_the_page_matches_the_python_one(seeded: Seeded, session: Session) -> None:
    session.page.goto(seeded.server.url + "/")
    points = [(BASE_LON, BASE_LAT), (116.397, 39.908), (121.4737, 31.2304), (2.35, 48.85)]  # Paris: no shift
    shifted = session.page.evaluate(
        "async (points) => { const m = await import('/static/gcj02.js');"
        " return points.map(([lon, lat]) => m.wgs84ToGcj02(lon, lat)); }",
        points,
    )
    assert shifted == [pytest.approx(wgs84_to_gcj02(lon, lat), abs=1e-12) for lon, lat in points]
