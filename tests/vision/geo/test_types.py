"""The one WGS-84 range check, used by every reader of positions in vision and the service."""

from __future__ import annotations

import pytest

from vision.geo.types import GroundPosition, check_lon_lat, in_wgs84_range


@pytest.mark.parametrize(
    ("lon", "lat", "expected"),
    [
        (117.2, 31.8, True),
        (-180.0, -90.0, True),
        (180.0, 90.0, True),
        (180.01, 0.0, False),
        (0.0, -90.5, False),
        (float("nan"), 0.0, False),
        (0.0, float("inf"), False),
    ],
)
def test_wgs84_range(lon: float, lat: float, expected: bool) -> None:
    assert in_wgs84_range(lon, lat) is expected
    if expected:
        check_lon_lat(lon, lat)
    else:
        with pytest.raises(ValueError, match=r"expected lon in \[-180, 180\] and lat in \[-90, 90\]"):
            check_lon_lat(lon, lat)


def test_ground_position_refuses_out_of_range_coordinates() -> None:
    with pytest.raises(ValueError, match="expected lon in"):
        GroundPosition(lon=200.0, lat=0.0, uncertainty_m=1.0)
