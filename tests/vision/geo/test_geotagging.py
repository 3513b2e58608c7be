"""Detections -> Geotags: anchors per class from the taxonomy, data["class_key"] or a mapping."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tests.vision.geo.test_camera import LAT0, LON0, projector
from vision.detections import Detections
from vision.geo.geotagging import geotag_detections, resolve_anchors
from vision.geo.local_frame import LocalFrame
from vision.geo.phone import PhotographerProjector
from vision.geo.types import Footprint, Geotag, NoLocation


def dets(boxes: list[list[float]], class_keys: list[str | None] | None = None) -> Detections:
    data = {} if class_keys is None else {"class_key": np.array(class_keys, dtype=object)}
    return Detections(
        xyxy=np.array(boxes, np.float32),
        confidence=np.full(len(boxes), 0.8),
        class_id=np.arange(len(boxes)),
        data=data,
    )


@pytest.mark.parametrize(
    ("keys", "mapping", "overrides", "expected"),
    [
        (
            ["garbage_pile", "illegal_structure", "straw_burning"],
            None,
            None,
            ["center", "bottom_center", "bottom_center"],
        ),
        ([None, "", "not_a_class"], None, None, ["center", "center", "center"]),
        (None, {0: "illegal_structure", 1: "blue_steel_roof"}, None, ["bottom_center", "center", "center"]),
        (
            ["garbage_pile", "illegal_structure", None],
            None,
            {"garbage_pile": "bottom_center"},
            ["bottom_center", "bottom_center", "center"],
        ),
    ],
)
def test_resolve_anchors(
    keys: list[str | None] | None,
    mapping: dict[int, str] | None,
    overrides: dict[str, str] | None,
    expected: list[str],
) -> None:
    d = dets([[0, 0, 10, 10]] * 3, keys)
    assert resolve_anchors(d, class_keys=mapping, anchors=overrides) == expected  # type: ignore[arg-type]


def test_bad_anchor_override_is_refused() -> None:
    with pytest.raises(ValueError, match="expected anchor"):
        resolve_anchors(dets([[0, 0, 1, 1]]), anchors={"garbage_pile": "top"})  # type: ignore[dict-item]


def test_oblique_standing_object_is_placed_at_its_base() -> None:
    proj = projector(yaw=0.0, pitch=-15.0, height=30.0, curvature=False)
    box = [1900.0, 1600.0, 2100.0, 2400.0]
    shed, pile = geotag_detections(dets([box, box], ["illegal_structure", "garbage_pile"]), proj)
    assert isinstance(shed, Geotag) and isinstance(pile, Geotag)
    assert shed.anchor == "bottom_center" and pile.anchor == "center"
    frame = LocalFrame(LON0, LAT0)
    base = proj.ground_enu(np.array([[2000.0, 2400.0]]))[0]
    x, y = frame.to_local(shed.point.lon, shed.point.lat)
    assert math.hypot(float(x) - base[0], float(y) - base[1]) < 1e-3
    # The box centre lies further from the camera than its base.
    _, y_pile = frame.to_local(pile.point.lon, pile.point.lat)
    assert float(y_pile) > float(y)
    # The shed's footprint uses its class's height prior; the pile (flat) is its projected box.
    assert shed.footprint is not None and shed.footprint.method == "bottom_edge_height_prior"
    assert pile.footprint is not None and pile.footprint.method == "projected_box"
    assert shed.area_uncertainty_m2 is not None and shed.area_uncertainty_m2 > 0


def test_nadir_view_uses_centre_for_standing_objects() -> None:
    proj = projector(pitch=-90.0, height=100.0)
    (tag,) = geotag_detections(dets([[1900, 1400, 2100, 1600]], ["illegal_structure"]), proj)
    assert isinstance(tag, Geotag) and tag.anchor == "center"
    # The whole box bounds it, less the lean and nearness of a 3 m tall top (the class's prior).
    assert tag.footprint is not None and tag.footprint.method == "relief_corrected_box"
    flat = proj.footprint(np.array([1900.0, 1400.0, 2100.0, 1600.0]), "center")
    assert isinstance(flat, Footprint) and flat.method == "projected_box"
    assert tag.footprint.area_m2 == pytest.approx(flat.area_m2 * (1 - 3.0 / 100.0) ** 2, rel=1e-3)


def test_detection_in_the_sky_has_no_location_and_one_crossing_the_horizon_no_footprint() -> None:
    proj = projector(pitch=-3.0, height=30.0, hfov=60.0)
    sky, straddle = geotag_detections(
        dets([[100, 50, 300, 200], [1800, 1000, 2200, 2000]], ["straw_burning", "garbage_pile"]), proj
    )
    assert isinstance(sky, NoLocation) and "horizon" in sky.reason
    assert isinstance(straddle, Geotag) and straddle.footprint is None
    assert straddle.footprint_reason is not None and "horizon" in straddle.footprint_reason


def test_phone_geotags_have_points_but_no_area() -> None:
    proj = PhotographerProjector.from_manual(117.0, 31.0)
    (tag,) = geotag_detections(dets([[0, 0, 5, 5]], ["garbage_pile"]), proj)
    assert isinstance(tag, Geotag) and tag.source == "citizen"
    assert (tag.point.lon, tag.point.lat) == (117.0, 31.0) and tag.area_m2 is None
    assert tag.footprint_reason is not None
