"""GET /v1/reports/totals: counts and m² found, confirmed, rectified and closed per region, class
and month, as JSON and CSV (on SQLite and PostgreSQL, as the `client` fixture is parametrised).

The m² are the issues' stored areas: nadir drone photos (0.125 m per pixel) with a painted
garbage pile of a known size give issues of known area; a photo placed by its form fields only
has no footprint, so its issue counts with no m² (and in `*_m2_missing`).
"""

from __future__ import annotations

import csv
import io
import math
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.service.api.test_regions import TOWNSHIP, post_regions
from tests.service.helpers import move, upload_ok
from tests.service.images import (
    BASE_LAT,
    BASE_LON,
    DRONE_M_PER_PX,
    GARBAGE,
    drone_box_at,
    drone_photo,
    offset,
    painted,
    png,
)

STAGES = ("found", "confirmed", "rectified", "closed")


def _drone_issue(client, keys, east_m: float, half_px: int, shade: int) -> tuple[int, float]:  # type: ignore[no-untyped-def]  # noqa: E501
    """An issue from a nadir drone photo centred `east_m` east of the base point; its stored area."""
    lon, lat = offset(BASE_LON, BASE_LAT, east_m=east_m)
    image = drone_photo(lon, lat, [("garbage", drone_box_at(0, 0, half_px), 0.9)], shade=shade)
    issue_id = int(upload_ok(client, keys, image, filename="DJI_0001.JPG")["issues"][0]["id"])
    area = client.get(f"/v1/issues/{issue_id}", headers=keys.headers("reviewer")).json()["properties"][
        "area_m2"
    ]
    # the painted box on the ground: its side, in pixels, as painted (the painter draws edges inclusive)
    assert 2 * half_px <= math.sqrt(area) / DRONE_M_PER_PX <= 2 * half_px + 5, area
    return issue_id, float(area)


def _moves(client, keys, clock, issue_id: int, *steps: tuple[str, str]) -> None:  # type: ignore[no-untyped-def]
    for at, state in steps:
        clock.now = datetime.fromisoformat(at)
        assert move(client, keys, issue_id, state).status_code == 200, state


@pytest.fixture
def ledger(client, keys, clock) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """Issues over October to December 2026; the areas of A, B and C by name."""
    post_regions(client, keys, TOWNSHIP)
    clock.now = datetime(2026, 10, 15, 9, tzinfo=UTC)
    a, area_a = _drone_issue(client, keys, -200, 20, 1)  # 东村第一网格, found in October
    clock.now = datetime(2026, 11, 2, 9, tzinfo=UTC)
    b, area_b = _drone_issue(client, keys, 200, 30, 2)  # 东村第二网格
    c, area_c = _drone_issue(client, keys, -2500, 25, 3)  # 西村网格
    e, _ = _drone_issue(client, keys, -350, 15, 4)  # 东村第一网格, a false alarm
    lon, lat = offset(BASE_LON, BASE_LAT, east_m=-100)
    d = int(upload_ok(client, keys, png(painted([GARBAGE], shade=5)), lon=lon, lat=lat)["issues"][0]["id"])
    assert (
        client.get(f"/v1/issues/{d}", headers=keys.headers("admin")).json()["properties"]["area_m2"] is None
    )
    nov = "2026-11-{:02d}T09:00:00+00:00".format
    _moves(client, keys, clock, a, (nov(2), "confirmed"), (nov(2), "dispatched"), (nov(4), "rectified"),
           (nov(5), "verified"), (nov(6), "closed"))  # fmt: skip
    _moves(client, keys, clock, b, (nov(3), "confirmed"))
    _moves(client, keys, clock, d, (nov(3), "confirmed"))
    _moves(client, keys, clock, e, (nov(3), "rejected"))
    # rectified at 01:00 on 1 December in Shanghai: a December figure
    _moves(client, keys, clock, c, (nov(2), "confirmed"), (nov(2), "dispatched"),
           ("2026-11-30T17:00:00+00:00", "rectified"))  # fmt: skip
    return {"A": area_a, "B": area_b, "C": area_c}


def _totals(client, keys, **params: str) -> Any:  # type: ignore[no-untyped-def]
    response = client.get("/v1/reports/totals", headers=keys.headers("reviewer"), params=params)
    assert response.status_code == 200, response.text
    return response


def _cells(rows: list[dict[str, Any]]) -> dict[tuple[str, str], tuple[tuple[int, float, int], ...]]:
    """(month, region) -> (count, m², missing) per stage; every row here is garbage_pile."""
    assert {r["class_key"] for r in rows} == {"garbage_pile"}
    return {
        (r["month"], r["region"]): tuple(
            (r[s]["count"], r[s]["area_m2"], r[s]["area_m2_missing"]) for s in STAGES
        )
        for r in rows
    }


def test_totals_by_region_class_and_month(client, keys, ledger):
    a, b, c = (round(ledger[k], 1) for k in "ABC")
    body = _totals(client, keys, **{"from": "2026-10", "to": "2026-12"}).json()
    assert (body["from_month"], body["to_month"], body["timezone"]) == ("2026-10", "2026-12", "Asia/Shanghai")
    none = (0, 0.0, 0)
    expected = {
        # found in October: A
        ("2026-10", "全部 all"): ((1, a, 0), none, none, none),
        ("2026-10", "东村"): ((1, a, 0), none, none, none),
        ("2026-10", "东村第一网格"): ((1, a, 0), none, none, none),
        # November: B, C, D (no area), E (rejected: found, no m²); A, B, C, D confirmed; A rectified, closed
        ("2026-11", "全部 all"): ((4, b + c, 1), (4, a + b + c, 1), (1, a, 0), (1, a, 0)),
        ("2026-11", "东村"): ((3, b, 1), (3, a + b, 1), (1, a, 0), (1, a, 0)),
        ("2026-11", "东村第一网格"): ((2, 0.0, 1), (2, a, 1), (1, a, 0), (1, a, 0)),
        ("2026-11", "东村第二网格"): ((1, b, 0), (1, b, 0), none, none),
        ("2026-11", "西村"): ((1, c, 0), (1, c, 0), none, none),
        ("2026-11", "西村网格"): ((1, c, 0), (1, c, 0), none, none),
        # December (office time): C rectified
        ("2026-12", "全部 all"): (none, none, (1, c, 0), none),
        ("2026-12", "西村"): (none, none, (1, c, 0), none),
        ("2026-12", "西村网格"): (none, none, (1, c, 0), none),
    }
    got = _cells(body["rows"])
    assert set(got) == set(expected)
    for cell, stages in expected.items():
        for stage, want, have in zip(STAGES, stages, got[cell], strict=True):
            assert have[0] == want[0] and have[2] == want[2], (cell, stage, have)
            assert have[1] == pytest.approx(want[1], abs=0.15), (cell, stage, have)  # sums of rounded areas
    # the order: month, then the whole ledger, villages, grids
    assert [(r["month"], r["kind"]) for r in body["rows"]][:3] == [("2026-10", "all"), ("2026-10", "village"),
                                                                  ("2026-10", "grid")]  # fmt: skip
    village = next(r for r in body["rows"] if r["region"] == "东村第一网格")
    assert village["parent_name"] == "东村" and village["region_id"] is not None


def test_found_m2_agree_with_the_monthly_report(client, keys, ledger):
    monthly = client.get("/v1/reports/monthly", headers=keys.headers("reviewer"), params={"month": "2026-11"})
    assert monthly.status_code == 200, monthly.text
    by_region = {r["name"]: r["area_m2_by_class"].get("garbage_pile", 0.0) for r in monthly.json()["rows"]}
    rows = _totals(client, keys, **{"from": "2026-11"}).json()["rows"]
    assert {r["month"] for r in rows} == {"2026-11"}  # `to` defaults to `from`
    found = {r["region"]: r["found"]["area_m2"] for r in rows if r["kind"] != "all"}
    assert found == {name: pytest.approx(m2, abs=0.15) for name, m2 in by_region.items() if name in found}
    assert set(by_region) == set(found)


def test_csv_variant(client, keys, ledger):
    response = _totals(client, keys, **{"from": "2026-11", "to": "2026-11", "format": "csv"})
    assert response.headers["content-type"].startswith("text/csv")
    assert 'filename="totals-2026-11-2026-11.csv"' in response.headers["content-disposition"]
    assert response.content.startswith("\ufeff".encode())  # BOM: Excel reads the Chinese names right
    table = list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert len(table) == 6
    east = next(r for r in table if r["region"] == "东村")
    assert (east["month"], east["kind"], east["class"], east["class_zh"]) == (
        "2026-11",
        "village",
        "garbage_pile",
        "垃圾堆",
    )
    assert (east["closed"], east["closed_m2"], east["closed_m2_missing"]) == ("1", f"{ledger['A']:.1f}", "0")
    assert (east["found"], east["found_m2_missing"]) == ("3", "1")


@pytest.mark.parametrize(
    "params, why",
    [
        ({"from": "2026-12", "to": "2026-11"}, "no later than"),
        ({"from": "2016-01", "to": "2026-12"}, "at most 120 months"),
        ({"from": "2026-13"}, "YYYY-MM"),
        ({"from": "2026-11", "to": "Nov"}, "YYYY-MM"),
    ],
)
def test_bad_months_are_422(client, keys, params, why):
    response = client.get("/v1/reports/totals", headers=keys.headers("admin"), params=params)
    assert response.status_code == 422 and why in response.json()["detail"], response.text


def test_from_is_required(client, keys):
    response = client.get("/v1/reports/totals", headers=keys.headers("admin"))
    assert response.status_code == 422, response.text
