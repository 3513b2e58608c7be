"""The pipeline: thresholds and class mapping from the card, tiling, sharing, files."""

from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.vision.fakes import FAKE_LABELS, TINY_LABEL_MAP, PaintedBoxDetector, install_tiny_model, paint_box
from vision.batcher import BatcherConfig
from vision.errors import ModelError
from vision.image_io import load_image
from vision.model_card import ModelCard
from vision.pipeline import Pipeline, TilingConfig
from vision.taxonomy import Taxonomy

GARBAGE, BIN, SMOKE = range(3)


def _card(**overrides) -> ModelCard:
    fields = dict(name="fake", version="1.2.3", sha256="0" * 64, input_size=64, labels=list(FAKE_LABELS),
                  label_map=dict(TINY_LABEL_MAP), thresholds={"garbage": 0.5})
    fields.update(overrides)
    return ModelCard(**fields)


@pytest.fixture
def detector() -> PaintedBoxDetector:
    return PaintedBoxDetector(input_size=64, max_batch=8)


@pytest.fixture
def pipeline(detector):
    with Pipeline(detector, _card(), batcher=BatcherConfig(max_batch=4, max_wait_ms=2)) as pipe:
        yield pipe


def _image(width: int, height: int, objects) -> np.ndarray:
    image = np.zeros((height, width, 3), np.uint8)
    for xyxy, label, score in objects:
        paint_box(image, xyxy, label, score)
    return image


# -- thresholds and class mapping --------------------------------------------------------------

@pytest.mark.parametrize("objects, expected", [
    # garbage at 0.8 passes the card's 0.5; the taxonomy key and the model label are both kept
    ([((10, 10, 40, 40), GARBAGE, 0.8)], [("garbage_pile", "garbage", 0.8)]),
    # garbage at 0.4 is under the card's threshold of 0.5
    ([((10, 10, 40, 40), GARBAGE, 0.4)], []),
    # smoke has no card threshold: straw_burning's taxonomy default 0.30 applies
    ([((10, 10, 40, 40), SMOKE, 0.34)], [("straw_burning", "smoke", 0.34)]),
    ([((10, 10, 40, 40), SMOKE, 0.26)], []),
    # a bin is a helper label mapped to nothing: never a finding
    ([((10, 10, 40, 40), BIN, 0.9)], []),
    # best score first
    ([((5, 5, 20, 20), GARBAGE, 0.6), ((40, 40, 60, 60), SMOKE, 0.9)],
     [("straw_burning", "smoke", 0.9), ("garbage_pile", "garbage", 0.6)]),
])
def test_findings_follow_card_thresholds_and_label_map(pipeline, objects, expected):
    found = pipeline.detect(_image(64, 64, objects))
    got = [(k, n, round(float(s), 2)) for k, n, s in
           zip(found.data["class_key"], found.data["class_name"], found.confidence, strict=True)]
    assert got == expected


def test_helper_labels_are_dropped_but_counted(pipeline):
    image = _image(64, 64, [((2, 2, 12, 12), BIN, 0.9), ((20, 20, 30, 30), BIN, 0.9),
                            ((40, 40, 60, 60), GARBAGE, 0.9)])
    found = pipeline.detect(image)
    assert found.data["class_key"].tolist() == ["garbage_pile"]
    assert found.metadata["dropped_helper_labels"] == {"garbage_bin": 2}


def test_metadata_names_model_resolution_and_tiles(pipeline):
    found = pipeline.detect(_image(100, 60, []))
    assert len(found) == 0
    assert found.metadata == {"model": "fake", "model_version": "1.2.3", "resolution_wh": (100, 60),
                              "tiles": 1, "source_kind": "unknown", "dropped_helper_labels": {}}


def test_loaded_image_is_accepted(pipeline, tmp_path):
    path = tmp_path / "one.png"
    cv2.imwrite(str(path), _image(64, 48, [((10, 10, 30, 30), SMOKE, 0.9)]))
    found = pipeline.detect(load_image(path))
    assert found.xyxy.tolist() == [[10, 10, 30, 30]]


@pytest.mark.parametrize(("orientation", "expected_xyxy"), [
    (1, [160, 64, 320, 192]),
    (6, [288, 160, 416, 320]),  # stored sideways, shown turned 90 degrees clockwise: 480x640 upright
])
def test_a_reduced_decode_gives_boxes_in_full_size_pixels(pipeline, detector, orientation, expected_xyxy):
    """A citizen photo decoded for the model (640x480 for a 64 px input: reduced by 8) is
    detected on 80x60 pixels, and its boxes come back in the 640x480 source's upright pixels."""
    from PIL import Image

    stored = _image(640, 480, [((160, 64, 320, 192), SMOKE, 0.9)])
    exif = Image.Exif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    Image.fromarray(stored[:, :, ::-1]).save(buffer, "JPEG", quality=95, exif=exif.tobytes())
    image = load_image(buffer.getvalue(), default_kind="citizen", decode_sizes=pipeline.decode_sizes())
    assert pipeline.decode_sizes() == {"citizen": 64}
    upright_wh = (640, 480) if orientation == 1 else (480, 640)
    assert image.source_wh == upright_wh and image.resolution_wh == (upright_wh[0] // 8, upright_wh[1] // 8)
    found = pipeline.detect(image)
    assert detector.image_shapes[-1][:2] == image.pixels.shape[:2]  # the model saw the reduced decode
    assert found.metadata["resolution_wh"] == upright_wh
    assert found.xyxy.tolist() == [pytest.approx(expected_xyxy, abs=8)]  # one decoded pixel
    full = pipeline.detect(load_image(buffer.getvalue(), default_kind="citizen"))
    assert found.xyxy == pytest.approx(full.xyxy, abs=8)


@pytest.mark.parametrize("image", [np.zeros((10, 10), np.uint8), np.zeros((10, 10, 3), np.float32),
                                   "not an image"])
def test_bad_images_are_rejected_with_what_was_expected(pipeline, image):
    with pytest.raises(ValueError, match="expected a BGR uint8"):
        pipeline.detect(image)


@pytest.mark.parametrize("card_overrides, match", [
    ({"labels": ["garbage", "smoke", "garbage_bin"]}, "labels"),
    ({"label_map": {**TINY_LABEL_MAP, "smoke": "fog"}}, "unknown taxonomy keys"),
])
def test_card_that_does_not_fit_is_refused(detector, card_overrides, match):
    with pytest.raises(ModelError, match=match):
        Pipeline(detector, _card(**card_overrides))


def test_batches_are_capped_by_a_static_batch_model():
    static = PaintedBoxDetector(max_batch=1)
    with Pipeline(static, _card(), batcher=BatcherConfig(max_batch=8)) as pipe:
        assert pipe.batcher_config.max_batch == 1


# -- tiling -----------------------------------------------------------------------------------

@pytest.mark.parametrize("tiled, resolution_wh, expect_tiles", [
    ("auto", (512, 100), False),   # longer side 512 = 8 x input 64: not more than 8x
    ("auto", (513, 100), True),
    ("auto", (600, 300), True),
    (False, (400, 300), False),
    (True, (64, 64), False),       # one window covers it: a "tiling" of one
])
def test_auto_tiling_depends_on_size(pipeline, tiled, resolution_wh, expect_tiles):
    found = pipeline.detect(_image(*resolution_wh, []), tiled=tiled)
    assert (found.metadata["tiles"] > 1) == expect_tiles


# Model input 64. Default factors: citizen never, drone 1 (larger than the input), camera 8,
# unknown 8 (auto_factor). 4000x3000 is a phone photo, 5472x3648 a DJI one.
@pytest.mark.parametrize("source, resolution_wh, tiled, expect_tiles", [
    ("citizen", (4000, 3000), "auto", False),  # a close-up pile is never cut, however large
    ("citizen", (4000, 3000), True, True),     # an explicit choice overrides the policy
    ("drone", (64, 48), "auto", False),        # fits the input: one window
    ("drone", (65, 48), "auto", True),         # larger than the input: tiled
    ("drone", (5472, 3648), False, False),
    ("camera", (512, 288), "auto", False),     # 512 = 8 x 64: not more than 8x
    ("camera", (513, 288), "auto", True),
    ("unknown", (512, 100), "auto", False),    # 512 = 8 x 64
    ("unknown", (513, 100), "auto", True),
])
def test_tiling_policy_by_source_kind(pipeline, source, resolution_wh, tiled, expect_tiles):
    assert pipeline.should_tile(resolution_wh, tiled, source) == expect_tiles


@pytest.mark.parametrize("config, source, resolution_wh, expect_tiles", [
    (TilingConfig(citizen_factor=10.0), "citizen", (641, 100), True),   # 641 > 10 x 64
    (TilingConfig(citizen_factor=10.0), "citizen", (640, 100), False),
    (TilingConfig(drone_factor=None), "drone", (5472, 3648), False),    # drone tiling switched off
    (TilingConfig(camera_factor=1.0), "camera", (65, 64), True),
    (TilingConfig(auto_factor=4.0), "unknown", (256, 64), False),
])
def test_tiling_policy_is_configurable(detector, config, source, resolution_wh, expect_tiles):
    with Pipeline(detector, _card(), tiling=config) as pipe:
        assert pipe.should_tile(resolution_wh, "auto", source) == expect_tiles
        found = pipe.detect(np.zeros((resolution_wh[1], resolution_wh[0], 3), np.uint8), source=source)
        assert (found.metadata["tiles"] > 1, found.metadata["source_kind"]) == (expect_tiles, source)


@pytest.mark.parametrize("factor", [0.5, 0.0, -1.0])
def test_tiling_factors_below_one_are_refused(factor):
    with pytest.raises(ValueError, match="greater than or equal to 1"):
        TilingConfig(drone_factor=factor)


@pytest.mark.parametrize("source", ["phone", "", None])
def test_an_unknown_source_kind_is_refused(pipeline, source):
    with pytest.raises(ValueError, match="expected source to be one of"):
        pipeline.detect(_image(64, 48, []), tiled=False, source=source)
    with pytest.raises(ValueError, match="expected source to be"):
        list(pipeline.detect_many([], source=source))


DJI_XMP = ('<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
           '<rdf:Description xmlns:drone-dji="http://www.dji.com/drone-dji/1.0/" '
           'drone-dji:RelativeAltitude="+80.0"/></rdf:RDF></x:xmpmeta>')


def _dji_image(path: Path, width: int, height: int) -> Path:
    """A black image carrying a DJI XMP packet: APP1 in a JPEG, an iTXt chunk in a PNG."""
    from PIL import Image, PngImagePlugin

    image = Image.new("RGB", (width, height))
    if path.suffix == ".png":
        info = PngImagePlugin.PngInfo()
        info.add_itxt("XML:com.adobe.xmp", DJI_XMP)
        image.save(path, "PNG", pnginfo=info)
    else:
        image.save(path, "JPEG", xmp=DJI_XMP.encode())
    return path


@pytest.mark.parametrize("name, source, expected_kind, expect_tiles", [
    ("DJI_0001.JPG", "sniff", "drone", True),    # DJI XMP -> drone -> tiled (100 > 64)
    ("DJI_0001.png", "sniff", "drone", True),
    ("DJI_0001.JPG", "citizen", "citizen", False),  # the caller knows better than the file
])
def test_files_with_dji_xmp_are_drone_photos(pipeline, tmp_path, name, source, expected_kind, expect_tiles):
    drone = _dji_image(tmp_path / name, 100, 80)
    plain = tmp_path / "plain.png"
    cv2.imwrite(str(plain), _image(100, 80, []))
    drone_result, plain_result = pipeline.detect_many([drone, plain], source=source)
    assert drone_result.detections.metadata["source_kind"] == expected_kind
    assert (drone_result.detections.metadata["tiles"] > 1) == expect_tiles
    # 100 px is not more than 2 x 64: a file without DJI XMP is of unknown kind and not tiled
    assert plain_result.detections.metadata["source_kind"] == ("unknown" if source == "sniff" else source)
    assert plain_result.detections.metadata["tiles"] == 1
    assert pipeline.detect_file(drone, source=source).detections.metadata["source_kind"] == expected_kind


def test_tiled_detection_reports_seam_objects_once_through_the_shared_batcher(detector):
    objects = [((50, 40, 330, 90), GARBAGE, 0.9),    # long, crosses several vertical seams
               ((100, 150, 140, 260), SMOKE, 0.7),   # crosses horizontal seams
               ((300, 200, 340, 230), GARBAGE, 0.8)]
    config = BatcherConfig(max_batch=4, max_wait_ms=50)
    with Pipeline(detector, _card(), batcher=config, tiling=TilingConfig(tile_size=96)) as pipe:
        found = pipe.detect(_image(400, 300, objects), tiled=True)
        stats = pipe.stats()
    expected = sorted(([float(v) for v in xyxy], label) for xyxy, label, _ in objects)
    assert sorted(zip(found.xyxy.tolist(), found.class_id.tolist(), strict=True)) == expected
    tiles = found.metadata["tiles"]
    assert tiles > 4
    assert stats.items_done == tiles
    assert max(detector.batch_sizes) <= 4
    assert all(shape[:2] == (96, 96) for shape in detector.image_shapes)


# -- sharing ----------------------------------------------------------------------------------

def test_many_threads_share_one_pipeline_and_get_their_own_findings(detector):
    def one_caller(i: int) -> list[list[float]]:
        x = 4 + (i % 10) * 5
        image = _image(64, 64, [((x, 8, x + 6, 50), GARBAGE, 0.9)])
        return pipe.detect(image).xyxy.tolist()

    with Pipeline(detector, _card(), batcher=BatcherConfig(max_batch=4, max_wait_ms=5)) as pipe, \
            ThreadPoolExecutor(8) as pool:
        results = list(pool.map(one_caller, range(40)))
    for i, boxes in enumerate(results):
        x = 4 + (i % 10) * 5
        assert boxes == [[x, 8, x + 6, 50]]
    assert max(detector.batch_sizes) <= 4
    assert sum(detector.batch_sizes) == 40


def test_detector_failure_reaches_the_caller_and_the_pipeline_goes_on():
    failing = PaintedBoxDetector(fail_on_batch=0)
    with Pipeline(failing, _card()) as pipe:
        with pytest.raises(RuntimeError, match="fake detector failure"):
            pipe.detect(_image(64, 64, []))
        assert len(pipe.detect(_image(64, 64, [((1, 1, 20, 20), SMOKE, 0.9)]))) == 1


# -- files ------------------------------------------------------------------------------------

def test_detect_many_keeps_order_and_returns_errors_as_values(pipeline, tmp_path):
    paths: list[Path] = []
    for i in range(7):
        path = tmp_path / f"ok{i}.png"
        cv2.imwrite(str(path), _image(64, 64, [((i, i, i + 20, i + 20), GARBAGE, 0.9)]))
        paths.append(path)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0" + b"\0" * 40)
    paths.insert(2, broken)
    paths.insert(5, tmp_path / "missing.jpg")

    results = list(pipeline.detect_many(paths, workers=3))
    assert [r.path for r in results] == [str(p) for p in paths]
    assert [r.error.reason if r.error else None for r in results] == \
        [None, None, "corrupt", None, None, "not_found", None, None, None]
    oks = [r for r in results if r.ok]
    for i, result in enumerate(oks):
        assert result.detections.xyxy.tolist() == [[i, i, i + 20, i + 20]]
        assert result.resolution_wh == (64, 64)
        assert result.timings.total_ms >= result.timings.detect_ms > 0
    assert all(r.detections is None and r.resolution_wh is None for r in results if not r.ok)


def test_detect_many_loaders_do_not_wait_for_inference_so_batches_fill(detector, tmp_path):
    # One loader thread: if it waited for each file's result, every batch would hold one image.
    paths = []
    for i in range(8):
        path = tmp_path / f"{i}.png"
        cv2.imwrite(str(path), _image(48, 48, [((i, 2, i + 10, 30), SMOKE, 0.9)]))
        paths.append(path)
    config = BatcherConfig(max_batch=4, max_wait_ms=2000)
    with Pipeline(detector, _card(), batcher=config) as pipe:
        results = list(pipe.detect_many(paths, workers=1))
    assert [r.detections.xyxy.tolist() for r in results] == [[[i, 2, i + 10, 30]] for i in range(8)]
    assert max(detector.batch_sizes) > 1
    assert max(detector.batch_sizes) <= 4


def test_detect_many_can_be_abandoned_early(pipeline, tmp_path):
    paths = []
    for i in range(20):
        path = tmp_path / f"{i}.png"
        cv2.imwrite(str(path), _image(32, 32, []))
        paths.append(path)
    results = pipeline.detect_many(paths, workers=2)
    first = next(results)
    results.close()
    assert first.ok
    assert pipeline.stats().items_done < 20


# -- a real installed model -------------------------------------------------------------------

def test_from_model_runs_an_installed_onnx_model(tiny_model, tmp_path):
    install_tiny_model(tiny_model.onnx_path, tmp_path / "models", "default",
                       thresholds={"garbage": 0.0, "smoke": 0.0})
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (300, 500, 3), dtype=np.uint8)
    with Pipeline.from_model(models_dir=tmp_path / "models") as pipe:
        found = pipe.detect(image, tiled=False)
        tiled = pipe.detect(image, tiled=True)
    assert found.metadata["model"] == "default"
    assert found.metadata["model_version"] == "2026.11.23-test"
    assert set(found.data["class_key"].tolist()) <= {"garbage_pile", "straw_burning"}
    assert "garbage_bin" not in found.data["class_name"].tolist()
    assert np.all((found.xyxy >= 0) & (found.xyxy <= [500, 300, 500, 300]))
    assert tiled.metadata["tiles"] > 1
    assert np.all((tiled.xyxy >= 0) & (tiled.xyxy <= [500, 300, 500, 300]))


def test_lanes_run_images_at_once_without_changing_any_result(tiny_model, tmp_path):
    install_tiny_model(tiny_model.onnx_path, tmp_path / "models", "default",
                       thresholds={"garbage": 0.0, "smoke": 0.0})
    rng = np.random.default_rng(1)
    images = [rng.integers(0, 255, (240 + 16 * i, 320, 3), dtype=np.uint8) for i in range(6)]
    with Pipeline.from_model(models_dir=tmp_path / "models", lanes=2) as lanes, \
            Pipeline.from_model(models_dir=tmp_path / "models", intra_op_threads=0, lanes=1) as one, \
            ThreadPoolExecutor(6) as callers:
        assert (lanes.batcher_config.workers, one.batcher_config.workers) == (2, 1)
        concurrent = list(callers.map(lambda im: lanes.detect(im, tiled=False), images))
        alone = [one.detect(im, tiled=False) for im in images]
    assert sum(len(found) for found in alone) > 0  # something to compare
    for a, b in zip(concurrent, alone, strict=True):
        np.testing.assert_allclose(a.xyxy, b.xyxy, atol=1e-3)
        np.testing.assert_allclose(a.confidence, b.confidence, atol=1e-5)
        assert a.class_id.tolist() == b.class_id.tolist()


def test_from_model_refuses_weights_that_do_not_match_the_card(tiny_model, tmp_path):
    folder = install_tiny_model(tiny_model.onnx_path, tmp_path / "models", "damaged")
    with (folder / "model.onnx").open("ab") as fh:
        fh.write(b"\0")
    with pytest.raises(ModelError, match="sha256"):
        Pipeline.from_model("damaged", models_dir=tmp_path / "models")


def test_default_taxonomy_is_used_when_none_is_given(pipeline):
    assert pipeline.taxonomy == Taxonomy.default()


# -- tiles sized by the ground ----------------------------------------------------------------

# The synthetic photo: 2.5 cm per pixel, 2.5x finer than the 6.25 cm a 1 m garbage pile needs at 16 px.
GSD_M = 0.025
GROUND_OBJECTS = [((130, 90, 190, 150), GARBAGE, 0.9),    # a 1.5 m pile
                  ((400, 300, 520, 520), SMOKE, 0.8),     # a 3 x 5.5 m smoke column
                  ((655, 71, 703, 113), GARBAGE, 0.7)]    # 1.2 x 1.05 m, off the resampling grid


def _ground_pipeline(detector, **tiling):
    return Pipeline(detector, _card(), batcher=BatcherConfig(max_batch=8, max_wait_ms=2),
                    tiling=TilingConfig(tile_size=64, object_px=16, **tiling))


def _box_iou(a, b) -> float:
    inter = max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union


def test_an_image_at_known_gsd_is_shrunk_before_tiling_and_finds_what_native_finds(detector):
    image = _image(800, 600, GROUND_OBJECTS)
    with _ground_pipeline(detector) as pipe:
        assert pipe.target_gsd_m("drone") == pytest.approx(1.0 / 16)  # garbage_pile: 1 m at 16 px
        native = pipe.detect(image, tiled=True, source="drone")  # no GSD known: native
        native_pixels = sum(h * w for h, w, _ in detector.image_shapes)
        detector.image_shapes.clear()
        resampled = pipe.detect(image, tiled=True, source="drone", gsd_m=GSD_M)
        resampled_pixels = sum(h * w for h, w, _ in detector.image_shapes)
    assert native.metadata["ground_sampling"]["resampled_wh"] == (800, 600)
    assert resampled.metadata["ground_sampling"] == {"gsd_m": GSD_M, "target_gsd_m": pytest.approx(0.0625),
                                                     "resampled_wh": (320, 240)}
    assert resampled.metadata["resolution_wh"] == (800, 600)  # boxes are native pixels
    assert resampled.metadata["tiles"] * 4 < native.metadata["tiles"]
    assert resampled_pixels * 4 < native_pixels
    for found, iou in ((native, 0.99), (resampled, 0.85)):
        assert sorted(found.class_id.tolist()) == [GARBAGE, GARBAGE, SMOKE]
        for box, label, _ in GROUND_OBJECTS:  # each object found once, of its class, where it is
            [match] = [b for b, c in zip(found.xyxy.tolist(), found.class_id, strict=True)
                       if c == label and _box_iou(b, box) > iou]
            # at 2.5 native pixels per resampled pixel, an edge is off by less than one resampled pixel
            assert np.abs(np.array(match) - np.array(box)).max() < 1 / 0.4


@pytest.mark.parametrize("tiling, gsd_m", [
    ({"ground_sized": False}, GSD_M),  # the setting turns it off
    ({}, 0.1),                         # coarser than the target: never enlarged
    ({}, None),                        # unknown GSD: native
])
def test_ground_sizing_leaves_the_image_native_when_off_coarse_or_unknown(detector, tiling, gsd_m):
    image = _image(800, 600, GROUND_OBJECTS)
    with _ground_pipeline(detector, **tiling) as pipe:
        found = pipe.detect(image, tiled=True, source="drone", gsd_m=gsd_m)
    assert found.metadata["ground_sampling"]["resampled_wh"] == (800, 600)
    assert all(shape[:2] == (64, 64) for shape in detector.image_shapes)
    expected = sorted(tuple(map(float, box)) for box, _, _ in GROUND_OBJECTS)
    assert sorted(map(tuple, found.xyxy.tolist())) == expected


def test_a_drone_photo_file_is_shrunk_by_the_gsd_of_its_pose(detector, tmp_path):
    from PIL import Image, PngImagePlugin

    tags = {"GpsLatitude": 39.9, "GpsLongitude": 116.4, "RelativeAltitude": "+10.0", "GimbalYawDegree": 0.0,
            "GimbalPitchDegree": -90.0, "GimbalRollDegree": 0.0, "CalibratedFocalLength": 400.0}
    xmp = DJI_XMP.replace('drone-dji:RelativeAltitude="+80.0"',
                          " ".join(f'drone-dji:{k}="{v}"' for k, v in tags.items()))
    info = PngImagePlugin.PngInfo()
    info.add_itxt("XML:com.adobe.xmp", xmp)
    path = tmp_path / "DJI_0002.png"
    Image.fromarray(_image(800, 600, GROUND_OBJECTS)[:, :, ::-1]).save(path, "PNG", pnginfo=info)
    with _ground_pipeline(detector) as pipe:
        found = pipe.detect_file(path).detections
    assert found.metadata["source_kind"] == "drone"
    assert found.metadata["ground_sampling"]["gsd_m"] == pytest.approx(10.0 / 400.0, rel=1e-4)
    assert found.metadata["ground_sampling"]["resampled_wh"] == (320, 240)
    assert len(found) == len(GROUND_OBJECTS)
