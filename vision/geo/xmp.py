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
    prefix = "{" + namespace + "}"
    tags: dict[str, str] = {}
    for element in root.iter():
        for key, value in element.attrib.items():
            if key.startswith(prefix):
                tags[key[len(prefix) :]] = value.strip()
        if (
            isinstance(element.tag, str)
            and element.tag.startswith(prefix)
            and element.text
            and element.text.strip()
        ):
            tags[element.tag[len(prefix) :]] = element.text.strip()
    return tags


def dji_tags(packet: bytes | str) -> dict[str, str]:
    """The `drone-dji:` properties of an XMP packet (GpsLatitude, RelativeAltitude, Gimbal*...)."""
    return namespace_tags(parse_xmp(packet), DJI_NAMESPACE)
