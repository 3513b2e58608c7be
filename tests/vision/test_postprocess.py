"""YOLO output decoding and NMS: known cases, and agreement with ultralytics' own NMS."""

from __future__ import annotations

from contextlib import nullcontext as does_not_raise

import numpy as np
import pytest

from vision import postprocess
from vision.detectors.ultralytics_offline import import_ultralytics
from vision.postprocess import box_iou, decode_anchor_free, decode_end2end, decode_output, nms


@pytest.mark.parametrize(
    ("xyxy", "scores", "iou_threshold", "class_ids", "expected"),
    [
        pytest.param(np.empty((0, 4)), [], 0.5, None, [], id="empty"),
        pytest.param([[0, 0, 10, 10]], [0.3], 0.5, None, [0], id="single"),
        pytest.param([[0, 0, 10, 10]] * 3, [0.2, 0.9, 0.5], 0.5, None, [1], id="identical keep best"),
        pytest.param([[0, 0, 10, 10], [20, 20, 30, 30], [40, 0, 50, 10]], [0.5, 0.7, 0.6], 0.5, None,
                     [1, 2, 0], id="disjoint keep all by score"),
        pytest.param([[0, 0, 10, 10], [1, 1, 11, 11]], [0.9, 0.8], 0.5, [0, 1], [0, 1],
                     id="overlap different classes both kept"),
        pytest.param([[0, 0, 10, 10], [1, 1, 11, 11]], [0.9, 0.8], 0.5, [2, 2], [0],
                     id="overlap same class suppressed"),
        pytest.param([[0, 0, 10, 10], [1, 1, 11, 11]], [0.9, 0.8], 0.5, None, [0], id="agnostic suppressed"),
        # IoU of these two is exactly 0.5 (intersection 2, union 4): equal is not greater.
        pytest.param([[0, 0, 4, 1], [0, 0, 2, 1]], [0.9, 0.8], 0.5, None, [0, 1],
                     id="iou equal threshold kept"),
        pytest.param([[0, 0, 4, 1], [0, 0, 2, 1]], [0.9, 0.8], 0.4999, None, [0],
                     id="iou above threshold"),
        pytest.param([[0, 0, 10, 10], [5, 0, 15, 10], [10, 0, 20, 10]], [0.9, 0.8, 0.7], 0.3, None, [0, 2],
                     id="suppressed box does not suppress others"),
        pytest.param([[5, 5, 5, 5], [5, 5, 5, 5]], [0.9, 0.8], 0.5, None, [0, 1],
                     id="zero area never overlaps"),
        pytest.param([[0, 0, 10, 10], [0, 0, 10, 10]], [0.5, 0.5], 0.5, None, [0], id="tie keeps first"),
        pytest.param([[-30, -30, -20, -20], [-29, -29, -19, -19], [-30, -30, -20, -20]], [0.9, 0.8, 0.7], 0.5,
                     [0, 0, 1], [0, 2], id="negative coordinates class offset"),
        pytest.param([[0, 0, 10, 10], [1, 1, 11, 11]], [0.9, 0.8], 1.0, None, [0, 1],
                     id="threshold one keeps all"),
        pytest.param([[0, 0, 10, 10], [9, 9, 19, 19]], [0.9, 0.8], 0.0, None, [0], id="threshold zero"),
    ],
)
def test_nms_cases(xyxy, scores, iou_threshold, class_ids, expected) -> None:
    kept = nms(np.asarray(xyxy, np.float32), np.asarray(scores, np.float32), iou_threshold, class_ids)
    assert kept.dtype == np.int64
    assert kept.tolist() == expected


def test_nms_max_keep_equals_prefix_of_full_run() -> None:
    rng = np.random.default_rng(3)
    xy = rng.uniform(0, 300, (500, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(5, 80, (500, 2))], 1)
    scores = rng.random(500)
    full = nms(boxes, scores, 0.45)
    assert len(full) > 20
    np.testing.assert_array_equal(nms(boxes, scores, 0.45, max_keep=20), full[:20])
    assert nms(boxes, scores, 0.45, max_keep=0).size == 0


@pytest.mark.parametrize(
    ("kwargs", "expectation"),
    [
        ({"xyxy": np.zeros((2, 4)), "scores": np.zeros(2), "iou_threshold": 0.5}, does_not_raise()),
        ({"xyxy": np.zeros((2, 4)), "scores": np.zeros(3), "iou_threshold": 0.5},
         pytest.raises(ValueError, match=r"one score per box \(2\), got 3")),
        ({"xyxy": np.zeros((2, 4)), "scores": np.zeros(2), "iou_threshold": 0.5, "class_ids": [1]},
         pytest.raises(ValueError, match=r"one class id per box \(2\), got 1")),
        ({"xyxy": np.zeros((2, 4)), "scores": np.zeros(2), "iou_threshold": 1.5},
         pytest.raises(ValueError, match=r"iou_threshold in \[0, 1\]")),
    ],
)
def test_nms_validates(kwargs, expectation) -> None:
    with expectation:
        nms(**kwargs)


def test_box_iou_values() -> None:
    ious = box_iou(np.array([0, 0, 10, 10.0]), np.array([[0, 0, 10, 10], [5, 0, 15, 10], [10, 10, 20, 20],
                                                          [2, 2, 4, 4]], float))
    np.testing.assert_allclose(ious, [1.0, 50 / 150, 0.0, 4 / 100])


# -- decoding -------------------------------------------------------------------------------


def anchor_free(rows: list[tuple[float, float, float, float, list[float]]]) -> np.ndarray:
    """(1, 4 + nc, N) from rows of (cx, cy, w, h, class scores)."""
    return np.array([[*box, *scores] for *box, scores in rows], np.float32).T[None]


def test_decode_anchor_free_converts_filters_and_suppresses() -> None:
    output = anchor_free([
        (50, 50, 20, 10, [0.1, 0.9, 0.0]),    # class 1, kept
        (51, 50, 20, 10, [0.0, 0.8, 0.0]),    # same class, overlaps the first: suppressed
        (51, 50, 20, 10, [0.7, 0.0, 0.0]),    # overlaps but class 0: kept
        (200, 100, 40, 40, [0.0, 0.0, 0.3]),  # exactly at the floor: dropped (strict >)
        (300, 300, 10, 30, [0.0, 0.0, 0.31]),  # just above: kept
    ])
    (raw,) = decode_anchor_free(output, conf=0.3, iou=0.5, max_det=100)
    np.testing.assert_allclose(raw.xyxy, [[40, 45, 60, 55], [41, 45, 61, 55], [295, 285, 305, 315]])
    np.testing.assert_allclose(raw.confidence, [0.9, 0.7, 0.31])
    assert raw.class_id.tolist() == [1, 0, 2]
    assert raw.xyxy.dtype == np.float32 and raw.class_id.dtype == np.int64


def test_decode_anchor_free_agnostic_and_max_det() -> None:
    output = anchor_free([(50, 50, 20, 10, [0.9, 0.0]), (51, 50, 20, 10, [0.0, 0.8]),
                          (200, 200, 20, 10, [0.0, 0.5])])
    (agnostic,) = decode_anchor_free(output, conf=0.1, iou=0.5, max_det=100, agnostic=True)
    assert agnostic.confidence.tolist() == pytest.approx([0.9, 0.5])
    (capped,) = decode_anchor_free(output, conf=0.1, iou=0.5, max_det=2)
    assert capped.confidence.tolist() == pytest.approx([0.9, 0.8])


def test_decode_anchor_free_empty_and_batched() -> None:
    output = np.concatenate([anchor_free([(10, 10, 4, 4, [0.01, 0.02])]),
                             anchor_free([(10, 10, 4, 4, [0.6, 0.02])])])
    empty, one = decode_anchor_free(output, conf=0.25, iou=0.5, max_det=10)
    assert len(empty) == 0 and empty.xyxy.shape == (0, 4)
    assert len(one) == 1 and one.class_id.tolist() == [0]


@pytest.mark.parametrize("shape", [(1, 4, 10), (10, 84), (1, 2, 3, 4)])
def test_decode_anchor_free_refuses_wrong_shapes(shape) -> None:
    with pytest.raises(ValueError, match="expected an anchor-free output"):
        decode_anchor_free(np.zeros(shape, np.float32), conf=0.1, iou=0.5, max_det=10)


def test_decode_end2end_filters_and_caps() -> None:
    output = np.array([[[10, 10, 20, 20, 0.9, 2], [30, 30, 40, 40, 0.5, 0], [50, 50, 45, 60, 0.4, 1],
                        [0, 0, 1, 1, 0.2, 1], [0, 0, 0, 0, 0.0, 0]]], np.float32)
    (raw,) = decode_end2end(output, conf=0.3, max_det=300)
    assert raw.confidence.tolist() == pytest.approx([0.9, 0.5, 0.4])
    assert raw.class_id.tolist() == [2, 0, 1]
    np.testing.assert_allclose(raw.xyxy[2], [50, 50, 50, 60])  # x2 < x1 made a zero-width box
    (capped,) = decode_end2end(output, conf=0.3, max_det=1)
    assert len(capped) == 1
    with pytest.raises(ValueError, match="end-to-end output"):
        decode_end2end(np.zeros((1, 10, 5), np.float32), conf=0.3, max_det=1)


def test_decode_output_dispatches_on_end2end() -> None:
    e2e = np.array([[[10, 10, 20, 20, 0.9, 1]]], np.float32)
    assert decode_output(e2e, end2end=True, conf=0.1, iou=0.5, max_det=5)[0].class_id.tolist() == [1]
    af = anchor_free([(10, 10, 4, 4, [0.6, 0.02])])
    assert decode_output(af, end2end=False, conf=0.1, iou=0.5, max_det=5)[0].class_id.tolist() == [0]


# -- agreement with ultralytics -----------------------------------------------------------


def random_head_output(seed: int, batch: int, nc: int, n: int, size: int = 640) -> np.ndarray:
    """Overlapping boxes with mostly low, sometimes high class scores, like a real head."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform(0, size, (batch, 2, n))
    wh = rng.uniform(4, size / 3, (batch, 2, n))
    scores = rng.random((batch, nc, n)) ** 6  # skewed towards 0
    return np.concatenate([centres, wh, scores], 1).astype(np.float32)


@pytest.fixture(scope="module")
def ultralytics_nms():
    import_ultralytics()
    import torch
    import torchvision  # noqa: F401  ultralytics uses torchvision's NMS once imported; its fallback
    from ultralytics.utils.nms import non_max_suppression  # is slow enough to hit its own time limit

    def run(output: np.ndarray, **kwargs) -> list[np.ndarray]:
        return [r.numpy() for r in non_max_suppression(torch.from_numpy(output.copy()), **kwargs)]

    return run


@pytest.mark.parametrize(
    ("seed", "batch", "nc", "n", "conf", "iou", "max_det"),
    [
        (0, 1, 3, 2000, 0.25, 0.7, 300),
        (1, 2, 5, 8400, 0.05, 0.5, 300),
        (2, 3, 1, 1000, 0.001, 0.45, 100),
        (3, 1, 80, 2100, 0.1, 0.6, 50),
        (4, 2, 5, 4000, 0.5, 0.3, 300),
        (5, 1, 5, 500, 0.999, 0.5, 300),  # nothing above the floor
    ],
)
def test_anchor_free_matches_ultralytics_non_max_suppression(
        ultralytics_nms, seed, batch, nc, n, conf, iou, max_det) -> None:
    output = random_head_output(seed, batch, nc, n)

    expected = ultralytics_nms(output, conf_thres=conf, iou_thres=iou, max_det=max_det)
    ours = decode_anchor_free(output, conf=conf, iou=iou, max_det=max_det)

    for exp, raw in zip(expected, ours, strict=True):
        assert len(raw) == len(exp)
        np.testing.assert_allclose(raw.xyxy, exp[:, :4], atol=1e-4)
        np.testing.assert_allclose(raw.confidence, exp[:, 4], atol=1e-7)
        np.testing.assert_array_equal(raw.class_id, exp[:, 5].astype(np.int64))
    assert sum(len(e) for e in expected) > 0 or conf > 0.9


def test_candidate_cap_matches_ultralytics_max_nms(ultralytics_nms, monkeypatch) -> None:
    output = random_head_output(7, 1, 3, 3000)
    monkeypatch.setattr(postprocess, "MAX_NMS_CANDIDATES", 100)
    (expected,) = ultralytics_nms(output, conf_thres=0.01, iou_thres=0.5, max_det=300, max_nms=100)
    (raw,) = decode_anchor_free(output, conf=0.01, iou=0.5, max_det=300)
    assert len(raw) == len(expected)
    np.testing.assert_allclose(raw.confidence, expected[:, 4])


def test_end2end_matches_ultralytics(ultralytics_nms) -> None:
    rng = np.random.default_rng(9)
    xy = rng.uniform(0, 600, (2, 300, 2))
    output = np.concatenate([xy, xy + rng.uniform(1, 40, (2, 300, 2)), rng.random((2, 300, 1)),
                             rng.integers(0, 5, (2, 300, 1))], 2).astype(np.float32)
    expected = ultralytics_nms(output, conf_thres=0.4, max_det=50, end2end=True)
    ours = decode_end2end(output, conf=0.4, max_det=50)
    for exp, raw in zip(expected, ours, strict=True):
        np.testing.assert_allclose(raw.xyxy, exp[:, :4])
        np.testing.assert_allclose(raw.confidence, exp[:, 4])
        np.testing.assert_array_equal(raw.class_id, exp[:, 5])


def test_negative_sizes_from_a_broken_head_become_zero_width_boxes() -> None:
    output = anchor_free([(50, 50, -20, 10, [0.9])])
    (raw,) = decode_anchor_free(output, conf=0.1, iou=0.5, max_det=10)
    np.testing.assert_allclose(raw.xyxy, [[50, 45, 50, 55]])
