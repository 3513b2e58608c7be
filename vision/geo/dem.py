"""Terrain from a DEM GeoTIFF: a window around the camera, sampled bilinearly, met by ray marching.

Only the window covering the camera's surroundings (`radius_m`) is read, so national DEMs
work. Heights must be in the same vertical datum as the camera elevation the caller gives
(for DJI drones: take-off elevation + RelativeAltitude, or AbsoluteAltitude as written).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from affine import Affine
from pyproj import Transformer

from vision.errors import GeoError
from vision.geo.local_frame import LocalFrame
from vision.geo.surface import REFRACTION_K, curvature_drop


class DemError(GeoError):
    """The DEM cannot be used here: unreadable, wrong shape, or not covering the area."""


@dataclass(frozen=True)
class Dem:
    """Elevations (metres, NaN for nodata) of one DEM window, addressed in a local frame."""

    elevations: np.ndarray
    transform: Affine
    frame: LocalFrame
    pixel_size_m: float
    path: str = ""
    _local_to_dem: Transformer = field(default=None, repr=False, compare=False)  # type: ignore[assignment]

    @classmethod
    def from_geotiff(cls, path: str | Path, frame: LocalFrame, radius_m: float = 3000.0) -> Dem:
        import rasterio
        from rasterio.errors import RasterioIOError, WindowError
        from rasterio.windows import Window, from_bounds

        try:
            src = rasterio.open(path)
        except RasterioIOError as exc:
            raise DemError(f"{path}: cannot open DEM: {exc}") from exc
        with src:
            if src.crs is None:
                raise DemError(f"{path}: expected a DEM with a CRS, got none")
            to_dem = Transformer.from_crs(frame.crs, src.crs, always_xy=True)
            ring = np.linspace(0, 2 * np.pi, 73)
            xs = np.concatenate((radius_m * np.cos(ring), [0.0]))
            ys = np.concatenate((radius_m * np.sin(ring), [0.0]))
            dx, dy = to_dem.transform(xs, ys)
            window = from_bounds(min(dx), min(dy), max(dx), max(dy), transform=src.transform)
            window = window.round_offsets(op="floor").round_lengths(op="ceil")
            try:
                window = window.intersection(Window(0, 0, src.width, src.height))
            except WindowError as exc:
                raise DemError(
                    f"{path}: the DEM does not cover {radius_m:.0f} m around "
                    f"{frame.lon0:.6f}, {frame.lat0:.6f}"
                ) from exc
            band = src.read(1, window=window, masked=True).astype(np.float64)
            elevations = band.filled(np.nan)
            transform = src.window_transform(window)
            # Pixel size in metres, measured in the local frame, for the ray-march step.
            to_local = Transformer.from_crs(src.crs, frame.crs, always_xy=True)
            cx, cy = transform @ (elevations.shape[1] / 2, elevations.shape[0] / 2)
            px, py = transform @ (elevations.shape[1] / 2 + 1, elevations.shape[0] / 2)
            (ax, bx), (ay, by) = to_local.transform([cx, px], [cy, py])
            pixel_size = float(np.hypot(bx - ax, by - ay))
        if not np.isfinite(elevations).any():
            raise DemError(f"{path}: the DEM window around the camera holds only nodata")
        return cls(
            elevations=elevations,
            transform=transform,
            frame=frame,
            pixel_size_m=pixel_size,
            path=str(path),
            _local_to_dem=to_dem,
        )

    def elevation_at(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Bilinear elevations at local (x, y) metres; NaN outside the window or on nodata."""
        x = np.asarray(x, np.float64)
        y = np.asarray(y, np.float64)
        shape = np.broadcast_shapes(x.shape, y.shape)
        dx, dy = self._local_to_dem.transform(
            np.broadcast_to(x, shape).ravel(), np.broadcast_to(y, shape).ravel()
        )
        col, row = ~self.transform @ (np.asarray(dx), np.asarray(dy))
        # Values sit at pixel centres.
        fc, fr = np.asarray(col) - 0.5, np.asarray(row) - 0.5
        h, w = self.elevations.shape
        c0 = np.floor(fc).astype(np.int64)
        r0 = np.floor(fr).astype(np.int64)
        inside = (c0 >= 0) & (r0 >= 0) & (c0 + 1 < w) & (r0 + 1 < h)
        out = np.full(fc.shape, np.nan)
        c0i, r0i = c0[inside], r0[inside]
        tc, tr = fc[inside] - c0i, fr[inside] - r0i
        e = self.elevations
        top = e[r0i, c0i] * (1 - tc) + e[r0i, c0i + 1] * tc
        bottom = e[r0i + 1, c0i] * (1 - tc) + e[r0i + 1, c0i + 1] * tc
        out[inside] = top * (1 - tr) + bottom * tr
        return out.reshape(shape)


@dataclass(frozen=True)
class DemGround:
    """Terrain surface for ray intersection; camera heights are absolute elevations here."""

    dem: Dem
    max_range_m: float = 3000.0
    earth_curvature: bool = True
    refraction_k: float = REFRACTION_K

    def _surface_z(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        z = self.dem.elevation_at(x, y)
        if self.earth_curvature:
            z = z - curvature_drop(x, y, self.refraction_k)
        return z

    def intersect(self, origin_enu: np.ndarray, directions: np.ndarray) -> np.ndarray:
        o = np.asarray(origin_enu, np.float64)
        d = np.asarray(directions, np.float64).reshape(-1, 3)
        ground_below = self._surface_z(np.array([o[0]]), np.array([o[1]]))[0]
        if np.isfinite(ground_below) and o[2] <= ground_below:
            raise ValueError(
                f"expected the camera above the terrain, got camera elevation {o[2]:.2f} m "
                f"and terrain {ground_below:.2f} m"
            )
        step = max(0.5, self.dem.pixel_size_m / 2.0)
        ts = np.arange(0.0, self.max_range_m + step, step)
        result = np.full(len(d), np.nan)
        # A level or rising ray never meets terrain that lies below the camera.
        falling = np.flatnonzero(d[:, 2] < 0)
        if not len(falling):
            return result
        # March every falling ray at once, then bisect all first crossings together.
        p = o + ts[None, :, None] * d[falling, None, :]
        above = p[..., 2] - self._surface_z(p[..., 0], p[..., 1])
        below = above <= 0
        first = np.argmax(below, axis=1)
        hit = below[np.arange(len(falling)), first] & (first > 0)
        hit &= np.isfinite(above[np.arange(len(falling)), np.maximum(first - 1, 0)])
        rays, first = falling[hit], first[hit]
        lo, hi = ts[first - 1], ts[first]
        dirs = d[rays]
        for _ in range(40):  # bisection to well below a millimetre
            mid = 0.5 * (lo + hi)
            q = o + mid[:, None] * dirs
            gap = q[:, 2] - self._surface_z(q[:, 0], q[:, 1])
            outside = gap > 0
            lo = np.where(outside, mid, lo)
            hi = np.where(outside, hi, mid)
        result[rays] = 0.5 * (lo + hi)
        return result

    def elevation_at(self, x: np.ndarray, y: np.ndarray) -> np.ndarray | None:
        return self.dem.elevation_at(x, y)
