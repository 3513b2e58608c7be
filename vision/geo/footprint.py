"""Footprint polygons from any pixel -> local-ground mapping, shared by frame cameras and homographies."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from shapely.geometry import Polygon

from vision.geo.local_frame import LocalFrame
from vision.geo.types import Footprint, GroundAnchor, NoLocation

GroundMapping = Callable[[np.ndarray], np.ndarray]  # (N, 2) pixels -> (N, 2) local metres, NaN = none


def box_outline(xyxy: np.ndarray, samples_per_edge: int = 8) -> np.ndarray:
    """The box's outline as (M, 2) pixels, clockwise in image coordinates, no repeated corner.

    Edges are sampled because projective and curved-earth mappings bend straight image edges
    only slightly, but a lens with distortion or a DEM can bend them a lot.
    """
    x1, y1, x2, y2 = (float(v) for v in xyxy)
    n = max(2, samples_per_edge)
    xs, ys = np.linspace(x1, x2, n), np.linspace(y1, y2, n)
    return np.concatenate(
        (
            np.column_stack((xs, np.full(n, y1))),
            np.column_stack((np.full(n, x2), ys))[1:],
            np.column_stack((xs[::-1], np.full(n, y2)))[1:],
            np.column_stack((np.full(n, x1), ys[::-1]))[1:-1],
        )
    )


def in_wgs84(local: tuple[Polygon, str] | NoLocation, frame: LocalFrame) -> Footprint | NoLocation:
    """A `local_footprint` result as a Footprint in WGS-84 (a reason stays a reason)."""
    if isinstance(local, NoLocation):
        return local
    return Footprint(polygon=frame.polygon_to_wgs84(local[0]), area_m2=float(local[0].area), method=local[1])


def local_footprint(
    to_ground: GroundMapping,
    xyxy: np.ndarray,
    anchor: GroundAnchor,
    *,
    oblique: bool,
    camera_xy: tuple[float, float] = (0.0, 0.0),
    samples_per_edge: int = 8,
) -> tuple[Polygon, str] | NoLocation:
    """The ground footprint of one box in local metres, and how it was made.

    Flat objects (anchor "center"), and anything seen from nearly straight above, get the
    projection of the whole box. Standing objects seen obliquely ("bottom_center") would
    project their tops far behind them, so only the bottom edge is trusted: the footprint is
    that edge extended away from the camera by its own width, an approximation whose area is
    the squared width ("bottom_edge_square"). A frame camera that knows the class's height
    does better (`vision.geo.standing`).
    """
    if anchor == "bottom_center" and oblique:
        x1, _, x2, y2 = (float(v) for v in xyxy)
        ground = to_ground(np.array([[x1, y2], [x2, y2]]))
        if not np.isfinite(ground).all():
            return NoLocation("the box's bottom edge does not meet the ground")
        a, b = ground[0], ground[1]
        width = float(np.linalg.norm(b - a))
        away = (a + b) / 2 - np.asarray(camera_xy, np.float64)
        norm = float(np.linalg.norm(away))
        if width <= 0 or norm <= 0:
            return NoLocation("the box's bottom edge has no ground extent")
        away = away / norm * width
        return _checked(Polygon([a, b, b + away, a + away]), "bottom_edge_square")
    ground = to_ground(box_outline(xyxy, samples_per_edge))
    if not np.isfinite(ground).all():
        return NoLocation("part of the box does not meet the ground (above the horizon or beyond range)")
    return _checked(Polygon(ground), "projected_box")


def _checked(local: Polygon, method: str) -> tuple[Polygon, str] | NoLocation:
    if not local.is_valid or local.area <= 0:
        return NoLocation("the projected box is degenerate (zero area or self-intersecting)")
    return local, method
