"""The ONNX-vs-PyTorch agreement check that gates `patrol export`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from training.export import (
    BOX_TOLERANCE_PX,
    SCORE_BAND,
    ExportError,
    check_parity,
    compare_detections,
    default_label_map,
    sample_images,
    synthetic_samples,
)
from vision.detections import Detections

CONF = 0.05


def _dets(rows: list[tuple[float, float, float, float, float, int]]) -> Detections:
    array = np.array(rows, dtype=np.float64).reshape(-1, 6)
    return Detections(xyxy=array[:, :4], confidence=array[:, 4], class_id=array[:, 5].astype(int))


BOX_A = (10, 10, 50, 60, 0.9, 0)
BOX_B = (100, 20, 140, 90, 0.6, 1)


@pytest.mark.parametrize("reference, candidate, compared, unmatched", [
    ([BOX_A, BOX_B], [BOX_B, BOX_A], 2, 0),                                 # order does not matter
    ([BOX_A], [(10.4, 9.6, 50.5, 60.2, 0.9, 0)], 1, 0),                     # within 1 px
    ([BOX_A], [(14, 10, 54, 60, 0.9, 0)], 0, 2),                            # moved 4 px: both sides lone
    ([BOX_A], [(10, 10, 50, 60, 0.9, 1)], 0, 2),                            # other class
    ([BOX_A], [], 0, 1),                                                    # missing
    ([], [BOX_A], 0, 1),                                                    # extra
    ([BOX_A, (0, 0, 5, 5, CONF + SCORE_BAND / 2, 2)], [BOX_A], 1, 0),       # at the floor: may drop
    ([BOX_A], [BOX_A, (0, 0, 5, 5, CONF + SCORE_BAND / 2, 2)], 1, 0),
])
def test_compare_detections(reference, candidate, compared, unmatched):
    got_compared, got_unmatched, _ = compare_detections(_dets(reference), _dets(candidate), CONF)
    assert (got_compared, got_unmatched) == (compared, unmatched)


def test_compare_detections_reports_the_worst_pair():
    reference = _dets([BOX_A, BOX_B])
    candidate = _dets([(10, 10, 50, 60.5, 0.9004, 0), (100, 20, 140, 90, 0.6, 1)])
    compared, unmatched, (worst_iou, worst_px, worst_score) = compare_detections(reference, candidate, CONF)
    assert (compared, unmatched) == (2, 0)
    assert worst_px == pytest.approx(0.5) and worst_px <= BOX_TOLERANCE_PX
    assert worst_iou == pytest.approx(40 * 50 / (40 * 50.5))
    assert worst_score == pytest.approx(4e-4, abs=1e-6)


@pytest.mark.parametrize("labels, dataset_map, expected", [
    (["garbage_pile", "bin"], None, {"garbage_pile": "garbage_pile", "bin": None}),
    (["garbage", "garbage_bin"], {"garbage": "garbage_pile", "garbage_bin": None, "x": "straw_burning"},
     {"garbage": "garbage_pile", "garbage_bin": None}),
])
def test_label_map_comes_from_the_dataset_card_else_the_taxonomy(labels, dataset_map, expected):
    assert default_label_map(labels, dataset_map) == expected


def test_label_map_must_cover_every_model_label():
    with pytest.raises(ExportError, match="lacks"):
        default_label_map(["garbage", "smoke"], {"garbage": "garbage_pile"})


def test_sample_images_fall_back_to_synthetic_and_refuse_an_empty_folder(tmp_path):
    images, source = sample_images(None, None)
    assert source == "synthetic" and len(images) == len(synthetic_samples())
    assert len({image.shape for image in images}) > 1  # several aspect ratios: letterbox padding varies
    (tmp_path / "empty").mkdir()
    with pytest.raises(ExportError, match="no images"):
        sample_images(tmp_path / "empty", None)


@pytest.mark.slow
def test_parity_passes_for_a_faithful_export(tiny_model):
    images = synthetic_samples()
    report = check_parity(tiny_model.pt_path, tiny_model.onnx_path, images, tiny_model.imgsz)
    assert report.passed, report.failures
    assert report.images == len(images)
    assert report.boxes_compared > 0  # the detections check was not vacuous
    assert report.raw_max_box_diff_px < 0.05 and report.raw_max_score_diff < 1e-4
    assert report.batch_max_diff < 1e-3


# The last layer of the class and of the box branch at stride 8: a changed bias is a model
# that still runs and gives plausible output, but is not the PyTorch model. The box branch
# feeds a softmax over 16 distance bins per side, so its change must differ between bins.
@pytest.mark.slow
@pytest.mark.parametrize("initializer, change, failure", [
    ("model.24.cv3.0.2.bias", lambda bias: bias + 3.0, "raw scores"),
    ("model.24.cv2.0.2.bias", lambda bias: bias + np.tile(np.linspace(0, 2, 16), 4), "raw boxes"),
])
def test_parity_fails_for_an_altered_export(tiny_model, tmp_path, initializer, change, failure):
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(tiny_model.onnx_path))
    (tensor,) = [t for t in model.graph.initializer if t.name == initializer]
    altered_values = change(numpy_helper.to_array(tensor)).astype(np.float32)
    tensor.CopyFrom(numpy_helper.from_array(altered_values, tensor.name))
    altered = tmp_path / "altered.onnx"
    onnx.save(model, str(altered))
    report = check_parity(tiny_model.pt_path, altered, synthetic_samples(), tiny_model.imgsz)
    assert not report.passed
    assert any(failure in message for message in report.failures), report.failures


def test_parity_needs_images(tmp_path):
    with pytest.raises(ExportError, match="at least one sample image"):
        check_parity(Path("unused.pt"), Path("unused.onnx"), [], 64)
