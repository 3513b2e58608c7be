"""Square metres of standing objects: synthetic scenes with known areas at 0-30 degrees off nadir.

Each scene is a shed (a ground rectangle raised by its height) in front of a frame camera;
the detector's box is rendered by projecting the shed's eight corners with the camera model
and taking their bounds, and the footprint computed from that box is compared with the
rectangle's area.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from tests.vision.geo.test_camera import projector
from vision.errors import TaxonomyError
from vision.geo.frame_projector import FrameProjector, PoseUncertainty
from vision.geo.types import Footprint, NoLocation
from vision.taxonomy import HeightPrior, Taxonomy

SHED = HeightPrior(typical_m=3.0, sigma_m=0.5)


def heading(proj: FrameProjector) -> tuple[np.ndarray, np.ndarray]:
    yaw = math.radians(proj.camera.orientation.yaw_deg)
    return np.array([math.cos(yaw), -math.sin(yaw)]), np.array([math.sin(yaw), math.cos(yaw)])


def shed_centre(proj: FrameProjector, off_nadir_deg: float, bearing_deg: float) -> np.ndarray:
    across, along = heading(proj)
    distance = proj.camera.position_enu[2] * math.tan(math.radians(off_nadir_deg))
    b = math.radians(bearing_deg)
    return distance * (math.sin(b) * across + math.cos(b) * along)


def shed_box(
    proj: FrameProjector, off_nadir_deg: float, bearing_deg: float, size: tuple[float, float], height: float
) -> np.ndarray:
    """The image box of a shed whose centre is `off_nadir_deg` from straight down, at `bearing_deg`
    clockwise from the camera's heading, sides along and across the heading."""
    cam = proj.camera
    across, along = heading(proj)
    centre = shed_centre(proj, off_nadir_deg, bearing_deg)
    w, d = size
    ground = [centre + sa * w / 2 * across + sb * d / 2 * along for sa in (-1, 1) for sb in (-1, 1)]
    corners = np.array([[x, y, z] for x, y in ground for z in (0.0, height)])
    px = cam.project(corners)
    assert np.isfinite(px).all()
    box = np.array([*px.min(axis=0), *px.max(axis=0)])
    intr = cam.intrinsics
    assert box[0] >= 0 and box[1] >= 0 and box[2] <= intr.width and box[3] <= intr.height, box
    return box


def scene(camera: str, off_nadir: float, altitude: float, yaw: float = 30.0) -> tuple[FrameProjector, float]:
    """A nadir camera sees the shed off-centre; a tilted one looks straight at it (bearing 0)."""
    if camera == "nadir":
        return projector(yaw=yaw, pitch=-90.0, height=altitude, curvature=False), 180.0
    return projector(yaw=yaw, pitch=-90.0 + off_nadir, height=altitude, curvature=False), 0.0


@pytest.mark.parametrize("off_nadir", [0.0, 10.0, 20.0, 30.0])
@pytest.mark.parametrize("altitude", [40.0, 120.0])
@pytest.mark.parametrize("camera", ["nadir", "tilted"])
def test_shed_area_is_recovered_at_every_angle_and_altitude(
    camera: str, off_nadir: float, altitude: float
) -> None:
    proj, bearing = scene(camera, off_nadir, altitude)
    size = (7.0, 3.7)  # 25.9 m²
    box = shed_box(proj, off_nadir, bearing, size, SHED.typical_m)
    fp = proj.footprint(box, "bottom_center", SHED)
    assert isinstance(fp, Footprint), fp
    assert fp.area_m2 == pytest.approx(25.9, rel=0.01)
    expected = "relief_corrected_box" if off_nadir < 20.0 - 1e-9 else "bottom_edge_height_prior"
    if off_nadir == 20.0:  # on the threshold: either, depending on rounding of the ray angle
        assert fp.method in ("relief_corrected_box", "bottom_edge_height_prior")
    else:
        assert fp.method == expected
    # The footprint lies where the shed stands.
    centre = proj.frame.polygon_to_local(fp.polygon).centroid
    truth = shed_centre(proj, off_nadir, bearing)
    assert math.hypot(centre.x - truth[0], centre.y - truth[1]) < 0.05
    assert fp.area_uncertainty_m2 is not None and 0 < fp.area_uncertainty_m2 < 25.9


@pytest.mark.parametrize("off_nadir", [0.0, 20.0, 30.0])
def test_the_box_on_the_ground_alone_overstates_a_standing_object(off_nadir: float) -> None:
    """Why the prior: from 40 m, the whole box ray-cast to the ground (or the old bottom edge
    squared) is far off; the prism with the prior height is not."""
    proj, bearing = scene("nadir", off_nadir, 40.0)
    box = shed_box(proj, off_nadir, bearing, (7.0, 3.7), 3.0)
    flat = proj.footprint(box, "center")
    assert isinstance(flat, Footprint) and flat.area_m2 > 1.15 * 25.9
    with_prior = proj.footprint(box, "bottom_center", SHED)
    assert isinstance(with_prior, Footprint) and abs(with_prior.area_m2 - 25.9) < 0.3


def test_a_wrong_height_is_inside_the_reported_uncertainty() -> None:
    proj, bearing = scene("tilted", 30.0, 60.0)
    box = shed_box(proj, 30.0, bearing, (6.0, 5.0), 3.5)  # one sigma taller than the prior
    fp = proj.footprint(box, "bottom_center", SHED)
    assert isinstance(fp, Footprint) and fp.area_uncertainty_m2 is not None
    error = abs(fp.area_m2 - 30.0)
    assert 0.01 * 30.0 < error < fp.area_uncertainty_m2


def test_uncertainty_grows_with_the_error_budget_and_the_prior_spread() -> None:
    proj, bearing = scene("tilted", 20.0, 80.0)
    box = shed_box(proj, 20.0, bearing, (8.0, 6.0), 3.0)

    def spread(uncertainty: PoseUncertainty, prior: HeightPrior) -> float:
        p = FrameProjector(**{**proj.__dict__, "uncertainty": uncertainty})
        fp = p.footprint(box, "bottom_center", prior)
        assert isinstance(fp, Footprint) and fp.area_uncertainty_m2 is not None
        return fp.area_uncertainty_m2

    none = PoseUncertainty(horizontal_m=0, vertical_m=0, pitch_roll_deg=0, yaw_deg=0, pixel_px=0)
    exact = HeightPrior(typical_m=3.0, sigma_m=0.0)
    assert spread(none, exact) == 0.0
    assert 0 < spread(none, SHED) < spread(none, HeightPrior(typical_m=3.0, sigma_m=1.5))
    assert spread(PoseUncertainty(), SHED) > spread(none, SHED)
    flat = proj.footprint(box, "center")  # flat classes carry one too
    assert (
        isinstance(flat, Footprint) and flat.area_uncertainty_m2 is not None and flat.area_uncertainty_m2 > 0
    )
    assert flat.to_json()["area_uncertainty_m2"] == round(flat.area_uncertainty_m2, 3)


def test_mode_threshold_is_a_setting_and_does_not_change_the_area() -> None:
    proj, bearing = scene("nadir", 10.0, 60.0)
    box = shed_box(proj, 10.0, bearing, (5.0, 5.0), 3.0)
    near = proj.footprint(box, "bottom_center", SHED)
    oblique = FrameProjector(**{**proj.__dict__, "nadir_footprint_deg": 5.0}).footprint(
        box, "bottom_center", SHED
    )
    assert isinstance(near, Footprint) and isinstance(oblique, Footprint)
    assert near.method == "relief_corrected_box" and oblique.method == "bottom_edge_height_prior"
    assert near.area_m2 == pytest.approx(oblique.area_m2, rel=1e-6) == pytest.approx(25.0, rel=0.01)


def test_a_box_smaller_than_the_prior_height_allows_has_no_footprint() -> None:
    proj, bearing = scene("tilted", 30.0, 40.0)
    box = shed_box(proj, 30.0, bearing, (4.0, 4.0), 0.5)  # a low object, read as a 20 m tower
    fp = proj.footprint(box, "bottom_center", HeightPrior(typical_m=20.0, sigma_m=1.0))
    assert isinstance(fp, NoLocation) and "height prior" in fp.reason


def test_taxonomy_carries_height_priors_for_standing_classes_only() -> None:
    taxonomy = Taxonomy.default()
    for spec in taxonomy:
        assert (spec.height_m is not None) == (spec.ground_anchor == "bottom_center"), spec.key
    raw = {"classes": [{"key": "shed", "name_zh": "棚", "height_m": {"typical_m": -1.0, "sigma_m": 0.5}}]}
    with pytest.raises(TaxonomyError, match="typical_m"):
        Taxonomy.from_mapping(raw)
