"""Pixels of a frame camera (drone or tower) to WGS-84 ground points, footprints and areas.

The camera sits in a local metric frame centred on itself; each pixel's ray is met with the
ground surface (level ground or a DEM), and the hit is converted to WGS-84. Uncertainty is
propagated from the pose's error budget (`PoseUncertainty`) by perturbing each error source
by one sigma, stacking the resulting ground shifts into a covariance and reporting the 95 %
radius of its major axis. All moves of a call are one batch (`vision.geo.pose_moves`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import shapely
from pydantic import BaseModel, ConfigDict, Field
from shapely.geometry import Polygon

from vision.geo.camera import FrameCamera, Orientation
from vision.geo.footprint import footprint_of_ground, footprint_pixels, footprint_rings, ring_areas
from vision.geo.local_frame import LocalFrame
from vision.geo.pose_moves import PoseMoves
from vision.geo.standing import area_uncertainty_95, extent_of, fit_prisms, heading_axes, rectangle_corners
from vision.geo.surface import FlatGround, GroundSurface
from vision.geo.types import Footprint, GroundAnchor, GroundPosition, NoLocation
from vision.taxonomy import HeightPrior

CHI2_2DOF_95 = math.sqrt(5.991)  # radius factor holding 95 % of a 2-D normal error
# The footprint mode's threshold: rays at a box's centre within this of straight down are
# near-nadir (a standing object's base is under its centre, all four box sides bound it).
NEAR_NADIR_MAX_DEG = 20.0


class PoseUncertainty(BaseModel):
    """One-sigma errors of what the geometry is built from."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    horizontal_m: float = Field(default=1.5, ge=0, description="Camera position error per axis (GNSS).")
    vertical_m: float = Field(default=0.5, ge=0, description="Camera height above ground error.")
    pitch_roll_deg: float = Field(default=0.3, ge=0, description="Pitch and roll (tilt) error.")
    yaw_deg: float = Field(default=0.5, ge=0, description="Heading error.")
    pixel_px: float = Field(default=2.0, ge=0, description="Error of the pixel itself (detection jitter).")


def located(
    pixels: np.ndarray,
    size_wh: tuple[int, int],
    lon: np.ndarray,
    lat: np.ndarray,
    radii: np.ndarray,
    failures: Sequence[tuple[np.ndarray, Callable[[int], str]]],
    elevation: np.ndarray | None = None,
) -> list[GroundPosition | NoLocation]:
    """Each pixel's ground position, or why it has none: outside the image first, then the first
    of a projector's `failures` (a mask over the pixels and the reason for pixel i) that holds."""
    width, height = size_wh
    out: list[GroundPosition | NoLocation] = []
    for i, (u, v) in enumerate(pixels):
        if not (-0.5 <= u <= width + 0.5 and -0.5 <= v <= height + 0.5):
            out.append(NoLocation(f"pixel ({u:g}, {v:g}) is outside the {width}x{height} image"))
        elif (reason := next((why(i) for bad, why in failures if bad[i]), None)) is not None:
            out.append(NoLocation(reason))
        else:
            e = None if elevation is None or not np.isfinite(elevation[i]) else float(elevation[i])
            out.append(GroundPosition(float(lon[i]), float(lat[i]), float(radii[i]), e))
    return out


@dataclass(frozen=True)
class FrameProjector:
    """Pixel -> ground for a calibrated frame camera at a known pose."""

    camera: FrameCamera
    frame: LocalFrame
    surface: GroundSurface
    uncertainty: PoseUncertainty
    source: Literal["drone", "camera"]
    max_range_m: float = 3000.0
    nadir_footprint_deg: float = NEAR_NADIR_MAX_DEG
    edge_samples: int = 8
    description: dict[str, Any] | None = None

    # -- points ------------------------------------------------------------------------

    def ground_enu(
        self, pixels_xy: np.ndarray, camera: FrameCamera | None = None, limit_range: bool = True
    ) -> np.ndarray:
        """(N, 2) pixels -> (N, 3) ground points in the local frame, NaN rows where there is none."""
        cam = camera or self.camera
        rays = cam.rays(pixels_xy)
        origin = np.asarray(cam.position_enu, np.float64)
        t = self.surface.intersect(origin, rays)
        if limit_range:
            t[t > self.max_range_m] = np.nan
        return origin + t[:, None] * rays

    def locate(self, pixels_xy: np.ndarray) -> list[GroundPosition | NoLocation]:
        pixels = np.asarray(pixels_xy, np.float64).reshape(-1, 2)
        intr = self.camera.intrinsics
        rays = self.camera.rays(pixels)
        origin = np.asarray(self.camera.position_enu, np.float64)
        t = self.surface.intersect(origin, rays)
        points = origin + t[:, None] * rays
        radii = self.uncertainty_95(pixels, points)
        elev = self.surface.elevation_at(points[:, 0], points[:, 1])
        lon, lat = self.frame.to_lonlat(points[:, 0], points[:, 1])
        max_range = self.max_range_m
        return located(
            pixels,
            (intr.width, intr.height),
            lon,
            lat,
            radii,
            [
                (
                    ~np.isfinite(t),
                    lambda i: "the pixel's ray does not meet the ground (at or above the horizon)",
                ),
                (
                    t > max_range,
                    lambda i: f"the ground point is {t[i]:.0f} m away, beyond max_range_m={max_range:.0f}",
                ),
                (
                    ~np.isfinite(radii),
                    lambda i: (
                        "the pixel is within the tilt uncertainty of the horizon; its ground "
                        "position is undetermined"
                    ),
                ),
            ],
            elev,
        )

    def uncertainty_95(self, pixels_xy: np.ndarray, points: np.ndarray | None = None) -> np.ndarray:
        """95 % radius (m) of each pixel's ground point under the pose error budget; inf if undetermined."""
        pixels = np.asarray(pixels_xy, np.float64).reshape(-1, 2)
        base = self.ground_enu(pixels, limit_range=False) if points is None else points
        u = self.uncertainty
        moves = self.pose_moves()
        pose = list(range(1, len(moves)))
        shifts = [(0.0, 0.0)] * len(pose)
        if u.pixel_px > 0:
            pose += [0, 0]
            shifts += [(u.pixel_px, 0.0), (0.0, u.pixel_px)]
        cov = np.zeros((len(pixels), 2, 2))
        cov[:, 0, 0] = cov[:, 1, 1] = u.horizontal_m**2
        if pose:
            moved = moves.ground(self.surface, np.array(pose), pixels + np.array(shifts)[:, None, :], None)
            delta = moved[..., :2] - base[:, :2]
            delta[~np.isfinite(delta).all(axis=2)] = np.inf
            cov += np.einsum("kni,knj->nij", delta, delta)
        major = np.full(len(pixels), np.inf)
        finite = np.isfinite(cov).all(axis=(1, 2))
        major[finite] = np.linalg.eigvalsh(cov[finite])[:, -1]
        return CHI2_2DOF_95 * np.sqrt(major)

    def pose_moves(self) -> PoseMoves:
        """The camera and its one-sigma pose moves under this projector's error budget."""
        u = self.uncertainty
        return PoseMoves.of(
            self.camera, yaw_deg=u.yaw_deg, pitch_roll_deg=u.pitch_roll_deg, vertical_m=u.vertical_m
        )

    # -- footprints ----------------------------------------------------------------------

    def near_nadir(self, xyxy: np.ndarray) -> np.ndarray:
        """(N,) whether the ray at each of (N, 4) boxes' centres is within `nadir_footprint_deg` of
        straight down (a bool for one (4,) box)."""
        boxes = np.asarray(xyxy, np.float64)
        centres = (boxes[..., :2] + boxes[..., 2:]) / 2
        down = -self.camera.rays(centres.reshape(-1, 2))[:, 2]
        near: np.ndarray = np.degrees(np.arccos(np.clip(down, -1.0, 1.0))) <= self.nadir_footprint_deg
        return near.reshape(centres.shape[:-1])

    def effective_anchor(self, xyxy: np.ndarray, anchor: GroundAnchor) -> GroundAnchor:
        """Seen from nearly straight above, a standing object's base is under its centre, not its
        bottom edge (relief displacement leans it away from the nadir point, not down the image)."""
        return "center" if anchor == "bottom_center" and self.near_nadir(xyxy) else anchor

    def footprint(
        self, xyxy: np.ndarray, anchor: GroundAnchor, height: HeightPrior | None = None
    ) -> Footprint | NoLocation:
        """The box's ground polygon and area, with the area's 95 % half-width.

        Flat classes: the box outline ray-cast to the ground. Standing classes with a height
        prior: the footprint of the prism whose image is the box (`vision.geo.standing`), in
        the near-nadir mode ("relief_corrected_box") when the ray at the box's centre is within
        `nadir_footprint_deg` of straight down, else the oblique one ("bottom_edge_height_prior").
        Standing classes without a prior, seen obliquely: the bottom edge squared.
        """
        return self.footprints(np.asarray(xyxy, np.float64)[None], [anchor], [height])[0]

    def footprints(
        self, xyxy: np.ndarray, anchors: Sequence[GroundAnchor], heights: Sequence[HeightPrior | None]
    ) -> list[Footprint | NoLocation]:
        """`footprint` of each of (N, 4) boxes of this frame.

        Each area's uncertainty is its footprint redone under one-sigma moves of the pose, of each
        box edge and of the height prior. The boxes of a kind (outline, bottom-edge square, prism)
        and all their moves are one batch: one ray cast, one Newton fit.
        """
        boxes = np.asarray(xyxy, np.float64).reshape(-1, 4)
        near = self.near_nadir(boxes) if len(boxes) else np.zeros(0, bool)
        moves = self.pose_moves()
        local: list[tuple[Polygon, str] | NoLocation] = [NoLocation("not computed")] * len(boxes)
        spread = np.full(len(boxes), np.nan)
        prism = [i for i, h in enumerate(heights) if h is not None and h.typical_m > 0]
        standing = [i for i, a in enumerate(anchors) if a == "bottom_center" and not near[i]]
        for kind, rows in (
            ("prism", prism),
            ("square", [i for i in standing if i not in prism]),
            ("outline", [i for i in range(len(boxes)) if i not in prism and i not in standing]),
        ):
            if not rows:
                continue
            prior = [heights[i] for i in rows]
            height_m = np.array([0.0 if h is None else h.typical_m for h in prior])
            sigma_m = np.array([0.0 if h is None else h.sigma_m for h in prior])
            pose, moved_boxes, moved_heights = self._moves_of(moves, boxes[rows], height_m, sigma_m)
            if kind == "prism":
                found, areas = self._prism_footprints(moves, pose, moved_boxes, moved_heights, near[rows])
            else:
                found, areas = self._flat_footprints(
                    moves, pose, moved_boxes, len(rows), square=kind == "square"
                )
            for i, result in zip(rows, found, strict=True):
                local[i] = result
            # Each box's rows: its own area and its moves' (the same sums, so a move that changes
            # nothing changes the area by exactly 0).
            spread[rows] = area_uncertainty_95(areas[:, 0], areas[:, 1:])
        polygons = iter(self.frame.polygons_to_wgs84([f[0] for f in local if not isinstance(f, NoLocation)]))
        return [
            f
            if isinstance(f, NoLocation)
            else Footprint(
                polygon=next(polygons), area_m2=float(f[0].area), method=f[1], area_uncertainty_m2=float(s)
            )
            for f, s in zip(local, spread, strict=True)
        ]

    def _moves_of(
        self, moves: PoseMoves, boxes: np.ndarray, height_m: np.ndarray, sigma_m: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Each of (G, 4) boxes and its one-sigma moves as R rows (row 0: the box itself; then the
        pose's moves, each edge's and the height prior's), flattened: (G R,) pose indices,
        (G R, 4) boxes, (G R,) heights. A height sigma of 0 moves nothing (its change is 0)."""
        px = self.uncertainty.pixel_px
        edges = np.eye(4) * px if px > 0 else np.zeros((0, 4))
        raised = 1 if (sigma_m > 0).any() else 0
        pose = np.concatenate((np.arange(len(moves)), np.zeros(len(edges) + raised, int)))
        shift = np.concatenate((np.zeros((len(moves), 4)), edges, np.zeros((raised, 4))))
        raise_m = np.zeros(len(pose))
        raise_m[len(pose) - raised :] = 1.0
        g = len(boxes)
        return (
            np.tile(pose, g),
            (boxes[:, None, :] + shift).reshape(-1, 4),
            (height_m[:, None] + raise_m * sigma_m[:, None]).reshape(-1),
        )

    def _flat_footprints(
        self, moves: PoseMoves, pose: np.ndarray, boxes: np.ndarray, count: int, *, square: bool
    ) -> tuple[list[tuple[Polygon, str] | NoLocation], np.ndarray]:
        """Per box (`count` of them, rows of `_moves_of`): its footprint in local metres
        (`vision.geo.footprint.local_footprint`, seen obliquely); and the (count, R) areas of its
        rows (NaN: none)."""
        pixels = footprint_pixels(boxes, square=square, samples_per_edge=self.edge_samples)
        ground = moves.ground(self.surface, pose, pixels, self.max_range_m)[..., :2]
        camera_xy = self.camera.position_enu[:2]  # no move shifts the camera sideways
        rings = footprint_rings(ground, square=square, camera_xy=camera_xy)
        areas = ring_areas(rings).reshape(count, -1)
        base = np.arange(count) * areas.shape[1]
        # A box's own area is NaN exactly where `footprint_of_ground` refuses it: ask it why.
        method = "bottom_edge_square" if square else "projected_box"
        polygons = iter(shapely.polygons(rings[base[np.isfinite(areas[:, 0])]]))
        found: list[tuple[Polygon, str] | NoLocation] = [
            (next(polygons), method)
            if np.isfinite(area)
            else footprint_of_ground(ground[row], square=square, camera_xy=camera_xy)
            for row, area in zip(base, areas[:, 0], strict=True)
        ]
        return found, areas

    def _prism_footprints(
        self,
        moves: PoseMoves,
        pose: np.ndarray,
        boxes: np.ndarray,
        heights: np.ndarray,
        near_nadir: np.ndarray,
    ) -> tuple[list[tuple[Polygon, str] | NoLocation], np.ndarray]:
        """Per box (rows of `_moves_of`, one per entry of `near_nadir`): its prism footprint in local
        metres; and the (count, R) areas of its rows (NaN: none)."""
        x1, y1, x2, y2 = boxes.T
        probes = np.stack(
            (np.stack((x1, x2, (x1 + x2) / 2, x1, x2), axis=1), np.stack((y2, y2, y2, y1, y1), axis=1)),
            axis=2,
        )
        hits = moves.ground(self.surface, pose, probes, self.max_range_m)
        bottom, whole = hits[:, :3], hits[:, [3, 4, 1, 0]]
        axes = heading_axes(moves.yaws_deg[pose])
        start = extent_of(whole[..., :2], axes)
        # Where the top is above the horizon: start from the bottom edge, as deep as it is wide.
        near = extent_of(bottom[:, :2, :2], axes)
        deep = np.column_stack((near[:, :3], near[:, 2] + near[:, 1] - near[:, 0]))
        start = np.where(np.isfinite(whole).all(axis=(1, 2))[:, None], start, deep)
        grounded = np.isfinite(bottom).all(axis=(1, 2))
        ground_z = np.where(grounded, bottom[:, 2, 2], np.nan)
        extents = fit_prisms(lambda pts: moves.project(pose, pts), boxes, heights, ground_z, axes, start)
        count = len(near_nadir)
        areas = ((extents[:, 1] - extents[:, 0]) * (extents[:, 3] - extents[:, 2])).reshape(count, -1)
        found: list[tuple[Polygon, str] | NoLocation] = []
        for i, base in enumerate(np.arange(count) * areas.shape[1]):
            if not grounded[base]:
                found.append(NoLocation("the box's bottom edge does not meet the ground"))
            elif not np.isfinite(extents[base]).all():
                found.append(
                    NoLocation(
                        f"no object {heights[base]:g} m tall standing on the ground has this box (the "
                        "class's height prior does not fit what is seen)"
                    )
                )
            else:
                method = "relief_corrected_box" if near_nadir[i] else "bottom_edge_height_prior"
                found.append((Polygon(rectangle_corners(extents[base], axes[base])), method))
        return found, areas

    # -- description ---------------------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        intr = self.camera.intrinsics
        o: Orientation = self.camera.orientation
        out: dict[str, Any] = {
            "type": self.source,
            "lon": self.frame.lon0,
            "lat": self.frame.lat0,
            "position_enu_m": [round(v, 3) for v in self.camera.position_enu],
            "yaw_deg": o.yaw_deg,
            "pitch_deg": o.pitch_deg,
            "roll_deg": o.roll_deg,
            "intrinsics": intr.model_dump(),
            "hfov_deg": round(intr.hfov_deg, 3),
            "vfov_deg": round(intr.vfov_deg, 3),
            "surface": "dem" if not isinstance(self.surface, FlatGround) else "flat",
            "max_range_m": self.max_range_m,
            "uncertainty_sigma": self.uncertainty.model_dump(),
        }
        out.update(self.description or {})
        return out
