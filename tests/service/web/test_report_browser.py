"""The monthly report page in a real browser (headless Chromium via Playwright, as test_page_browser).

A reviewer signs in on the map page, follows its header link to /report, sees this month's
红榜/黑榜 and charts, downloads the CSV, the PDF and the year's totals (fetched with the key in the
header and handed over as blob: URLs), and picks another month. Nothing leaves the loopback
server and the key is never in a URL. Screenshots: artifacts/browser/<test>/.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import expect

from tests.service.api.test_regions import TOWNSHIP
from tests.service.helpers import drive, upload_ok
from tests.service.images import BASE_LAT, BASE_LON, GARBAGE, offset, painted, png
from tests.service.web import test_page_browser as map_page
from tests.service.web.live import LiveServer, live_server
from tests.service.web.test_page_browser import Session, check_stayed_home, sign_in

pytestmark = pytest.mark.browser

# The map page's Chromium and its per-test page with screenshots, shared rather than written again
# (pytest finds fixtures by these names in this module).
browser = map_page.browser
session = map_page.session

# 东村: three issues reviewed this month, one of them closed (closure rate 1/3): the only village
# with enough reviewed (board_rules.yaml: at least 3) to be labelled, so it is on the 红榜.
# 西村: one issue nobody has reviewed: never labelled. sign_in expects 4 issues on the map.
EAST_VILLAGE = [(-200.0, 0.0, "closed"), (200.0, 0.0, "confirmed"), (300.0, 200.0, "confirmed")]
WEST_VILLAGE = (-2500.0, 0.0)


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with live_server(tmp_path_factory.mktemp("report")) as server, server.client("admin") as admin:
        response = admin.post(
            "/v1/regions", content=json.dumps(TOWNSHIP), headers={"content-type": "application/geo+json"}
        )
        assert response.status_code == 201, response.text
        places = [(east, north) for east, north, _ in EAST_VILLAGE] + [WEST_VILLAGE]
        ids = []
        for shade, (east, north) in enumerate(places, start=5):
            lon, lat = offset(BASE_LON, BASE_LAT, east, north)
            image = png(painted([GARBAGE], shade=shade))
            ids.append(int(upload_ok(admin, server.keys, image, lon=lon, lat=lat)["issues"][0]["id"]))
        for issue_id, (_, _, state) in zip(ids, EAST_VILLAGE, strict=False):
            drive(admin, server.keys, issue_id, state)  # type: ignore[arg-type]  # an httpx.Client serves as well
        yield server


def office_month(server: LiveServer, months_back: int = 0) -> str:
    now = datetime.now(ZoneInfo(server.settings.timezone))
    year, month = divmod(now.year * 12 + now.month - 1 - months_back, 12)
    return f"{year:04d}-{month + 1:02d}"


def test_a_reviewer_reads_the_months_report_and_downloads_it(seeded: LiveServer, session: Session) -> None:
    page = session.page
    sign_in(session, seeded, "reviewer")
    page.click("#report-link")
    expect(page).to_have_url(seeded.url + "/report")
    this_month = office_month(seeded)
    expect(page.locator("#month")).to_have_value(this_month)  # by default the office's current month
    report = page.locator("#report")
    expect(report.locator("h1")).to_have_text(f"{this_month} 人居环境整治月报")
    expect(page.locator("#who")).to_contain_text("reviewer")

    red, black = report.locator(".board.red"), report.locator(".board.black")
    expect(red.first.locator("h3")).to_have_text("红榜 · 村")
    expect(red.first.locator("li")).to_have_text(["东村"])
    expect(black.first.locator("h3")).to_have_text("黑榜 · 村")
    expect(black.first.locator("li")).to_have_text(["（无）"])  # 西村: nothing reviewed, not shamed
    expect(report.locator("svg.chart")).to_have_count(2)
    expect(report.locator("svg.chart rect").first).to_be_visible()
    session.shot("report-this-month")

    with page.expect_download() as csv_download:
        page.click("#download-csv")
    assert csv_download.value.suggested_filename == f"report-{this_month}.csv"
    text = csv_download.value.path().read_bytes().decode("utf-8")
    assert text.startswith("\ufeff")  # Excel reads the Chinese names
    rows = {(r["kind"], r["name"]): r for r in csv.DictReader(io.StringIO(text.lstrip("\ufeff")))}
    east = rows[("village", "东村")]
    assert (east["reviewed"], east["confirmed"], east["closed"], east["label"]) == ("3", "3", "1", "red")
    assert rows[("village", "西村")]["reviewed"] == "0" and rows[("village", "西村")]["label"] == ""

    with page.expect_download() as pdf_download:
        page.click("#download-pdf")
    assert pdf_download.value.path().read_bytes().startswith(b"%PDF")

    # the year's totals (counts and m² per month, region and class), January to the month shown
    with page.expect_download() as totals_download:
        page.click("#download-totals")
    assert totals_download.value.suggested_filename == f"totals-{this_month[:4]}-01-{this_month}.csv"
    totals = list(csv.DictReader(io.StringIO(totals_download.value.path().read_text("utf-8-sig"))))
    cells = {(r["month"], r["region"]): r for r in totals}
    east_totals = cells[(this_month, "东村")]
    figures = tuple(east_totals[k] for k in ("class_zh", "found", "confirmed", "closed"))
    assert figures == ("垃圾堆", "3", "3", "1")
    assert east_totals["found_m2_missing"] == "3"  # placed by the form's lon/lat: no footprint, no area
    assert cells[(this_month, "全部 all")]["found"] == "4"

    last_month = office_month(seeded, months_back=1)
    page.fill("#month", last_month)
    expect(report.locator("h1")).to_have_text(f"{last_month} 人居环境整治月报")
    expect(red.first.locator("li")).to_have_text(["（无）"])  # by capture time, all are this month's
    session.shot("report-last-month")

    assert any("/v1/reports/monthly" in u and "format=csv" in u for u in session.requests)
    check_stayed_home(session, seeded)


def test_without_a_key_the_report_page_shows_nothing_but_the_way_to_sign_in(
    seeded: LiveServer, session: Session
) -> None:
    page = session.page
    page.goto(seeded.url + "/report")
    expect(page.locator("#sign-in-error")).to_contain_text("sign in on the map page")
    expect(page.locator("#report-controls")).to_be_hidden()
    assert not [u for u in session.requests if "/v1/" in u]  # no key, no request for data
    session.shot("report-signed-out")


def test_a_key_whose_role_may_not_read_reports_gets_a_reason(seeded: LiveServer, session: Session) -> None:
    page = session.page
    page.goto(seeded.url + "/")  # sessionStorage belongs to the origin: set it there, as sign-in does
    page.evaluate("(key) => sessionStorage.setItem('patrol.key', key)", seeded.keys.tokens["citizen"])
    page.goto(seeded.url + "/report")
    expect(page.locator("#sign-in-error")).to_contain_text("may not read the report")
    expect(page.locator("#report svg.chart")).to_have_count(0)
    session.shot("report-citizen-403")
