"""Footprint polygons from any pixel -> local-ground mapping, shared by frame cameras and homographies."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import shapely
from shapely.geometry import Polygon

from vision.geo.local_frame import LocalFrame
from vision.geo.types import Footprint, GroundAnchor, NoLocation

GroundMapping = Callable[[np.ndarray], np.ndarray]  # (N, 2) pixels -> (N, 2) local metres, NaN = none


def box_outline(xyxy: np.ndarray, samples_per_edge: int = 8) -> np.ndarray:
    """The box's outline as (M, 2) pixels, clockwise in image coordinates, no repeated corner.

    Edges are sampled because projective and curved-earth mappings bend straight image edges
    only slightly, but a lens with distortion or a DEM can bend them a lot.
    """
    return box_outlines(np.asarray(xyxy, np.float64)[None], samples_per_edge)[0]


def box_outlines(xyxy: np.ndarray, samples_per_edge: int = 8) -> np.ndarray:
    """`box_outline` of each of (K, 4) boxes: (K, M, 2)."""
    x1, y1, x2, y2 = np.asarray(xyxy, np.float64).reshape(-1, 4).T
    n = max(2, samples_per_edge)
    xs, ys = np.linspace(x1, x2, n, axis=1), np.linspace(y1, y2, n, axis=1)
    top, bottom = np.broadcast_to(y1[:, None], xs.shape), np.broadcast_to(y2[:, None], xs.shape)
    left, right = np.broadcast_to(x1[:, None], ys.shape), np.broadcast_to(x2[:, None], ys.shape)
    return np.concatenate(
        (
            np.stack((xs, top), axis=2),
            np.stack((right, ys), axis=2)[:, 1:],
            np.stack((xs[:, ::-1], bottom), axis=2)[:, 1:],
            np.stack((left, ys[:, ::-1]), axis=2)[:, 1:-1],
        ),
        axis=1,
    )


def footprint_pixels(xyxy: np.ndarray, *, square: bool, samples_per_edge: int = 8) -> np.ndarray:
    """(K, M, 2) pixels whose ground points make each of (K, 4) boxes' footprint: the bottom
    edge's ends for the bottom-edge square, else the outline."""
    boxes = np.asarray(xyxy, np.float64).reshape(-1, 4)
    if square:
        return np.stack((boxes[:, [0, 3]], boxes[:, [2, 3]]), axis=1)
    return box_outlines(boxes, samples_per_edge)


def footprint_rings(ground: np.ndarray, *, square: bool, camera_xy: tuple[float, float]) -> np.ndarray:
    """(K, M, 2) ground points of `footprint_pixels` -> (K, R, 2) footprint rings; a square whose
    bottom edge has no ground extent (or points at the camera) is NaN."""
    if not square:
        return ground
    a, b = ground[:, 0], ground[:, 1]
    width = np.linalg.norm(b - a, axis=1, keepdims=True)
    away = (a + b) / 2 - np.asarray(camera_xy, np.float64)
    norm = np.linalg.norm(away, axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        away = np.where((width > 0) & (norm > 0), away / norm * width, np.nan)
    return np.stack((a, b, b + away, a + away), axis=1)


def ring_areas(rings: np.ndarray) -> np.ndarray:
    """(K,) areas of (K, R, 2) rings as polygons, NaN for any that `local_footprint` would refuse
    (not finite, self-intersecting or of zero area)."""
    areas = np.full(len(rings), np.nan)
    finite = np.isfinite(rings).all(axis=(1, 2))
    polygons = shapely.polygons(rings[finite])
    areas[finite] = np.where(shapely.is_valid(polygons), shapely.area(polygons), np.nan)
    areas[~(areas > 0)] = np.nan
    return areas


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
    square = anchor == "bottom_center" and oblique
    ground = to_ground(footprint_pixels(xyxy, square=square, samples_per_edge=samples_per_edge)[0])
    return footprint_of_ground(ground, square=square, camera_xy=camera_xy)


def footprint_of_ground(
    ground: np.ndarray, *, square: bool, camera_xy: tuple[float, float]
) -> tuple[Polygon, str] | NoLocation:
    """`local_footprint` from the (M, 2) ground points of its `footprint_pixels`."""
    if square:
        if not np.isfinite(ground).all():
            return NoLocation("the box's bottom edge does not meet the ground")
        ring = footprint_rings(ground[None], square=True, camera_xy=camera_xy)[0]
        if not np.isfinite(ring).all():
            return NoLocation("the box's bottom edge has no ground extent")
        return _checked(Polygon(ring), "bottom_edge_square")
    if not np.isfinite(ground).all():
        return NoLocation("part of the box does not meet the ground (above the horizon or beyond range)")
    return _checked(Polygon(ground), "projected_box")


def _checked(local: Polygon, method: str) -> tuple[Polygon, str] | NoLocation:
    if not local.is_valid or local.area <= 0:
        return NoLocation("the projected box is degenerate (zero area or self-intersecting)")
    return local, method
