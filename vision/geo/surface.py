"""The ground a pixel ray meets: level ground following the Earth's curvature, or a DEM.

"Flat ground" is level ground at a reference height (a drone's take-off point, a tower's
base) that curves away with the Earth: with refraction the apparent radius is R / (1 - k).
Over a tower's 1-3 km range the drop is 0.1-0.6 m, which at grazing angles moves a ground
point by tens of metres, so it is not optional; for drones it is negligible but harmless.
Rays are intersected analytically with that surface; rays that never reach it (at or above
the horizon) give NaN.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

EARTH_RADIUS_M = 6_371_008.8
REFRACTION_K = 0.13  # standard terrestrial refraction coefficient


class GroundSurface(Protocol):
    def intersect(self, origin_enu: np.ndarray, directions: np.ndarray) -> np.ndarray:
        """Distances along unit `directions` from `origin_enu` to the ground; NaN where missed."""
        ...

    def elevation_at(self, x: np.ndarray, y: np.ndarray) -> np.ndarray | None:
        """Elevation (m) of ground points, when the surface knows it."""
        ...


def curvature_drop(x: np.ndarray, y: np.ndarray, refraction_k: float = REFRACTION_K) -> np.ndarray:
    """How far level ground at horizontal offset (x, y) from the frame origin lies below the tangent plane."""
    return (np.asarray(x) ** 2 + np.asarray(y) ** 2) / (2.0 * EARTH_RADIUS_M / (1.0 - refraction_k))


@dataclass(frozen=True)
class FlatGround:
    """Level ground at local height 0 (the reference height), optionally curving with the Earth."""

    earth_curvature: bool = True
    refraction_k: float = REFRACTION_K
    reference_elevation_m: float | None = None

    def intersect(self, origin_enu: np.ndarray, directions: np.ndarray) -> np.ndarray:
        ox, oy, oz = (float(v) for v in origin_enu)
        if oz <= 0:
            raise ValueError(f"expected the camera above the ground (height > 0 m), got {oz:.3f} m")
        d = np.asarray(directions, np.float64).reshape(-1, 3)
        dx, dy, dz = d[:, 0], d[:, 1], d[:, 2]
        inv_2r = (1.0 - self.refraction_k) / (2.0 * EARTH_RADIUS_M) if self.earth_curvature else 0.0
        # Ground: z = -inv_2r * (x^2 + y^2); along the ray p = o + t d this is a t^2 + b t + c = 0.
        a = inv_2r * (dx * dx + dy * dy)
        b = dz + 2.0 * inv_2r * (ox * dx + oy * dy)
        c = oz + inv_2r * (ox * ox + oy * oy)
        disc = b * b - 4.0 * a * c
        with np.errstate(invalid="ignore", divide="ignore"):
            # The smaller positive root, written so that a -> 0 (nadir, no curvature) stays exact.
            t = 2.0 * c / (-b + np.sqrt(disc))
        t[(b >= 0) | (disc < 0) | ~np.isfinite(t) | (t <= 0)] = np.nan
        return t

    def elevation_at(self, x: np.ndarray, y: np.ndarray) -> np.ndarray | None:
        if self.reference_elevation_m is None:
            return None
        return np.full(np.shape(x), self.reference_elevation_m, dtype=np.float64)
