"""Dedup: which observations become one issue (class, distance, time window), across sources."""

from __future__ import annotations

import math

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event

from service.api.app import create_app
from service.ledger.geometry import distance_m, search_box
from tests.service.helpers import issue, issues, upload_ok
from tests.service.images import (
    BASE_LAT,
    BASE_LON,
    GARBAGE,
    SMOKE,
    drone_box_at,
    drone_photo,
    offset,
    painted,
    png,
)

# (first label, second label, metres east between them, days between them, expected issues)
DEDUP_TABLE = [
    ("garbage", "garbage", 10.0, 0, 1),  # same class 10 m apart from two sources -> one issue
    ("garbage", "smoke", 10.0, 0, 2),  # different class -> two
    ("garbage", "garbage", 400.0, 0, 2),  # 400 m apart -> two
    ("garbage", "garbage", 24.0, 0, 1),  # garbage_pile radius is 25 m
    ("garbage", "garbage", 27.0, 0, 2),
    ("smoke", "smoke", 250.0, 0, 1),  # straw_burning radius is 300 m
    ("smoke", "smoke", 400.0, 0, 2),
    ("garbage", "garbage", 10.0, 29, 1),  # within the 30-day window
    ("garbage", "garbage", 10.0, 31, 2),  # outside it
    ("smoke", "smoke", 10.0, 2, 1),  # straw_burning's window is 3 days: a fire is an event
    ("smoke", "smoke", 10.0, 4, 2),
]
OBJECT = {"garbage": GARBAGE, "smoke": SMOKE}


@pytest.mark.parametrize("first, second, east_m, days, expected", DEDUP_TABLE)
def test_dedup_table(client, keys, clock, first, second, east_m, days, expected):
    one = upload_ok(client, keys, png(painted([OBJECT[first]], shade=1)), lon=BASE_LON, lat=BASE_LAT)
    clock.advance(days=days)
    lon, lat = offset(BASE_LON, BASE_LAT, east_m=east_m)
    two = upload_ok(client, keys, png(painted([OBJECT[second]], shade=2)), lon=lon, lat=lat, who="citizen2")
    found = issues(client, keys)
    assert len(found) == expected
    if expected == 1:
        assert two["issues"][0]["outcome"] == "joined" and two["issues"][0]["id"] == one["issues"][0]["id"]
        props = found[0]["properties"]
        assert (props["observation_count"], props["source_count"]) == (2, 2)
        history = issue(client, keys, props["id"])["properties"]["history"]
        assert [e["kind"] for e in history] == ["opened", "joined"]
        assert f"{east_m:.1f} m away" in history[1]["reason"]
    else:
        assert two["issues"][0]["outcome"] == "opened"


def test_drone_areas_carry_their_uncertainty(client, keys):
    """The area's ~95 % half-width is stored and shown with it, on the observation and the issue."""
    drone = upload_ok(
        client, keys, drone_photo(BASE_LON, BASE_LAT, [("garbage", drone_box_at(8, 3), 0.9)]), who="ingest"
    )
    obs = drone["observations"][0]
    assert 0 < obs["area_uncertainty_m2"] < obs["area_m2"]
    props = issue(client, keys, drone["issues"][0]["id"])["properties"]
    assert (props["area_m2"], props["area_uncertainty_m2"]) == (obs["area_m2"], obs["area_uncertainty_m2"])


def test_dedup_is_across_source_kinds(client, keys):
    """A citizen's phone photo and a drone photo of the same pile make one issue."""
    phone = upload_ok(client, keys, png(painted([GARBAGE])), lon=BASE_LON, lat=BASE_LAT)
    drone = upload_ok(
        client, keys, drone_photo(BASE_LON, BASE_LAT, [("garbage", drone_box_at(8, 3), 0.9)]), who="ingest"
    )
    assert drone["issues"][0]["id"] == phone["issues"][0]["id"]
    obs = drone["observations"][0]
    assert (
        distance_m(obs["lon"], obs["lat"], *offset(BASE_LON, BASE_LAT, 8, 3)) < 0.5
    )  # drone geometry is exact
    assert (
        obs["footprint"]["type"] == "Polygon" and 20 < obs["area_m2"] < 35
    )  # 42 px * 0.125 m = 5.25 m square


def test_a_join_writes_the_issue_once_with_its_event(app, client, keys, clock):
    """A sighting that joins an issue widens its seen times and stamps updated_at in one UPDATE
    (they were two: the join, then the event's stamp), and the event is still written (#13)."""
    upload_ok(client, keys, png(painted([GARBAGE], shade=1)), lon=BASE_LON, lat=BASE_LAT)
    clock.advance(hours=2)
    statements: list[str] = []

    def seen(_conn, _cursor, statement, _params, _context, _many):  # type: ignore[no-untyped-def]
        statements.append(" ".join(statement.split()))

    engine = app.state.service.engine
    event.listen(engine, "before_cursor_execute", seen)
    try:
        two = upload_ok(client, keys, png(painted([GARBAGE], shade=2)), lon=BASE_LON, lat=BASE_LAT)
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    assert two["issues"][0]["outcome"] == "joined"
    issue_updates = [s for s in statements if s.startswith("UPDATE issues ")]
    assert len(issue_updates) == 1, issue_updates
    assert "last_seen_at" in issue_updates[0] and "updated_at" in issue_updates[0]
    props = issue(client, keys, two["issues"][0]["id"])["properties"]
    assert [e["kind"] for e in props["history"]] == ["opened", "joined"]
    assert props["last_seen_at"] == props["history"][1]["at"]


def test_nearest_open_issue_wins(client, keys):
    upload_ok(client, keys, png(painted([GARBAGE], shade=1)), lon=BASE_LON, lat=BASE_LAT)
    far_lon, far_lat = offset(BASE_LON, BASE_LAT, east_m=40)
    upload_ok(client, keys, png(painted([GARBAGE], shade=2)), lon=far_lon, lat=far_lat)
    mid_lon, mid_lat = offset(BASE_LON, BASE_LAT, east_m=22)  # 22 m from the first, 18 m from the second
    third = upload_ok(client, keys, png(painted([GARBAGE], shade=3)), lon=mid_lon, lat=mid_lat)
    assert third["issues"][0]["id"] == 2


def test_radius_can_be_overridden_in_settings(settings, analyzer, clock, keys_factory):
    app = create_app(
        settings.model_copy(update={"dedup_radius_m": {"garbage_pile": 60.0}}), analyzer=analyzer, clock=clock
    )
    with TestClient(app) as client:
        keys = keys_factory()
        upload_ok(client, keys, png(painted([GARBAGE], shade=1)), lon=BASE_LON, lat=BASE_LAT)
        lon, lat = offset(BASE_LON, BASE_LAT, east_m=50)
        second = upload_ok(client, keys, png(painted([GARBAGE], shade=2)), lon=lon, lat=lat)
        assert second["issues"][0]["outcome"] == "joined"


@pytest.mark.parametrize("lat", [0.0, 31.8, 60.0, -45.0, 85.0])
@pytest.mark.parametrize("radius", [10.0, 300.0, 5000.0])
def test_search_box_never_cuts_off_a_point_within_the_radius(lat, radius):
    rng = np.random.default_rng(7)
    box = search_box(117.0, lat, radius)
    for azimuth, fraction in zip(rng.uniform(0, 360, 200), np.sqrt(rng.uniform(0, 1, 200)), strict=True):
        lon2, lat2 = offset(
            117.0,
            lat,
            east_m=radius * fraction * math.sin(math.radians(azimuth)),
            north_m=radius * fraction * math.cos(math.radians(azimuth)),
        )
        if distance_m(117.0, lat, lon2, lat2) <= radius:
            assert box.min_lon <= lon2 <= box.max_lon and box.min_lat <= lat2 <= box.max_lat
    # and the box is not needlessly large: under 2 % wider than the radius in latitude
    assert (box.max_lat - lat) * 110_574 < radius * 1.02


def test_a_sighting_that_measures_the_area_better_gives_the_issue_its_area(client, keys, clock):
    """A survey sees one pile in overlapping photos: the issue keeps the footprint and area measured
    with the smallest uncertainty, and its history says when that changed; a worse view changes
    nothing."""
    east_m = 20.0  # seen near the first photo's edge, then straight below the second
    edge = upload_ok(client, keys, drone_photo(BASE_LON, BASE_LAT, [("garbage", drone_box_at(east_m, 0), 0.9)],
                                               shade=1), who="ingest")
    first = edge["observations"][0]
    clock.advance(minutes=1)
    lon, lat = offset(BASE_LON, BASE_LAT, east_m=east_m)
    below = upload_ok(client, keys, drone_photo(lon, lat, [("garbage", drone_box_at(0, 0), 0.9)], shade=2),
                      who="ingest")
    second = below["observations"][0]
    assert below["issues"][0]["outcome"] == "joined"
    assert second["area_uncertainty_m2"] < first["area_uncertainty_m2"]
    props = issue(client, keys, edge["issues"][0]["id"])["properties"]
    assert (props["area_m2"], props["area_uncertainty_m2"]) == (second["area_m2"], second["area_uncertainty_m2"])
    assert f"(was {first['area_m2']:.1f} ± {first['area_uncertainty_m2']:.1f} m²)" in props["history"][1]["reason"]

    clock.advance(minutes=1)
    again = upload_ok(client, keys, drone_photo(BASE_LON, BASE_LAT, [("garbage", drone_box_at(east_m, 0), 0.9)],
                                                shade=3), who="ingest")
    assert again["issues"][0]["outcome"] == "joined"
    props = issue(client, keys, edge["issues"][0]["id"])["properties"]
    assert props["area_uncertainty_m2"] == second["area_uncertainty_m2"]  # the better one stays
    assert "area now" not in props["history"][2]["reason"]
