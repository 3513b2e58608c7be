"""GET /v1/reports/ranking: monthly figures per village and grid (红黑榜), JSON and CSV."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

import pytest

from service.errors import InvalidInputError
from service.reports import month_bounds
from tests.service.api.test_regions import TOWNSHIP, post_regions
from tests.service.helpers import move, upload_ok
from tests.service.images import BASE_LAT, BASE_LON, GARBAGE, offset, painted, png


def _at(clock, iso: str) -> None:  # type: ignore[no-untyped-def]
    clock.now = datetime.fromisoformat(iso)


def _found(client, keys, east_m: float, shade: int) -> int:  # type: ignore[no-untyped-def]
    lon, lat = offset(BASE_LON, BASE_LAT, east_m=east_m)
    return upload_ok(client, keys, png(painted([GARBAGE], shade=shade)), lon=lon, lat=lat)["issues"][0]["id"]


def _moves(client, keys, issue_id: int, *states: str) -> None:  # type: ignore[no-untyped-def]
    for state in states:
        assert move(client, keys, issue_id, state).status_code == 200, state


@pytest.fixture
def november(client, keys, clock) -> None:  # type: ignore[no-untyped-def]
    post_regions(client, keys, TOWNSHIP)
    _at(clock, "2026-11-02T09:00:00+00:00")
    a = _found(client, keys, -200, 1)  # 东村第一网格
    _moves(client, keys, a, "confirmed", "dispatched", "rectified", "verified")
    _at(clock, "2026-11-03T09:00:00+00:00")
    b = _found(client, keys, 200, 2)  # 东村第二网格
    _moves(client, keys, b, "confirmed")
    _at(clock, "2026-11-04T09:00:00+00:00")
    c = _found(client, keys, -2500, 3)  # 西村网格
    _moves(client, keys, c, "confirmed", "dispatched", "rectified", "verified")
    _at(clock, "2026-11-05T09:00:00+00:00")
    _moves(client, keys, c, "closed")  # 1 day after it was found
    _at(clock, "2026-11-06T09:00:00+00:00")
    _moves(client, keys, a, "closed")  # 4 days after it was found
    _at(clock, "2026-11-10T09:00:00+00:00")
    _moves(client, keys, c, "rebound")
    _at(clock, "2026-11-30T17:00:00+00:00")  # 1 December, 01:00 in Shanghai
    _found(client, keys, -2950, 4)  # 西村, outside its grid


def _rows(client, keys, month: str) -> dict[str, dict]:  # type: ignore[no-untyped-def]
    response = client.get("/v1/reports/ranking", headers=keys.headers("reviewer"), params={"month": month})
    assert response.status_code == 200, response.text
    assert response.json()["timezone"] == "Asia/Shanghai" and "closure rate" in response.json()["rule"]
    return {r["name"]: r for r in response.json()["rows"]}


FIELDS = ("found", "confirmed", "closed", "closure_rate", "median_days_to_close", "rebounds", "rank")


def test_november_ranking(client, keys, november):
    rows = _rows(client, keys, "2026-11")
    got = {name: tuple(row[f] for f in FIELDS) for name, row in rows.items()}
    assert got == {
        "东村": (2, 2, 1, 0.5, 4.0, 0, 2),
        "西村": (1, 1, 1, 1.0, 1.0, 1, 1),
        "西村网格": (1, 1, 1, 1.0, 1.0, 1, 1),
        "东村第一网格": (1, 1, 1, 1.0, 4.0, 0, 2),
        "东村第二网格": (1, 1, 0, 0.0, None, 0, 3),
    }
    assert rows["东村第一网格"]["parent_name"] == "东村"


def test_month_boundaries_follow_the_office_time_zone(client, keys, november):
    rows = _rows(client, keys, "2026-12")
    assert rows["西村"]["found"] == 1 and rows["东村"]["found"] == 0
    assert (rows["东村"]["rank"], rows["西村"]["rank"]) == (1, 2)  # nothing found ranks above one found
    assert {rows[g]["rank"] for g in ("东村第一网格", "东村第二网格", "西村网格")} == {
        1
    }  # all equal: shared rank


def test_csv_variant(client, keys, november):
    response = client.get(
        "/v1/reports/ranking", headers=keys.headers("admin"), params={"month": "2026-11", "format": "csv"}
    )
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    assert response.content.startswith("\ufeff".encode())  # BOM: Excel reads the Chinese names right
    table = list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert len(table) == 5
    dongcun = next(r for r in table if r["name"] == "东村")
    assert (
        dongcun["kind"],
        dongcun["found"],
        dongcun["closure_rate"],
        dongcun["median_days_to_close"],
        dongcun["rank"],
    ) == ("village", "2", "0.5000", "4.00", "2")
    second_grid = next(r for r in table if r["name"] == "东村第二网格")
    assert second_grid["median_days_to_close"] == "" and second_grid["parent"] == "东村"


@pytest.mark.parametrize("month", ["2026-13", "2026-1", "November", "2026-11-01"])
def test_bad_month_is_422(client, keys, month):
    response = client.get("/v1/reports/ranking", headers=keys.headers("admin"), params={"month": month})
    assert response.status_code == 422 and "YYYY-MM" in response.json()["detail"]


def test_month_bounds_in_shanghai():
    start, end = month_bounds("2026-12", "Asia/Shanghai")
    assert (start, end) == (datetime(2026, 11, 30, 16, tzinfo=UTC), datetime(2026, 12, 31, 16, tzinfo=UTC))
    with pytest.raises(InvalidInputError):
        month_bounds("2026-00", "Asia/Shanghai")
