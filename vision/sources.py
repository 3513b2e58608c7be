"""What an image is and what its file says about it: the source kind and the metadata, read once.

Every image enters the core through `vision.image_io.load_image` (pixels) or
`vision.image_io.probe_image` (header only). Both open the file's header once with Pillow
and keep everything later stages ask about in one `ImageMetadata`: the stored size and
format, the EXIF orientation, the EXIF tags (IFD0, the Exif IFD and the GPS IFD, copied out
while the file is open, so nothing re-opens or seeks a closed file later), and the XMP
packet with every drone maker's namespace (`drone-dji:`, `drone-skydio:`, `Camera:`...)
parsed once. Geotagging, the tiling policy, the service's photo route and survey jobs and the
CLI all read these fields; none of them opens the file again to learn more about it.

`SourceKind` is the one word for what an image is, shared by every layer:
- citizen: a phone photo (随手拍), the pile close up, placed by EXIF GPS or by hand;
- drone: a drone photo, a camera pose in its XMP, objects small and far;
- camera: a fixed or PTZ watchtower camera (高空瞭望), placed by its calibrated preset;
- orthomosaic: a georeferenced raster (GeoTIFF) cut into windows;
- unknown: nothing says which (the tiling policy is then conservative).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal, get_args

from PIL import Image

SourceKind = Literal["citizen", "drone", "camera", "orthomosaic", "unknown"]
SOURCE_KINDS: tuple[SourceKind, ...] = get_args(SourceKind)

# TIFF/EXIF tag numbers, defined here only.
MAKE_TAG, MODEL_TAG, ORIENTATION_TAG = 0x010F, 0x0110, 0x0112
XMP_TIFF_TAG = 700  # TIFF keeps its XMP packet in a tag of its own
EXIF_IFD_TAG, GPS_IFD_TAG = 0x8769, 0x8825

_EMPTY: Mapping[int, Any] = MappingProxyType({})
_NO_TAGS: Mapping[str, str] = MappingProxyType({})
_EMPTY_NS: Mapping[str, Mapping[str, str]] = MappingProxyType({})


def check_source_kind(kind: str) -> SourceKind:
    """`kind` when it is one of SOURCE_KINDS; ValueError naming the valid ones otherwise."""
    if kind not in SOURCE_KINDS:
        raise ValueError(f"expected a source kind, one of {SOURCE_KINDS}, got {kind!r}")
    return kind


@dataclass(frozen=True)
class ExifTags:
    """EXIF as plain values: IFD0 tags by number, and the Exif and GPS sub-IFDs.

    Shaped like Pillow's `Image.Exif` where the geo readers use it (`get`, `get_ifd`), but
    copied out of the file while it was open: a value here never needs the file again.
    """

    ifd0: Mapping[int, Any] = field(default_factory=dict)
    ifds: Mapping[int, Mapping[int, Any]] = field(default_factory=dict)

    def get(self, tag: int, default: Any = None) -> Any:
        return self.ifd0.get(tag, default)

    def get_ifd(self, tag: int) -> Mapping[int, Any]:
        return self.ifds.get(tag, _EMPTY)

    def text(self, tag: int) -> str | None:
        """An ASCII tag as stripped text, None when absent or blank."""
        value: Any = self.ifd0.get(tag)
        if isinstance(value, bytes):
            value = value.decode("ascii", errors="replace")
        return value.strip("\x00 ") if isinstance(value, str) and value.strip("\x00 ") else None

    def __len__(self) -> int:
        return len(self.ifd0) + sum(len(v) for v in self.ifds.values())


@dataclass(frozen=True)
class ImageMetadata:
    """What an image file's header says, read once.

    - `stored_wh`: (W, H) as the file stores the pixels, before the EXIF orientation.
    - `orientation`: the EXIF orientation, 1..8 (1 when absent or damaged).
    - `dji`: the XMP packet's `drone-dji:` properties (empty when none); `xmp_problem` says
      why a packet that was present could not be used (unsafe, malformed, too large).
    - `drone_xmp`: the properties of every drone maker's namespace in the packet (DJI, Skydio,
      Parrot, Pix4D/senseFly `Camera:`, MicaSense), by namespace URI (vision.geo.drone_metadata
      reads the pose from them).
    """

    stored_wh: tuple[int, int]
    format: str
    orientation: int = 1
    exif: ExifTags = field(default_factory=ExifTags)
    xmp: bytes | None = None
    dji: Mapping[str, str] = field(default_factory=dict)
    xmp_problem: str | None = None
    drone_xmp: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    @property
    def make(self) -> str | None:
        return self.exif.text(MAKE_TAG)

    @property
    def model(self) -> str | None:
        return self.exif.text(MODEL_TAG)

    @property
    def upright_wh(self) -> tuple[int, int]:
        """(W, H) after the EXIF orientation: the size of the pixels detections refer to."""
        width, height = self.stored_wh
        return (height, width) if self.orientation in (5, 6, 7, 8) else (width, height)

    def kind(self, default: SourceKind = "unknown") -> SourceKind:
        """"drone" when the XMP carries a drone maker's namespace (DJI, Skydio, Parrot, Pix4D or
        senseFly camera, MicaSense), else `default`."""
        return "drone" if self.dji or self.drone_xmp else check_source_kind(default)


# -- reading (called with the Pillow image open; see vision.image_io) -------------------------

_TAG_ERRORS = (OSError, SyntaxError, ValueError, TypeError, KeyError, AttributeError, IndexError)


def read_metadata(im: Image.Image, format_name: str, *, with_exif: bool = True) -> ImageMetadata:
    """Everything the header of an open Pillow image says; damaged parts are left empty.

    For a PNG whose eXIf chunk follows the pixel data, Pillow finds it only after decoding:
    call this after `im.load()` when the pixels are wanted anyway, or pass with_exif=False
    to read the rest without decoding.
    """
    exif = _exif_tags(im) if with_exif else ExifTags()
    orientation = exif.get(ORIENTATION_TAG, 1)
    if not (isinstance(orientation, int) and 1 <= orientation <= 8):
        orientation = 1  # a damaged tag should not cost the photo; treat it as upright
    xmp = _xmp_packet(im)
    drone, dji, problem = _drone_tags(xmp)
    return ImageMetadata((int(im.width), int(im.height)), format_name, orientation, exif, xmp, dji, problem,
                         drone)


def _drone_tags(
    xmp: bytes | None,
) -> tuple[Mapping[str, Mapping[str, str]], Mapping[str, str], str | None]:
    """The packet's drone namespaces' properties (by URI), its `drone-dji:` ones, and why a
    packet that is there was refused."""
    if not xmp:
        return _EMPTY_NS, _NO_TAGS, None
    from vision.geo.xmp import DJI_NAMESPACE, XmpError, drone_xmp_tags  # defusedxml; only with a packet

    try:
        tags = drone_xmp_tags(xmp)
    except XmpError as exc:
        return _EMPTY_NS, _NO_TAGS, str(exc)
    drone = MappingProxyType({uri: MappingProxyType(props) for uri, props in tags.items()})
    return drone, drone.get(DJI_NAMESPACE, _NO_TAGS), None


def _exif_tags(im: Image.Image) -> ExifTags:
    try:
        exif = im.getexif()
        ifd0 = dict(exif.items())
    except _TAG_ERRORS:
        return ExifTags()
    ifds: dict[int, Mapping[int, Any]] = {}
    for tag in (EXIF_IFD_TAG, GPS_IFD_TAG):
        try:
            ifd = exif.get_ifd(tag)
        except _TAG_ERRORS:
            continue  # one damaged sub-IFD must not hide the rest
        if ifd:
            ifds[tag] = MappingProxyType(dict(ifd))
    return ExifTags(MappingProxyType(ifd0), MappingProxyType(ifds))


def _xmp_packet(im: Image.Image) -> bytes | None:
    xmp: Any = im.info.get("xmp") or im.info.get("XML:com.adobe.xmp")  # JPEG/WEBP, PNG iTXt
    if xmp is None and hasattr(im, "tag_v2"):
        try:
            xmp = im.tag_v2.get(XMP_TIFF_TAG)
        except _TAG_ERRORS:
            xmp = None
    if isinstance(xmp, str):
        xmp = xmp.encode("utf-8")
    if isinstance(xmp, tuple):  # some TIFF writers store the packet as a tuple of byte values
        try:
            xmp = bytes(xmp)
        except (TypeError, ValueError):
            xmp = None
    return bytes(xmp) if isinstance(xmp, (bytes, bytearray)) and xmp else None
