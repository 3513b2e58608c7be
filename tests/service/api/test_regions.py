"""Villages and grids: GeoJSON import, nesting by containment, issues in the smallest region."""

from __future__ import annotations

import json
import math

import pytest
from fastapi.testclient import TestClient

from service.api.app import create_app
from tests.service.helpers import issue, issues, upload_ok
from tests.service.images import BASE_LAT, BASE_LON, GARBAGE, offset, painted, png


def rect(west_m: float, south_m: float, east_m: float, north_m: float) -> list[list[list[float]]]:
    """A rectangle given in metres from the base point, as GeoJSON polygon coordinates."""
    lon1, lat1 = offset(BASE_LON, BASE_LAT, west_m, south_m)
    lon2, lat2 = offset(BASE_LON, BASE_LAT, east_m, north_m)
    return [[[lon1, lat1], [lon2, lat1], [lon2, lat2], [lon1, lat2], [lon1, lat1]]]


def feature(name: str, kind: str, coordinates, geometry_type: str = "Polygon") -> dict:  # type: ignore[no-untyped-def]
    return {
        "type": "Feature",
        "properties": {"name": name, "kind": kind},
        "geometry": {"type": geometry_type, "coordinates": coordinates},
    }


# 东村 (1 km square round the base point) with two grids; 西村 2 km west with one grid.
TOWNSHIP = {
    "type": "FeatureCollection",
    "features": [
        feature("东村第一网格", "grid", rect(-500, -500, 0, 500)),  # listed before its village on purpose
        feature("东村", "village", rect(-500, -500, 500, 500)),
        feature("东村第二网格", "grid", rect(0, -500, 500, 500)),
        feature("西村", "village", rect(-3000, -500, -2000, 500)),
        feature("西村网格", "grid", rect(-2900, -400, -2100, 400)),
    ],
}


def post_regions(client, keys, body, content_type="application/geo+json", who="admin"):  # type: ignore[no-untyped-def]
    return client.post(
        "/v1/regions",
        headers={**keys.headers(who), "content-type": content_type},
        content=json.dumps(body).encode(),
    )


def test_import_nests_regions_by_containment(client, keys):
    response = post_regions(client, keys, TOWNSHIP)
    assert response.status_code == 201, response.text
    created = {r["name"]: r for r in response.json()["created"]}
    assert created["东村第一网格"]["parent_name"] == "东村"
    assert created["东村第二网格"]["parent_name"] == "东村"
    assert created["西村网格"]["parent_name"] == "西村"
    assert created["东村"]["parent_id"] is None and created["西村"]["parent_id"] is None
    assert created["东村"]["area_m2"] == pytest.approx(1_000_000, rel=1e-3)

    listed = client.get("/v1/regions", headers=keys.headers("citizen"))
    assert listed.status_code == 200
    assert listed.json()["type"] == "FeatureCollection"
    assert {f["properties"]["name"] for f in listed.json()["features"]} == set(created)


def test_reimporting_the_same_file_skips_what_is_there(client, keys):
    post_regions(client, keys, TOWNSHIP)
    again = post_regions(client, keys, TOWNSHIP, content_type="application/json")
    assert again.status_code == 201
    assert again.json()["created"] == [] and len(again.json()["skipped"]) == 5


@pytest.mark.parametrize(
    "east_m, village, grid",
    [
        (-200, "东村", "东村第一网格"),
        (200, "东村", "东村第二网格"),
        (-2500, "西村", "西村网格"),
        (-2950, "西村", None),  # in the village, outside its grid
        (5000, None, None),  # outside every region
    ],
)
def test_issue_goes_to_the_smallest_containing_region(client, keys, east_m, village, grid):
    post_regions(client, keys, TOWNSHIP)
    lon, lat = offset(BASE_LON, BASE_LAT, east_m=east_m)
    issue_id = upload_ok(client, keys, png(painted([GARBAGE])), lon=lon, lat=lat)["issues"][0]["id"]
    props = issue(client, keys, issue_id)["properties"]
    assert (props["village"], props["grid"]) == (village, grid)
    assert props["regions"] == [n for n in (village, grid) if n]


def test_importing_regions_later_moves_existing_issues(client, keys):
    lon, lat = offset(BASE_LON, BASE_LAT, east_m=200)
    issue_id = upload_ok(client, keys, png(painted([GARBAGE])), lon=lon, lat=lat)["issues"][0]["id"]
    assert issue(client, keys, issue_id)["properties"]["region_id"] is None
    response = post_regions(
        client, keys, {"type": "FeatureCollection", "features": TOWNSHIP["features"][1:2]}
    )
    assert response.json()["issues_reassigned"] == 1
    assert issue(client, keys, issue_id)["properties"]["village"] == "东村"
    response = post_regions(
        client, keys, {"type": "FeatureCollection", "features": TOWNSHIP["features"][2:3]}
    )
    assert response.json()["issues_reassigned"] == 1
    assert issue(client, keys, issue_id)["properties"]["grid"] == "东村第二网格"


def test_region_filter_includes_nested_regions(client, keys):
    post_regions(client, keys, TOWNSHIP)
    for n, east_m in enumerate((-200, 200, -2500)):
        lon, lat = offset(BASE_LON, BASE_LAT, east_m=east_m)
        upload_ok(client, keys, png(painted([GARBAGE], shade=n)), lon=lon, lat=lat)
    regions = {
        f["properties"]["name"]: f["id"]
        for f in client.get("/v1/regions", headers=keys.headers("citizen")).json()["features"]
    }
    assert len(issues(client, keys, region=regions["东村"])) == 2
    assert len(issues(client, keys, region=regions["东村第二网格"])) == 1
    assert len(issues(client, keys, region=regions["西村"])) == 1
    missing = client.get("/v1/issues", headers=keys.headers("reviewer"), params={"region": 999})
    assert missing.status_code == 404


BOWTIE = [[[117.0, 31.0], [117.01, 31.01], [117.01, 31.0], [117.0, 31.01], [117.0, 31.0]]]
BAD_BODIES = {
    "not a collection": ({"type": "Feature"}, "FeatureCollection"),
    "no features": ({"type": "FeatureCollection", "features": []}, "non-empty 'features'"),
    "missing name": (
        {
            "type": "FeatureCollection",
            "features": [
                {
                    "type": "Feature",
                    "properties": {"kind": "grid"},
                    "geometry": {"type": "Polygon", "coordinates": rect(0, 0, 1, 1)},
                }
            ],
        },
        "feature 0: expected a non-empty string property 'name'",
    ),
    "bad kind": (
        {"type": "FeatureCollection", "features": [feature("三组", "team", rect(0, 0, 10, 10))]},
        "feature 0 (三组): expected property 'kind'",
    ),
    "point": (
        {"type": "FeatureCollection", "features": [feature("p", "grid", [117.0, 31.0], "Point")]},
        "Polygon or MultiPolygon",
    ),
    "self-intersecting": (
        {"type": "FeatureCollection", "features": [feature("bowtie", "grid", BOWTIE)]},
        "invalid polygon (Self-intersection",
    ),
    "projected metres": (
        {
            "type": "FeatureCollection",
            "features": [
                feature(
                    "utm",
                    "grid",
                    [[[500000, 3500000], [501000, 3500000], [501000, 3501000], [500000, 3500000]]],
                )
            ],
        },
        "expected lon/lat degrees",
    ),
    "other crs": (
        {
            "type": "FeatureCollection",
            "crs": {"type": "name", "properties": {"name": "EPSG:32650"}},
            "features": [feature("x", "grid", rect(0, 0, 10, 10))],
        },
        "reproject",
    ),
}


def collection(*features: dict) -> dict:  # type: ignore[type-arg]
    return {"type": "FeatureCollection", "features": list(features)}


SQUARE = rect(0, 0, 100, 100)[0]
BAD_BODIES.update(
    {
        # shapely closes an open ring silently: it is refused like the other invalid rings
        "unclosed ring": (collection(feature("open", "grid", [SQUARE[:-1]])), "ring is not closed"),
        "ring of 3": (collection(feature("tri", "grid", [SQUARE[:2] + SQUARE[:1]])), "at least 4 positions"),
        "NaN": (
            collection(feature("nan", "grid", [[SQUARE[0], [float("nan"), SQUARE[1][1]], *SQUARE[2:]]])),
            "finite numbers",
        ),
        "Infinity": (
            collection(feature("inf", "grid", [[SQUARE[0], [float("inf"), SQUARE[1][1]], *SQUARE[2:]]])),
            "finite numbers",
        ),
        "huge integer": (
            collection(feature("big", "grid", [[SQUARE[0], [10**400, SQUARE[1][1]], *SQUARE[2:]]])),
            "finite numbers",
        ),
        "strings": (
            collection(feature("s", "grid", [[[str(v) for v in p] for p in SQUARE]])),
            "[lon, lat] numbers",
        ),
        "booleans": (collection(feature("b", "grid", [[[True, False], *SQUARE[1:]]])), "[lon, lat] numbers"),
        "flat list": (collection(feature("f", "grid", [1, 2, 3])), "lists of rings"),
        "nested a level too deep": (collection(feature("d", "grid", [[SQUARE]])), "at least 4 positions"),
        "NUL in the name": (collection(feature("东\x00村", "village", [SQUARE])), "NUL"),
    }
)


@pytest.mark.parametrize("body, message", BAD_BODIES.values(), ids=list(BAD_BODIES))
def test_bad_region_files_are_422_naming_the_feature(client, keys, body, message):
    response = post_regions(client, keys, body)
    assert response.status_code == 422, response.text
    assert message in response.json()["detail"]
    assert client.get("/v1/regions", headers=keys.headers("citizen")).json()["features"] == []


def test_regions_need_a_geojson_content_type(client, keys):
    assert post_regions(client, keys, TOWNSHIP, content_type="text/plain").status_code == 415


def test_regions_body_must_be_json(client, keys):
    response = client.post(
        "/v1/regions",
        headers={**keys.headers("admin"), "content-type": "application/json"},
        content=b"{not json",
    )
    assert response.status_code == 422 and "not valid JSON" in response.json()["detail"]


def test_json_nested_100000_deep_is_422_before_parsing(client, keys):
    body = b'{"type": "FeatureCollection", "features": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    response = client.post(
        "/v1/regions", headers={**keys.headers("admin"), "content-type": "application/json"}, content=body
    )
    assert response.status_code == 422, response.text
    assert "nested 100001 levels deep" in response.json()["detail"]


def test_brackets_inside_names_do_not_count_as_nesting(client, keys):
    name = "东村 " + "[{" * 40 + '\\"'
    response = post_regions(client, keys, collection(feature(name, "village", [SQUARE])))
    assert response.status_code == 201, response.text
    assert response.json()["created"][0]["name"] == name


@pytest.fixture
def capped(settings, analyzer, clock, keys_factory):  # type: ignore[no-untyped-def]
    """An app whose regions may have at most 10 vertices."""
    app = create_app(settings.model_copy(update={"max_region_vertices": 10}), analyzer=analyzer, clock=clock)
    with TestClient(app) as client:
        yield client, keys_factory()


def test_regions_beyond_the_vertex_cap_are_422(capped):
    client, keys = capped
    ring = [[117.0 + 0.001 * math.cos(a / 10), 31.0 + 0.001 * math.sin(a / 10)] for a in range(10)]
    ring.append(ring[0])  # 11 positions: one over the cap
    response = post_regions(client, keys, collection(feature("round", "grid", [ring])))
    assert response.status_code == 422, response.text
    assert "11 vertices; at most 10 per region" in response.json()["detail"]
    within = collection(feature("ok", "grid", [ring[:9] + ring[:1]]))
    assert post_regions(client, keys, within).status_code == 201


def test_listings_carry_geometry_only_on_request(client, keys):
    post_regions(client, keys, TOWNSHIP)
    plain = client.get("/v1/regions", headers=keys.headers("citizen")).json()["features"]
    assert plain and all(f["geometry"] is None for f in plain)
    full = client.get("/v1/regions", headers=keys.headers("citizen"), params={"geometry": "true"}).json()
    by_name = {f["properties"]["name"]: f["geometry"] for f in full["features"]}
    assert by_name["东村"] == {"type": "Polygon", "coordinates": rect(-500, -500, 500, 500)}
    assert len(by_name) == len(TOWNSHIP["features"])


def test_photos_after_an_import_find_the_new_regions(client, keys):
    """The cached polygons follow the region set: a grid imported later takes the next photo."""
    post_regions(client, keys, collection(TOWNSHIP["features"][1]))  # 东村 alone
    lon, lat = offset(BASE_LON, BASE_LAT, east_m=200)
    first = upload_ok(client, keys, png(painted([GARBAGE])), lon=lon, lat=lat)["issues"][0]["id"]
    assert issue(client, keys, first)["properties"]["grid"] is None
    post_regions(client, keys, collection(TOWNSHIP["features"][2]))  # 东村第二网格
    lon, lat = offset(BASE_LON, BASE_LAT, east_m=200, north_m=100)
    second = upload_ok(client, keys, png(painted([GARBAGE], shade=1)), lon=lon, lat=lat)["issues"][0]["id"]
    assert issue(client, keys, second)["properties"]["grid"] == "东村第二网格"
