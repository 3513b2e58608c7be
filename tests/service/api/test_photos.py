"""POST /v1/photos: results, locations, duplicates, and bad input refused with nothing stored."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL.TiffImagePlugin import IFDRational
from sqlalchemy import func, select

from service.db.models import Frame, Issue, Observation, Source
from service.db.session import make_engine, make_session_factory
from tests.service.helpers import issue, upload, upload_ok
from tests.service.images import (
    BASE_LAT,
    BASE_LON,
    BIN,
    GARBAGE,
    SMOKE,
    exif_gps,
    jpeg,
    painted,
    png,
)
from vision.errors import QueueFullError


def _rows(settings) -> dict[str, int]:
    engine = make_engine(settings.database_url)
    with make_session_factory(engine)() as session:
        counts = {
            model.__tablename__: session.scalar(select(func.count()).select_from(model)) or 0
            for model in (Frame, Observation, Issue, Source)
        }
    engine.dispose()
    return counts


def _files(settings) -> list[Path]:
    root = settings.data_dir
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def test_photo_opens_one_issue_per_violation_and_drops_helper_labels(client, keys, settings):
    response = upload(
        client, keys, png(painted([GARBAGE, SMOKE, BIN])), lon=BASE_LON, lat=BASE_LAT, note="村口垃圾"
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert sorted(o["class_key"] for o in body["observations"]) == ["garbage_pile", "straw_burning"]
    assert {o["name_zh"] for o in body["observations"]} == {"垃圾堆", "秸秆焚烧"}
    garbage = next(o for o in body["observations"] if o["class_key"] == "garbage_pile")
    assert garbage["box_xyxy"] == [100.0, 80.0, 180.0, 160.0]
    assert garbage["score"] == pytest.approx(0.9, abs=0.01)
    assert (garbage["lon"], garbage["lat"]) == (BASE_LON, BASE_LAT)
    assert garbage["model_version"].startswith("painted:1:") and len(garbage["content_hash"]) == 64
    assert [(i["class_key"], i["state"], i["outcome"]) for i in body["issues"]] == [
        ("garbage_pile", "candidate", "opened"),
        ("straw_burning", "candidate", "opened"),
    ]
    assert body["duplicate"] is False
    assert _rows(settings) == {"frames": 1, "observations": 2, "issues": 2, "sources": 1}


def test_evidence_is_stored_under_server_generated_names(client, keys, settings):
    hostile = "../../../../tmp/evil name;rm -rf.png"
    body = upload_ok(client, keys, png(painted([GARBAGE])), lon=BASE_LON, lat=BASE_LAT, filename=hostile)
    files = _files(settings)
    assert len(files) == 2  # the frame and one crop
    names = {p.relative_to(settings.data_dir).parts[0] for p in files}
    assert names == {"frames", "crops"}
    assert all("evil" not in str(p) for p in files)
    assert not Path("/tmp/evil name;rm -rf.png").exists()
    frame = next(p for p in files if p.parts[-3] == "frames")
    assert frame.stem == body["content_hash"]
    crop = cv2.imread(str(next(p for p in files if "crops" in p.parts)))
    assert crop.shape[0] < 240 and crop.shape[1] < 320  # a crop, not the frame


def _decoded(data: bytes) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)


def _frame_file(settings, body) -> Path:
    digest = body["content_hash"]
    return settings.data_dir / "frames" / digest[:2] / f"{digest}.jpg"


def test_a_jpegs_evidence_is_its_image_data_without_its_metadata(client, keys, settings):
    """The frame reviewers download shows exactly what was analysed (the upload's own JPEG data,
    not a second lossy encoding) and carries none of the citizen's EXIF, GPS or comments."""
    from PIL import Image

    photo = jpeg(painted([GARBAGE]), gps=exif_gps(BASE_LON, BASE_LAT))
    body = upload_ok(client, keys, photo)
    assert body["observations"][0]["lon"] is not None  # the upload's GPS was read
    stored = _frame_file(settings, body).read_bytes()
    assert np.array_equal(_decoded(stored), _decoded(photo))
    with Image.open(_frame_file(settings, body)) as frame:
        assert dict(frame.getexif()) == {} and "exif" not in frame.info


def test_a_photo_turned_by_its_exif_keeps_its_data_and_only_its_orientation(client, keys, settings):
    """Stored as uploaded (no second lossy pass, full size) with the orientation as its one EXIF
    tag, so it shows upright, in the frame's size that the boxes are in."""
    from PIL import Image, ImageOps

    pixels = painted([GARBAGE], size_wh=(320, 240))
    image = Image.fromarray(pixels[:, :, ::-1])
    tags = image.getexif()
    tags[0x0112] = 6  # stored sideways: shown turned 90 degrees clockwise
    tags[0x010F] = "PhoneMaker"
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", exif=tags, quality=95)
    body = upload_ok(client, keys, buffer.getvalue(), lon=BASE_LON, lat=BASE_LAT)
    stored = _frame_file(settings, body).read_bytes()
    assert np.array_equal(_decoded(stored), _decoded(buffer.getvalue()))
    with Image.open(io.BytesIO(stored)) as frame:
        assert dict(frame.getexif()) == {0x0112: 6}
        assert ImageOps.exif_transpose(frame).size == (240, 320)  # upright, as the boxes are
    assert all(o["box_xyxy"][2] <= 240 and o["box_xyxy"][3] <= 320 for o in body["observations"])


def test_same_image_twice_is_recorded_once(client, keys, settings):
    image = png(painted([GARBAGE]))
    first = upload(client, keys, image, lon=BASE_LON, lat=BASE_LAT)
    second = upload(client, keys, image, lon=BASE_LON, lat=BASE_LAT, who="citizen2")
    assert (first.status_code, second.status_code) == (201, 200)
    assert second.json()["duplicate"] is True
    assert second.json()["issues"][0]["id"] == first.json()["issues"][0]["id"]
    assert second.json()["issues"][0]["outcome"] == "recorded"
    assert _rows(settings) == {"frames": 1, "observations": 1, "issues": 1, "sources": 1}


def test_exif_gps_places_the_observation(client, keys):
    body = upload_ok(client, keys, jpeg(painted([GARBAGE]), gps=exif_gps(BASE_LON, BASE_LAT)))
    obs = body["observations"][0]
    assert obs["lon"] == pytest.approx(BASE_LON, abs=1e-6) and obs["lat"] == pytest.approx(BASE_LAT, abs=1e-6)
    assert obs["location_uncertainty_m"] > 0
    assert body["issues"][0]["needs_location"] is False


def test_manual_position_overrides_exif(client, keys):
    body = upload_ok(
        client, keys, jpeg(painted([GARBAGE]), gps=exif_gps(BASE_LON, BASE_LAT)), lon=118.5, lat=32.0
    )
    assert (body["observations"][0]["lon"], body["observations"][0]["lat"]) == (118.5, 32.0)


BOGUS_GPS = {
    "null island": exif_gps(0.0, 0.0),
    "latitude 123": {**exif_gps(BASE_LON, BASE_LAT), 2: (123, 0, 0)},
    "no N/S reference": {k: v for k, v in exif_gps(BASE_LON, BASE_LAT).items() if k != 1},
    "0/0 rationals": {**exif_gps(BASE_LON, BASE_LAT), 4: (IFDRational(0, 0),) * 3},
}


@pytest.mark.parametrize("gps", [None, *BOGUS_GPS.values()], ids=["no gps", *BOGUS_GPS])
def test_missing_or_bogus_gps_opens_a_candidate_that_needs_location(client, keys, gps):
    body = upload_ok(client, keys, jpeg(painted([GARBAGE]), gps=gps))
    obs = body["observations"][0]
    assert obs["lon"] is None and obs["lat"] is None  # never 0,0
    assert obs["location_reason"]
    assert body["location_reason"]
    ref = body["issues"][0]
    assert ref["needs_location"] is True and ref["state"] == "candidate"
    feature = issue(client, keys, ref["id"])
    assert feature["geometry"] is None and feature["properties"]["needs_location"] is True


def test_manual_zero_zero_is_not_a_place(client, keys):
    body = upload_ok(client, keys, png(painted([GARBAGE])), lon=0.0, lat=0.0)
    assert body["issues"][0]["needs_location"] is True
    assert "0.0,0.0 is not a real place" in body["location_reason"]


def test_two_photos_without_location_never_join(client, keys):
    first = upload_ok(client, keys, png(painted([GARBAGE], shade=1)))
    second = upload_ok(client, keys, png(painted([GARBAGE], shade=2)))
    assert first["issues"][0]["id"] != second["issues"][0]["id"]


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"lon": "117.2"}, "both lon and lat"),
        ({"lon": "east", "lat": "31.8"}, "decimal degrees"),
        ({"lon": "117.2", "lat": "95"}, "lat in [-90, 90]"),
        ({"lon": "nan", "lat": "31.8"}, "lon in [-180, 180]"),
        ({"note": "x" * 2001}, "at most 2000"),
        ({"colour": "red"}, "unexpected form fields"),
    ],
)
def test_bad_form_fields_are_422_and_store_nothing(client, keys, settings, fields, message):
    response = client.post(
        "/v1/photos",
        headers=keys.headers("citizen"),
        data=fields,
        files={"file": ("a.png", png(painted([GARBAGE])), "image/png")},
    )
    assert response.status_code == 422, response.text
    assert message in response.text
    assert _rows(settings) == {"frames": 0, "observations": 0, "issues": 0, "sources": 0}


def _png_header(width: int, height: int) -> bytes:
    """A PNG that declares a huge size in its header and carries almost no data (a bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


_GOOD_JPEG = jpeg(painted([GARBAGE]))
BAD_FILES = {
    "empty": (b"", "empty"),
    "text": (b"hello, this is not an image\n" * 10, "unsupported_format"),
    "pdf": (b"%PDF-1.7\n" + b"0" * 200, "unsupported_format"),
    "gif": (b"GIF89a" + b"\x00" * 100, "unsupported_format"),
    "corrupt jpeg": (b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4, "corrupt"),
    "truncated jpeg": (_GOOD_JPEG[: len(_GOOD_JPEG) // 2], "corrupt"),
    "bomb png 30000x30000": (_png_header(30_000, 30_000), "too_many_pixels"),
}


@pytest.mark.parametrize("data, reason", BAD_FILES.values(), ids=list(BAD_FILES))
def test_unusable_files_are_422_naming_the_problem_and_store_nothing(client, keys, settings, data, reason):
    response = client.post(
        "/v1/photos",
        headers=keys.headers("citizen"),
        files={"file": ("photo.jpg", data, "image/jpeg")},
        data={"lon": "117.2", "lat": "31.8"},
    )
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert detail["reason"] == reason and detail["detail"]
    assert _rows(settings) == {"frames": 0, "observations": 0, "issues": 0, "sources": 0}
    assert _files(settings) == []


def test_request_without_a_file_part_is_422(client, keys):
    response = client.post(
        "/v1/photos",
        headers=keys.headers("citizen"),
        data={"lon": "1", "lat": "2"},
        files={"other": ("a.png", b"x", "image/png")},
    )
    assert response.status_code == 422


def test_json_body_is_415(client, keys):
    response = client.post("/v1/photos", headers=keys.headers("citizen"), json={"file": "aGVsbG8="})
    assert response.status_code == 415


class CountingAnalyzer:
    """Wraps the app's analyzer to see whether an upload got as far as being analysed."""

    def __init__(self, inner) -> None:  # type: ignore[no-untyped-def]
        self.inner, self.calls = inner, 0

    def analyze(self, image_bytes, **kwargs):  # type: ignore[no-untyped-def]
        self.calls += 1
        return self.inner.analyze(image_bytes, **kwargs)


@pytest.fixture
def small_limit_client(settings, analyzer, clock):  # type: ignore[no-untyped-def]
    from fastapi.testclient import TestClient

    from service.api.app import create_app

    counting = CountingAnalyzer(analyzer)
    app = create_app(
        settings.model_copy(update={"max_upload_bytes": 64 * 1024}), analyzer=counting, clock=clock
    )
    with TestClient(app) as test_client:
        yield test_client, counting


def test_oversized_body_is_413_from_content_length_before_parsing(small_limit_client, keys, settings):
    client, counting = small_limit_client
    # The header announces 100 KiB; the few bytes sent are not even multipart, so any parsing
    # would answer 422: the 413 comes from the header alone, before a byte is read.
    response = client.post(
        "/v1/photos",
        headers={
            **keys.headers("citizen"),
            "content-length": str(100 * 1024),
            "content-type": "multipart/form-data; boundary=x",
        },
        content=b"\x00" * 16,
    )
    assert response.status_code == 413, response.text
    assert "65,536-byte limit" in response.json()["detail"]
    assert counting.calls == 0 and _files(settings) == []


def test_oversized_chunked_body_is_413_while_streaming(small_limit_client, keys, settings):
    client, counting = small_limit_client
    boundary = "patrolboundary"
    chunks_sent = []

    def body():
        yield (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.png"\r\n'
            f"Content-Type: image/png\r\n\r\n"
        ).encode()
        for _ in range(64):  # 4 MiB in all, far over the 64 KiB limit
            chunks_sent.append(1)
            yield np.random.default_rng(len(chunks_sent)).bytes(64 * 1024)
        yield f"\r\n--{boundary}--\r\n".encode()

    response = client.post(
        "/v1/photos",
        headers={**keys.headers("citizen"), "content-type": f"multipart/form-data; boundary={boundary}"},
        content=body(),
    )
    assert response.status_code == 413, response.text
    assert counting.calls == 0 and _files(settings) == []


def test_body_at_the_limit_is_accepted(small_limit_client, keys):
    client, counting = small_limit_client
    image = png(painted([GARBAGE], size_wh=(160, 200)))
    assert len(image) < 60 * 1024
    response = client.post(
        "/v1/photos",
        headers=keys.headers("citizen"),
        data={"lon": "117.2", "lat": "31.8"},
        files={"file": ("a.png", image, "image/png")},
    )
    assert response.status_code == 201, response.text
    assert counting.calls == 1


class BusyAnalyzer:
    """An analyzer whose inference queue stays full (the pipeline's back-pressure signal)."""

    def analyze(self, image_bytes, **kwargs):  # type: ignore[no-untyped-def]
        raise QueueFullError("inference queue full for 30 s")


def test_a_full_inference_queue_is_503_with_retry_after(settings, clock, keys_factory):
    from fastapi.testclient import TestClient

    from service.api.app import create_app

    with TestClient(create_app(settings, analyzer=BusyAnalyzer(), clock=clock)) as client:
        keys = keys_factory()
        response = upload(client, keys, png(painted([GARBAGE])), lon=BASE_LON, lat=BASE_LAT)
    assert response.status_code == 503 and response.headers["retry-after"] == "5"
    assert _rows(settings) == {"frames": 0, "observations": 0, "issues": 0, "sources": 0}


def test_an_uploaded_photo_is_opened_and_decoded_once(client, keys, monkeypatch):
    """The source reader reads the bytes once: the header (EXIF GPS, XMP, orientation) and the
    pixels in one pass; geotagging, tiling and recording use what it read."""
    from PIL import Image

    opens: list[int] = []
    decodes: list[int] = []
    real_open, real_imdecode = Image.open, cv2.imdecode

    def counting_open(*args, **kwargs):  # type: ignore[no-untyped-def]
        opens.append(1)
        return real_open(*args, **kwargs)

    def counting_imdecode(*args, **kwargs):  # type: ignore[no-untyped-def]
        decodes.append(1)
        return real_imdecode(*args, **kwargs)

    monkeypatch.setattr(Image, "open", counting_open)
    monkeypatch.setattr(cv2, "imdecode", counting_imdecode)
    photo = jpeg(painted([GARBAGE]), gps=exif_gps(BASE_LON, BASE_LAT))
    response = upload(client, keys, photo, filename="photo.jpg")
    assert response.status_code == 201, response.text
    (observation,) = response.json()["observations"]
    assert observation["lon"] is not None  # placed by its EXIF GPS: the metadata was read
    assert (len(opens), len(decodes)) == (1, 1)


# -- hardening (issue #13): duplicates, pixel caps, blank frames --------------------------------------


def test_a_duplicate_is_answered_from_its_hash_before_decoding(client, keys, analyzer, monkeypatch):
    """The same bytes under the same model get the earlier result (200) without being decoded
    or shown to the detector again."""
    from PIL import Image

    photo = jpeg(painted([GARBAGE]), gps=exif_gps(BASE_LON, BASE_LAT))
    first = upload(client, keys, photo, filename="photo.jpg")
    assert first.status_code == 201, first.text
    detector = analyzer.pipeline().detector
    batches_before = len(detector.batch_sizes)
    opens: list[int] = []
    real_open = Image.open
    monkeypatch.setattr(Image, "open", lambda *a, **k: opens.append(1) or real_open(*a, **k))
    second = upload(client, keys, photo, who="citizen2", filename="again.jpg")
    assert second.status_code == 200, second.text
    assert (len(detector.batch_sizes) - batches_before, len(opens)) == (0, 0)
    body, earlier = second.json(), first.json()
    assert body["duplicate"] is True and body["frame_id"] == earlier["frame_id"]
    assert body["issues"][0]["id"] == earlier["issues"][0]["id"] and body["location_reason"] is None
    assert body["observations"][0]["lon"] == earlier["observations"][0]["lon"]


def test_a_duplicate_without_location_still_says_why(client, keys):
    photo = png(painted([GARBAGE], shade=3))
    first = upload_ok(client, keys, photo)
    second = upload(client, keys, photo)
    assert second.status_code == 200 and second.json()["location_reason"] == first["location_reason"]


@pytest.fixture
def capped_client(settings, analyzer, clock):  # type: ignore[no-untyped-def]
    """A citizen photo decoded to at most 256 x 256 pixels."""
    from fastapi.testclient import TestClient

    from service.api.app import create_app

    capped = settings.model_copy(update={"max_citizen_photo_pixels": 256 * 256})
    with TestClient(create_app(capped, analyzer=analyzer, clock=clock)) as test_client:
        yield test_client


def test_a_citizen_png_over_the_photo_cap_is_refused_before_decoding(capped_client, keys, settings):
    # 9990 x 9990 claimed over garbage pixel data: "corrupt" would mean a decode was tried.
    bomb = (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", 9990, 9990, 8, 2, 0, 0, 0))
            + _png_chunk(b"IDAT", b"not zlib") + _png_chunk(b"IEND", b""))
    response = upload(capped_client, keys, bomb, lon=BASE_LON, lat=BASE_LAT)
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert detail["reason"] == "too_many_pixels" and "cannot be decoded reduced" in detail["detail"]
    assert _rows(settings) == {"frames": 0, "observations": 0, "issues": 0, "sources": 0}
    assert _files(settings) == []


def test_a_citizen_jpeg_over_the_photo_cap_is_decoded_reduced(capped_client, keys, analyzer, settings):
    # 640 x 480 = 307,200 pixels over a 65,536 cap: decoded at 1/4 (160 x 120); boxes, the frame
    # and its evidence image in the source's full-size pixels.
    photo = jpeg(painted([("garbage", (200, 160, 360, 320), 0.9)], size_wh=(640, 480)))
    body = upload_ok(capped_client, keys, photo, lon=BASE_LON, lat=BASE_LAT)
    assert analyzer.pipeline().detector.image_shapes[-1][:2] == (120, 160)
    (observation,) = body["observations"]
    assert observation["class_key"] == "garbage_pile"
    assert observation["box_xyxy"] == pytest.approx([200, 160, 360, 320], abs=6)  # 1.5 decoded px
    stored = _frame_file(settings, body).read_bytes()
    assert _decoded(stored).shape[:2] == (480, 640)
    engine = make_engine(settings.database_url)
    with make_session_factory(engine)() as session:
        frame = session.get(Frame, body["frame_id"])
        crop_path = session.scalars(select(Observation.crop_path)).one()
        assert frame is not None and (frame.width, frame.height) == (640, 480)
    engine.dispose()
    # The crop is cut from the 160x120 decode at the box scaled to it (40x40 plus its margin).
    crop = _decoded((settings.data_dir / crop_path).read_bytes())
    assert 40 <= crop.shape[0] <= 56 and 40 <= crop.shape[1] <= 56


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))
