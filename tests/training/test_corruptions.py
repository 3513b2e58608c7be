"""The corruption suite: seeded and repeatable, and boxes follow the image when it moves."""

from __future__ import annotations

import numpy as np
import pytest

from training.corruptions import CORRUPTIONS, corrupt, parse_corruptions

GEOMETRIC = ("scale_0.5", "scale_2", "rotation")


def _scene(width: int = 200, height: int = 160) -> tuple[np.ndarray, np.ndarray]:
    """A dark textured picture holding one bright rectangle, and that rectangle's box."""
    rng = np.random.default_rng(3)
    pixels = rng.integers(0, 40, size=(height, width, 3), dtype=np.uint8)
    box = np.array([[70.0, 50.0, 130.0, 100.0]])
    pixels[50:100, 70:130] = 250
    return pixels, box


def _bright_box(pixels: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(pixels.min(axis=2) > 150)
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=np.float64)


@pytest.mark.parametrize("name", list(CORRUPTIONS))
def test_each_corruption_is_repeatable_and_seeded(name: str) -> None:
    pixels, boxes = _scene()
    first = corrupt(name, pixels, boxes, seed=0, image_name="a.jpg")
    again = corrupt(name, pixels, boxes, seed=0, image_name="a.jpg")
    assert np.array_equal(first[0], again[0]) and np.array_equal(first[1], again[1])
    assert first[0].dtype == np.uint8 and first[0].ndim == 3
    assert not np.array_equal(first[0], pixels) or name in ("scale_0.5", "scale_2")
    if name in ("noise", "rain", "rotation", "low_light"):  # the ones that draw random numbers
        other = corrupt(name, pixels, boxes, seed=1, image_name="a.jpg")
        assert not np.array_equal(first[0], other[0])


@pytest.mark.parametrize("name", [n for n in CORRUPTIONS if n not in GEOMETRIC])
def test_photometric_corruptions_keep_the_frame_and_boxes(name: str) -> None:
    pixels, boxes = _scene()
    out, moved, keep = corrupt(name, pixels, boxes, seed=0, image_name="a.jpg")
    assert out.shape == pixels.shape
    assert keep.tolist() == [True] and np.array_equal(moved, boxes)


@pytest.mark.parametrize("name", GEOMETRIC)
def test_boxes_follow_the_object_under_scale_and_rotation(name: str) -> None:
    pixels, boxes = _scene()
    out, moved, keep = corrupt(name, pixels, boxes, seed=0, image_name="a.jpg")
    assert keep.tolist() == [True]
    # The rectangle's bright pixels after the corruption lie where its box went (a rotated
    # rectangle's enclosing box is what rotate_boxes computes from the corners).
    assert np.abs(_bright_box(out) - moved[0]).max() <= 3.0
    if name != "rotation":
        factor = {"scale_0.5": 0.5, "scale_2": 2.0}[name]
        assert out.shape[:2] == (round(160 * factor), round(200 * factor))
        assert np.allclose(moved, boxes * factor)


def test_a_box_rotated_out_of_the_frame_is_dropped() -> None:
    pixels, _ = _scene()
    # A sliver along the left edge: after any rotation of 3-8 degrees about the centre, its
    # middle moves out of the frame and what stays is clipped; a box inside stays whole.
    boxes = np.array([[0.0, 0.0, 1.5, 160.0], [70.0, 50.0, 130.0, 100.0]])
    _, moved, keep = corrupt("rotation", pixels, boxes, seed=0, image_name="a.jpg")
    assert len(moved) == int(keep.sum()) and keep[1]
    assert np.all(moved[:, :2] >= 0) and np.all(moved[:, 2] <= 200) and np.all(moved[:, 3] <= 160)


def test_choosing_corruptions() -> None:
    assert parse_corruptions("all") == tuple(CORRUPTIONS)
    assert parse_corruptions("rain, blur") == ("blur", "rain")  # the suite's order
    with pytest.raises(ValueError, match="unknown corruptions \\['fisheye'\\]"):
        parse_corruptions("blur,fisheye")
