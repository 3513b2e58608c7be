"""The batched uncertainty geometry: pose moves, one-box-at-a-time answers from a whole frame's batch."""

from __future__ import annotations

import numpy as np
import pytest

from tests.vision.geo.test_camera import projector
from vision.geo.camera import FrameCamera, Intrinsics
from vision.geo.frame_projector import FrameProjector
from vision.geo.pose_moves import RAYS_PER_INTERSECT, PoseMoves
from vision.geo.surface import FlatGround
from vision.geo.types import Footprint, GroundAnchor, NoLocation
from vision.taxonomy import HeightPrior

SHED = HeightPrior(typical_m=3.0, sigma_m=0.5)
WIDE_LENS = (-0.12, 0.04, 0.001, -0.0008, 0.0)


@pytest.mark.parametrize("distortion", [(), WIDE_LENS])
def test_each_move_is_the_camera_it_stands_for(distortion: tuple[float, ...]) -> None:
    """Row 0 is the camera; each other row ray-casts and projects like the moved camera would."""
    proj = projector(yaw=35.0, pitch=-55.0, roll=1.0, height=60.0, distortion=distortion)
    u = proj.uncertainty
    moves: PoseMoves = proj.pose_moves()
    o, (x, y, z) = proj.camera.orientation, proj.camera.position_enu
    cameras = [
        proj.camera,
        proj.camera.model_copy(update={"orientation": o.perturbed(d_yaw=u.yaw_deg)}),
        proj.camera.model_copy(update={"orientation": o.perturbed(d_pitch=u.pitch_roll_deg)}),
        proj.camera.model_copy(update={"orientation": o.perturbed(d_roll=u.pitch_roll_deg)}),
        proj.camera.model_copy(update={"position_enu": (x, y, z + u.vertical_m)}),
    ]
    assert len(moves) == len(cameras)
    pixels = np.array([[100.0, 2900.0], [2000.0, 1500.0], [3900.0, 2500.0]])
    pose = np.arange(len(cameras))
    ground = moves.ground(proj.surface, pose, np.broadcast_to(pixels, (len(pose), 3, 2)), None)
    for k, camera in enumerate(cameras):
        np.testing.assert_allclose(ground[k], proj.ground_enu(pixels, camera, limit_range=False), atol=1e-6)
    # Back through each move's own camera: the pixels it started from.
    np.testing.assert_allclose(moves.project(pose, ground), np.broadcast_to(pixels, (5, 3, 2)), atol=1e-4)


def test_points_behind_the_camera_project_to_nothing() -> None:
    camera: FrameCamera = projector(pitch=-90.0, height=50.0).camera
    pixels = camera.intrinsics.to_pixels(np.array([[0.0, 0.0, 10.0], [1.0, 1.0, 0.0], [1.0, 1.0, -5.0]]))
    assert np.isfinite(pixels[0]).all() and np.isnan(pixels[1:]).all()
    assert pixels[0] == pytest.approx([camera.intrinsics.cx, camera.intrinsics.cy])


def test_zero_budget_has_only_the_camera() -> None:
    proj = projector()
    none = proj.uncertainty.model_copy(update={"vertical_m": 0.0, "pitch_roll_deg": 0.0, "yaw_deg": 0.0})
    assert len(FrameProjector(**{**proj.__dict__, "uncertainty": none}).pose_moves()) == 1


@pytest.mark.parametrize("distortion", [(), WIDE_LENS])
def test_a_frame_batch_answers_each_box_as_if_alone(distortion: tuple[float, ...]) -> None:
    """Batching never changes a box's answer: flat, standing, near-nadir, bottom-edge squares,
    a box the prior cannot fit and one above the horizon, all in one call."""
    proj = projector(yaw=20.0, pitch=-25.0, height=40.0, distortion=distortion)
    boxes = np.array(
        [
            [1800.0, 2000.0, 2100.0, 2300.0],  # flat
            [1800.0, 2000.0, 2100.0, 2300.0],  # the same box, standing
            [500.0, 2400.0, 900.0, 2900.0],  # standing, no prior: the bottom edge squared
            [3000.0, 1800.0, 3060.0, 1830.0],  # too small for a 20 m prior
            [1000.0, 10.0, 1400.0, 200.0],  # above the horizon
            [2600.0, 2600.0, 2900.0, 2950.0],  # flat
        ]
    )
    standing: GroundAnchor = "bottom_center"
    anchors: list[GroundAnchor] = ["center", standing, standing, standing, "center", "center"]
    heights = [None, SHED, None, HeightPrior(typical_m=20.0, sigma_m=1.0), None, None]
    together = proj.footprints(boxes, anchors, heights)
    alone = [proj.footprint(b, a, h) for b, a, h in zip(boxes, anchors, heights, strict=True)]
    kinds = [type(f).__name__ for f in together]
    assert kinds == ["Footprint", "Footprint", "Footprint", "NoLocation", "NoLocation", "Footprint"]
    assert "height prior" in together[3].reason and "horizon" in together[4].reason  # type: ignore[union-attr]
    for a, b in zip(together, alone, strict=True):
        if isinstance(a, NoLocation):
            assert isinstance(b, NoLocation) and a.reason == b.reason
            continue
        assert isinstance(b, Footprint) and a.method == b.method
        assert a.area_m2 == pytest.approx(b.area_m2, rel=1e-9)
        assert a.area_uncertainty_m2 == pytest.approx(b.area_uncertainty_m2, rel=1e-9)
        assert a.polygon.equals_exact(b.polygon, 1e-12)
    methods = [f.method for f in together if isinstance(f, Footprint)]
    assert methods == ["projected_box", "bottom_edge_height_prior", "bottom_edge_square", "projected_box"]
    assert proj.footprints(np.zeros((0, 4)), [], []) == []


def test_intrinsics_to_pixels_inverts_normalized_with_distortion() -> None:
    intr = Intrinsics.from_hfov(4000, 3000, 84.0).model_copy(update={"distortion": WIDE_LENS})
    pixels = np.array([[0.0, 0.0], [2000.0, 1500.0], [3999.0, 10.0], [123.0, 2900.0]])
    xy = intr.normalized(pixels)
    back = intr.to_pixels(np.column_stack((xy * 7.0, np.full(len(xy), 7.0))))
    np.testing.assert_allclose(back, pixels, atol=1e-4)


class CountingGround(FlatGround):
    """Flat ground that remembers how many rays each intersection was asked for."""

    def __init__(self) -> None:
        super().__init__(earth_curvature=False)
        object.__setattr__(self, "batches", [])

    def intersect(self, origin_enu: np.ndarray, directions: np.ndarray) -> np.ndarray:
        self.batches.append(len(directions))  # type: ignore[attr-defined]
        return super().intersect(origin_enu, directions)


def test_rays_meet_the_surface_in_bounded_chunks() -> None:
    """A DEM marches all its rays at once: a frame's worth of moves must not arrive as one array."""
    proj = projector(pitch=-60.0, height=80.0, curvature=False)
    moves = proj.pose_moves()
    rng = np.random.default_rng(0)
    pixels = rng.uniform((0, 1500), (4000, 3000), (40, 60, 2))
    pose = np.arange(40) % len(moves)
    ground = CountingGround()
    chunked = moves.ground(ground, pose, pixels, None)
    batches = ground.batches  # type: ignore[attr-defined]
    assert max(batches) <= RAYS_PER_INTERSECT and sum(batches) == 40 * 60
    whole = np.stack([proj.ground_enu(px, limit_range=False) for px in pixels[pose == 0]])
    np.testing.assert_allclose(chunked[pose == 0], whole, atol=1e-6)
