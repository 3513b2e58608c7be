"""Synthetic surveys for the job tests: zips of painted drone photos, painted GeoTIFF orthomosaics.

Everything is made in memory or under tmp_path; the painted objects are found by the
painted-box detector of tests/vision/fakes.py (red = garbage -> garbage_pile).
"""

from __future__ import annotations

import io
import time
import zipfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from fastapi.testclient import TestClient
from pyproj import Transformer

from tests.service.conftest import Keys
from tests.service.images import BASE_LAT, BASE_LON, Painted, drone_box_at, drone_photo, offset, painted

UTM50N = "EPSG:32650"  # the zone of BASE_LON
TERMINAL = ("succeeded", "failed", "cancelled")


def zip_bytes(members: Iterable[tuple[str, bytes]], *, compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    """The same members give the same bytes (fixed timestamps), hence the same content hash."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as zf:
        for name, data in members:
            info = zipfile.ZipInfo(name, date_time=(2026, 11, 2, 9, 0, 0))
            info.compress_type = compression
            zf.writestr(info, data)
    return buffer.getvalue()


def drone_photos(n: int, *, spacing_m: float = 200.0, garbage: bool = True, shade: int = 0) -> list[bytes]:
    """`n` nadir drone photos `spacing_m` apart eastwards, each with one garbage pile at its centre."""
    photos = []
    for i in range(n):
        lon, lat = offset(BASE_LON, BASE_LAT, east_m=spacing_m * i)
        objects: list[Painted] = [("garbage", drone_box_at(0, 0), 0.9)] if garbage else []
        photos.append(drone_photo(lon, lat, objects, shade=shade))
    return photos


def drone_zip(n: int, **kwargs: Any) -> bytes:
    return zip_bytes((f"DJI_{i:04d}.JPG", data) for i, data in enumerate(drone_photos(n, **kwargs)))


def submit(
    client: TestClient, keys: Keys, data: bytes, *, who: str = "ingest", note: str | None = None
) -> Any:
    form = {"note": note} if note is not None else {}
    return client.post(
        "/v1/surveys",
        headers=keys.headers(who),
        files={"file": ("survey.zip", data, "application/octet-stream")},
        data=form,
    )


def wait_for_job(
    client: TestClient, keys: Keys, job_id: str, *, timeout_s: float = 60.0, who: str = "ingest"
) -> dict[str, Any]:
    """Poll GET /v1/jobs/{id} until the job is final; fail the test after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        response = client.get(f"/v1/jobs/{job_id}", headers=keys.headers(who))
        assert response.status_code == 200, response.text
        body = response.json()
        if body["state"] in TERMINAL:
            return body
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} not finished after {timeout_s} s: {body}")
        time.sleep(0.05)


def finished_job(client: TestClient, keys: Keys, data: bytes) -> dict[str, Any]:
    response = submit(client, keys, data)
    assert response.status_code == 202, response.text
    return wait_for_job(client, keys, response.json()["id"])


# -- orthomosaics ----------------------------------------------------------------------------------


def write_geotiff(
    path: Path,
    pixels_bgr: np.ndarray,
    *,
    origin_lonlat: tuple[float, float] = (BASE_LON, BASE_LAT),
    pixel_m: float = 0.1,
    crs: str | None = UTM50N,
    tags: dict[str, str] | None = None,
) -> Path:
    """A GeoTIFF (north up, `pixel_m` metres per pixel) whose top-left corner is at `origin_lonlat`."""
    import rasterio
    from rasterio.transform import from_origin

    height, width = pixels_bgr.shape[:2]
    profile: dict[str, Any] = {
        "driver": "GTiff",
        "width": width,
        "height": height,
        "count": 3,
        "dtype": "uint8",
        "tiled": True,
        "blockxsize": 256,
        "blockysize": 256,
    }
    if crs is not None:
        x0, y0 = Transformer.from_crs("EPSG:4326", crs, always_xy=True).transform(*origin_lonlat)
        profile.update(crs=crs, transform=from_origin(x0, y0, pixel_m, pixel_m))
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(np.transpose(pixels_bgr[:, :, ::-1], (2, 0, 1)))
        if tags:
            dst.update_tags(**tags)
    return path


def ortho_pixels(objects: Sequence[Painted], size_wh: tuple[int, int] = (1100, 600)) -> np.ndarray:
    return painted(objects, size_wh)
