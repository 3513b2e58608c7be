"""ONNX Runtime backend: metadata, batching, box mapping, providers, and agreement with ultralytics."""

from __future__ import annotations

import threading
from contextlib import nullcontext as does_not_raise
from pathlib import Path

import numpy as np
import pytest

from tests.vision.detectors.onnx_graphs import anchor_free_head, constant_head_model, with_static_input
from vision.detections import Detections
from vision.detectors.base import OnnxRuntimeConfig, UltralyticsConfig
from vision.detectors.onnx_runtime import (
    DYNAMIC_MAX_BATCH,
    OnnxRuntimeDetector,
    choose_providers,
    parse_labels,
    physical_core_count,
)
from vision.errors import BackendUnavailableError, ModelError

E2E_META = {"names": "{0: 'garbage_pile', 1: 'straw_burning'}", "imgsz": "[64, 64]", "end2end": "True",
            "stride": "32", "batch": "1"}


def scene(seed: int, shape: tuple[int, int]) -> np.ndarray:
    """A synthetic BGR scene: gradient background with a few solid rectangles."""
    rng = np.random.default_rng(seed)
    h, w = shape
    y, x = np.mgrid[0:h, 0:w]
    image = np.stack([x * 200 // max(w, 1), y * 200 // max(h, 1), np.full_like(x, 60)], -1).astype(np.uint8)
    for _ in range(4):
        x1, y1 = rng.integers(0, w - 8), rng.integers(0, h - 8)
        x2, y2 = x1 + rng.integers(4, max(5, w // 3)), y1 + rng.integers(4, max(5, h // 3))
        image[y1:y2, x1:x2] = rng.integers(0, 256, 3)
    return image


SCENES = [scene(0, (96, 160)), scene(1, (240, 120)), scene(2, (128, 128)), scene(3, (57, 301))]


@pytest.fixture(scope="module")
def detector(tiny_model) -> OnnxRuntimeDetector:
    return OnnxRuntimeDetector.from_config(OnnxRuntimeConfig(model=tiny_model.onnx_path, conf=0.001))


# -- loading and metadata -----------------------------------------------------------------


def test_reads_ultralytics_metadata(detector, tiny_model) -> None:
    assert detector.labels == tiny_model.labels
    assert detector.input_size == tiny_model.imgsz == 128
    assert detector.max_batch == DYNAMIC_MAX_BATCH  # exported with dynamic=True
    assert detector.end2end is False
    assert detector.rect is True  # dynamic height and width
    assert detector.providers == ["CPUExecutionProvider"]


def test_session_options_follow_the_config(tiny_model) -> None:
    default = OnnxRuntimeDetector.from_config(OnnxRuntimeConfig(model=tiny_model.onnx_path))
    automatic = OnnxRuntimeDetector.from_config(
        OnnxRuntimeConfig(model=tiny_model.onnx_path, intra_op_threads=0))
    spinning = OnnxRuntimeDetector.from_config(
        OnnxRuntimeConfig(model=tiny_model.onnx_path, intra_op_threads=0, allow_spinning=True, lanes=3))
    # one thread per run and one run (lane) per core, unless told otherwise
    assert default._session.get_session_options().intra_op_num_threads == 1
    assert default.lanes == physical_core_count()
    assert automatic._session.get_session_options().intra_op_num_threads == physical_core_count()
    assert automatic.lanes == 1
    assert spinning.lanes == 3
    # ORT's own default (no entry at all) lets idle threads spin
    with pytest.raises(RuntimeError, match="allow_spinning"):
        spinning._session.get_session_options().get_session_config_entry("session.intra_op.allow_spinning")
    options = automatic._session.get_session_options()
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert options.graph_optimization_level.name == "ORT_ENABLE_ALL"
    assert options.execution_mode.name == "ORT_SEQUENTIAL"
    assert 1 <= physical_core_count() <= (__import__("os").cpu_count() or 1)


@pytest.mark.parametrize(
    ("raw", "expected", "expectation"),
    [
        ("{0: 'garbage', 1: 'smoke'}", ("garbage", "smoke"), does_not_raise()),
        ("{1: 'smoke', 0: 'garbage'}", ("garbage", "smoke"), does_not_raise()),
        ("['garbage', 'smoke']", ("garbage", "smoke"), does_not_raise()),
        ("{'0': 'garbage', '1': 'smoke'}", ("garbage", "smoke"), does_not_raise()),
        ("{0: 'garbage', 2: 'smoke'}", None, pytest.raises(ModelError, match=r"class ids 0..1")),
        ("{}", None, pytest.raises(ModelError, match="map class ids to labels")),
        ("__import__('os').system('echo pwned')", None, pytest.raises(ModelError, match="dict literal")),
        ("{0: 'a',", None, pytest.raises(ModelError, match="dict literal")),
        ("{'a': 'garbage'}", None, pytest.raises(ModelError, match="integer class ids")),
    ],
)
def test_parse_labels(raw, expected, expectation) -> None:
    with expectation:
        assert parse_labels(raw) == expected


@pytest.mark.parametrize(
    ("device", "available", "expected"),
    [
        ("cpu", ["CPUExecutionProvider"], ["CPUExecutionProvider"]),
        ("cuda", ["CUDAExecutionProvider", "CPUExecutionProvider"],
         ["CUDAExecutionProvider", "CPUExecutionProvider"]),
        ("tensorrt", ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
         ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]),
        ("tensorrt", ["TensorrtExecutionProvider", "CPUExecutionProvider"],
         ["TensorrtExecutionProvider", "CPUExecutionProvider"]),
    ],
)
def test_choose_providers(device, available, expected) -> None:
    assert choose_providers(device, available) == expected


@pytest.mark.parametrize(
    ("device", "available", "match"),
    [
        ("cuda", ["AzureExecutionProvider", "CPUExecutionProvider"],
         "needs CUDAExecutionProvider.*available providers: AzureExecutionProvider, CPUExecutionProvider"),
        ("tensorrt", ["CUDAExecutionProvider", "CPUExecutionProvider"], "needs TensorrtExecutionProvider"),
        ("npu", ["CPUExecutionProvider"], "unknown onnxruntime device 'npu'; valid: cpu, cuda, tensorrt"),
    ],
)
def test_unavailable_provider_is_a_clear_error(device, available, match) -> None:
    with pytest.raises(BackendUnavailableError, match=match):
        choose_providers(device, available)


def test_requesting_cuda_on_a_cpu_build_lists_available_providers(tiny_model) -> None:
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this onnxruntime has CUDA; the refusal cannot be shown here")
    with pytest.raises(BackendUnavailableError, match="available providers: .*CPUExecutionProvider"):
        OnnxRuntimeDetector.from_config(OnnxRuntimeConfig(model=tiny_model.onnx_path, device="cuda"))


@pytest.mark.parametrize(
    ("content", "match"),
    [(None, "does not exist"), (b"this is not a protobuf", "onnxruntime cannot load")],
)
def test_missing_or_broken_model_file(tmp_path: Path, content, match) -> None:
    path = tmp_path / "model.onnx"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ModelError, match=match):
        OnnxRuntimeDetector.from_config(OnnxRuntimeConfig(model=path))


# -- predictions --------------------------------------------------------------------------


def test_predict_batch_shapes_and_types(detector) -> None:
    results = detector.predict_batch(SCENES)
    assert len(results) == len(SCENES)
    for image, det in zip(SCENES, results, strict=True):
        h, w = image.shape[:2]
        assert isinstance(det, Detections) and len(det) > 0
        assert det.metadata["resolution_wh"] == (w, h)
        assert det.xyxy.dtype == np.float32 and det.xyxy.shape == (len(det), 4)
        assert np.all(det.xyxy[:, [0, 2]] <= w) and np.all(det.xyxy[:, [1, 3]] <= h) and np.all(det.xyxy >= 0)
        assert np.all(det.confidence > 0.001) and np.all(np.diff(det.confidence) <= 0)
        np.testing.assert_array_equal(det.data["class_name"], np.array(detector.labels)[det.class_id])


def test_empty_image_list(detector) -> None:
    assert detector.predict_batch([]) == []


def test_batch_of_one_and_batch_of_many_agree(detector) -> None:
    batched = detector.predict_batch(SCENES)
    for image, det in zip(SCENES, batched, strict=True):
        (single,) = detector.predict_batch([image])
        assert len(single) == len(det)
        np.testing.assert_allclose(single.xyxy, det.xyxy, atol=1e-3)
        np.testing.assert_allclose(single.confidence, det.confidence, atol=1e-5)
        np.testing.assert_array_equal(single.class_id, det.class_id)


def test_concurrent_calls_give_the_same_results(detector) -> None:
    expected = detector.predict_batch(SCENES)
    results: dict[int, list[Detections]] = {}

    def work(k: int) -> None:
        results[k] = detector.predict_batch(SCENES[k % 2:] + SCENES[:k % 2])

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for k, got in results.items():
        reordered = expected[k % 2:] + expected[:k % 2]
        for a, b in zip(got, reordered, strict=True):
            np.testing.assert_allclose(a.xyxy, b.xyxy, atol=1e-3)


def test_static_batch_model_is_fed_full_padded_batches(tiny_model, detector, tmp_path: Path) -> None:
    static = with_static_input(tiny_model.onnx_path, tmp_path / "static_b2.onnx", batch=2)
    static_detector = OnnxRuntimeDetector.from_config(OnnxRuntimeConfig(model=static, conf=0.001))
    assert static_detector.max_batch == 2
    got = static_detector.predict_batch(SCENES[:3])  # chunks of 2 and 1 (padded to 2)
    for a, b in zip(got, detector.predict_batch(SCENES[:3]), strict=True):
        np.testing.assert_allclose(a.xyxy, b.xyxy, atol=1e-3)
        np.testing.assert_allclose(a.confidence, b.confidence, atol=1e-5)


def test_input_size(tiny_model, tmp_path: Path) -> None:
    dynamic = OnnxRuntimeDetector.from_config(OnnxRuntimeConfig(model=tiny_model.onnx_path, imgsz=160))
    assert dynamic.input_size == 160 and len(dynamic.predict_batch(SCENES[:1])) == 1
    static = with_static_input(tiny_model.onnx_path, tmp_path / "static_128.onnx", size=128)
    with pytest.raises(ModelError, match="takes 128x128 input, got imgsz 160"):
        OnnxRuntimeDetector.from_config(OnnxRuntimeConfig(model=static, imgsz=160))
    assert OnnxRuntimeDetector.from_config(OnnxRuntimeConfig(model=static)).input_size == 128


def test_warmup_leaves_results_unchanged(detector) -> None:
    before = detector.predict_batch(SCENES[:1])[0]
    detector.warmup()
    after = detector.predict_batch(SCENES[:1])[0]
    np.testing.assert_array_equal(before.xyxy, after.xyxy)


# -- known boxes through hand-built graphs ---------------------------------------------------


@pytest.mark.parametrize(
    ("rect", "centre_y"),
    [
        # A 128x64 (WxH) image is scaled by 0.5 into a 64 px input. Square: a 64x64 input
        # with 16 px of padding above and below. Rectangular: a 64x32 input, no padding.
        (False, 32),
        (True, 16),
    ],
)
def test_anchor_free_boxes_come_back_in_source_pixels(tmp_path: Path, rect: bool, centre_y: int) -> None:
    top = centre_y - 16  # the top edge of the image inside the input
    head = anchor_free_head([
        (32, centre_y, 16, 8, 0.9, 0.05),  # centre of the image, class 0
        (32, centre_y, 16, 8, 0.04, 0.2),  # same box, class 1 below the floor of 0.25
        (8, top + 4, 16, 8, 0.1, 0.6),     # top-left, class 1
    ])
    meta = {"names": "{0: 'garbage_pile', 1: 'straw_burning'}", "imgsz": "[64, 64]", "stride": "32"}
    path = constant_head_model(tmp_path / "af.onnx", head, metadata=meta)
    detector = OnnxRuntimeDetector.from_config(OnnxRuntimeConfig(model=path, conf=0.25), rect=rect)
    assert detector.rect is rect
    (det,) = detector.predict_batch([np.zeros((64, 128, 3), np.uint8)])
    np.testing.assert_allclose(det.xyxy, [[48, 24, 80, 40], [0, 0, 32, 16]], atol=1e-4)
    np.testing.assert_allclose(det.confidence, [0.9, 0.6], atol=1e-6)
    assert det.data["class_name"].tolist() == ["garbage_pile", "straw_burning"]


class RecordingSession:
    """Delegates to a real InferenceSession and records the input shapes it was run with."""

    def __init__(self, session) -> None:
        self._session = session
        self.shapes: list[tuple[int, ...]] = []

    def __getattr__(self, name: str):
        return getattr(self._session, name)

    def run(self, output_names, feeds):
        self.shapes.extend(tuple(v.shape) for v in feeds.values())
        return self._session.run(output_names, feeds)


@pytest.mark.parametrize(
    ("rect", "expected_shapes"),
    [
        # At 128: 1920x1080 and 640x480 both need 128x96; 1080x1920 needs 96x128.
        (True, [(3, 3, 96, 128), (1, 3, 128, 96)]),
        (False, [(4, 3, 128, 128)]),
    ],
)
def test_rect_inputs_are_grouped_by_shape(detector, rect, expected_shapes) -> None:
    images = [np.zeros((1080, 1920, 3), np.uint8), np.zeros((1920, 1080, 3), np.uint8),
              np.zeros((480, 640, 3), np.uint8), np.zeros((1080, 1920, 3), np.uint8)]
    session = RecordingSession(detector._session)
    spy = OnnxRuntimeDetector(session, conf=0.001, iou=0.5, max_det=300, rect=rect)
    results = spy.predict_batch(images)
    assert session.shapes == expected_shapes
    assert [d.metadata["resolution_wh"] for d in results] == [(im.shape[1], im.shape[0]) for im in images]


def test_rect_needs_a_dynamic_input_size(tiny_model, tmp_path: Path) -> None:
    static = with_static_input(tiny_model.onnx_path, tmp_path / "static_128.onnx", size=128)
    assert OnnxRuntimeDetector.from_config(OnnxRuntimeConfig(model=static)).rect is False
    with pytest.raises(ModelError, match="dynamic height and width"):
        OnnxRuntimeDetector.from_config(OnnxRuntimeConfig(model=static), rect=True)


def test_end2end_model_skips_nms_and_maps_boxes(tmp_path: Path) -> None:
    head = np.array([[[0, 16, 64, 48, 0.95, 1],      # the whole image
                      [0, 16, 32, 32, 0.90, 1],      # overlapping, same class: kept (no NMS)
                      [10, 10, 20, 20, 0.10, 0]]],   # below the floor
                    np.float32)
    path = constant_head_model(tmp_path / "e2e.onnx", head, metadata=E2E_META)
    detector = OnnxRuntimeDetector.from_config(OnnxRuntimeConfig(model=path, conf=0.25), rect=False)
    assert detector.end2end is True
    (det,) = detector.predict_batch([np.zeros((64, 128, 3), np.uint8)])
    np.testing.assert_allclose(det.xyxy, [[0, 0, 128, 64], [0, 0, 64, 32]], atol=1e-4)
    assert det.class_id.tolist() == [1, 1]


def test_end2end_layout_is_recognised_without_metadata(tmp_path: Path) -> None:
    head = np.array([[[0, 0, 32, 32, 0.9, 0]]], np.float32)
    meta = {k: v for k, v in E2E_META.items() if k != "end2end"}
    path = constant_head_model(tmp_path / "e2e.onnx", head, metadata=meta)
    assert OnnxRuntimeDetector.from_config(OnnxRuntimeConfig(model=path)).end2end is True


def test_labels_and_end2end_can_be_overridden(tmp_path: Path) -> None:
    head = np.array([[[0, 0, 32, 32, 0.9, 1]]], np.float32)
    meta = {k: v for k, v in E2E_META.items() if k != "names"}
    path = constant_head_model(tmp_path / "nolabels.onnx", head, metadata=meta)
    with pytest.raises(ModelError, match="no 'names' metadata; pass labels"):
        OnnxRuntimeDetector.from_config(OnnxRuntimeConfig(model=path))
    detector = OnnxRuntimeDetector.from_config(OnnxRuntimeConfig(model=path), labels=["a", "b"])
    assert detector.predict_batch([np.zeros((64, 64, 3), np.uint8)])[0].data["class_name"].tolist() == ["b"]
    too_few = OnnxRuntimeDetector.from_config(OnnxRuntimeConfig(model=path), labels=["a"])
    with pytest.raises(ModelError, match="class ids up to 1, but has 1 labels"):
        too_few.predict_batch([np.zeros((64, 64, 3), np.uint8)])


@pytest.mark.parametrize(
    ("metadata", "input_shape", "match"),
    [
        ({"names": "{0: 'a'}", "imgsz": "[64, 32]"}, ("batch", 3, "height", "width"), "square model input"),
        ({"names": "{0: 'a'}"}, ("batch", 3, "height", "width"), "dynamic and its metadata has no imgsz"),
        ({"names": "{0: 'a'}"}, ("batch", 3, 64, 32), r"square model input, got 64x32"),
        ({"names": "{0: 'a'}"}, ("batch", 1, 64, 64), "expected 3 input channels, got 1"),
        ({"names": "{0: 'a'}", "imgsz": "big"}, ("batch", 3, "height", "width"), "imgsz' like"),
    ],
)
def test_unusable_model_inputs(tmp_path: Path, metadata, input_shape, match) -> None:
    path = constant_head_model(tmp_path / "m.onnx", anchor_free_head([(8, 8, 4, 4, 0.9)]), metadata=metadata,
                               input_shape=input_shape)
    with pytest.raises(ModelError, match=match):
        OnnxRuntimeDetector.from_config(OnnxRuntimeConfig(model=path))


# -- agreement with ultralytics -------------------------------------------------------------


def assert_each_box_found(ref: Detections, got: Detections, top: int) -> None:
    """Each of `ref`'s `top` best boxes has a same-class box in `got` within 1 px and 1e-3 in score."""
    for i in range(min(top, len(ref))):
        same = np.flatnonzero(got.class_id == ref.class_id[i])
        assert same.size, f"no {ref.data['class_name'][i]} box at all"
        # Boxes of an untrained model often coincide (whole image), so match on box and
        # score together: 1 px counts as much as 1e-3 of score.
        box_px = np.abs(got.xyxy[same] - ref.xyxy[i]).max(axis=1)
        score_diff = np.abs(got.confidence[same] - ref.confidence[i])
        k = np.maximum(box_px, score_diff * 1e3).argmin()
        assert box_px[k] <= 1.0, (ref.xyxy[i], got.xyxy[same[k]])
        assert score_diff[k] <= 1e-3, (ref.confidence[i], got.confidence[same[k]])


@pytest.mark.slow
def test_agrees_with_ultralytics_predict_on_the_same_weights(responsive_model) -> None:
    from vision.detectors.ultralytics_torch import UltralyticsDetector

    conf = 0.001
    onnx_detector = OnnxRuntimeDetector.from_config(
        OnnxRuntimeConfig(model=responsive_model.onnx_path, conf=conf))
    torch_detector = UltralyticsDetector.from_config(
        UltralyticsConfig(model=responsive_model.pt_path, conf=conf, imgsz=responsive_model.imgsz))
    ours, theirs = onnx_detector.predict_batch(SCENES), torch_detector.predict_batch(SCENES)
    assert sum(len(ref) for ref in theirs) >= 40  # the comparison has substance
    for mine, ref in zip(ours, theirs, strict=True):
        assert len(ref) >= 3 and len(np.unique(ref.confidence)) == len(ref)
        assert abs(len(mine) - len(ref)) <= max(2, len(ref) // 20)
        assert_each_box_found(ref, mine, top=20)
        assert_each_box_found(mine, ref, top=20)
        assert mine.metadata["resolution_wh"] == ref.metadata["resolution_wh"]


def test_each_thread_reuses_its_own_input_array(detector) -> None:
    shape = (1, 3, 64, 64)
    mine = detector._input_array(shape)
    assert detector._input_array(shape) is mine  # kept between this thread's calls
    theirs: list[np.ndarray] = []
    worker = threading.Thread(target=lambda: theirs.append(detector._input_array(shape)))
    worker.start()
    worker.join()
    assert theirs[0] is not mine  # lanes never share one
    assert detector._input_array((2, 3, 64, 64)).shape == (2, 3, 64, 64)
    huge = (64, 3, 640, 640)  # 315 MB: handed out, not kept per lane
    assert detector._input_array(huge) is not detector._input_array(huge)
