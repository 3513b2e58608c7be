"""OpenVINO backend: the same boxes as ONNX Runtime on real photos (bf16 within a tolerance, f32
nearly exactly), the ONNX file's metadata and end-to-end heads read as onnxruntime reads them,
one stream per lane, and a clear error naming the extra when openvino is missing."""

from __future__ import annotations

import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.vision.detectors.onnx_graphs import constant_head_model
from vision.detections import Detections
from vision.detectors.base import OnnxRuntimeConfig, OpenVinoConfig
from vision.detectors.engines import openvino_importable
from vision.detectors.onnx_runtime import OnnxRuntimeDetector
from vision.detectors.openvino_runtime import OpenVinoDetector
from vision.detectors.yolo_export import physical_core_count
from vision.errors import BackendUnavailableError, ModelError
from vision.postprocess import box_iou

REPO = Path(__file__).resolve().parents[3]
DEFAULT_ONNX = REPO / "models" / "default" / "model.onnx"
PHOTOS = sorted((REPO / "samples" / "photos").glob("*.jpg"))
E2E_META = {"names": "{0: 'garbage_pile', 1: 'straw_burning'}", "imgsz": "[64, 64]", "end2end": "True",
            "stride": "32", "batch": "1"}

needs_openvino = pytest.mark.skipif(not openvino_importable(), reason="the openvino extra is not installed")


def unmatched(reference: Detections, other: Detections, *, floor: float, iou: float,
              score: float) -> list[str]:
    """Boxes of `reference` scoring >= `floor` that `other` lacks: no box of the same class with
    IoU >= `iou` and a score within `score`; one line each, for the assertion message."""
    missing = []
    for box, conf, cls in zip(reference.xyxy, reference.confidence, reference.class_id, strict=True):
        if conf < floor:
            continue
        same = other.class_id == cls
        ious = box_iou(box, other.xyxy[same]) if same.any() else np.zeros(0)
        close = (ious >= iou) & (np.abs(other.confidence[same] - conf) <= score)
        if not close.any():
            best = f"best IoU {ious.max():.3f}" if len(ious) else "no box of the class"
            missing.append(f"class {cls} score {conf:.3f} at {np.round(box, 1).tolist()}: {best}")
    return missing


@needs_openvino
@pytest.mark.slow
@pytest.mark.parametrize(("precision", "iou", "score"), [(None, 0.9, 0.05), ("f32", 0.99, 0.002)])
def test_finds_the_boxes_onnxruntime_finds_on_real_photos(precision, iou, score) -> None:
    """The shipped model on the committed sample photos: every box either runtime finds at 0.2
    or above, the other finds too (same class, IoU and score within the tolerance); bf16 (the
    plugin's default here) moves scores by about 0.02, f32 by rounding only."""
    assert PHOTOS, "samples/photos has the committed sample photos"
    images = [cv2.imread(str(p)) for p in PHOTOS]
    ort = OnnxRuntimeDetector.from_config(OnnxRuntimeConfig(model=DEFAULT_ONNX, conf=0.1))
    ov = OpenVinoDetector.from_config(OpenVinoConfig(model=DEFAULT_ONNX, conf=0.1, precision=precision))
    found = 0
    for path, a, b in zip(PHOTOS, ort.predict_batch(images), ov.predict_batch(images), strict=True):
        found += int((a.confidence >= 0.2).sum())
        tolerance = {"floor": 0.2, "iou": iou, "score": score}
        assert not unmatched(a, b, **tolerance), (path.name, unmatched(a, b, **tolerance))
        assert not unmatched(b, a, **tolerance), (path.name, unmatched(b, a, **tolerance))
        assert b.metadata == a.metadata  # resolution and model name, as onnxruntime reports them
    assert found >= 5  # the comparison compared something


@needs_openvino
def test_reads_the_metadata_onnxruntime_reads(tiny_model) -> None:
    ort = OnnxRuntimeDetector.from_config(OnnxRuntimeConfig(model=tiny_model.onnx_path))
    ov = OpenVinoDetector.from_config(OpenVinoConfig(model=tiny_model.onnx_path))
    assert (ov.labels, ov.input_size, ov.max_batch, ov.end2end, ov.rect) == (
        ort.labels, ort.input_size, ort.max_batch, ort.end2end, ort.rect)
    assert ov.engine == "openvino" and ort.engine == "onnxruntime"


@needs_openvino
@pytest.mark.parametrize(("lanes", "threads", "streams"),
                         [(0, 1, physical_core_count()), (1, 1, 1), (0, 0, 1)])
def test_one_stream_per_lane(tiny_model, lanes, threads, streams) -> None:
    detector = OpenVinoDetector.from_config(OpenVinoConfig(model=tiny_model.onnx_path, lanes=lanes,
                                                           intra_op_threads=threads))
    assert detector.lanes == streams
    assert int(detector.property("NUM_STREAMS")) == streams
    assert detector.property("INFERENCE_NUM_THREADS") == streams * (threads or physical_core_count())


@needs_openvino
def test_precision_is_passed_to_the_plugin(tiny_model) -> None:
    detector = OpenVinoDetector.from_config(OpenVinoConfig(model=tiny_model.onnx_path, precision="f32"))
    assert str(detector.property("INFERENCE_PRECISION_HINT")) == "<Type: 'float32'>"


@needs_openvino
def test_end2end_heads_decode_as_onnxruntime_decodes_them(tmp_path: Path) -> None:
    """An end-to-end head's rows (x1, y1, x2, y2, score, class; no NMS) come back as onnxruntime's,
    in source pixels, below-floor rows dropped, for square and rectangular inputs."""
    rows = [[4, 8, 40, 56, 0.8, 0], [2, 4, 60, 60, 0.7, 1], [6, 6, 30, 30, 0.65, 1], [0, 0, 8, 8, 0.05, 1]]
    path = constant_head_model(tmp_path / "e2e.onnx", np.array([rows], np.float32), metadata=E2E_META)
    images = [np.zeros((64, 128, 3), np.uint8), np.full((90, 40, 3), 60, np.uint8)]
    for rect in (False, True):
        ov = OpenVinoDetector.from_config(OpenVinoConfig(model=path, conf=0.25, precision="f32"), rect=rect)
        ort = OnnxRuntimeDetector.from_config(OnnxRuntimeConfig(model=path, conf=0.25), rect=rect)
        assert ov.end2end is True
        for image in images:  # one a call: the constant head's output has batch 1
            (a,), (b,) = ort.predict_batch([image]), ov.predict_batch([image])
            assert b.class_id.tolist() == a.class_id.tolist() == [0, 1, 1]  # overlapping boxes both kept
            np.testing.assert_allclose(b.xyxy, a.xyxy, atol=1e-4)
            np.testing.assert_allclose(b.confidence, a.confidence, atol=1e-6)


@needs_openvino
def test_a_broken_model_file_is_a_model_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="does not exist"):
        OpenVinoDetector.from_config(OpenVinoConfig(model=tmp_path / "absent.onnx"))
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a model")
    with pytest.raises(ModelError, match="openvino cannot load"):
        OpenVinoDetector.from_config(OpenVinoConfig(model=broken))


def test_without_openvino_the_error_names_the_extra(tiny_model, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "openvino", None)  # `import openvino` raises ImportError
    with pytest.raises(BackendUnavailableError, match=r"patrol-vision\[openvino\]"):
        OpenVinoDetector.from_config(OpenVinoConfig(model=tiny_model.onnx_path))


@needs_openvino
def test_lane_threads_keep_their_own_requests(tiny_model) -> None:
    """Lanes call at once, each with its own infer request and input array: every call's boxes
    are its own image's, as found alone (shapes differ, so a mixed-up input shows)."""
    detector = OpenVinoDetector.from_config(OpenVinoConfig(model=tiny_model.onnx_path, conf=0.001, lanes=2))
    rng = np.random.default_rng(3)
    images = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in ((96, 160), (128, 128), (200, 90))]
    alone = [detector.predict_batch([image])[0] for image in images]
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(lambda i: (i % 3, detector.predict_batch([images[i % 3]])[0]), range(24)))
    for index, found in together:
        assert found.metadata["resolution_wh"] == alone[index].metadata["resolution_wh"]
        np.testing.assert_array_equal(found.xyxy, alone[index].xyxy)
        np.testing.assert_array_equal(found.confidence, alone[index].confidence)
