"""Letterbox: same tensor and same box mapping as ultralytics, round trips, padding, errors."""

from __future__ import annotations

from contextlib import nullcontext as does_not_raise

import cv2
import numpy as np
import pytest

from vision.detectors.ultralytics_offline import import_ultralytics
from vision.preprocess import PAD_VALUE, LetterboxMeta, letterbox_batch, letterbox_meta, rect_canvas_wh

PAD = np.float32(PAD_VALUE) / np.float32(255)

# (height, width) of source images: landscape, portrait, square, smaller than the input
# (upscaled), odd sizes, 1-pixel-wide and 1-pixel-high strips, very large.
SHAPES = [
    (480, 640), (640, 480), (1080, 1920), (1920, 1080), (640, 640), (100, 100), (37, 53), (53, 37),
    (1, 3000), (3000, 1), (1, 1), (2, 5), (333, 1000), (4000, 6000), (6000, 25), (17, 9000),
]
SIZES = [128, 320, 640]


def noise(shape: tuple[int, int], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (*shape, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def ultralytics_letterbox():
    import_ultralytics()
    from ultralytics.data.augment import LetterBox

    return LetterBox


@pytest.mark.parametrize("size", [128, 640])
@pytest.mark.parametrize("shape", [s for s in SHAPES if s[0] * s[1] <= 2_100_000])
def test_tensor_matches_ultralytics_letterbox(ultralytics_letterbox, shape, size) -> None:
    image = noise(shape)
    expected = ultralytics_letterbox(new_shape=(size, size), auto=False, center=True)(image=image)
    expected = expected[:, :, ::-1].transpose(2, 0, 1).astype(np.float32) / np.float32(255)

    batch, metas = letterbox_batch([image], size)

    assert batch.shape == (1, 3, size, size) and batch.dtype == np.float32 and batch.flags.c_contiguous
    np.testing.assert_array_equal(batch[0], expected)
    assert metas[0].resolution_wh == (shape[1], shape[0])


@pytest.mark.parametrize("size", [128, 640])
@pytest.mark.parametrize("shape", [s for s in SHAPES if s[0] * s[1] <= 2_100_000])
def test_rect_tensor_matches_ultralytics_auto_letterbox(ultralytics_letterbox, shape, size) -> None:
    image = noise(shape)
    expected = ultralytics_letterbox(new_shape=(size, size), auto=True, stride=32, center=True)(image=image)
    expected = expected[:, :, ::-1].transpose(2, 0, 1).astype(np.float32) / np.float32(255)

    batch, (meta,) = letterbox_batch([image], size, stride=32)

    np.testing.assert_array_equal(batch[0], expected)
    assert rect_canvas_wh((shape[1], shape[0]), size, 32) == (expected.shape[2], expected.shape[1])


@pytest.mark.parametrize(
    ("resolution_wh", "size", "stride", "expected"),
    [
        ((1920, 1080), 640, 32, (640, 384)),   # 360 rows -> 384
        ((1080, 1920), 640, 32, (384, 640)),
        ((640, 640), 640, 32, (640, 640)),
        ((4000, 3000), 640, 32, (640, 480)),   # already a multiple of 32
        ((3000, 1), 640, 32, (640, 32)),
        ((100, 50), 640, 32, (640, 320)),      # upscaled
        ((1920, 1080), 100, 32, (100, 68)),    # size not a multiple of stride: as ultralytics
    ],
)
def test_rect_canvas(resolution_wh, size, stride, expected) -> None:
    assert rect_canvas_wh(resolution_wh, size, stride) == expected


def test_rect_batch_of_mixed_shapes_uses_the_largest_canvas() -> None:
    images = [noise((1080, 1920)), noise((480, 640)), noise((1920, 1080))]
    batch, metas = letterbox_batch(images[:2], 640, stride=32)
    assert batch.shape == (2, 3, 480, 640)  # 640x384 and 640x480 -> 640x480
    assert (metas[0].pad_x, metas[0].pad_y) == (0, 60) and (metas[1].pad_x, metas[1].pad_y) == (0, 0)
    alone, _ = letterbox_batch(images[1:2], 640, stride=32)
    np.testing.assert_array_equal(batch[1], alone[0])  # same canvas: same tensor as alone
    batch, _ = letterbox_batch(images, 640, stride=32)
    assert batch.shape == (3, 3, 640, 640)


@pytest.mark.parametrize("size", [128, 640])
@pytest.mark.parametrize("shape", SHAPES)
def test_rect_to_source_matches_ultralytics_scale_boxes(shape, size) -> None:
    import_ultralytics()
    import torch
    from ultralytics.utils.ops import scale_boxes

    canvas_w, canvas_h = rect_canvas_wh((shape[1], shape[0]), size, 32)
    rng = np.random.default_rng(size)
    xy = rng.uniform(0, min(canvas_w, canvas_h), (50, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(0, size / 2, (50, 2))], 1).astype(np.float32)
    expected = scale_boxes((canvas_h, canvas_w), torch.from_numpy(boxes.copy()), shape).numpy()

    meta = letterbox_meta((shape[1], shape[0]), size, canvas_wh=(canvas_w, canvas_h))

    np.testing.assert_allclose(meta.to_source(boxes), expected, rtol=1e-5, atol=1e-3)


def test_canvas_smaller_than_the_image_is_refused() -> None:
    with pytest.raises(ValueError, match="canvas of at least 640x360, got 640x352"):
        letterbox_meta((1920, 1080), 640, canvas_wh=(640, 352))
    with pytest.raises(ValueError, match="stride >= 1"):
        rect_canvas_wh((10, 10), 64, 0)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("shape", SHAPES)
def test_to_source_matches_ultralytics_scale_boxes(shape, size) -> None:
    import_ultralytics()
    import torch
    from ultralytics.utils.ops import scale_boxes

    rng = np.random.default_rng(size)
    xy = rng.uniform(-20, size + 20, (50, 2))
    wh = rng.uniform(0, size / 2, (50, 2))
    boxes = np.concatenate([xy, xy + wh], 1).astype(np.float32)
    expected = scale_boxes((size, size), torch.from_numpy(boxes.copy()), shape).numpy()

    meta = letterbox_meta((shape[1], shape[0]), size)

    np.testing.assert_allclose(meta.to_source(boxes), expected, rtol=1e-5, atol=1e-3)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("shape", SHAPES)
def test_source_boxes_round_trip(shape, size) -> None:
    h, w = shape
    meta = letterbox_meta((w, h), size)
    boxes = np.array([[0, 0, w, h], [w * 0.25, h * 0.1, w * 0.5, h * 0.9], [w / 3, h / 3, w / 3, h / 3]],
                     np.float32)
    np.testing.assert_allclose(meta.to_source(meta.to_input(boxes)), boxes, atol=1e-3 * max(w, h, 1))
    placed = meta.to_input([[0, 0, w, h]])[0]
    rw, rh = meta.resized_wh
    np.testing.assert_allclose(placed, [meta.pad_x, meta.pad_y, meta.pad_x + rw, meta.pad_y + rh], atol=1e-3)
    assert meta.pad_x >= 0 and meta.pad_y >= 0
    assert meta.pad_x + rw <= size and meta.pad_y + rh <= size


@pytest.mark.parametrize(
    ("shape", "rect_xyxy"),
    [
        ((480, 640), (100, 50, 300, 400)),
        ((1080, 1920), (1500, 700, 1900, 1060)),
        ((640, 480), (0, 0, 200, 100)),
        ((90, 120), (30, 20, 70, 60)),           # upscaled
        ((3000, 40), (0, 1000, 40, 2000)),       # thin strip
        ((2000, 3000), (2700, 1800, 3000, 2000)),  # touching the corner
    ],
)
def test_drawn_rectangle_maps_back_to_its_source_pixels(shape, rect_xyxy) -> None:
    """Find a white rectangle in the network input and map its edges back to the source."""
    size = 640
    image = np.zeros((*shape, 3), np.uint8)
    x1, y1, x2, y2 = rect_xyxy
    image[y1:y2, x1:x2] = 255
    batch, (meta,) = letterbox_batch([image], size)
    ys, xs = np.nonzero(batch[0, 0] > 0.5)  # bright pixels after resizing
    found = np.array([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]], np.float32)

    back = meta.to_source(found)[0]

    # One network pixel of edge blur is 1/gain source pixels; never better than 1 px.
    gx, gy = meta.gain_xy
    tol = np.array([max(1, 1 / gx), max(1, 1 / gy)] * 2) + 1e-3
    assert np.all(np.abs(back - np.array(rect_xyxy)) <= tol), (back, rect_xyxy, tol)


def test_padding_is_114_and_centred() -> None:
    image = np.full((100, 200, 3), 200, np.uint8)  # -> 640 x 320 inside 640 x 640
    batch, (meta,) = letterbox_batch([image], 640)
    assert (meta.pad_x, meta.pad_y, meta.resized_wh) == (0, 160, (640, 320))
    assert np.all(batch[0, :, :160] == PAD) and np.all(batch[0, :, 480:] == PAD)
    assert np.all(batch[0, :, 160:480] == np.float32(200) / np.float32(255))


def test_channels_are_reversed_to_rgb() -> None:
    image = np.zeros((64, 64, 3), np.uint8)
    image[..., 0] = 255  # blue in BGR
    batch, _ = letterbox_batch([image], 64)
    assert batch[0, 2].min() == 1.0 and batch[0, 0].max() == 0.0 and batch[0, 1].max() == 0.0


def test_odd_padding_puts_the_extra_pixel_right_and_bottom() -> None:
    meta = letterbox_meta((640, 639), 640)
    assert (meta.pad_x, meta.pad_y) == (0, 0)
    meta = letterbox_meta((640, 637), 640)
    assert meta.pad_y == 1 and meta.resized_wh == (640, 637)  # 3 rows: 1 top, 2 bottom


def test_batch_of_mixed_shapes_equals_single_images() -> None:
    images = [noise((480, 640), 1), noise((50, 700), 2), noise((640, 100), 3)]
    batch, metas = letterbox_batch(images, 320)
    for i, image in enumerate(images):
        single, (meta,) = letterbox_batch([image], 320)
        np.testing.assert_array_equal(batch[i], single[0])
        assert metas[i] == meta


def test_batch_size_pads_with_grey_images_and_out_is_reused() -> None:
    out = np.zeros((4, 3, 64, 64), np.float32)
    batch, metas = letterbox_batch([noise((64, 64))], 64, batch_size=4, out=out)
    assert batch is out and len(metas) == 1
    assert np.all(batch[1:] == PAD)


def test_empty_list_gives_an_empty_batch() -> None:
    batch, metas = letterbox_batch([], 64)
    assert batch.shape == (0, 3, 64, 64) and metas == []


@pytest.mark.parametrize(
    ("images", "kwargs", "expectation"),
    [
        ([np.zeros((10, 10, 3), np.uint8)], {}, does_not_raise()),
        ([np.zeros((10, 10), np.uint8)], {}, pytest.raises(ValueError, match=r"image 0: expected BGR uint8")),
        ([np.zeros((10, 10, 4), np.uint8)], {}, pytest.raises(ValueError, match=r"\(10, 10, 4\)")),
        ([np.zeros((10, 10, 3), np.float32)], {}, pytest.raises(ValueError, match="float32")),
        ([np.zeros((0, 10, 3), np.uint8)], {}, pytest.raises(ValueError, match="at least 1x1")),
        (["not an array"], {}, pytest.raises(TypeError, match="expected a numpy array, got str")),
        ([np.zeros((10, 10, 3), np.uint8)] * 2, {"batch_size": 1},
         pytest.raises(ValueError, match="batch_size >= number of images")),
        ([np.zeros((10, 10, 3), np.uint8)], {"out": np.zeros((1, 3, 32, 32), np.float32)},
         pytest.raises(ValueError, match="expected out to be C-contiguous float32")),
    ],
)
def test_bad_input_is_refused(images, kwargs, expectation) -> None:
    with expectation:
        letterbox_batch(images, 64, **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"scale": 0, "pad_x": 0, "pad_y": 0, "resolution_wh": (10, 10)}, "scale > 0"),
        ({"scale": 1, "pad_x": 0, "pad_y": 0, "resolution_wh": (0, 10)}, "at least 1x1"),
    ],
)
def test_meta_validates(kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        LetterboxMeta(**kwargs)


def test_meta_from_four_fields_derives_the_resized_size_and_clips() -> None:
    meta = LetterboxMeta(scale=0.5, pad_x=0, pad_y=80, resolution_wh=(1280, 960))
    assert meta.resized_wh == (640, 480)
    np.testing.assert_allclose(meta.to_source([[-10, 70, 700, 600]]), [[0, 0, 1280, 960]])
    np.testing.assert_allclose(meta.to_source([[10, 90, 20, 100]]), [[20, 20, 40, 40]])
    assert meta.to_source(np.empty((0, 4))).shape == (0, 4)


def test_resize_is_skipped_when_the_image_already_fits() -> None:
    image = noise((640, 640))
    batch, _ = letterbox_batch([image], 640)
    np.testing.assert_array_equal(batch[0], cv2.cvtColor(image, cv2.COLOR_BGR2RGB).transpose(2, 0, 1)
                                  .astype(np.float32) / np.float32(255))


@pytest.mark.parametrize(
    "view",
    [
        pytest.param(lambda a: a[100:740, 200:840], id="crop same size as input"),
        pytest.param(lambda a: a[100:500, 200:900], id="crop resized"),
        pytest.param(lambda a: a[::-1, ::-1], id="flipped"),
        pytest.param(lambda a: a[::2, ::3], id="strided"),
    ],
)
def test_array_views_give_the_same_batch_as_contiguous_copies(view) -> None:
    """Tiling hands over crops of a large image without copying them first."""
    image = view(noise((1000, 1500)))
    batch, _ = letterbox_batch([image], 640)
    expected, _ = letterbox_batch([np.ascontiguousarray(image)], 640)
    np.testing.assert_array_equal(batch, expected)
