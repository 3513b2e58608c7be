"""GeoJSON output (RFC 7946) and the display-only GCJ-02 conversion."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from shapely.geometry import LinearRing, shape

from tests.vision.geo.test_camera import projector
from vision.detections import Detections
from vision.geo.gcj02 import gcj02_to_wgs84, out_of_china, wgs84_to_gcj02
from vision.geo.geojson import (
    detections_to_feature_collection,
    footprints_to_feature_collection,
    to_gcj02_for_display,
    write_geojson,
)
from vision.geo.geotagging import geotag_detections
from vision.geo.types import Geotag


def collection() -> tuple[Detections, list, dict]:
    proj = projector(pitch=-60.0, height=50.0)  # a drone over Hefei
    d = Detections(
        xyxy=np.array([[1000, 1500, 1400, 1900], [10, 10, 60, 40], [1900, 2500, 2100, 2900]], np.float32),
        confidence=np.array([0.9, 0.5, 0.7]),
        class_id=np.array([0, 1, 2]),
        data={"class_key": np.array(["garbage_pile", None, "illegal_structure"], dtype=object)},
    )
    tags = geotag_detections(d, proj)
    fc = detections_to_feature_collection(
        d,
        tags,
        source="drone",
        labels=["garbage", "garbage_bin", "shed"],
        time=datetime(2024, 5, 6, 3, 4, 5, tzinfo=UTC),
        image="DJI_0001.JPG",
    )
    return d, tags, fc


def test_feature_collection_is_rfc7946() -> None:
    _, tags, fc = collection()
    assert fc["type"] == "FeatureCollection" and "crs" not in fc
    assert len(fc["features"]) == 3
    first = fc["features"][0]
    lon, lat = first["geometry"]["coordinates"]
    assert 117 < lon < 118 and 31 < lat < 32  # lon first
    props = first["properties"]
    assert props["class"] == "garbage_pile" and props["score"] == pytest.approx(0.9)
    assert props["source"] == "drone" and props["time"] == "2024-05-06T03:04:05+00:00"
    assert props["area_m2"] == pytest.approx(tags[0].area_m2, abs=1e-3) and props["uncertainty_m"] > 0
    assert props["area_uncertainty_m2"] == pytest.approx(tags[0].area_uncertainty_m2, abs=1e-3)
    assert props["area_uncertainty_m2"] > 0
    ring = props["footprint"]["coordinates"][0]
    assert ring[0] == ring[-1] and LinearRing(ring).is_ccw  # right-hand rule for exteriors
    assert shape(props["footprint"]).contains(shape(first["geometry"]))
    # Labels fill in where no taxonomy key exists.
    assert fc["features"][1]["properties"]["class"] == "garbage_bin"
    json.dumps(fc)  # plain JSON types only


def test_unlocated_detections_keep_a_null_geometry_or_are_dropped() -> None:
    proj = projector(pitch=-3.0, height=30.0, hfov=60.0)
    d = Detections(xyxy=np.array([[100, 50, 300, 200]], np.float32), confidence=[0.6], class_id=[0])
    tags = geotag_detections(d, proj)
    fc = detections_to_feature_collection(d, tags, source="camera")
    assert fc["features"][0]["geometry"] is None
    assert "horizon" in fc["features"][0]["properties"]["no_location_reason"]
    assert detections_to_feature_collection(d, tags, include_unlocated=False)["features"] == []


def test_write_points_and_footprints_files(tmp_path: Path) -> None:
    d, tags, fc = collection()
    fps = footprints_to_feature_collection(d, tags, source="drone")
    write_geojson(tmp_path / "p.geojson", fc, footprints=fps, footprints_path=tmp_path / "f.geojson")
    points = json.loads((tmp_path / "p.geojson").read_text(encoding="utf-8"))
    polygons = json.loads((tmp_path / "f.geojson").read_text(encoding="utf-8"))
    assert points == fc
    with_footprint = [t for t in tags if isinstance(t, Geotag) and t.footprint is not None]
    assert len(polygons["features"]) == len(with_footprint) >= 2
    assert all(f["geometry"]["type"] == "Polygon" for f in polygons["features"])
    with pytest.raises(ValueError, match="one geotag per detection"):
        detections_to_feature_collection(d, tags[:1])


# Reference points published with the eviltransform project (github.com/googollee/eviltransform,
# python/test.py): (WGS-84 lat, lon) -> (GCJ-02 lat, lon).
GCJ_REFERENCE = [
    (31.1774276, 121.5272106, 31.17530398364597, 121.531541859215),  # Shanghai
    (22.543847, 113.912316, 22.540796131694766, 113.9171764808363),  # Shenzhen
    (39.911954, 116.377817, 39.91334545536069, 116.38404722455657),  # Beijing
]


@pytest.mark.parametrize(("wlat", "wlon", "glat", "glon"), GCJ_REFERENCE)
def test_gcj02_matches_published_reference(wlat: float, wlon: float, glat: float, glon: float) -> None:
    lon, lat = wgs84_to_gcj02(wlon, wlat)
    assert (lon, lat) == pytest.approx((glon, glat), abs=1e-9)
    back = gcj02_to_wgs84(glon, glat)
    assert back == pytest.approx((wlon, wlat), abs=1e-8)  # ~1 mm


def test_gcj02_leaves_points_outside_china_and_converts_collections() -> None:
    assert out_of_china(2.35, 48.85) and wgs84_to_gcj02(2.35, 48.85) == (2.35, 48.85)
    _, _, fc = collection()
    display = to_gcj02_for_display(fc)
    assert display["display_datum"] == "GCJ-02" and "display_datum" not in fc
    a = fc["features"][0]["geometry"]["coordinates"]
    b = display["features"][0]["geometry"]["coordinates"]
    shift = math.hypot((b[0] - a[0]) * 111_320 * math.cos(math.radians(a[1])), (b[1] - a[1]) * 110_540)
    assert 100 < shift < 1000  # GCJ-02 moves points by a few hundred metres in eastern China
    fp = display["features"][0]["properties"]["footprint"]["coordinates"][0][0]
    assert fp == pytest.approx(
        list(wgs84_to_gcj02(*fc["features"][0]["properties"]["footprint"]["coordinates"][0][0])), abs=1e-7
    )
