"""GET /v1/tiles: an orthomosaic survey's GeoTIFF as XYZ PNG tiles, with its TileJSON.

The GeoTIFF is synthetic (UTM 50N, 0.1 m pixels): a blue west half, a brown east half and a
nodata corner. A tile's pixel is checked at a place whose colour is known: the point is found
in Web Mercator with morecantile (the tile grid rio-tiler draws on), not through the code under test.
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

import httpx
import morecantile
import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from pyproj import Transformer
from rasterio.transform import from_origin

from tests.service.conftest import Keys
from tests.service.images import BASE_LAT, BASE_LON, offset
from tests.service.jobs.surveys import UTM50N, drone_zip, finished_job, submit, wait_for_job
from tests.vision.geo.conftest import write_raster

PIXEL_M = 0.1
WIDTH, HEIGHT = 1024, 768
WEST_RGB, EAST_RGB = (30, 90, 200), (180, 110, 40)
NODATA_PX = 200  # the north-east corner block, nodata (0) in every band
MERCATOR = morecantile.tms.get("WebMercatorQuad")


def ortho_tiff(path: Path) -> Path:
    bands = np.empty((3, HEIGHT, WIDTH), np.uint8)
    bands[:, :, : WIDTH // 2] = np.array(WEST_RGB, np.uint8)[:, None, None]
    bands[:, :, WIDTH // 2 :] = np.array(EAST_RGB, np.uint8)[:, None, None]
    bands[:, :NODATA_PX, WIDTH - NODATA_PX :] = 0
    x0, y0 = Transformer.from_crs("EPSG:4326", UTM50N, always_xy=True).transform(BASE_LON, BASE_LAT)
    return write_raster(
        path, bands, UTM50N, from_origin(x0, y0, PIXEL_M, PIXEL_M),
        nodata=0, tiled=True, blockxsize=256, blockysize=256, compress="deflate",
    )


def lonlat_of(col: float, row: float) -> tuple[float, float]:
    """The WGS-84 position of raster pixel (col, row) of ortho_tiff."""
    x0, y0 = Transformer.from_crs("EPSG:4326", UTM50N, always_xy=True).transform(BASE_LON, BASE_LAT)
    to_wgs84 = Transformer.from_crs(UTM50N, "EPSG:4326", always_xy=True)
    lon, lat = to_wgs84.transform(x0 + col * PIXEL_M, y0 - row * PIXEL_M)
    return float(lon), float(lat)


def tile_and_pixel(lon: float, lat: float, z: int) -> tuple[morecantile.Tile, int, int]:
    tile = MERCATOR.tile(lon, lat, z)
    left, bottom, right, top = MERCATOR.xy_bounds(tile)
    x, y = MERCATOR.xy(lon, lat)
    return tile, int((x - left) / (right - left) * 256), int((top - y) / (top - bottom) * 256)


@pytest.fixture
def ortho_job(client: TestClient, keys: Keys, tmp_path: Path) -> dict[str, Any]:
    response = submit(client, keys, ortho_tiff(tmp_path / "ortho.tif").read_bytes(), note="东村 2026-11 航拍")
    assert response.status_code == 202, response.text
    return wait_for_job(client, keys, response.json()["id"])


def get_tile(
    client: TestClient, keys: Keys, job_id: str, tile: morecantile.Tile, who: str = "reviewer"
) -> httpx.Response:
    return client.get(f"/v1/tiles/{job_id}/{tile.z}/{tile.x}/{tile.y}.png", headers=keys.headers(who))


def rgba_at(client: TestClient, keys: Keys, job_id: str, lon: float, lat: float, z: int) -> tuple[int, ...]:
    tile, px, py = tile_and_pixel(lon, lat, z)
    response = get_tile(client, keys, job_id, tile)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    image = Image.open(io.BytesIO(response.content))
    assert image.size == (256, 256) and image.mode == "RGBA"
    return tuple(image.convert("RGBA").getpixel((px, py)) or ())


def test_tilejson_gives_bounds_and_a_zoom_range_from_the_resolution(client, keys, ortho_job):
    layers = client.get("/v1/tiles", headers=keys.headers("worker")).json()
    assert [(layer["job_id"], layer["note"]) for layer in layers] == [(ortho_job["id"], "东村 2026-11 航拍")]

    response = client.get(layers[0]["tilejson"], headers=keys.headers("worker"))
    assert response.status_code == 200, response.text
    tilejson = response.json()
    assert tilejson["tilejson"] == "3.0.0" and tilejson["scheme"] == "xyz" and tilejson["tileSize"] == 256
    assert tilejson["tiles"] == [f"http://testserver/v1/tiles/{ortho_job['id']}/{{z}}/{{x}}/{{y}}.png"]

    corners = [lonlat_of(c, r) for c in (0, WIDTH) for r in (0, HEIGHT)]
    lons, lats = [c[0] for c in corners], [c[1] for c in corners]
    assert tilejson["bounds"] == pytest.approx([min(lons), min(lats), max(lons), max(lats)], abs=1e-6)

    # 0.1 m on the ground is 0.1 / cos(lat) Web Mercator metres; zoom z has 156543.03 / 2**z per pixel
    ideal = math.log2(156543.03392804097 * math.cos(math.radians(BASE_LAT)) / PIXEL_M)
    assert tilejson["maxzoom"] in (math.floor(ideal), math.ceil(ideal))
    # the 1024 px raster fits in one 256 px tile two or three levels up; nothing further out is served
    assert tilejson["maxzoom"] - 3 <= tilejson["minzoom"] <= tilejson["maxzoom"] - 2
    lon, lat = lonlat_of(WIDTH / 4, HEIGHT / 2)
    for z in (tilejson["minzoom"] - 1, tilejson["maxzoom"] + 1):
        response = get_tile(client, keys, ortho_job["id"], MERCATOR.tile(lon, lat, z))
        assert response.status_code == 404 and "outside this orthomosaic's range" in response.json()["detail"]


def test_a_tile_shows_the_rasters_colours_with_nodata_and_the_outside_transparent(client, keys, ortho_job):
    job_id = ortho_job["id"]
    tilejson = client.get(f"/v1/tiles/{job_id}/tilejson.json", headers=keys.headers("reviewer")).json()
    maxzoom = tilejson["maxzoom"]
    assert rgba_at(client, keys, job_id, *lonlat_of(WIDTH / 4, HEIGHT / 2), maxzoom) == (*WEST_RGB, 255)
    assert rgba_at(client, keys, job_id, *lonlat_of(3 * WIDTH / 4, HEIGHT / 2), maxzoom) == (*EAST_RGB, 255)
    corner = lonlat_of(WIDTH - NODATA_PX / 2, NODATA_PX / 2)
    assert rgba_at(client, keys, job_id, *corner, maxzoom)[3] == 0

    # just outside the west edge, in a tile that also shows the raster: transparent
    inside, outside = lonlat_of(10, HEIGHT / 2), offset(*lonlat_of(0, HEIGHT / 2), east_m=-3)
    z = next(
        z for z in range(maxzoom, tilejson["minzoom"] - 1, -1)
        if MERCATOR.tile(*inside, z) == MERCATOR.tile(*outside, z)
    )
    assert rgba_at(client, keys, job_id, *inside, z) == (*WEST_RGB, 255)
    assert rgba_at(client, keys, job_id, *outside, z)[3] == 0

    far_west = offset(BASE_LON, BASE_LAT, east_m=-500)
    response = get_tile(client, keys, job_id, MERCATOR.tile(*far_west, maxzoom))
    assert response.status_code == 404 and "outside the orthomosaic" in response.json()["detail"]
    assert response.headers["content-type"] == "application/json"
    ok = get_tile(client, keys, job_id, MERCATOR.tile(*lonlat_of(WIDTH / 4, HEIGHT / 2), maxzoom))
    assert ok.headers["cache-control"] == "private, max-age=86400, immutable"


def test_no_tiles_for_other_jobs_unknown_jobs_or_impossible_tiles(client, keys, ortho_job):
    photos = finished_job(client, keys, drone_zip(1))["id"]
    for job_id in (photos, "0" * 32):
        for path in (f"/v1/tiles/{job_id}/tilejson.json", f"/v1/tiles/{job_id}/20/1/1.png"):
            response = client.get(path, headers=keys.headers("reviewer"))
            assert response.status_code == 404, path
            assert response.json()["detail"] == f"no orthomosaic survey {job_id}"
    layers = client.get("/v1/tiles", headers=keys.headers("reviewer")).json()
    assert [layer["job_id"] for layer in layers] == [ortho_job["id"]]  # the photo job is no layer
    response = client.get(f"/v1/tiles/{ortho_job['id']}/3/8/0.png", headers=keys.headers("reviewer"))
    assert response.status_code == 404 and "run from 0 to 7" in response.json()["detail"]
    for bad in ("-1/0/0", "31/0/0", "20/a/0"):
        response = client.get(f"/v1/tiles/{ortho_job['id']}/{bad}.png", headers=keys.headers("reviewer"))
        assert response.status_code == 422, bad


@pytest.mark.parametrize(
    "who, expected",
    [(None, 401), ("citizen", 403), ("ingest", 403), ("worker", 200), ("reviewer", 200), ("admin", 200)],
)
def test_staff_see_the_tiles_and_the_key_that_uploaded_them_does_not(client, keys, ortho_job, who, expected):
    # the ingest key submitted this survey: its job is its business, the imagery is the office's
    maxzoom = client.get(f"/v1/tiles/{ortho_job['id']}/tilejson.json", headers=keys.headers("admin")).json()[
        "maxzoom"
    ]
    tile = MERCATOR.tile(*lonlat_of(WIDTH / 4, HEIGHT / 2), maxzoom)
    for path in (
        "/v1/tiles",
        f"/v1/tiles/{ortho_job['id']}/tilejson.json",
        f"/v1/tiles/{ortho_job['id']}/{tile.z}/{tile.x}/{tile.y}.png",
    ):
        assert client.get(path, headers=keys.headers(who)).status_code == expected, path
