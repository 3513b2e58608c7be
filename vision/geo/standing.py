"""Footprints and areas of standing objects (sheds, smoke columns) seen by a frame camera.

A detector's box around a standing object is the image of a prism: the object's ground
rectangle raised by the class's typical height (`HeightPrior`, from the taxonomy). The box's
sides are each the base or the top of that prism, whichever projects outermost:
- seen from nearly straight above, the top leans away from the nadir point (relief
  displacement) and is closer to the camera, so it looks larger than the base; ray-casting
  the whole box to the ground overstates the area (+18 % p95 straight below a drone at
  30-150 m for a 3 m shed, more off-centre);
- seen obliquely, the box's bottom edge is the base's near edge (its place and width) and its
  top edge the far edge of the top, so the depth is what the prior height leaves of the box.
Both are the same four equations in four unknowns (the rectangle's extent along and across
the camera's heading), solved by Newton's method from the box ray-cast onto the ground. The
mode (near-nadir or oblique, chosen by the caller from the ray angle) says which of the box's
edges are the base's, not different maths.

Assumed: the object's sides run along and across the camera's heading. A box cannot tell an
object's orientation: a square turned 45 degrees has a box twice its area, whatever the method.

Uncertainty is propagated by derivatives: each error source (camera height, pitch, roll, yaw,
each box edge's pixel jitter, and the height prior's spread) is moved by one sigma, the area
recomputed, and the changes added in quadrature; the reported figure is the 95 % half-width
(1.96 sigma), like the 95 % radii of ground positions.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from vision.geo.camera import FrameCamera

Z95 = 1.96  # half-width of a 95 % interval of a normal error, in sigmas
NEWTON_STEPS = 30
NEWTON_STEP_M = 1e-3  # finite-difference step of the Jacobian (metres of rectangle extent)
CONVERGED_M = 1e-5
RESIDUAL_PX = 0.5  # a fit that leaves more than this between the prism's box and the detected box failed

AreaOf = Callable[[FrameCamera, np.ndarray, float], "float | None"]  # camera, xyxy, height -> m² or None


def heading_axes(camera: FrameCamera) -> np.ndarray:
    """(2, 2): rows are the ground unit vectors across (right of) and along the camera's heading."""
    yaw = math.radians(camera.orientation.yaw_deg)
    return np.array([[math.cos(yaw), -math.sin(yaw)], [math.sin(yaw), math.cos(yaw)]])


def rectangle_corners(extent: np.ndarray, axes: np.ndarray) -> np.ndarray:
    """Local ground corners of the rectangle across [a0, a1] x along [b0, b1] the heading."""
    e = np.asarray(extent, np.float64)
    corners = np.stack((e[..., [0, 1, 1, 0]], e[..., [2, 2, 3, 3]]), axis=-1)
    return corners @ axes  # (4, 2) for one extent, (K, 4, 2) for K


def prism_boxes(
    project: Callable[[np.ndarray], np.ndarray],
    extents: np.ndarray,
    axes: np.ndarray,
    ground_z: float,
    height_m: float,
) -> np.ndarray:
    """(K, 4) image boxes (x1, y1, x2, y2) of K prisms given as (K, 4) extents, through a camera's
    `projection()`; NaN when behind the camera."""
    corners = rectangle_corners(extents, axes).reshape(-1, 2)
    base = np.column_stack((corners, np.full(len(corners), ground_z)))
    top = base + [0.0, 0.0, height_m]
    # Base and top corners of prism k are rows 4k..4k+3 of each half.
    px: np.ndarray = project(np.concatenate((base, top))).reshape(2, len(extents), 4, 2)
    lo, hi = px.min(axis=(0, 2)), px.max(axis=(0, 2))
    return np.concatenate((lo, hi), axis=1)


def fit_prism(
    camera: FrameCamera, xyxy: np.ndarray, height_m: float, ground_z: float, start: np.ndarray
) -> np.ndarray | None:
    """The (4,) extent (across a0, a1; along b0, b1, metres) whose prism's image is `xyxy`, or None."""
    axes = heading_axes(camera)
    project = camera.projection()
    box = np.asarray(xyxy, np.float64)
    extent = np.asarray(start, np.float64)
    for _ in range(NEWTON_STEPS):
        steps = extent + np.vstack((np.zeros(4), np.eye(4) * NEWTON_STEP_M))
        boxes = prism_boxes(project, steps, axes, ground_z, height_m)
        if not np.isfinite(boxes).all():
            return None
        jacobian = ((boxes[1:] - boxes[0]) / NEWTON_STEP_M).T
        try:
            step = np.linalg.solve(jacobian, box - boxes[0])
        except np.linalg.LinAlgError:
            return None
        extent = extent + step
        if np.abs(step).max() < CONVERGED_M:
            break
    final = prism_boxes(project, extent[None], axes, ground_z, height_m)[0]
    if not np.isfinite(final).all() or np.abs(final - box).max() > RESIDUAL_PX:
        return None
    if extent[1] <= extent[0] or extent[3] <= extent[2]:
        return None  # the prior height alone makes a box this large: no room left for a footprint
    return extent


def extent_of(points_xy: np.ndarray, axes: np.ndarray) -> np.ndarray:
    """(4,) extent across and along the heading that bounds local ground points (N, 2)."""
    local = points_xy @ axes.T
    return np.array([local[:, 0].min(), local[:, 0].max(), local[:, 1].min(), local[:, 1].max()])


def area_uncertainty_95(
    area_of: AreaOf,
    camera: FrameCamera,
    xyxy: np.ndarray,
    height_m: float,
    base: float,
    *,
    height_sigma_m: float,
    vertical_m: float,
    pitch_roll_deg: float,
    yaw_deg: float,
    pixel_px: float,
) -> float:
    """95 % half-width (m²) of `base` = `area_of(camera, xyxy, height_m)` under one-sigma moves of
    each source. A move after which the area has no solution counts as a change of the whole area.
    """
    o = camera.orientation
    x, y, z = camera.position_enu
    variants: list[tuple[FrameCamera, np.ndarray, float]] = []
    for d_yaw, d_pitch, d_roll, sigma in (
        (1, 0, 0, yaw_deg),
        (0, 1, 0, pitch_roll_deg),
        (0, 0, 1, pitch_roll_deg),
    ):
        if sigma > 0:
            turned = o.perturbed(d_yaw * sigma, d_pitch * sigma, d_roll * sigma)
            variants.append((camera.model_copy(update={"orientation": turned}), xyxy, height_m))
    if vertical_m > 0:
        variants.append((camera.model_copy(update={"position_enu": (x, y, z + vertical_m)}), xyxy, height_m))
    if pixel_px > 0:
        variants.extend((camera, xyxy + np.eye(4)[i] * pixel_px, height_m) for i in range(4))
    if height_sigma_m > 0:
        variants.append((camera, xyxy, height_m + height_sigma_m))
    variance = 0.0
    for cam, box, h in variants:
        moved = area_of(cam, box, h)
        variance += (base if moved is None else moved - base) ** 2
    return Z95 * math.sqrt(variance)
