"""Uploaded photos are tiled by what they are: a citizen's photo never, a DJI drone photo beyond the input."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from service.api.routes.photos import analyze_upload
from service.photo_analyzer import PipelineAnalyzer
from service.runtime import Runtime
from service.settings import Settings
from tests.service.conftest import painted_card
from tests.vision.fakes import PaintedBoxDetector
from vision.batcher import BatcherConfig
from vision.pipeline import Pipeline

DJI_XMP = (
    '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
    '<rdf:Description xmlns:drone-dji="http://www.dji.com/drone-dji/1.0/" '
    'drone-dji:RelativeAltitude="+80.0"/>'
    "</rdf:RDF></x:xmpmeta>"
)


def _jpeg(size_wh: tuple[int, int], xmp: str | None) -> bytes:
    buffer = io.BytesIO()
    extra = {"xmp": xmp.encode()} if xmp else {}
    # A field with a darker band: a picture, not a blank frame (those never reach the detector).
    image = Image.new("RGB", size_wh, (90, 120, 60))
    image.paste((40, 60, 30), (0, size_wh[1] // 2, size_wh[0], size_wh[1] // 2 + 40))
    image.save(buffer, "JPEG", **extra)
    return buffer.getvalue()


# Model input 64; 640x480 is 10x the input.
@pytest.mark.parametrize(
    ("xmp", "expected_shapes"),
    [
        # A citizen photo goes in whole, however large, decoded no larger than the input needs
        # (reduced by 8: 80x60, its long side still over 64).
        (None, [(60, 80, 3)]),
        (DJI_XMP, "tiles"),  # a drone photo is cut into 64x64 windows
    ],
)
def test_uploads_are_tiled_by_source_kind(tmp_path: Path, xmp, expected_shapes) -> None:
    detector = PaintedBoxDetector(input_size=64, max_batch=8)
    settings = Settings(database_url=f"sqlite:///{tmp_path}/x.db", data_dir=tmp_path / "data")
    with Pipeline(detector, painted_card(), batcher=BatcherConfig(max_batch=8, max_wait_ms=1)) as pipeline:
        runtime = Runtime.build(settings, analyzer=PipelineAnalyzer(settings, pipeline=pipeline))
        analyze_upload(runtime, _jpeg((640, 480), xmp), lon=None, lat=None)  # what POST /v1/photos runs
        runtime.close()
    if expected_shapes == "tiles":
        assert len(detector.image_shapes) > 1
        assert set(detector.image_shapes) == {(64, 64, 3)}
    else:
        assert detector.image_shapes == expected_shapes
