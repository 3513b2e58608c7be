"""XMP parsing: DJI tags in both XMP forms, and attack payloads refused before any expansion."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.vision.geo.conftest import dji_xmp, dms, write_jpeg
from vision.geo.georeference import georeference_image
from vision.geo.phone import PhotographerProjector
from vision.geo.xmp import MAX_XMP_BYTES, XmpError, dji_tags

HEAD = '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
TAIL = "</rdf:RDF></x:xmpmeta>"
BILLION_LAUGHS = (
    '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    + "".join(
        f'<!ENTITY lol{i} "{("&lol" + str(i - 1) + ";") * 10 if i > 1 else "&lol;" * 10}">'
        for i in range(1, 10)
    )
    + f']>{HEAD}<rdf:Description xmlns:drone-dji="http://www.dji.com/drone-dji/1.0/" '
    f'drone-dji:GpsLatitude="&lol9;"/>{TAIL}'
)
XXE_FILE = (
    '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
    f'{HEAD}<rdf:Description xmlns:drone-dji="http://www.dji.com/drone-dji/1.0/">'
    f"<drone-dji:GpsLatitude>&xxe;</drone-dji:GpsLatitude></rdf:Description>{TAIL}"
)
EXTERNAL_DTD = f'<?xml version="1.0"?><!DOCTYPE r SYSTEM "http://127.0.0.1:9/evil.dtd">{HEAD}{TAIL}'
PARAMETER_ENTITY = (
    f'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY % p SYSTEM "file:///etc/passwd"> %p;]>{HEAD}{TAIL}'
)
QUADRATIC = (
    f'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "{"x" * 50_000}">]>{HEAD}'
    f'<rdf:Description xmlns:drone-dji="http://www.dji.com/drone-dji/1.0/" '
    f'drone-dji:Model="{"&a;" * 2000}"/>{TAIL}'
)


@pytest.mark.parametrize(
    "payload",
    [BILLION_LAUGHS, XXE_FILE, EXTERNAL_DTD, PARAMETER_ENTITY, QUADRATIC],
    ids=["billion_laughs", "xxe_file", "external_dtd", "parameter_entity", "quadratic"],
)
def test_attack_payloads_are_refused(payload: str) -> None:
    with pytest.raises(XmpError) as info:
        dji_tags(payload.encode())
    assert info.value.reason == "refused"


def test_oversized_packet_is_refused() -> None:
    with pytest.raises(XmpError) as info:
        dji_tags(b" " * (MAX_XMP_BYTES + 1))
    assert info.value.reason == "too_large"


@pytest.mark.parametrize("packet", [b"<x:xmpmeta", b"not xml at all", b"<a><b></a>"])
def test_malformed_packets(packet: bytes) -> None:
    with pytest.raises(XmpError) as info:
        dji_tags(packet)
    assert info.value.reason == "malformed"


def test_dji_tags_as_attributes_and_elements() -> None:
    attr = dji_tags(dji_xmp(GpsLatitude="31.5", RelativeAltitude="+100.00"))
    assert attr == {"GpsLatitude": "31.5", "RelativeAltitude": "+100.00"}
    element = dji_tags(
        (
            f'{HEAD}<rdf:Description xmlns:drone-dji="http://www.dji.com/drone-dji/1.0/">'
            f"<drone-dji:GimbalPitchDegree> -90.0 </drone-dji:GimbalPitchDegree>"
            f'<other:X xmlns:other="urn:x">1</other:X></rdf:Description>{TAIL}'
        ).encode()
    )
    assert element == {"GimbalPitchDegree": "-90.0"}


def test_trailing_junk_after_the_packet_is_tolerated() -> None:
    assert dji_tags(dji_xmp(GpsLatitude="1.5") + b"\x00\x00garbage") == {"GpsLatitude": "1.5"}


def test_refused_xmp_in_a_jpeg_is_a_reason_and_exif_gps_still_counts(tmp_path: Path) -> None:
    gps = {1: "N", 2: dms(31.5), 3: "E", 4: dms(117.5)}
    path = write_jpeg(tmp_path / "attack.jpg", gps=gps, xmp=XXE_FILE.encode())
    ref = georeference_image(path)
    assert any("XMP refused" in r for r in ref.reasons), ref.reasons
    assert isinstance(ref.projector, PhotographerProjector)
