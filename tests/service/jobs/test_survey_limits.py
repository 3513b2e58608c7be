"""One survey cannot monopolise the runner: pixel and ground caps checked before a job exists, and zip
members whose header says they are no usable photo are never read whole."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import func, select

from service.api.app import create_app
from service.db.session import make_engine, make_session_factory
from service.jobs.models import Job
from tests.service.images import DRONE_WH
from tests.service.jobs.surveys import UTM50N, drone_photos, drone_zip, submit, wait_for_job, zip_bytes


def _jobs(settings) -> int:  # type: ignore[no-untyped-def]
    engine = make_engine(settings.database_url)
    with make_session_factory(engine)() as session:
        n = session.scalar(select(func.count()).select_from(Job)) or 0
    engine.dispose()
    return n


def sparse_geotiff(path: Path, width: int, height: int, *, pixel_m: float = 0.1) -> bytes:
    """A GeoTIFF declaring width x height pixels with no data written: a few KB on disk."""
    import rasterio
    from rasterio.transform import from_origin

    profile = dict(driver="GTiff", width=width, height=height, count=3, dtype="uint8", crs=UTM50N,
                   transform=from_origin(500_000, 4_000_000, pixel_m, pixel_m), tiled=True,
                   blockxsize=4096, blockysize=4096, sparse_ok=True, bigtiff="YES", compress="deflate")
    with rasterio.open(path, "w", **profile):
        pass
    return path.read_bytes()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_sparse_orthomosaic_of_40_gigapixels_is_refused_at_upload(client, keys, settings, tmp_path):
    data = sparse_geotiff(tmp_path / "huge.tif", 200_000, 200_000)
    assert len(data) < 500_000  # a small upload...
    response = submit(client, keys, data)
    assert response.status_code == 422, response.text  # ...refused before it becomes a job
    detail = response.json()["detail"]
    assert "200000x200000 = 40,000,000,000 pixels" in detail and "PATROL_MAX_SURVEY_PIXELS" in detail
    assert _jobs(settings) == 0
    assert not any(p.is_file() for p in (settings.data_dir / "jobs").rglob("*"))


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_an_orthomosaic_covering_more_ground_than_allowed_is_refused(settings, analyzer, clock, keys_factory,
                                                                      tmp_path):
    # 20 000 x 20 000 px (within the pixel cap) at 1 m per pixel: 400 km², over a 100 km² cap.
    limited = settings.model_copy(update={"max_survey_area_km2": 100.0})
    with TestClient(create_app(limited, analyzer=analyzer, clock=clock)) as client:
        keys = keys_factory()
        response = submit(client, keys, sparse_geotiff(tmp_path / "wide.tif", 20_000, 20_000, pixel_m=1.0))
        assert response.status_code == 422, response.text
        assert "covers 400." in response.json()["detail"], response.json()  # UTM scale: 400.3
        assert "PATROL_MAX_SURVEY_AREA_KM2" in response.json()["detail"]
    assert _jobs(settings) == 0


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_zip_whose_photos_declare_too_many_pixels_in_all_is_refused(
    settings, analyzer, clock, keys_factory
):
    per_photo = DRONE_WH[0] * DRONE_WH[1]
    limited = settings.model_copy(update={"max_survey_pixels": 2 * per_photo})
    with TestClient(create_app(limited, analyzer=analyzer, clock=clock)) as client:
        keys = keys_factory()
        refused = submit(client, keys, drone_zip(3))
        assert refused.status_code == 422, refused.text
        assert f"its 3 photos' headers declare {3 * per_photo:,} pixels" in refused.json()["detail"]
        assert _jobs(settings) == 0
        accepted = submit(client, keys, drone_zip(2))
        assert accepted.status_code == 202, accepted.text
        assert wait_for_job(client, keys, accepted.json()["id"])["state"] == "succeeded"


def fake_jpeg(width: int, height: int, size: int) -> bytes:
    """A real JPEG header declaring width x height, padded with zeros to `size` bytes."""
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(buffer, "JPEG")
    data = bytearray(buffer.getvalue())
    sof = data.index(b"\xff\xc0")  # baseline frame header: length(2) precision(1) height(2) width(2)
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data) + b"\0" * (size - len(data))


def _break_crcs(data: bytes) -> bytes:
    """Wrong CRC-32s in the central directory: a member read to its end fails the check, one whose
    header alone is read does not."""
    out = bytearray(data)
    start = 0
    while (pos := out.find(b"PK\x01\x02", start)) >= 0:
        out[pos + 16 : pos + 20] = b"\xde\xad\xbe\xef"
        start = pos + 4
    return bytes(out)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_member_whose_header_declares_too_many_pixels_is_skipped_unread(settings, analyzer, clock,
                                                                           keys_factory):
    roomy = settings.model_copy(update={"max_survey_uncompressed_bytes": 10_000_000})
    size = 2_000_000  # well beyond the header read, so reading it whole would reach the broken CRC
    data = _break_crcs(zip_bytes([("DJI_0001.JPG", fake_jpeg(12_000, 9_000, size)),
                                  ("DJI_0002.JPG", b"MRK" + b"\0" * size)]))
    good = zip_bytes([("DJI_0003.JPG", drone_photos(1)[0])])
    with TestClient(create_app(roomy, analyzer=analyzer, clock=clock)) as client:
        keys = keys_factory()
        response = submit(client, keys, data)
        assert response.status_code == 202, response.text  # the fake photo does not count towards the cap
        job = wait_for_job(client, keys, response.json()["id"])
        reasons = {item["label"]: item["reason"] for item in job["summary"]["skipped_items"]}
        assert reasons["DJI_0001.JPG"].startswith("too_many_pixels: its header declares 12000x9000"), reasons
        assert reasons["DJI_0002.JPG"].startswith("unsupported_format"), reasons
        assert job["summary"]["skipped"] == 2 and job["state"] == "succeeded"
        assert wait_for_job(client, keys, submit(client, keys, good).json()["id"])["summary"]["recorded"] == 1
