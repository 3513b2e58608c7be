"""The production analyzer: no model -> 503 naming it; an installed ONNX model -> observations, torch-free."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from fastapi.testclient import TestClient

from service.api.app import create_app
from service.photo_analyzer import PipelineAnalyzer, blank_frame_reason, grey_thumbnail
from tests.service.conftest import painted_card
from tests.service.helpers import upload_ok
from tests.service.images import GARBAGE, jpeg, painted, png
from tests.vision.fakes import FAKE_LABELS, PaintedBoxDetector, install_tiny_model
from vision.batcher import BatcherConfig
from vision.detections import Detections
from vision.pipeline import Pipeline

ROOT = Path(__file__).resolve().parents[2]


def test_missing_model_is_503_naming_it(settings, keys_factory, tmp_path):
    app = create_app(
        settings.model_copy(update={"model": "no-such-model", "models_dir": tmp_path / "models"})
    )
    with TestClient(app) as client:
        keys = keys_factory()
        response = client.post(
            "/v1/photos",
            headers=keys.headers("citizen"),
            files={"file": ("a.png", png(painted([GARBAGE])), "image/png")},
        )
        assert response.status_code == 503
        assert "no-such-model" in response.json()["detail"]
        bad = client.post(
            "/v1/photos", headers=keys.headers("citizen"), files={"file": ("a.png", b"GIF89a", "image/gif")}
        )
        assert bad.status_code == 422  # bad input is refused before the model is needed


PROGRAM = """
import json, sys, pathlib
from fastapi.testclient import TestClient
from service.api.app import create_app
from service.settings import Settings
from service.auth import ensure_bootstrap_admin
folder = pathlib.Path(sys.argv[1])
token = "t" * 40
settings = Settings(database_url=f"sqlite:///{folder}/x.db", data_dir=folder / "data",
                    models_dir=folder / "models", bootstrap_admin_key=token)
with TestClient(create_app(settings)) as client:
    response = client.post("/v1/photos", headers={"Authorization": f"Bearer {token}"},
                           files={"file": ("a.png", pathlib.Path(sys.argv[2]).read_bytes(), "image/png")},
                           data={"lon": "117.2272", "lat": "31.8206"})
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "ultralytics", "torchvision"))
print(json.dumps({"status": response.status_code, "body": response.json(), "heavy": heavy}))
"""


@pytest.mark.slow
def test_installed_onnx_model_serves_photos_without_torch(tiny_model, tmp_path):
    install_tiny_model(tiny_model.onnx_path, tmp_path / "models", thresholds={"garbage": 0.0, "smoke": 0.0})
    image = tmp_path / "photo.png"
    image.write_bytes(png(painted([GARBAGE], size_wh=(256, 192))))
    result = subprocess.run(
        [sys.executable, "-c", PROGRAM, str(tmp_path), str(image)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["heavy"] == []
    assert out["status"] == 201, out["body"]
    body = out["body"]
    # Untrained weights: which boxes come out is arbitrary, but every one is mapped onto the
    # taxonomy by the card (garbage_bin, the helper label, never appears) and carries the model version.
    assert body["model_version"].startswith("default:2026.11.23-test:")
    assert {o["class_key"] for o in body["observations"]} <= {"garbage_pile", "straw_burning"}
    assert body["observations"], "with zero thresholds an untrained model still reports boxes"
    assert len(body["issues"]) == len({o["issue_id"] for o in body["observations"]})


# -- blank frames (issue #13) ---------------------------------------------------------------------


class SmokeEverywhereDetector(PaintedBoxDetector):
    """Sees smoke filling any frame, as smoke-trained models do on flat dark or grey frames."""

    def _detect(self, image):  # type: ignore[no-untyped-def]
        height, width = image.shape[:2]
        return Detections(
            xyxy=np.array([[0, 0, width, height]], np.float32),
            confidence=np.array([0.9], np.float32),
            class_id=np.array([FAKE_LABELS.index("smoke")], np.int64),
            data={"class_name": np.array(["smoke"], dtype=str)},
        )


@pytest.fixture
def smoke_everywhere(settings):  # type: ignore[no-untyped-def]
    detector = SmokeEverywhereDetector(input_size=640)
    pipeline = Pipeline(detector, painted_card(), batcher=BatcherConfig(max_batch=2))
    yield PipelineAnalyzer(settings, pipeline=pipeline)
    pipeline.close()


BLACK = np.zeros((480, 640, 3), np.uint8)
GREY_JPEG_NOISE = np.full((480, 640, 3), 128, np.uint8)
NIGHT_WITH_A_FIRE = BLACK.copy()
NIGHT_WITH_A_FIRE[300:312, 400:416] = (40, 120, 250)  # a small fire in a dark field: a picture


@pytest.mark.parametrize("encode", [png, jpeg], ids=["png", "jpeg"])
@pytest.mark.parametrize("pixels", [BLACK, GREY_JPEG_NOISE], ids=["black", "grey"])
def test_a_blank_frame_never_becomes_straw_burning(  # type: ignore[no-untyped-def]
    settings, smoke_everywhere, clock, keys_factory, pixels, encode
):
    with TestClient(create_app(settings, analyzer=smoke_everywhere, clock=clock)) as client:
        keys = keys_factory()
        body = upload_ok(client, keys, encode(pixels), lon=117.2, lat=31.8)
    assert body["observations"] == [] and body["issues"] == []
    assert body["detection_skipped"].startswith("blank frame: one flat colour")
    assert smoke_everywhere.pipeline().detector.batch_sizes == []  # the detector never saw it


def test_a_dark_frame_with_something_in_it_is_analysed(settings, smoke_everywhere, clock, keys_factory):
    with TestClient(create_app(settings, analyzer=smoke_everywhere, clock=clock)) as client:
        keys = keys_factory()
        body = upload_ok(client, keys, png(NIGHT_WITH_A_FIRE), lon=117.2, lat=31.8)
    assert [o["class_key"] for o in body["observations"]] == ["straw_burning"]
    assert body["detection_skipped"] is None


# A 4x4 fire in each corner of a night frame whose sides are odd at every halving of the
# thumbnail: the halvings repeat an odd edge row or column, they never drop it.
ODD_WH = (1281, 961)
CORNERS = {"top left": (0, 0), "top right": (ODD_WH[0] - 4, 0),
           "bottom left": (0, ODD_WH[1] - 4), "bottom right": (ODD_WH[0] - 4, ODD_WH[1] - 4)}


@pytest.mark.parametrize("corner", CORNERS.values(), ids=CORNERS.keys())
def test_a_fire_in_a_corner_of_a_night_frame_keeps_it_a_picture(corner):  # type: ignore[no-untyped-def]
    frame = np.zeros((ODD_WH[1], ODD_WH[0], 3), np.uint8)
    assert blank_frame_reason(frame) is not None
    x, y = corner
    frame[y : y + 4, x : x + 4] = (40, 120, 250)
    assert blank_frame_reason(frame) is None


@pytest.mark.parametrize("size_wh", [(1600, 1200), (4032, 3024), (1281, 961), (4000, 333), (70, 50), (1, 1)])
def test_the_thumbnail_is_one_area_resize_within_two_levels(size_wh):  # type: ignore[no-untyped-def]
    """The halvings give the thumbnail one area resize of the whole frame gives, within two grey
    levels, on a scene with a gradient across every thumbnail pixel (where shifted block edges show)."""
    width, height = size_wh
    y, x = np.mgrid[0:height, 0:width]
    pixels = np.stack([x * 255 // width, y * 255 // height, (x + y) * 127 // (width + height)], -1)
    pixels = pixels.astype(np.uint8)
    thumb = grey_thumbnail(pixels, 64)
    scale = min(1.0, 64 / max(width, height))
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    one_resize = cv2.cvtColor(cv2.resize(pixels, size, interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2GRAY)
    assert thumb.shape == one_resize.shape
    assert np.abs(thumb.astype(int) - one_resize).max() <= 2
