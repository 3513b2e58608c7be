"""XMP packets read safely: defusedxml with DTDs forbidden, so XXE and entity bombs are refused.

XMP never needs a DTD or entities; any packet that declares one is refused outright
rather than parsed with them disabled.
"""

from __future__ import annotations

from xml.etree.ElementTree import Element, ParseError

import defusedxml
import defusedxml.ElementTree as SafeET

from vision.errors import GeoError

DJI_NAMESPACE = "http://www.dji.com/drone-dji/1.0/"
SKYDIO_NAMESPACE = "https://www.skydio.com/drone-skydio/1.0/"
PARROT_NAMESPACE = "http://www.parrot.com/drone-parrot/1.0/"
PIX4D_CAMERA_NAMESPACE = "http://pix4d.com/camera/1.0/"  # Parrot Sequoia, MicaSense, Autel: `Camera:`
SENSEFLY_CAMERA_NAMESPACE = "http://ns.sensefly.com/Camera/1.0/"  # senseFly eBee: also `Camera:`
MICASENSE_NAMESPACE = "http://micasense.com/MicaSense/1.0/"
# The namespaces a drone writes its pose or calibration in; the reader keeps these (by URI:
# two makers both use the prefix `Camera:`, and Autel writes DJI's URI under the prefix `drone:`).
DRONE_NAMESPACES: tuple[str, ...] = (
    DJI_NAMESPACE, SKYDIO_NAMESPACE, PARROT_NAMESPACE, PIX4D_CAMERA_NAMESPACE,
    SENSEFLY_CAMERA_NAMESPACE, MICASENSE_NAMESPACE,
)
MAX_XMP_BYTES = 4 * 1024 * 1024
_XMPMETA_END = b"</x:xmpmeta>"


class XmpError(GeoError):
    """An XMP packet was refused (unsafe constructs), malformed, or too large."""

    def __init__(self, reason: str, detail: str) -> None:
        self.reason = reason  # "refused", "malformed" or "too_large"
        self.detail = detail
        super().__init__(f"XMP {reason}: {detail}")


def parse_xmp(packet: bytes | str) -> Element:
    """The XMP packet's root element; XmpError if it is unsafe, malformed or over 4 MiB."""
    data = packet.encode("utf-8") if isinstance(packet, str) else bytes(packet)
    if len(data) > MAX_XMP_BYTES:
        raise XmpError("too_large", f"expected at most {MAX_XMP_BYTES} bytes, got {len(data)}")
    data = data.strip(b"\x00 \t\r\n")
    # GDAL (and so rasterio-processed multispectral frames) stores a TIFF's XMP tag as
    # "xml:XMP=<packet>", its metadata-domain form: what precedes the first tag is not XML.
    start = data.find(b"<")
    if start > 0:
        data = data[start:]
    try:
        return _parse(data)
    except ParseError as exc:
        # Some writers leave padding or junk after the packet; retry on the packet alone.
        end = data.rfind(_XMPMETA_END)
        if end < 0:
            raise XmpError("malformed", str(exc)) from exc
        try:
            return _parse(data[: end + len(_XMPMETA_END)])
        except ParseError as exc2:
            raise XmpError("malformed", str(exc2)) from exc2


def _parse(data: bytes) -> Element:
    try:
        return SafeET.fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except defusedxml.DefusedXmlException as exc:
        raise XmpError("refused", f"{type(exc).__name__}: {exc}") from exc


def namespace_tags(root: Element, namespace: str = DJI_NAMESPACE) -> dict[str, str]:
    """Every property of `namespace`, written as an attribute or as an element, by local name."""
    return xmp_properties(root, (namespace,)).get(namespace, {})


def xmp_properties(root: Element, namespaces: tuple[str, ...]) -> dict[str, dict[str, str]]:
    """The simple properties of each of `namespaces` (by URI), by local name, written as
    attributes or as elements; a struct's fields as "Struct/Field" (Skydio writes
    CameraOrientationNED and FlightOrientationNED, each with its own Yaw/Pitch/Roll). Lists
    (rdf:Seq/Bag items) are not properties of a namespace and are left out. The first value
    of a repeated property is kept."""
    found: dict[str, dict[str, str]] = {}

    def split(name: str) -> tuple[str, str] | None:
        if not name.startswith("{"):
            return None
        uri, _, local = name[1:].partition("}")
        return (uri, local) if uri in namespaces else None

    def visit(element: Element, struct: str | None) -> None:
        for key, value in element.attrib.items():
            named = split(key)
            if named is not None:
                uri, local = named
                found.setdefault(uri, {}).setdefault(f"{struct}/{local}" if struct else local, value.strip())
        named = split(element.tag) if isinstance(element.tag, str) else None
        if named is not None:
            uri, local = named
            struct = f"{struct}/{local}" if struct else local
            text = (element.text or "").strip()
            if text and len(element) == 0:
                found.setdefault(uri, {}).setdefault(struct, text)
        for child in element:
            visit(child, struct)

    visit(root, None)
    return found


def dji_tags(packet: bytes | str) -> dict[str, str]:
    """The `drone-dji:` properties of an XMP packet (GpsLatitude, RelativeAltitude, Gimbal*...)."""
    return namespace_tags(parse_xmp(packet), DJI_NAMESPACE)


def drone_xmp_tags(packet: bytes | str) -> dict[str, dict[str, str]]:
    """The properties of every drone namespace (DRONE_NAMESPACES) in an XMP packet, by URI."""
    return xmp_properties(parse_xmp(packet), DRONE_NAMESPACES)
