"""Image size, EXIF and the raw XMP packet of an image file, read without decoding pixels."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

from vision.errors import ImageLoadError

MAKE, MODEL, ORIENTATION = 0x010F, 0x0110, 0x0112
XMP_TIFF_TAG = 700


@dataclass(frozen=True)
class ImageMetadata:
    path: str
    width: int
    height: int
    format: str | None
    exif: Image.Exif
    xmp: bytes | None

    def exif_text(self, tag: int) -> str | None:
        value: Any = self.exif.get(tag)
        if isinstance(value, bytes):
            value = value.decode("ascii", errors="replace")
        return value.strip("\x00 ") if isinstance(value, str) and value.strip("\x00 ") else None

    @property
    def make(self) -> str | None:
        return self.exif_text(MAKE)

    @property
    def model(self) -> str | None:
        return self.exif_text(MODEL)

    @property
    def orientation(self) -> int:
        value = self.exif.get(ORIENTATION, 1)
        return value if isinstance(value, int) else 1


def read_image_metadata(path: str | Path) -> ImageMetadata:
    """Header-only read; raises ImageLoadError with a reason a caller can report per file."""
    path = Path(path)
    if not path.is_file():
        raise ImageLoadError(str(path), "not_found", "no such file")
    if path.stat().st_size == 0:
        raise ImageLoadError(str(path), "empty", "the file has zero bytes")
    try:
        with Image.open(path) as im:
            exif = im.getexif()
            xmp = im.info.get("xmp")
            if xmp is None and hasattr(im, "tag_v2"):
                xmp = im.tag_v2.get(XMP_TIFF_TAG)
            if isinstance(xmp, str):
                xmp = xmp.encode("utf-8")
            return ImageMetadata(
                str(path), im.width, im.height, im.format, exif, bytes(xmp) if xmp is not None else None
            )
    except UnidentifiedImageError as exc:
        raise ImageLoadError(str(path), "unsupported_format", str(exc)) from exc
    except Image.DecompressionBombError as exc:
        raise ImageLoadError(str(path), "too_many_pixels", str(exc)) from exc
    except OSError as exc:
        raise ImageLoadError(str(path), "corrupt", str(exc)) from exc
