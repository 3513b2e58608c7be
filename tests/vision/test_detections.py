"""Detections: validation on construction, merge, selection, offsets."""

from __future__ import annotations

from contextlib import nullcontext as does_not_raise

import numpy as np
import pytest

from vision.detections import Detections


def make(n: int = 3, **extra) -> Detections:
    xyxy = np.array([[i * 10, i * 10, i * 10 + 5, i * 10 + 8] for i in range(n)], np.float32).reshape(-1, 4)
    return Detections(
        xyxy=xyxy,
        confidence=np.linspace(0.9, 0.5, n).astype(np.float32),
        class_id=np.arange(n) % 2,
        **extra,
    )


@pytest.mark.parametrize(
    ("kwargs", "expectation"),
    [
        ({}, does_not_raise()),
        ({"xyxy": np.zeros((2, 3))}, pytest.raises(ValueError, match=r"shape \(N, 4\)")),
        ({"xyxy": [[0, 0, np.nan, 1]]}, pytest.raises(ValueError, match="finite")),
        ({"xyxy": [[5, 0, 1, 1]]}, pytest.raises(ValueError, match="x2 >= x1")),
        ({"xyxy": [[0, 5, 1, 1]]}, pytest.raises(ValueError, match="y2 >= y1")),
        ({"confidence": [0.5, 0.5]}, pytest.raises(ValueError, match="confidence to have length 1")),
        ({"confidence": [1.5]}, pytest.raises(ValueError, match=r"confidence in \[0, 1\]")),
        ({"confidence": [-0.1]}, pytest.raises(ValueError, match=r"confidence in \[0, 1\]")),
        ({"class_id": [0, 1]}, pytest.raises(ValueError, match="class_id to have length 1")),
        ({"tracker_id": [1, 2]}, pytest.raises(ValueError, match="tracker_id to have length 1")),
        ({"mask": np.zeros((1, 4), bool)}, pytest.raises(ValueError, match=r"mask of shape \(N, H, W\)")),
        ({"mask": np.zeros((2, 4, 4), bool)}, pytest.raises(ValueError, match="mask to have length 1")),
        ({"data": {"class_name": np.array(["a", "b"])}},
         pytest.raises(ValueError, match=r"data\['class_name'\] to have length 1")),
    ],
)
def test_construction_validates(kwargs, expectation) -> None:
    base = {"xyxy": [[0, 0, 10, 10]], "confidence": [0.5], "class_id": [0]}
    with expectation:
        Detections(**{**base, **kwargs})


def test_construction_normalises_dtypes_and_empty_shapes() -> None:
    det = Detections(xyxy=[], confidence=[], class_id=[])
    assert det.xyxy.shape == (0, 4) and det.xyxy.dtype == np.float32
    assert det.confidence.dtype == np.float32 and det.class_id.dtype == np.int64
    assert len(det) == 0 and len(Detections.empty({"a": 1})) == 0
    assert Detections.empty({"a": 1}).metadata == {"a": 1}


@pytest.mark.parametrize(
    ("index", "expected_rows"),
    [
        (1, [1]),
        (slice(0, 2), [0, 1]),
        ([2, 0], [2, 0]),
        (np.array([True, False, True]), [0, 2]),
    ],
)
def test_getitem_selects_every_array(index, expected_rows) -> None:
    det = make(3, tracker_id=np.array([7, 8, 9]), mask=np.zeros((3, 2, 2), bool),
               data={"class_name": np.array(["a", "b", "c"])}, metadata={"m": 1})
    sub = det[index]
    np.testing.assert_array_equal(sub.xyxy, det.xyxy[expected_rows])
    np.testing.assert_array_equal(sub.tracker_id, np.array([7, 8, 9])[expected_rows])
    np.testing.assert_array_equal(sub.data["class_name"], np.array(["a", "b", "c"])[expected_rows])
    assert sub.mask.shape == (len(expected_rows), 2, 2)
    assert sub.metadata == {"m": 1}


def test_merge_concatenates_and_skips_empty_parts() -> None:
    a = make(2, data={"class_name": np.array(["x", "y"])}, metadata={"a": 1})
    b = make(1, data={"class_name": np.array(["z"])}, metadata={"b": 2})
    empty = Detections.empty({"c": 3})
    merged = Detections.merge([a, empty, b], metadata={"d": 4})
    assert len(merged) == 3
    np.testing.assert_array_equal(merged.data["class_name"], ["x", "y", "z"])
    assert merged.metadata == {"a": 1, "b": 2, "c": 3, "d": 4}
    assert len(Detections.merge([])) == 0


@pytest.mark.parametrize(
    ("parts", "match"),
    [
        ([make(1, data={"k": np.array([1])}), make(1)], "same data keys"),
        ([make(1, tracker_id=np.array([1])), make(1)], "tracker_id and mask"),
    ],
)
def test_merge_refuses_mismatched_parts(parts, match) -> None:
    with pytest.raises(ValueError, match=match):
        Detections.merge(parts)


def test_with_offset_shifts_a_copy_and_area_is_in_square_pixels() -> None:
    det = make(2)
    moved = det.with_offset(100, 50)
    np.testing.assert_allclose(moved.xyxy, det.xyxy + [100, 50, 100, 50])
    np.testing.assert_allclose(det.xyxy[0], [0, 0, 5, 8])  # original unchanged
    np.testing.assert_allclose(det.area, [40, 40])
