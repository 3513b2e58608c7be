"""Phone EXIF GPS written with Pillow and read back; bogus fixes give no location and a reason."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL.TiffImagePlugin import IFDRational

from tests.vision.geo.conftest import dms, write_jpeg
from vision.geo.exif_gps import PhotoGps, parse_gps_ifd, parse_manual_lonlat
from vision.geo.georeference import georeference_image, locate_points
from vision.geo.phone import PhonePositionPolicy, PhotographerProjector
from vision.geo.types import GroundPosition, NoLocation

LAT, LON = 31.8206, 117.2272
VALID = {1: "N", 2: dms(LAT), 3: "E", 4: dms(LON)}


def test_exif_gps_round_trip(tmp_path: Path) -> None:
    gps = {
        **VALID,
        5: 0,
        6: IFDRational(4215, 100),
        16: "T",
        17: IFDRational(2705, 10),
        29: "2024:05:06",
        7: (IFDRational(3, 1), IFDRational(4, 1), IFDRational(5, 1)),
        31: IFDRational(8, 1),
    }
    path = write_jpeg(tmp_path / "p.jpg", gps=gps)
    ref = georeference_image(path)
    assert isinstance(ref.projector, PhotographerProjector)
    fix = ref.projector.gps
    assert fix is not None
    assert (fix.lat, fix.lon) == pytest.approx((LAT, LON), abs=1e-7)
    assert fix.altitude_m == pytest.approx(42.15)
    assert fix.direction_deg == pytest.approx(270.5) and fix.direction_ref == "T"
    assert fix.timestamp is not None and fix.timestamp.isoformat() == "2024-05-06T03:04:05+00:00"
    # GPSHPositioningError 8 m + 10 m to the subject.
    assert ref.projector.uncertainty_m == pytest.approx(18.0)
    assert ref.captured_at == fix.timestamp
    points = locate_points(ref)
    assert [p["pixel"] for p in points] == [[32.0, 24.0], [0.0, 0.0], [64.0, 0.0], [64.0, 48.0], [0.0, 48.0]]
    assert all(p["lon"] == pytest.approx(LON, abs=1e-7) and p["uncertainty_m"] == 18.0 for p in points)


@pytest.mark.parametrize(
    ("gps", "expected"),
    [
        (VALID, None),
        ({**VALID, 1: "S", 3: "W"}, (-LON, -LAT)),
        ({}, "no GPS"),
        ({1: "N", 3: "E"}, "no GPSLatitude"),
        ({**VALID, 1: ""}, "reference"),
        ({2: dms(LAT), 3: "E", 4: dms(LON)}, "reference"),
        ({**VALID, 1: "X"}, "must be N/S"),
        ({**VALID, 2: (IFDRational(0, 0), IFDRational(0, 0), IFDRational(0, 0))}, "not a finite"),
        ({**VALID, 4: (IFDRational(117, 1), IFDRational(0, 0), IFDRational(1, 1))}, "not a finite"),
        ({**VALID, 2: dms(123.0)}, "out of range"),
        ({**VALID, 4: dms(181.5)}, "out of range"),
        ({**VALID, 2: (IFDRational(31, 1), IFDRational(75, 1), IFDRational(0, 1))}, "below 60"),
        ({**VALID, 2: (0.0, 0.0, 0.0), 4: (0.0, 0.0, 0.0)}, "Null Island"),
        ({**VALID, 2: (31.0, 1.0, 2.0, 3.0)}, "1-3 values"),
    ],
)
def test_bogus_gps_table(
    tmp_path: Path, gps: dict[int, Any], expected: str | tuple[float, float] | None
) -> None:
    """Each case goes through a real JPEG written by Pillow, not just the parser."""
    path = write_jpeg(tmp_path / "p.jpg", gps=gps or None)
    ref = georeference_image(path)
    if expected is None or isinstance(expected, tuple):
        lon, lat = (LON, LAT) if expected is None else expected
        assert isinstance(ref.projector, PhotographerProjector)
        assert (ref.projector.lon, ref.projector.lat) == pytest.approx((lon, lat), abs=1e-7)
        assert ref.projector.uncertainty_m == 30.0  # no positioning error given: the default radius
    else:
        assert ref.projector is None
        assert any(expected in r for r in ref.reasons), ref.reasons
        points = locate_points(ref)
        assert all(p["location"] is None and expected in p["reason"] for p in points)


@pytest.mark.parametrize("value", [(float("nan"), 0.0, 0.0), (float("inf"), 1.0, 2.0), ("31", "x", None)])
def test_parse_gps_ifd_refuses_values_pillow_cannot_write(value: tuple[Any, ...]) -> None:
    # A JPEG cannot carry a float NaN, but other readers (and hand-built dicts) can.
    result = parse_gps_ifd({**VALID, 2: value})
    assert isinstance(result, NoLocation) and "not a finite" in result.reason


def test_parse_gps_ifd_never_returns_null_island() -> None:
    result = parse_gps_ifd({1: "N", 2: (0, 0, 0), 3: "E", 4: (0, 0, 0)})
    assert isinstance(result, NoLocation)
    ok = parse_gps_ifd({1: "N", 2: (0, 0, 1), 3: "E", 4: (0, 0, 0)})  # one arc-second north: real
    assert isinstance(ok, PhotoGps) and ok.lat == pytest.approx(1 / 3600)


def test_manual_lonlat_overrides_exif(tmp_path: Path) -> None:
    path = write_jpeg(tmp_path / "p.jpg", gps=VALID)
    ref = georeference_image(path, manual_lonlat=(118.5, 32.25))
    assert isinstance(ref.projector, PhotographerProjector) and ref.projector.origin == "manual"
    pos = ref.projector.locate(np.array([[1.0, 1.0]]))[0]
    assert isinstance(pos, GroundPosition)
    assert (pos.lon, pos.lat, pos.uncertainty_m) == (118.5, 32.25, PhonePositionPolicy().manual_uncertainty_m)
    assert any("overrides" in r for r in ref.reasons)
    # And without any EXIF at all.
    bare = georeference_image(write_jpeg(tmp_path / "bare.jpg"), manual_lonlat=(118.5, 32.25))
    assert isinstance(bare.projector, PhotographerProjector)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("117.2272,31.8206", (117.2272, 31.8206)),
        (" -70.5 , -33.4 ", (-70.5, -33.4)),
        ("31.8206", ValueError),
        ("a,b", ValueError),
        ("200,10", ValueError),
        ("10,95", ValueError),
        ("0,0", ValueError),
        ("nan,1", ValueError),
    ],
)
def test_parse_manual_lonlat(text: str, expected: tuple[float, float] | type[Exception]) -> None:
    if isinstance(expected, tuple):
        assert parse_manual_lonlat(text) == expected
    else:
        with pytest.raises(expected, match="expected"):
            parse_manual_lonlat(text)


def test_phone_has_no_footprint(tmp_path: Path) -> None:
    ref = georeference_image(write_jpeg(tmp_path / "p.jpg", gps=VALID))
    assert ref.projector is not None
    result = ref.projector.footprint(np.array([1, 1, 10, 10]), "center")
    assert isinstance(result, NoLocation) and "photographer" in result.reason
