"""Tiles sized by the ground: target GSD from the taxonomy, the resampling factor, boxes back exactly."""

from __future__ import annotations

import numpy as np
import pytest

from vision.detections import Detections
from vision.ground_sampling import Resampling, resample_scale, target_gsd_m
from vision.taxonomy import Taxonomy

TAXONOMY = Taxonomy.default()


@pytest.mark.parametrize("keys, source, object_px, expected", [
    (["garbage_pile", "straw_burning"], "drone", 16, 1.0 / 16),    # the finest class wins
    (["straw_burning"], "drone", 16, 2.0 / 16),
    (["straw_burning", None, "not_a_class"], "drone", 20, 2.0 / 20),  # helpers and unknown keys ignored
    (["blue_steel_roof"], "drone", 10, 3.0 / 10),
    (["blue_steel_roof"], "orthomosaic", 10, 3.0 / 10),   # an orthomosaic is stitched drone photos
    (["blue_steel_roof"], "citizen", 10, None),           # the class does not apply to citizen photos
    ([None], "drone", 16, None),                          # no class says: native
])
def test_the_target_gsd_is_the_finest_any_reported_class_needs(keys, source, object_px, expected):
    got = target_gsd_m(TAXONOMY, keys, source, object_px)
    assert got == (None if expected is None else pytest.approx(expected))


def test_a_class_without_a_minimum_size_asks_for_nothing():
    taxonomy = Taxonomy.from_mapping({"classes": [{"key": "a", "name_zh": "甲", "sources": ["drone"]},
                                                  {"key": "b", "name_zh": "乙", "sources": ["drone"],
                                                   "min_size_m": 4.0}]})
    assert target_gsd_m(taxonomy, ["a"], "drone", 16) is None
    assert target_gsd_m(taxonomy, ["a", "b"], "drone", 16) == pytest.approx(0.25)


@pytest.mark.parametrize("native, target, expected", [
    (0.0274, 0.0625, 0.0274 / 0.0625),   # a 20 MP photo from 100 m shrunk to 6.25 cm
    (0.02, 0.04, 0.5),
    (0.0625, 0.0625, 1.0),               # already at the target
    (0.125, 0.0625, 1.0),                # coarser: never enlarged
    (None, 0.0625, 1.0),                 # unknown GSD (no pose): native
    (0.02, None, 1.0),                   # no target: native
])
def test_the_resampling_factor_follows_from_the_gsd(native, target, expected):
    assert resample_scale(native, target) == pytest.approx(expected)


@pytest.mark.parametrize("native, target", [(0.0, 0.05), (-1.0, 0.05), (0.02, float("nan")), (0.02, 0.0)])
def test_a_gsd_that_is_not_a_positive_length_is_refused(native, target):
    with pytest.raises(ValueError, match="positive number of metres"):
        resample_scale(native, target)


@pytest.mark.parametrize("native_wh, scale, resampled_wh", [
    ((5472, 3648), 0.5, (2736, 1824)),
    ((5472, 3648), 0.4384, (2399, 1599)),  # sides rounded separately
    ((3, 2), 0.01, (1, 1)),                # never below one pixel
    ((640, 480), 1.0, (640, 480)),
])
def test_resampled_sizes(native_wh, scale, resampled_wh):
    assert Resampling.at_scale(native_wh, scale).resampled_wh == resampled_wh


@pytest.mark.parametrize("scale", [0.0, -0.5, 1.5])
def test_a_scale_outside_zero_to_one_is_refused(scale):
    with pytest.raises(ValueError, match=r"expected a scale in \(0, 1\]"):
        Resampling.at_scale((100, 100), scale)


def test_boxes_found_in_the_resampled_image_map_back_exactly_to_native_pixels():
    native = np.zeros((300, 400, 3), np.uint8)
    native[40:120, 100:260] = 255  # an object at native pixels (100, 40, 260, 120)
    resampling = Resampling.at_scale((400, 300), 0.25)
    small = resampling.resize(native)
    assert small.shape == (75, 100, 3)
    ys, xs = np.nonzero(small[:, :, 0] == 255)  # INTER_AREA at 1/4: whole 4x4 blocks average exactly
    found = Detections(xyxy=np.array([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]], np.float32),
                       confidence=np.array([0.9], np.float32), class_id=np.array([2]),
                       data={"class_name": np.array(["smoke"])}, metadata={"tiles": 3})
    back = resampling.to_native(found)
    assert back.xyxy.tolist() == [[100.0, 40.0, 260.0, 120.0]]
    assert back.class_id.tolist() == [2] and back.data["class_name"].tolist() == ["smoke"]
    assert found.xyxy.tolist() == [[25.0, 10.0, 65.0, 30.0]]  # the input is not changed


def test_per_axis_factors_undo_rounding():
    resampling = Resampling((1001, 999), (500, 333))
    box = Detections(xyxy=np.array([[0, 0, 500, 333]], np.float32), confidence=np.ones(1, np.float32),
                     class_id=np.zeros(1, np.int64))
    assert resampling.to_native(box).xyxy.tolist() == [[0.0, 0.0, 1001.0, 999.0]]


def test_an_image_of_another_size_is_refused():
    with pytest.raises(ValueError, match="expected an image of 400x300"):
        Resampling.at_scale((400, 300), 0.5).resize(np.zeros((301, 400, 3), np.uint8))
