"""PyTorch backend: a faithful adapter of YOLO.predict, refusing bad weights before ultralytics does."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vision.detections import Detections
from vision.detectors.base import UltralyticsConfig
from vision.errors import ModelError

pytestmark = pytest.mark.slow  # loads torch and ultralytics

IMAGES = [np.random.default_rng(k).integers(0, 256, shape, dtype=np.uint8)
          for k, shape in enumerate([(100, 160, 3), (200, 90, 3), (128, 128, 3)])]


@pytest.fixture(scope="module")
def detector(responsive_model):
    from vision.detectors.ultralytics_torch import UltralyticsDetector

    return UltralyticsDetector.from_config(
        UltralyticsConfig(model=responsive_model.pt_path, conf=0.25, iou=0.6, max_det=50,
                          imgsz=responsive_model.imgsz))


def test_results_equal_yolo_predict(detector, responsive_model) -> None:
    from vision.detectors.ultralytics_offline import import_ultralytics

    yolo = import_ultralytics().YOLO(str(responsive_model.pt_path))
    # One image at a time: ultralytics' own default, rectangular input per image.
    expected = [yolo.predict(image, conf=0.25, iou=0.6, max_det=50, imgsz=responsive_model.imgsz,
                             verbose=False)[0] for image in IMAGES]
    got = detector.predict_batch(IMAGES)
    assert len(got) == len(IMAGES)
    for det, res, image in zip(got, expected, IMAGES, strict=True):
        assert isinstance(det, Detections) and len(det) == len(res.boxes) > 0
        np.testing.assert_allclose(det.xyxy, res.boxes.xyxy.numpy(), atol=1e-4)
        np.testing.assert_allclose(det.confidence, res.boxes.conf.numpy(), atol=1e-6)
        np.testing.assert_array_equal(det.class_id, res.boxes.cls.numpy().astype(np.int64))
        np.testing.assert_array_equal(det.data["class_name"], np.array(responsive_model.labels)[det.class_id])
        assert det.metadata["resolution_wh"] == (image.shape[1], image.shape[0])
        assert len(det) <= 50


def test_images_of_one_shape_are_predicted_together_with_the_same_results(detector) -> None:
    same_shape = [IMAGES[0], IMAGES[0][::-1].copy(), IMAGES[0][:, ::-1].copy()]
    together = detector.predict_batch(same_shape + [IMAGES[1]])
    for image, det in zip(same_shape, together, strict=False):
        (alone,) = detector.predict_batch([image])
        np.testing.assert_allclose(det.xyxy, alone.xyxy, atol=1e-3)
        np.testing.assert_allclose(det.confidence, alone.confidence, atol=1e-5)


def test_protocol_properties_and_empty_input(detector, responsive_model) -> None:
    assert detector.labels == responsive_model.labels
    assert detector.input_size == responsive_model.imgsz
    assert detector.max_batch >= 64
    assert detector.predict_batch([]) == []


def test_labels_override(responsive_model) -> None:
    from vision.detectors.ultralytics_torch import UltralyticsDetector

    config = UltralyticsConfig(model=responsive_model.pt_path, imgsz=responsive_model.imgsz)
    renamed = UltralyticsDetector.from_config(config, labels=["a", "b", "c"])
    assert renamed.labels == ("a", "b", "c")
    with pytest.raises(ModelError, match="expected 3 labels"):
        UltralyticsDetector.from_config(config, labels=["a"])


@pytest.mark.parametrize(
    ("name", "content", "match"),
    [
        ("yolov8n.pt", None, "weights file .* does not exist"),  # must not trigger ultralytics' download
        ("model.onnx", b"onnx", "expected a .pt weights file"),
        ("broken.pt", b"not a checkpoint", "ultralytics cannot load"),
    ],
)
def test_bad_weights_are_refused(tmp_path: Path, name: str, content, match: str) -> None:
    from vision.detectors.ultralytics_torch import UltralyticsDetector

    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ModelError, match=match):
        UltralyticsDetector.from_config(UltralyticsConfig(model=path))
    assert not (tmp_path / "yolov8n.pt").exists() or content is not None


@pytest.mark.parametrize(
    ("image", "error"),
    [(np.zeros((10, 10), np.uint8), ValueError), (np.zeros((10, 10, 3), np.float32), ValueError),
     ([[0, 0, 0]], TypeError)],
)
def test_bad_images_are_refused(detector, image, error) -> None:
    with pytest.raises(error, match="image 0"):
        detector.predict_batch([image])
