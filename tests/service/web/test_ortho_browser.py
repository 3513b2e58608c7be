"""The map's layers in a real browser: a survey's orthomosaic, and the basemap when one is set.

An orthomosaic survey (the synthetic GeoTIFF of the tiles API test: blue west half, brown east
half) is submitted to the loopback server; a reviewer switches its layer on, and its tiles,
fetched with the key in the header and shown through blob: URLs, load with the raster's colours;
switching it off revokes them. The basemap is a local tile server on another loopback port:
drawn when PATROL_BASEMAP_URL names it, and with no basemap set the page asks nothing of
anyone but its own server. Screenshots: artifacts/browser/<test>/.
"""

from __future__ import annotations

import io
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from PIL import Image
from playwright.sync_api import Page, expect

from tests.service.api.test_tiles import EAST_RGB, HEIGHT, WEST_RGB, WIDTH, lonlat_of, ortho_tiff
from tests.service.helpers import upload_ok
from tests.service.images import GARBAGE, painted, png
from tests.service.jobs.surveys import submit, wait_for_job
from tests.service.web import test_page_browser as map_page
from tests.service.web.live import LOOPBACK, LiveServer, live_server
from tests.service.web.test_page_browser import Session, check_stayed_home

pytestmark = pytest.mark.browser

browser = map_page.browser  # the map page tests' Chromium and per-test page (found by these names)
session = map_page.session

NOTE = "东村 2026-11 航拍"


@dataclass
class Basemap:
    """XYZ tiles on another loopback port: every path answers with one 256 px PNG, and is recorded."""

    template: str
    paths: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def basemap() -> Iterator[Basemap]:
    buffer = io.BytesIO()
    Image.new("RGB", (256, 256), (200, 230, 200)).save(buffer, "PNG")
    tile = buffer.getvalue()
    paths: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802  # the http.server API
            paths.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(tile)))
            self.end_headers()
            self.wfile.write(tile)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002  # quiet
            pass

    server = ThreadingHTTPServer((LOOPBACK, 0), Handler)
    thread = threading.Thread(target=server.serve_forever, name="basemap", daemon=True)
    thread.start()
    try:
        yield Basemap(f"http://{LOOPBACK}:{server.server_port}/{{z}}/{{x}}/{{y}}.png", paths)
    finally:
        server.shutdown()
        server.server_close()


def survey(server: LiveServer, tmp: Path) -> str:
    """The job id of the synthetic orthomosaic, submitted and processed."""
    with server.client() as client:
        response = submit(client, server.keys, ortho_tiff(tmp / "ortho.tif").read_bytes(), note=NOTE)  # type: ignore[arg-type]  # an httpx.Client serves as well
        assert response.status_code == 202, response.text
        job = wait_for_job(client, server.keys, response.json()["id"])  # type: ignore[arg-type]
    assert job["state"] == "succeeded", job
    return str(job["id"])


@pytest.fixture(scope="module")
def surveyed(tmp_path_factory: pytest.TempPathFactory, basemap: Basemap) -> Iterator[tuple[LiveServer, str]]:
    tmp = tmp_path_factory.mktemp("ortho")
    with live_server(tmp, basemap_url=basemap.template) as server:
        yield server, survey(server, tmp)


@pytest.fixture(scope="module")
def shifted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, int]]:
    """A GCJ-02 office (no basemap drawn) with the survey and an issue found in its blue half."""
    tmp = tmp_path_factory.mktemp("gcj02")
    with live_server(tmp, basemap_crs="gcj02") as server:
        survey(server, tmp)
        lon, lat = lonlat_of(WIDTH / 4, HEIGHT / 2)
        with server.client() as client:
            found = upload_ok(client, server.keys, png(painted([GARBAGE])), lon=lon, lat=lat)  # type: ignore[arg-type]
        yield server, int(found["issues"][0]["id"])


@pytest.fixture(scope="module")
def bare(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with live_server(tmp_path_factory.mktemp("bare")) as server:
        yield server


def sign_in(session: Session, server: LiveServer, who: str) -> None:
    page = session.page
    page.goto(server.url + "/")
    page.fill("#key-input", server.keys.tokens[who])
    page.click("#sign-in button[type=submit]")
    expect(page.locator("#issue-count")).to_have_text(re.compile(r"^\d+ 条 issues$"))


# Whether each blob: URL still gives an image (a revoked one fails to load). Loaded as <img>:
# the page's CSP lets img-src read blob: URLs, while connect-src would refuse a fetch() of any.
IMAGES_LOAD = """urls => Promise.all(urls.map(url => new Promise(ok => {
  const img = new Image(); img.onload = () => ok(true); img.onerror = () => ok(false); img.src = url;
})))"""

# How many pixels of each loaded tile have each of the given colours.
COLOUR_COUNTS = """([selector, colours]) => [...document.querySelectorAll(selector)].map(img => {
  const canvas = document.createElement('canvas');
  canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
  const ctx = canvas.getContext('2d'); ctx.drawImage(img, 0, 0);
  const d = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
  const counts = colours.map(() => 0);
  for (let i = 0; i < d.length; i += 4) colours.forEach(([r, g, b], k) => {
    if (d[i + 3] === 255 && d[i] === r && d[i + 1] === g && d[i + 2] === b) counts[k] += 1;
  });
  return counts;
})"""


@pytest.fixture
def reviewing(surveyed: tuple[LiveServer, str], session: Session) -> tuple[LiveServer, str, Page]:
    """A reviewer signed in on the map of the server with a survey and a basemap."""
    server, job_id = surveyed
    sign_in(session, server, "reviewer")
    return server, job_id, session.page


def test_a_reviewer_switches_on_a_surveys_orthomosaic_and_its_tiles_load(
    reviewing: tuple[LiveServer, str, Page], session: Session
) -> None:
    server, job_id, page = reviewing
    switch = page.locator(".leaflet-control-layers-overlays label", has_text=NOTE)
    expect(switch).to_have_count(1)
    expect(page.locator(".ortho-layer")).to_have_count(0)  # off until switched on
    session.shot("layer-switch")
    assert not [u for u in session.requests if "tilejson" in u]  # nor is its GeoTIFF opened

    switch.locator("input").check()
    loaded = page.locator(".ortho-layer img.leaflet-tile-loaded")
    expect(loaded.first).to_be_visible(timeout=30_000)
    page.wait_for_load_state("networkidle")
    sources = loaded.evaluate_all("imgs => imgs.map(i => i.src)")
    assert sources and all(s.startswith("blob:") for s in sources), sources
    assert all(w == 256 for w in loaded.evaluate_all("imgs => imgs.map(i => i.naturalWidth)"))
    counts = page.evaluate(COLOUR_COUNTS, [".ortho-layer img.leaflet-tile-loaded", [WEST_RGB, EAST_RGB]])
    assert sum(c[0] for c in counts) > 1000 and sum(c[1] for c in counts) > 1000, counts  # both halves drawn
    # the map went to the survey: its tiles were asked for at a zoom near the raster's own
    tile_paths = [u for u in session.requests if f"/v1/tiles/{job_id}/" in u and u.endswith(".png")]
    assert tile_paths and all(int(u.split("/")[-3]) >= 18 for u in tile_paths), tile_paths
    assert [u for u in session.requests if "tilejson" in u] == [
        f"{server.url}/v1/tiles/{job_id}/tilejson.json"
    ]
    # drawn over the basemap (this server has one), not under it: the survey's middle shows the survey
    # (both are in Leaflet's tile pane, stacked by their containers' z-index)
    z_survey, z_basemap = (
        int(page.locator(s).evaluate("e => getComputedStyle(e).zIndex")) for s in (".ortho-layer", ".basemap")
    )
    assert z_survey > z_basemap
    session.shot("orthomosaic-on")

    assert page.evaluate(IMAGES_LOAD, sources) == [True] * len(sources)  # live while shown
    switch.locator("input").uncheck()
    expect(page.locator(".ortho-layer")).to_have_count(0)
    assert page.evaluate(IMAGES_LOAD, sources) == [False] * len(sources)  # revoked with their tiles
    check_stayed_home(session, server)


def test_the_basemap_set_in_the_settings_is_drawn(
    reviewing: tuple[LiveServer, str, Page], basemap: Basemap, session: Session
) -> None:
    server, _, page = reviewing
    tiles = page.locator(".basemap img.leaflet-tile-loaded")
    expect(tiles.first).to_be_visible()
    origin = basemap.template.split("/{z}")[0]
    assert all(s.startswith(origin + "/") for s in tiles.evaluate_all("imgs => imgs.map(i => i.src)"))
    assert tiles.evaluate_all("imgs => imgs.map(i => i.naturalWidth)") == [256] * tiles.count()
    assert any(re.fullmatch(r"/\d+/\d+/\d+\.png", p) for p in basemap.paths), basemap.paths
    expect(page.locator(".leaflet-control-layers-overlays label", has_text="底图 basemap")).to_have_count(1)
    session.shot("basemap")
    check_stayed_home(session, server)  # the basemap is on loopback too


def test_without_a_basemap_the_page_asks_only_its_own_server(bare: LiveServer, session: Session) -> None:
    page = session.page
    response = page.goto(bare.url + "/")
    assert response is not None
    assert "img-src 'self' data: blob:;" in response.headers["content-security-policy"]  # no other host
    sign_in(session, bare, "reviewer")
    expect(page.locator(".leaflet-container")).to_be_visible()
    page.wait_for_load_state("networkidle")
    expect(page.locator(".basemap")).to_have_count(0)
    expect(page.locator(".leaflet-tile")).to_have_count(0)  # no basemap, no surveys: no tiles at all
    elsewhere = [u for u in session.requests if not u.startswith(("data:", "blob:", bare.url + "/"))]
    assert elsewhere == []
    session.shot("no-basemap")


def test_over_a_gcj02_basemap_the_survey_moves_with_the_issues_found_in_it(
    shifted: tuple[LiveServer, int], session: Session
) -> None:
    server, issue_id = shifted
    page = session.page
    sign_in(session, server, "reviewer")
    page.locator(".leaflet-control-layers-overlays label", has_text=NOTE).locator("input").check()
    expect(page.locator(".ortho-layer img.leaflet-tile-loaded").first).to_be_visible(timeout=30_000)
    page.wait_for_load_state("networkidle")
    marker = page.locator(f"path.issue-{issue_id}").bounding_box()
    assert marker is not None
    # the tiles are moved by the shift (hundreds of metres), so that beside the issue's dot, also
    # shifted, the map shows the survey's blue half, where it was found
    # (unshifted, the dot would sit on the page's bare background, far from the imagery)
    x, y = marker["x"] + marker["width"] / 2, marker["y"] + marker["height"] / 2
    shot = Image.open(io.BytesIO(page.screenshot(clip={"x": x - 30, "y": y - 30, "width": 60, "height": 60})))
    rgb = shot.convert("RGB")
    beside = [rgb.getpixel(p) for p in ((2, 30), (57, 30), (30, 2), (30, 57))]  # 28 px from its centre
    assert beside == [WEST_RGB] * 4, beside
    session.shot("gcj02-survey-under-its-issue")
    check_stayed_home(session, server)
