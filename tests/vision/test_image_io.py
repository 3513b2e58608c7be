"""Image loading: allowed formats, refusals with reasons, orientation, modes, EXIF."""

from __future__ import annotations

import hashlib
import io
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageOps

from vision.errors import ImageLoadError
from vision.image_io import ALLOWED_FORMATS, load_image, probe_image

H, W = 48, 64


@pytest.fixture(scope="module")
def rgb() -> np.ndarray:
    """A smooth RGB image (lossy codecs stay close to it) with a distinct top-left block."""
    y, x = np.mgrid[0:H, 0:W]
    image = np.stack([x * 255 // (W - 1), y * 255 // (H - 1), np.full_like(x, 90)], -1).astype(np.uint8)
    image[:8, :8] = (255, 0, 0)
    return image


def encode(image: Image.Image, fmt: str, **params) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **params)
    return buf.getvalue()


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def crafted_png(width: int, height: int, idat: bytes = b"") -> bytes:
    """A PNG whose header claims width x height 1-bit pixels; the pixel data is whatever we say."""
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat)
            + png_chunk(b"IEND", b""))


def expect_reason(reason: str, match: str | None = None):
    return pytest.raises(ImageLoadError, match=match or reason)


# -- formats ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "params", "max_mean_error"),
    [
        ("JPEG", {"quality": 95}, 3.0),
        ("PNG", {}, 0.0),
        ("TIFF", {}, 0.0),
        ("TIFF", {"compression": "tiff_lzw"}, 0.0),
        ("WEBP", {"lossless": True}, 0.0),
        ("WEBP", {"quality": 90}, 4.0),
        ("BMP", {}, 0.0),
    ],
)
def test_allowed_formats_round_trip(rgb, fmt, params, max_mean_error) -> None:
    loaded = load_image(encode(Image.fromarray(rgb), fmt, **params), name="photo")
    assert loaded.format == fmt and fmt in ALLOWED_FORMATS
    assert loaded.pixels.shape == (H, W, 3) and loaded.pixels.dtype == np.uint8
    assert loaded.pixels.flags.c_contiguous
    assert loaded.resolution_wh == (W, H) and loaded.name == "photo"
    error = np.abs(loaded.pixels.astype(int) - rgb[:, :, ::-1]).mean()  # BGR out
    assert error <= max_mean_error


def test_format_comes_from_the_header_not_the_extension(tmp_path: Path, rgb) -> None:
    path = tmp_path / "looks_like.jpg"
    path.write_bytes(encode(Image.fromarray(rgb), "PNG"))
    loaded = load_image(path)
    assert loaded.format == "PNG" and loaded.name == str(path)
    np.testing.assert_array_equal(loaded.pixels, rgb[:, :, ::-1])


def test_path_str_and_bytes_sources_agree(tmp_path: Path, rgb) -> None:
    data = encode(Image.fromarray(rgb), "JPEG", quality=90)
    path = tmp_path / "a.jpg"
    path.write_bytes(data)
    from_path, from_str, from_bytes = load_image(path), load_image(str(path)), load_image(data)
    np.testing.assert_array_equal(from_path.pixels, from_bytes.pixels)
    np.testing.assert_array_equal(from_str.pixels, from_bytes.pixels)
    assert from_bytes.name == "<bytes>"


def test_jpeg_decoded_with_cv2_matches_pillow(rgb) -> None:
    data = encode(Image.fromarray(rgb), "JPEG", quality=90)
    pillow_bgr = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))[:, :, ::-1]
    # Both use libjpeg(-turbo); different IDCT/upsampling settings may differ by a level or two.
    assert np.abs(load_image(data).pixels.astype(int) - pillow_bgr).max() <= 3


def test_mpo_first_frame_is_loaded_as_jpeg(rgb) -> None:
    first, second = Image.fromarray(rgb), Image.fromarray(255 - rgb)
    data = encode(first, "MPO", save_all=True, append_images=[second], quality=95)
    assert Image.open(io.BytesIO(data)).format == "MPO"
    loaded = load_image(data)
    assert loaded.format == "JPEG"
    assert np.abs(loaded.pixels.astype(int) - rgb[:, :, ::-1]).mean() < 3


# -- refusals -----------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ImageLoadError) as info:
        load_image(tmp_path / "nope.jpg")
    assert info.value.reason == "not_found" and info.value.path.endswith("nope.jpg")


def test_directory_is_not_an_image(tmp_path: Path) -> None:
    with expect_reason("not_found", "is a directory"):
        load_image(tmp_path)


@pytest.mark.parametrize("as_file", [True, False])
def test_zero_byte_input(tmp_path: Path, as_file: bool) -> None:
    path = tmp_path / "empty.jpg"
    path.write_bytes(b"")
    with pytest.raises(ImageLoadError) as info:
        load_image(path if as_file else b"", name="empty.jpg")
    assert (info.value.reason, info.value.path) == ("empty", "empty.jpg")


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"hello, this is a text file, not a photo\n" * 10, "unrecognised data"),
        (b"GIF89a" + b"\x00" * 64, "got GIF"),
        (b"%PDF-1.7\n" + b"\x00" * 64, "got PDF"),
        (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 64, "HEIC/HEIF"),
        (bytes(range(256)), "unrecognised data"),
    ],
)
def test_non_image_and_disallowed_formats_are_unsupported(data: bytes, match: str) -> None:
    with pytest.raises(ImageLoadError, match=match) as info:
        load_image(data, name="upload")
    assert info.value.reason == "unsupported_format" and info.value.path == "upload"


def test_gif_is_refused_even_though_pillow_reads_it(rgb) -> None:
    with expect_reason("unsupported_format", "got GIF"):
        load_image(encode(Image.fromarray(rgb), "GIF"))


@pytest.mark.parametrize("keep_fraction", [0.5, 0.9, 0.999])
def test_truncated_jpeg_raises_instead_of_returning_grey(rgb, keep_fraction: float) -> None:
    data = encode(Image.fromarray(rgb), "JPEG", quality=95)
    truncated = data[:int(len(data) * keep_fraction)]
    with pytest.raises(ImageLoadError) as info:
        load_image(truncated, name="cut.jpg")
    assert info.value.reason == "corrupt" and "truncated" in info.value.detail.lower()


def test_opencv_refuses_truncated_jpeg_by_itself(rgb) -> None:
    """The fast path relies on cv2.imdecode returning None, not a half-grey image."""
    data = encode(Image.fromarray(rgb), "JPEG", quality=95)
    assert cv2.imdecode(np.frombuffer(data[:len(data) // 2], np.uint8), cv2.IMREAD_COLOR) is None
    assert cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) is not None


@pytest.mark.parametrize("fmt", ["PNG", "TIFF", "WEBP", "BMP"])
def test_truncated_other_formats_raise_corrupt(rgb, fmt: str) -> None:
    data = encode(Image.fromarray(rgb), fmt)
    with expect_reason("corrupt"):
        load_image(data[:len(data) * 2 // 3])


def test_header_cut_inside_magic_is_corrupt(rgb) -> None:
    data = encode(Image.fromarray(rgb), "PNG")
    with expect_reason("corrupt", "header"):
        load_image(data[:20])


def test_png_bomb_is_refused_before_decoding() -> None:
    """30000 x 30000 = 900 M pixels claimed by a file of a few dozen bytes."""
    bomb = crafted_png(30000, 30000, idat=zlib.compress(b"\x00" * 1000))
    assert len(bomb) < 200
    with pytest.raises(ImageLoadError) as info:
        load_image(bomb, name="bomb.png")
    assert info.value.reason == "too_many_pixels"


def test_pixel_cap_is_checked_on_the_header_before_decoding() -> None:
    # The pixel data is garbage: decoding it would give "corrupt", so "too_many_pixels" proves
    # the cap was applied first.
    claims_100x100 = crafted_png(100, 100, idat=b"not zlib data")
    with expect_reason("too_many_pixels", "100x100 = 10,000 pixels, limit is 9,999"):
        load_image(claims_100x100, max_pixels=9_999)
    with expect_reason("corrupt"):
        load_image(claims_100x100, max_pixels=10_000)


def test_real_image_over_the_cap(rgb) -> None:
    data = encode(Image.fromarray(rgb), "JPEG")
    with expect_reason("too_many_pixels"):
        load_image(data, max_pixels=H * W - 1)
    assert load_image(data, max_pixels=H * W).resolution_wh == (W, H)


# -- decode caps per source kind ---------------------------------------------------------------


@pytest.mark.parametrize(("cap", "expected_wh"), [
    (H * W, (W, H)),                        # under the cap: full size
    (H * W - 1, (W // 2, H // 2)),          # the least reduction that fits
    ((W // 4) * (H // 4), (W // 4, H // 4)),
    ((W // 8) * (H // 8), (W // 8, H // 8)),
])
@pytest.mark.parametrize("mode", ["RGB", "CMYK"])  # OpenCV's decoder, Pillow's draft mode
def test_a_jpeg_over_its_kinds_cap_is_decoded_reduced(rgb, cap: int, expected_wh, mode: str) -> None:
    data = encode(Image.fromarray(rgb).convert(mode), "JPEG", quality=95)
    image = load_image(data, default_kind="citizen", decode_caps={"citizen": cap})
    assert image.resolution_wh == expected_wh and image.pixels.shape == (*expected_wh[::-1], 3)
    assert image.metadata.stored_wh == (W, H)  # the file's size, for geometry
    reference = load_image(data).pixels
    shrunk = cv2.resize(reference, expected_wh, interpolation=cv2.INTER_AREA)
    assert np.abs(image.pixels.astype(int) - shrunk).mean() < 6.0
    assert image.content_hash == load_image(data).content_hash


def test_a_content_hash_the_caller_took_is_not_taken_again(rgb) -> None:
    """A service hashes an upload before decoding it (a duplicate is answered unread) and hands
    the digest on: load_image keeps it instead of hashing the bytes a second time (#13)."""
    data = encode(Image.fromarray(rgb), "JPEG")
    digest = hashlib.sha256(data).hexdigest()
    assert load_image(data).content_hash == digest
    assert load_image(data, content_hash="f" * 64).content_hash == "f" * 64  # taken as given


def test_a_cap_applies_to_its_kind_only(rgb) -> None:
    data = encode(Image.fromarray(rgb), "JPEG")
    caps = {"citizen": 16}
    assert load_image(data, default_kind="drone", decode_caps=caps).resolution_wh == (W, H)
    with expect_reason("too_many_pixels", "even decoded at 1/8"):
        load_image(data, default_kind="citizen", decode_caps=caps)


@pytest.mark.parametrize(("size", "cap", "expected_wh"), [
    (W, None, (W, H)),                      # needed at full size
    (W // 2 + 1, None, (W, H)),             # halved it would fall short
    (W // 2, None, (W // 2, H // 2)),       # the largest reduction that keeps the long side
    (W // 4 - 1, None, (W // 4, H // 4)),
    (1, None, (W // 8, H // 8)),            # never beyond 1/8
    (W, H * W - 1, (W // 2, H // 2)),       # the cap wins when it asks for more
])
@pytest.mark.parametrize("mode", ["RGB", "CMYK"])  # OpenCV's decoder, Pillow's draft mode
def test_a_jpeg_is_decoded_no_larger_than_its_kind_needs(rgb, size, cap, expected_wh, mode) -> None:
    data = encode(Image.fromarray(rgb).convert(mode), "JPEG", quality=95)
    caps = {"citizen": cap} if cap else None
    image = load_image(data, default_kind="citizen", decode_sizes={"citizen": size}, decode_caps=caps)
    assert image.resolution_wh == expected_wh and image.pixels.shape == (*expected_wh[::-1], 3)
    assert image.full_wh == (W, H) and image.metadata.stored_wh == (W, H)
    assert image.source_wh == (None if expected_wh == (W, H) else (W, H))


@pytest.mark.parametrize(("fmt", "kind"), [("PNG", "citizen"), ("JPEG", "drone")])
def test_only_a_jpeg_of_a_kind_with_a_size_is_decoded_reduced(rgb, fmt, kind) -> None:
    image = load_image(encode(Image.fromarray(rgb), fmt), default_kind=kind, decode_sizes={"citizen": 8})
    assert image.resolution_wh == image.full_wh == (W, H) and image.source_wh is None


def test_a_png_over_its_kinds_cap_is_refused_before_decoding() -> None:
    # The pixel data is garbage, as in the test above: "too_many_pixels", not "corrupt",
    # proves nothing was decoded. PNG has no reduced decoding.
    claims_100x100 = crafted_png(100, 100, idat=b"not zlib data")
    with expect_reason("too_many_pixels", "a PNG cannot be decoded reduced"):
        load_image(claims_100x100, default_kind="citizen", decode_caps={"citizen": 9_999})
    with expect_reason("corrupt"):
        load_image(claims_100x100, default_kind="citizen", decode_caps={"citizen": 10_000})


@pytest.mark.parametrize("as_file", [True, False])
def test_byte_cap(tmp_path: Path, rgb, as_file: bool) -> None:
    data = encode(Image.fromarray(rgb), "PNG")
    path = tmp_path / "a.png"
    path.write_bytes(data)
    with expect_reason("too_large", f"{len(data):,} bytes, limit is {len(data) - 1:,}"):
        load_image(path if as_file else data, max_bytes=len(data) - 1)
    assert load_image(path if as_file else data, max_bytes=len(data)).format == "PNG"


# -- orientation and modes ----------------------------------------------------------------


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize(("fmt", "tolerance"), [("PNG", 0), ("JPEG", 4)])
def test_exif_orientation_matches_pillow_exif_transpose(rgb, orientation: int, fmt: str, tolerance) -> None:
    exif = Image.Exif()
    exif[0x0112] = orientation
    params = {"quality": 95} if fmt == "JPEG" else {}
    data = encode(Image.fromarray(rgb), fmt, exif=exif.tobytes(), **params)
    expected = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB"))[:, :, ::-1]
    loaded = load_image(data)
    assert loaded.pixels.shape == expected.shape
    assert loaded.resolution_wh == (expected.shape[1], expected.shape[0])
    assert np.abs(loaded.pixels.astype(int) - expected).max() <= tolerance
    assert probe_image(data).resolution_wh == loaded.resolution_wh
    assert probe_image(data).orientation == orientation


def test_phone_photo_rotated_90_comes_out_upright(rgb) -> None:
    """A landscape sensor image tagged 'rotate 90 CW to view' (orientation 6) is portrait."""
    exif = Image.Exif()
    exif[0x0112] = 6
    loaded = load_image(encode(Image.fromarray(rgb), "JPEG", exif=exif.tobytes(), quality=95))
    assert loaded.resolution_wh == (H, W)
    # The red block stored top-left is top-right once upright.
    top_right = loaded.pixels[:6, -6:].reshape(-1, 3).mean(0)
    assert top_right[2] > 200 and top_right[0] < 60 and top_right[1] < 60


@pytest.mark.parametrize(
    ("make_image", "fmt", "expected_bgr"),
    [
        (lambda: Image.new("L", (W, H), 77), "PNG", (77, 77, 77)),
        (lambda: Image.new("L", (W, H), 77), "JPEG", (77, 77, 77)),
        (lambda: Image.new("LA", (W, H), (77, 10)), "PNG", (77, 77, 77)),
        (lambda: Image.new("RGBA", (W, H), (200, 100, 50, 0)), "PNG", (50, 100, 200)),
        (lambda: Image.new("RGBA", (W, H), (200, 100, 50, 255)), "WEBP", (50, 100, 200)),
        (lambda: Image.new("RGB", (W, H), (200, 100, 50)).convert("P"), "PNG", (50, 100, 200)),
        (lambda: Image.new("1", (W, H), 1), "PNG", (255, 255, 255)),
        (lambda: Image.new("1", (W, H), 1), "BMP", (255, 255, 255)),
        (lambda: Image.new("I;16", (W, H), 0xABCD), "PNG", (0xAB, 0xAB, 0xAB)),
        (lambda: Image.new("I;16", (W, H), 0xABCD), "TIFF", (0xAB, 0xAB, 0xAB)),
        (lambda: Image.new("CMYK", (W, H), (0, 0, 0, 0)), "JPEG", (255, 255, 255)),
        (lambda: Image.new("CMYK", (W, H), (0, 255, 255, 0)), "TIFF", (0, 0, 255)),
        (lambda: Image.new("F", (W, H), 0.5), "TIFF", (127, 127, 127)),
    ],
)
def test_modes_become_bgr_uint8(make_image, fmt: str, expected_bgr) -> None:
    loaded = load_image(encode(make_image(), fmt))
    assert loaded.pixels.shape == (H, W, 3) and loaded.pixels.dtype == np.uint8
    np.testing.assert_allclose(loaded.pixels.reshape(-1, 3).mean(0), expected_bgr, atol=2)


def test_sixteen_bit_rgb_png_keeps_the_high_byte() -> None:
    rng = np.random.default_rng(1)
    bgr16 = rng.integers(0, 65536, (H, W, 3), dtype=np.uint16)
    loaded = load_image(cv2.imencode(".png", bgr16)[1].tobytes())
    np.testing.assert_array_equal(loaded.pixels, (bgr16 >> 8).astype(np.uint8))


# -- EXIF and probing ---------------------------------------------------------------------


def test_exif_is_read_once_with_its_gps_ifd(rgb) -> None:
    exif = Image.Exif()
    exif[0x010F] = "DJI"                                         # Make
    exif.get_ifd(0x8825).update({1: "N", 2: (30.0, 15.0, 0.0)})  # GPSLatitudeRef, GPSLatitude
    loaded = load_image(encode(Image.fromarray(rgb), "JPEG", exif=exif.tobytes()))
    assert loaded.metadata.make == "DJI"
    assert loaded.metadata.exif.get(0x010F) == "DJI"
    assert loaded.metadata.exif.get_ifd(0x8825)[1] == "N"


def test_no_exif_gives_empty_tags(rgb) -> None:
    assert len(load_image(encode(Image.fromarray(rgb), "PNG")).metadata.exif) == 0


def test_probe_reads_only_the_header() -> None:
    undecodable = crafted_png(4000, 3000, idat=b"garbage")
    probe = probe_image(undecodable, name="big.png")
    assert (probe.name, probe.format, probe.orientation) == ("big.png", "PNG", 1)
    assert probe.resolution_wh == (4000, 3000)
    with expect_reason("corrupt"):
        load_image(undecodable)


@pytest.mark.parametrize(
    ("data", "reason"),
    [(b"", "empty"), (b"plain text, no image", "unsupported_format"), (b"\xff\xd8\xff\xe0", "corrupt")],
)
def test_probe_refuses_like_load(data: bytes, reason: str) -> None:
    with expect_reason(reason):
        probe_image(data)
