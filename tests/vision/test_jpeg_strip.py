"""vision.jpeg_strip: a JPEG's image data kept bit for bit, every metadata segment gone."""

from __future__ import annotations

import io
from typing import Any

import cv2
import numpy as np
import pytest
from PIL import Image

from vision.jpeg_strip import strip_metadata

RNG = np.random.default_rng(7)
PIXELS = RNG.integers(0, 256, (90, 120, 3), dtype=np.uint8)
GPS_IFD = 0x8825


def _jpeg(mode: str = "RGB", *, exif: bool = True, **save: Any) -> bytes:
    image = Image.fromarray(PIXELS).convert(mode)
    extra: dict[str, Any] = {}
    if exif:
        tags = image.getexif()
        tags[0x010F], tags[0x0110] = "PhoneMaker", "OwnersPhone"  # Make, Model
        tags.get_ifd(GPS_IFD).update({1: "N", 2: (31.0, 49.0, 0.0), 3: "E", 4: (117.0, 12.0, 0.0)})
        extra["exif"] = tags
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", **extra, **save)
    return buffer.getvalue()


def _with_jfif_thumbnail(data: bytes) -> bytes:
    """`data` with a JFIF marker carrying a 1x1 thumbnail (which a crop would not have touched)."""
    payload = b"JFIF\x00\x01\x02\x00\x00\x01\x00\x01" + b"\x01\x01" + b"\xfe\x00\x00"
    return data[:2] + b"\xff\xe0" + (len(payload) + 2).to_bytes(2, "big") + payload + data[2:]


def _decoded(data: bytes) -> np.ndarray:
    pixels = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    assert pixels is not None
    return pixels


SECRETS = (b"PhoneMaker", b"OwnersPhone", b"drone-dji", b"a citizen's note", b"ICCPROFILE", b"second picture")
CASES = {
    "baseline with EXIF GPS": _jpeg(),
    "progressive": _jpeg(progressive=True),
    "4:4:4, optimised tables": _jpeg(subsampling=0, optimize=True, quality=60),
    "restart markers": _jpeg(restart_marker_rows=1),  # 0xFFD0.. inside the scan
    "XMP, comment, ICC": _jpeg(xmp=b"<x:xmpmeta>drone-dji</x:xmpmeta>", comment=b"a citizen's note",
                               icc_profile=b"ICCPROFILE" * 20),
    "grey": _jpeg("L"),
    "MPO-like second picture after the end": _jpeg() + _jpeg(comment=b"second picture"),
    "JFIF thumbnail": _with_jfif_thumbnail(_jpeg(exif=False)),
}


@pytest.mark.parametrize("data", CASES.values(), ids=CASES.keys())
def test_the_image_data_is_kept_and_the_metadata_is_not(data: bytes) -> None:
    stripped = strip_metadata(data)
    assert stripped is not None
    assert np.array_equal(_decoded(stripped.data), _decoded(data))
    assert stripped.resolution_wh == (120, 90)
    assert stripped.components == (1 if _decoded(data).ndim == 2 else 3)
    assert len(stripped.data) < len(data)  # each case carries something to cut
    assert not any(secret in stripped.data for secret in SECRETS)
    with Image.open(io.BytesIO(stripped.data)) as reopened:
        assert not {"exif", "xmp", "comment", "icc_profile"} & set(reopened.info)
        assert dict(reopened.getexif()) == {}
        assert reopened.info.get("jfif_density", (1, 1)) == (1, 1)
    assert stripped.data.endswith(b"\xff\xd9") and stripped.data.count(b"\xff\xd8") == 1


def test_a_jfif_thumbnail_is_dropped_and_the_density_kept() -> None:
    stripped = strip_metadata(_with_jfif_thumbnail(_jpeg(exif=False)))
    assert stripped is not None
    app0 = stripped.data[2:20]
    assert app0[:4] == b"\xff\xe0\x00\x10" and app0[4:9] == b"JFIF\x00" and app0[16:18] == b"\x00\x00"


def _arithmetic(data: bytes) -> bytes:
    return data.replace(b"\xff\xc0", b"\xff\xc9", 1)  # SOF9: arithmetic coding, which browsers refuse


def _truncated(data: bytes) -> bytes:
    return data[: len(data) // 2]


REFUSED = {
    "not a JPEG": b"\x89PNG\r\n\x1a\n" + b"\x00" * 64,
    "empty": b"",
    "CMYK": _jpeg("CMYK", exif=False),
    "arithmetic coding": _arithmetic(_jpeg(exif=False)),
    "cut short": _truncated(_jpeg()),
    "no frame": b"\xff\xd8\xff\xd9",
    "a segment longer than the file": b"\xff\xd8\xff\xdb\xff\xff\x00",
}


@pytest.mark.parametrize("data", REFUSED.values(), ids=REFUSED.keys())
def test_what_it_cannot_copy_faithfully_is_none(data: bytes) -> None:
    assert strip_metadata(data) is None


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("case", ["baseline with EXIF GPS", "JFIF thumbnail"])
def test_an_orientation_is_kept_as_the_one_exif_tag(orientation: int, case: str) -> None:
    """A photo stored sideways still shows upright: its orientation, and nothing else, comes back."""
    stripped = strip_metadata(CASES[case], orientation=orientation)
    assert stripped is not None
    assert np.array_equal(_decoded(stripped.data), _decoded(CASES[case]))  # IMREAD_UNCHANGED: as stored
    assert not any(secret in stripped.data for secret in SECRETS)
    with Image.open(io.BytesIO(stripped.data)) as reopened:
        assert dict(reopened.getexif()) == ({} if orientation == 1 else {0x0112: orientation})
        if "jfif" in reopened.info:  # the JFIF marker stays first
            assert stripped.data[2:4] == b"\xff\xe0"


@pytest.mark.parametrize("orientation", [0, 9])
def test_an_orientation_outside_exifs_range_is_refused(orientation: int) -> None:
    with pytest.raises(ValueError, match="expected an EXIF orientation in 1..8"):
        strip_metadata(CASES["grey"], orientation=orientation)
