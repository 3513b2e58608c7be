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

The fit and its moves are one batch: K prisms (the detection and each of its moves, each seen
by its own camera pose through a batched `project`) take their Newton steps together, a row
stopping when it converges or fails, so the cost is one numpy pass per step for all of them
instead of a Python loop per move (vision.geo.pose_moves).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

Z95 = 1.96  # half-width of a 95 % interval of a normal error, in sigmas
NEWTON_STEPS = 30
NEWTON_STEP_M = 1e-3  # finite-difference step of the Jacobian (metres of rectangle extent)
CONVERGED_M = 1e-5
RESIDUAL_PX = 0.5  # a fit that leaves more than this between the prism's box and the detected box failed
# The extent moved by each finite-difference probe: none (the extent itself), then each unknown.
PROBES = np.vstack((np.zeros(4), np.eye(4) * NEWTON_STEP_M))

# (K, Q, 3) ground points, row k seen by row k's camera -> (K, Q, 2) pixels, NaN behind it.
BatchProjection = Callable[[np.ndarray], np.ndarray]


def heading_axes(yaw_deg: float | np.ndarray) -> np.ndarray:
    """(..., 2, 2): rows are the ground unit vectors across (right of) and along a heading."""
    yaw = np.radians(yaw_deg)
    c, s = np.cos(yaw), np.sin(yaw)
    return np.stack((np.stack((c, -s), axis=-1), np.stack((s, c), axis=-1)), axis=-2)


def rectangle_corners(extent: np.ndarray, axes: np.ndarray) -> np.ndarray:
    """Local ground corners of the rectangle across [a0, a1] x along [b0, b1] the heading:
    (4, 2) for a (4,) extent, (..., 4, 2) for (..., 4) extents and matching (..., 2, 2) axes."""
    e = np.asarray(extent, np.float64)
    corners = np.stack((e[..., [0, 1, 1, 0]], e[..., [2, 2, 3, 3]]), axis=-1)
    out: np.ndarray = corners @ axes
    return out


def prism_boxes(
    project: BatchProjection,
    extents: np.ndarray,
    axes: np.ndarray,
    ground_z: np.ndarray,
    height_m: np.ndarray,
) -> np.ndarray:
    """(K, S, 4) image boxes (x1, y1, x2, y2) of K x S prisms given as (K, S, 4) extents; row k's
    prisms stand on ground at `ground_z[k]`, `height_m[k]` tall, with heading `axes[k]` (K, 2, 2),
    seen by row k's camera; NaN when behind it."""
    k, s = extents.shape[:2]
    corners = rectangle_corners(extents, axes[:, None])  # (K, S, 4, 2)
    base = np.concatenate((corners, np.broadcast_to(ground_z[:, None, None, None], (k, s, 4, 1))), axis=3)
    top = base + np.stack((np.zeros(k), np.zeros(k), height_m), axis=1)[:, None, None, :]
    px = project(np.concatenate((base, top), axis=2).reshape(k, s * 8, 3)).reshape(k, s, 8, 2)
    with np.errstate(invalid="ignore"):
        return np.concatenate((px.min(axis=2), px.max(axis=2)), axis=2)


def fit_prisms(
    project: BatchProjection,
    xyxy: np.ndarray,
    height_m: np.ndarray,
    ground_z: np.ndarray,
    axes: np.ndarray,
    start: np.ndarray,
) -> np.ndarray:
    """(K, 4) extents (across a0, a1; along b0, b1, metres) whose prisms' images are the (K, 4)
    boxes `xyxy`, by Newton's method from `start`; a row is NaN where there is none."""
    boxes = np.asarray(xyxy, np.float64)
    extent = np.array(start, np.float64)
    failed = ~(np.isfinite(extent).all(axis=1) & np.isfinite(ground_z))
    active = ~failed
    for _ in range(NEWTON_STEPS):
        if not active.any():
            break
        probes = prism_boxes(project, extent[:, None, :] + PROBES, axes, ground_z, height_m)
        jacobian = ((probes[:, 1:] - probes[:, :1]) / NEWTON_STEP_M).transpose(0, 2, 1)
        with np.errstate(invalid="ignore", over="ignore"):
            solvable = np.isfinite(probes).all(axis=(1, 2)) & (np.linalg.det(jacobian) != 0)
        failed |= active & ~solvable
        active &= solvable
        step = np.zeros_like(extent)
        step[active] = np.linalg.solve(jacobian[active], (boxes - probes[:, 0])[active][..., None])[..., 0]
        extent += step
        active &= np.abs(step).max(axis=1) >= CONVERGED_M
    final = prism_boxes(project, extent[:, None, :], axes, ground_z, height_m)[:, 0]
    with np.errstate(invalid="ignore"):
        failed |= ~np.isfinite(final).all(axis=1) | (np.abs(final - boxes).max(axis=1) > RESIDUAL_PX)
        # The prior height alone makes a box this large: no room left for a footprint.
        failed |= (extent[:, 1] <= extent[:, 0]) | (extent[:, 3] <= extent[:, 2])
    extent[failed] = np.nan
    return extent


def extent_of(points_xy: np.ndarray, axes: np.ndarray) -> np.ndarray:
    """(K, 4) extents across and along each row's heading `axes` (K, 2, 2) bounding (K, N, 2) local
    ground points."""
    local = points_xy @ axes.transpose(0, 2, 1)
    lo, hi = local.min(axis=1), local.max(axis=1)
    return np.stack((lo[:, 0], hi[:, 0], lo[:, 1], hi[:, 1]), axis=1)


def area_uncertainty_95(base: np.ndarray, moved: np.ndarray) -> np.ndarray:
    """95 % half-widths (m²) of (G,) areas `base` from the (G, M) areas after one-sigma moves of
    each error source. A move after which the area has no solution (NaN) counts as a change of
    the whole area.
    """
    whole = np.asarray(base, np.float64)[..., None]
    changes = np.where(np.isnan(moved), whole, np.asarray(moved, np.float64) - whole)
    spread: np.ndarray = Z95 * np.sqrt(np.sum(changes**2, axis=-1))
    return spread
