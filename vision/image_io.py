"""Load images from files or bytes into BGR uint8 arrays, refusing bad input cleanly.

Every failure is an `ImageLoadError` naming the file and one reason from
`ImageLoadError.REASONS`, so a batch run can report it and carry on.

How a file is read:
1. Size checks on the raw bytes (`empty`, `too_large`).
2. Pillow opens the header only (`Image.open` is lazy) and is restricted to the allow-list,
   so no other Pillow parser ever sees untrusted bytes. The format comes from the header,
   never from the file extension.
3. The pixel cap is checked on the header size, before any pixels are decoded
   (decompression bombs).
4. Decoding: baseline RGB/greyscale JPEG goes through `cv2.imdecode`, which measured
   1.3x (1920x1080) to 2x (4000x3000) faster than Pillow + RGB->BGR on this project's CPU
   (benchmark in the commit that added this module). Everything else (PNG, TIFF, WEBP, BMP,
   CMYK JPEG) is decoded by Pillow, which handles every mode. Both refuse truncated data:
   Pillow keeps `ImageFile.LOAD_TRUNCATED_IMAGES` False and OpenCV 4.14's imdecode
   returns None for a JPEG cut short (tests/vision/test_image_io.py checks both).
5. The EXIF orientation is applied with the same transposes as `ImageOps.exif_transpose`.
6. The header's metadata (EXIF, GPS, XMP, orientation) is read in the same pass
   (`vision.sources.read_metadata`) and the source kind follows from it, so no later stage
   opens the file again; the content hash is taken from the same bytes.
7. Decode caps per source kind (`decode_caps`, e.g. a citizen's photo, which the model sees
   at its input size and is never tiled): a JPEG over the cap is decoded reduced by 2, 4 or 8
   in the DCT (OpenCV's IMREAD_REDUCED_*, Pillow's draft mode), which is faster and never
   allocates the full-size image; formats that cannot be decoded reduced (PNG, TIFF, WEBP,
   BMP) are refused over the cap before a pixel is decoded. A 9990x9990 PNG costs ~1 GB to
   decode (Pillow's 4-byte buffer, the array copy, the BGR copy); refused by a 12 MPx cap it
   costs nothing. Only a JPEG's kind can be reduced this way: its XMP (the drone pose, whose
   geometry is in stored pixels) is in the header, so a drone photo is never reduced.
8. Decode sizes per source kind (`decode_sizes`, the long side the model sees an image of that
   kind at: a citizen's photo is never tiled, so the model input): a JPEG at least twice that
   size is decoded reduced by the largest of 2, 4, 8 that keeps its long side at or above it.
   The model would shrink the full-size pixels anyway; the reduced decode skips most of the
   inverse DCT and the colour conversion (a 1600x1200 photo for a 320 px input: reduced by 4).
   `LoadedImage.source_wh` then gives the full upright size, which detections are mapped back
   to (vision.pipeline), so boxes stay in source-image pixels.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
from PIL import Image, UnidentifiedImageError

from vision.errors import ImageLoadError
from vision.sources import ImageMetadata, SourceKind, check_source_kind, read_metadata

# Pillow format names we decode. Pillow's JPEG opener also returns "MPO" for a JPEG with the
# multi-picture extension (most phone and DJI photos); its first frame is an ordinary JPEG
# and we report it as "JPEG".
ALLOWED_FORMATS: tuple[str, ...] = ("JPEG", "PNG", "TIFF", "WEBP", "BMP")
DEFAULT_MAX_PIXELS = 100_000_000
# The reductions a JPEG decoder does in the DCT, and OpenCV's flags for them.
_JPEG_REDUCTIONS: tuple[tuple[int, int], ...] = (
    (1, cv2.IMREAD_COLOR), (2, cv2.IMREAD_REDUCED_COLOR_2), (4, cv2.IMREAD_REDUCED_COLOR_4),
    (8, cv2.IMREAD_REDUCED_COLOR_8),
)

_BYTES_NAME = "<bytes>"

# Magic numbers of the allowed formats: bytes that start like one of these but that Pillow
# cannot open are "corrupt"; anything else is "unsupported_format".
_ALLOWED_MAGIC: tuple[bytes, ...] = (
    b"\xff\xd8\xff",            # JPEG / MPO
    b"\x89PNG\r\n\x1a\n",       # PNG
    b"II*\x00", b"MM\x00*",     # TIFF (little / big endian)
    b"II+\x00", b"MM\x00+",     # BigTIFF
    b"BM",                      # BMP
)
# Common formats we do not take, so the message can say what the file is.
_KNOWN_OTHER_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"GIF87a", "GIF"), (b"GIF89a", "GIF"), (b"%PDF", "PDF"), (b"\x00\x00\x00\x0cjP  ", "JPEG 2000"),
    (b"8BPS", "Photoshop PSD"), (b"PK\x03\x04", "ZIP archive"), (b"<svg", "SVG"), (b"<?xml", "XML/SVG"),
)
_HEIF_BRANDS = (b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1", b"avif")


@dataclass(frozen=True)
class ImageProbe:
    """What the header says, without decoding pixels. `resolution_wh` is after orientation."""

    name: str
    format: str
    resolution_wh: tuple[int, int]
    orientation: int
    metadata: ImageMetadata
    kind: SourceKind


@dataclass(frozen=True)
class LoadedImage:
    """A decoded image, upright.

    - `pixels`: (H, W, 3) BGR uint8, C-contiguous.
    - `name`: file path or caller-given label, used in error messages and results.
    - `format`: Pillow's name of the real format ("JPEG", "PNG", "TIFF", "WEBP", "BMP").
    - `resolution_wh`: (W, H) of `pixels`.
    - `metadata`: everything the header said (vision.sources.ImageMetadata), read in the
      same pass. Its orientation describes the file, not `pixels`, which is already upright.
    - `kind`: what the image is (vision.sources.SourceKind), given by the caller or sniffed
      from the metadata (a drone maker's XMP namespace: drone).
    - `content_hash`: sha256 of the encoded bytes (the ledger's identity of an image); empty
      for images made from pixels, which have no encoded form.
    - `source_wh`: the full upright (W, H) when `pixels` were decoded reduced (module
      docstring, 7 and 8), which detections are reported in; None when `pixels` are full size.
    """

    pixels: npt.NDArray[np.uint8]
    name: str
    format: str
    resolution_wh: tuple[int, int]
    metadata: ImageMetadata
    kind: SourceKind = "unknown"
    content_hash: str = ""
    source_wh: tuple[int, int] | None = None

    @property
    def full_wh(self) -> tuple[int, int]:
        """(W, H) of the image at full size, upright: the pixels detections refer to."""
        return self.source_wh or self.resolution_wh


# -- public API -----------------------------------------------------------------------------


def probe_image(source: str | Path | bytes, *, name: str | None = None,
                max_bytes: int | None = None, kind: SourceKind | None = None,
                default_kind: SourceKind = "unknown") -> ImageProbe:
    """Format, size, orientation, metadata and kind from the header only, without decoding
    pixels; raises ImageLoadError like load_image. `kind`/`default_kind` as for load_image."""
    data, label = _read_source(source, name, max_bytes)
    with _open_header(data, label) as im:
        fmt = _public_format(im.format)
        metadata = _header_metadata(im, fmt)
    kind_of = _kind(metadata, kind, default_kind)
    return ImageProbe(label, fmt, metadata.upright_wh, metadata.orientation, metadata, kind_of)


def load_image(source: str | Path | bytes, *, name: str | None = None,
               max_pixels: int = DEFAULT_MAX_PIXELS, max_bytes: int | None = None,
               kind: SourceKind | None = None, default_kind: SourceKind = "unknown",
               decode_caps: Mapping[SourceKind, int] | None = None,
               decode_sizes: Mapping[SourceKind, int] | None = None,
               content_hash: str | None = None) -> LoadedImage:
    """Decode a file path or encoded bytes into an upright BGR uint8 image with its metadata.

    `kind` says what the image is; None sniffs it from the metadata: a drone maker's XMP
    namespace (DJI, Skydio, Parrot, Pix4D, senseFly, MicaSense) means "drone", anything else
    `default_kind` (e.g. "citizen" for uploads).

    `decode_caps`: the most pixels an image of a kind is decoded to (module docstring, 7):
    a JPEG over it comes out reduced by 2, 4 or 8 (its `resolution_wh` says so, its
    metadata keeps the stored size), any other format over it is refused.

    `decode_sizes`: the long side an image of a kind is needed at (module docstring, 8): a
    JPEG is decoded reduced as far as it stays at least that; the cap wins when it asks more.

    `content_hash`: the sha256 hex digest of these very bytes when the caller has taken it
    already (a service looks an upload up by it before decoding): hashing a phone photo again
    costs ~1-2 ms of CPU per upload. None: taken here.

    Raises ImageLoadError(reason=not_found | empty | too_large | unsupported_format |
    too_many_pixels | corrupt).
    """
    if max_pixels < 1:
        raise ValueError(f"expected max_pixels >= 1, got {max_pixels}")
    if kind is not None:
        check_source_kind(kind)
    check_source_kind(default_kind)
    data, label = _read_source(source, name, max_bytes)
    with _open_header(data, label) as im:
        width, height = im.size
        if width * height > max_pixels:
            raise ImageLoadError(label, "too_many_pixels",
                                 f"{width}x{height} = {width * height:,} pixels, limit is {max_pixels:,}")
        fmt = _public_format(im.format)
        header: ImageMetadata | None = None
        cap = size = None
        if decode_caps or decode_sizes:
            # The kind decides the cap; a JPEG's metadata is all in its header (and must be
            # read before Pillow's draft mode changes im.size).
            header = _header_metadata(im, fmt)
            kind_of = _kind(header, kind, default_kind)
            cap = (decode_caps or {}).get(kind_of)
            size = (decode_sizes or {}).get(kind_of)
        scale = max(_reduction(label, fmt, width, height, cap), _fit(fmt, width, height, size))
        pixels: np.ndarray | None = None
        if fmt == "JPEG" and im.mode in ("RGB", "L"):
            flags = dict(_JPEG_REDUCTIONS)[scale] | cv2.IMREAD_IGNORE_ORIENTATION
            pixels = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
            if pixels is not None and pixels.shape[:2] != (-(-height // scale), -(-width // scale)):
                pixels = None  # a first frame cv2 read differently from the header: let Pillow decide
        if pixels is None:
            # Pillow also gives the specific reason when OpenCV refused a JPEG.
            if scale > 1:
                im.draft(im.mode, (width // scale, height // scale))  # Pillow floors: size // request
            pixels = _decode_with_pillow(im, label)
        # Metadata only after decoding: for PNG, Pillow's getexif() may load the pixels itself
        # and a failure there would leave a half-loaded image behind.
        metadata = header if header is not None and fmt == "JPEG" else read_metadata(im, fmt)
    pixels = _apply_orientation(pixels, metadata.orientation)
    resolution_wh = (pixels.shape[1], pixels.shape[0])
    return LoadedImage(pixels=pixels, name=label, format=fmt, resolution_wh=resolution_wh,
                       metadata=metadata, kind=_kind(metadata, kind, default_kind),
                       content_hash=content_hash or hashlib.sha256(data).hexdigest(),
                       source_wh=metadata.upright_wh if resolution_wh != metadata.upright_wh else None)


def _reduction(label: str, fmt: str, width: int, height: int, cap: int | None) -> int:
    """1 (full size), or the least JPEG reduction that brings the image under `cap` pixels;
    ImageLoadError for what no allowed decoding brings under it."""
    if cap is None or width * height <= cap:
        return 1
    if fmt == "JPEG":
        for scale, _flag in _JPEG_REDUCTIONS[1:]:
            if -(-width // scale) * -(-height // scale) <= cap:
                return scale
    how = "even decoded at 1/8" if fmt == "JPEG" else f"a {fmt} cannot be decoded reduced, and"
    raise ImageLoadError(label, "too_many_pixels",
                         f"{width}x{height} = {width * height:,} pixels: {how} it exceeds this "
                         f"source's limit of {cap:,} pixels")


def _fit(fmt: str, width: int, height: int, size: int | None) -> int:
    """The largest JPEG reduction that keeps the long side at least `size` (1: none)."""
    if size is None or fmt != "JPEG":
        return 1
    fitting = [scale for scale, _flag in _JPEG_REDUCTIONS if -(-max(width, height) // scale) >= size]
    return max(fitting, default=1)


def _kind(metadata: ImageMetadata, kind: SourceKind | None, default_kind: SourceKind) -> SourceKind:
    return kind if kind is not None else metadata.kind(default_kind)


# -- reading --------------------------------------------------------------------------------


def _read_source(source: str | Path | bytes, name: str | None, max_bytes: int | None) -> tuple[bytes, str]:
    if isinstance(source, (bytes, bytearray, memoryview)):
        label = name or _BYTES_NAME
        data = bytes(source)
        _check_size(len(data), label, max_bytes)
        return data, label
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError(f"expected a path or bytes, got {type(source).__name__}")
    path = Path(source)
    label = name or str(path)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise ImageLoadError(label, "not_found", "no such file") from None
    except OSError as exc:
        raise ImageLoadError(label, "not_found", f"cannot stat: {exc.strerror or exc}") from exc
    if path.is_dir():
        raise ImageLoadError(label, "not_found", "is a directory, not an image file")
    _check_size(size, label, max_bytes)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ImageLoadError(label, "not_found", f"cannot read: {exc.strerror or exc}") from exc
    _check_size(len(data), label, max_bytes)  # the file may have changed since stat
    return data, label


def _check_size(size: int, label: str, max_bytes: int | None) -> None:
    if size == 0:
        raise ImageLoadError(label, "empty", "0 bytes")
    if max_bytes is not None and size > max_bytes:
        raise ImageLoadError(label, "too_large", f"{size:,} bytes, limit is {max_bytes:,}")


def _open_header(data: bytes, label: str) -> Image.Image:
    """Pillow image with the header parsed and no pixels decoded."""
    try:
        return Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
    except Image.DecompressionBombError as exc:
        # Pillow's own hard limit (2 x Image.MAX_IMAGE_PIXELS), reached inside open().
        raise ImageLoadError(label, "too_many_pixels", str(exc)) from exc
    except Image.DecompressionBombWarning as exc:
        # Only an exception when the process runs with warnings as errors (-W error).
        raise ImageLoadError(label, "too_many_pixels", str(exc)) from exc
    except UnidentifiedImageError as exc:
        raise _unidentified(data, label) from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageLoadError(label, "corrupt", f"cannot read the header: {exc}") from exc


def _unidentified(data: bytes, label: str) -> ImageLoadError:
    allowed = "JPEG, PNG, TIFF, WEBP or BMP"
    if data.startswith(_ALLOWED_MAGIC) or (data[:4] == b"RIFF" and data[8:12] == b"WEBP"):
        return ImageLoadError(label, "corrupt", "starts like an allowed image format but its header "
                                                "cannot be parsed")
    if data[4:8] == b"ftyp" and data[8:12] in _HEIF_BRANDS:
        return ImageLoadError(label, "unsupported_format",
                              f"HEIC/HEIF/AVIF is not supported; convert it to JPEG (expected {allowed})")
    for magic, what in _KNOWN_OTHER_MAGIC:
        if data.startswith(magic):
            return ImageLoadError(label, "unsupported_format", f"expected {allowed}, got {what}")
    return ImageLoadError(label, "unsupported_format",
                          f"expected {allowed}, got unrecognised data starting {data[:8]!r}")


def _public_format(pillow_format: str | None) -> str:
    return "JPEG" if pillow_format == "MPO" else str(pillow_format)


def _header_metadata(im: Image.Image, fmt: str) -> ImageMetadata:
    """Metadata without decoding: a PNG's eXIf chunk after the pixel data is only found by
    decoding, so a probe takes such a PNG as having no EXIF."""
    return read_metadata(im, fmt, with_exif=not (im.format == "PNG" and "exif" not in im.info))


# -- decoding -------------------------------------------------------------------------------


def _decode_with_pillow(im: Image.Image, label: str) -> np.ndarray:
    try:
        im.load()
    except Image.DecompressionBombError as exc:
        raise ImageLoadError(label, "too_many_pixels", str(exc)) from exc
    except (OSError, SyntaxError, ValueError, EOFError, MemoryError) as exc:
        raise ImageLoadError(label, "corrupt", f"cannot decode: {exc}") from exc
    return _to_bgr(im)


def _to_bgr(im: Image.Image) -> np.ndarray:  # cv2 results: typed as any dtype
    mode = im.mode
    if mode == "RGB":
        return cv2.cvtColor(np.asarray(im), cv2.COLOR_RGB2BGR)
    if mode == "L":
        return cv2.cvtColor(np.asarray(im), cv2.COLOR_GRAY2BGR)
    if mode.startswith("I;16") or mode == "I":
        # 16-bit greyscale: keep the top 8 bits (Pillow's convert("L") would clip instead).
        # Same rule as cv2.imread (>> 8). Mode "I" (32-bit) is taken as 16-bit data when any
        # value exceeds 255, else as 8-bit values stored wide.
        grey = np.clip(np.asarray(im), 0, 65535).astype(np.uint16)
        wide = mode != "I" or int(grey.max(initial=0)) > 255
        grey8 = (grey >> 8 if wide else grey).astype(np.uint8)
        return cv2.cvtColor(grey8, cv2.COLOR_GRAY2BGR)
    if mode == "F":
        values = np.asarray(im)
        scale = 255.0 if np.nanmax(values, initial=0.0) <= 1.0 else 1.0
        grey8 = np.clip(np.nan_to_num(values) * scale, 0, 255).astype(np.uint8)
        return cv2.cvtColor(grey8, cv2.COLOR_GRAY2BGR)
    # Palette, 1-bit, alpha (dropped, not composited), CMYK, YCbCr, LAB, HSV ...
    return cv2.cvtColor(np.asarray(im.convert("RGB")), cv2.COLOR_RGB2BGR)


def _apply_orientation(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """The transposes of PIL.ImageOps.exif_transpose, on a BGR array; result is contiguous."""
    if orientation == 2:
        pixels = cv2.flip(pixels, 1)
    elif orientation == 3:
        pixels = cv2.rotate(pixels, cv2.ROTATE_180)
    elif orientation == 4:
        pixels = cv2.flip(pixels, 0)
    elif orientation == 5:
        pixels = cv2.transpose(pixels)
    elif orientation == 6:
        pixels = cv2.rotate(pixels, cv2.ROTATE_90_CLOCKWISE)
    elif orientation == 7:
        pixels = cv2.rotate(cv2.transpose(pixels), cv2.ROTATE_180)
    elif orientation == 8:
        pixels = cv2.rotate(pixels, cv2.ROTATE_90_COUNTERCLOCKWISE)
    return np.ascontiguousarray(pixels)
