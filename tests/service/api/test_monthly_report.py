"""GET /v1/reports/monthly: figures per village and grid by capture month, the 红黑榜, CSV, HTML, PDF."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

import pytest
from pypdf import PdfReader

from tests.service.api.test_regions import TOWNSHIP, post_regions
from tests.service.helpers import move, upload_ok
from tests.service.images import BASE_LAT, BASE_LON, GARBAGE, jpeg, offset, painted, png


def _found(client, keys, east_m: float, shade: int, taken: datetime | None = None) -> int:  # type: ignore[no-untyped-def]  # noqa: E501
    lon, lat = offset(BASE_LON, BASE_LAT, east_m=east_m)
    pixels = painted([GARBAGE], shade=shade)
    image = png(pixels) if taken is None else jpeg(pixels, taken=taken)
    return upload_ok(client, keys, image, lon=lon, lat=lat)["issues"][0]["id"]


def _moves(client, keys, clock, issue_id: int, *steps: tuple[str, str]) -> None:  # type: ignore[no-untyped-def]
    for at, state in steps:
        clock.now = datetime.fromisoformat(at)
        assert move(client, keys, issue_id, state).status_code == 200, state


@pytest.fixture
def november(client, keys, clock) -> None:  # type: ignore[no-untyped-def]
    post_regions(client, keys, TOWNSHIP)
    clock.now = datetime(2026, 11, 2, 9, tzinfo=UTC)
    a = _found(client, keys, -200, 1)  # 东村第一网格
    b = _found(client, keys, 200, 2)  # 东村第二网格
    e = _found(client, keys, -300, 3)  # 东村第一网格, a false alarm
    # 西村网格: uploaded in November, captured in October: an October finding
    c = _found(client, keys, -2500, 4, taken=datetime(2026, 10, 28, 10, tzinfo=UTC))
    day = "2026-11-{:02d}T09:00:00+00:00".format
    _moves(client, keys, clock, a, (day(2), "confirmed"), (day(2), "dispatched"), (day(4), "rectified"),
           (day(5), "verified"), (day(6), "closed"))
    _moves(client, keys, clock, b, (day(2), "confirmed"), (day(2), "dispatched"), (day(20), "rectified"))
    _moves(client, keys, clock, e, (day(3), "rejected"))
    _moves(client, keys, clock, c, (day(3), "confirmed"), (day(3), "dispatched"), (day(4), "rectified"),
           (day(5), "verified"), (day(6), "closed"))


def _get(client, keys, month: str, **params: str):  # type: ignore[no-untyped-def]
    response = client.get(
        "/v1/reports/monthly", headers=keys.headers("reviewer"), params={"month": month, **params}
    )
    assert response.status_code == 200, response.text
    return response


FIELDS = ("found", "reviewed", "confirmed", "rectified", "rectified_on_time", "closed", "rebounds",
          "closure_rate", "on_time_rate", "label")


def test_november_figures_and_board(client, keys, november):
    report = _get(client, keys, "2026-11").json()
    rows = {r["name"]: r for r in report["rows"]}
    assert {name: tuple(r[f] for f in FIELDS) for name, r in rows.items()} == {
        "东村": (3, 3, 2, 2, 1, 1, 0, 0.5, 0.5, "red"),  # the only village with 3 reviewed
        "东村第一网格": (2, 2, 1, 1, 1, 1, 0, 1.0, 1.0, None),
        "东村第二网格": (1, 1, 1, 1, 0, 0, 0, 0.0, 0.0, None),
        # closed everything it confirmed, but 1 review is below min_reviewed (3): never on the board
        "西村": (0, 1, 1, 1, 1, 1, 0, 1.0, 1.0, None),
        "西村网格": (0, 1, 1, 1, 1, 1, 0, 1.0, 1.0, None),
    }
    assert set(rows["东村"]["area_m2_by_class"]) == {"garbage_pile"}
    assert [rule["label"] for rule in report["rules"]["labels"]] == ["red", "black"]


def test_months_follow_capture_time(client, keys, november):
    rows = {r["name"]: r for r in _get(client, keys, "2026-10").json()["rows"]}
    assert rows["西村"]["found"] == 1 and rows["东村"]["found"] == 0
    assert rows["西村"]["confirmed"] == 0  # decisions count in the month they were made


def test_csv(client, keys, november):
    response = _get(client, keys, "2026-11", format="csv")
    assert response.headers["content-type"].startswith("text/csv")
    assert response.content.startswith("\ufeff".encode())
    table = {r["name"]: r for r in csv.DictReader(io.StringIO(response.content.decode("utf-8-sig")))}
    assert (table["东村"]["label"], table["东村"]["closure_rate"], table["东村"]["rectified_on_time"]) == (
        "red", "0.5000", "1")
    assert "area_m2_straw_burning" in table["东村"] and table["西村"]["label"] == ""


def test_html_page_has_charts_and_board(client, keys, november):
    html = _get(client, keys, "2026-11", format="html").text
    assert html.count("<svg") == 2 and "红榜 · 村" in html and "<li>东村</li>" in html


@pytest.mark.slow
def test_pdf_has_the_chinese_text(client, keys, november):
    response = _get(client, keys, "2026-11", format="pdf")
    assert response.content.startswith(b"%PDF") and response.headers["content-type"] == "application/pdf"
    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(response.content)).pages)
    for word in ("红榜", "东村第一网格", "垃圾堆", "按期整改"):
        assert word in text
    # WeasyPrint sets Pillow's process-wide flag on import; rendering must leave uploads strict.
    from PIL import ImageFile

    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_workers_may_read_citizens_may_not(client, keys, november):
    url = "/v1/reports/monthly?month=2026-11"
    assert client.get(url, headers=keys.headers("worker")).status_code == 200
    assert client.get(url, headers=keys.headers("citizen")).status_code == 403
    assert client.get(url).status_code == 401
