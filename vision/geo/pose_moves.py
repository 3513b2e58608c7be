"""A frame camera and its one-sigma moves, stacked, for batched uncertainty geometry.

Every uncertainty a frame camera reports (a ground point's 95 % radius, a footprint's area
half-width) is a derivative: each error source is moved by one sigma and the geometry redone.
Redone one camera object at a time, that was a Python call per move per detection (~25 ms a
flat detection, ~70 ms a standing one on the development machine). Here the camera and its
pose moves are rows of stacked rotations and centres, and the pixels or points of every move
are ray-cast or projected together in one numpy operation, one surface intersection per
distinct camera centre.

Moves of the pose: yaw, pitch and roll by their sigmas (`Orientation.perturbed`), and the
camera raised by its vertical sigma; a move whose sigma is 0 is left out. Row 0 is the camera
itself. The horizontal position error moves every ground point alike and no area, so it is
added by the callers, not moved here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vision.geo.camera import FrameCamera, Intrinsics
from vision.geo.surface import GroundSurface

RAYS_PER_INTERSECT = 512


@dataclass(frozen=True)
class PoseMoves:
    """Row 0: the camera; rows 1..: its one-sigma pose moves. Arrays are (P, 3, 3) camera-to-world
    rotations, (P, 3) centres (local ENU metres) and (P,) headings (degrees)."""

    intrinsics: Intrinsics
    rotations: np.ndarray
    centres: np.ndarray
    yaws_deg: np.ndarray

    @property
    def distinct_centres(self) -> np.ndarray:
        """(C, 3): the camera's centre, then the raised one's when the height moves."""
        return self.centres[[0, len(self) - 1]] if self.centre_index[-1] else self.centres[:1]

    @property
    def centre_index(self) -> np.ndarray:
        """(P,) each row's index into `distinct_centres` (only the height move is elsewhere)."""
        return (np.abs(self.centres - self.centres[0]).max(axis=1) > 0).astype(int)

    @classmethod
    def of(
        cls, camera: FrameCamera, *, yaw_deg: float, pitch_roll_deg: float, vertical_m: float
    ) -> PoseMoves:
        o = camera.orientation
        turned = [
            o.perturbed(d_yaw * sigma, d_pitch * sigma, d_roll * sigma)
            for d_yaw, d_pitch, d_roll, sigma in (
                (1, 0, 0, yaw_deg),
                (0, 1, 0, pitch_roll_deg),
                (0, 0, 1, pitch_roll_deg),
            )
            if sigma > 0
        ]
        base = o.camera_to_world()
        rotations = [base, *(t.camera_to_world() for t in turned)]
        yaws = [o.yaw_deg, *(t.yaw_deg for t in turned)]
        centre = np.asarray(camera.position_enu, np.float64)
        centres = [centre] * len(rotations)
        if vertical_m > 0:
            rotations.append(base)
            yaws.append(o.yaw_deg)
            centres.append(centre + [0.0, 0.0, vertical_m])
        return cls(camera.intrinsics, np.stack(rotations), np.stack(centres), np.array(yaws))

    def __len__(self) -> int:
        return len(self.rotations)

    def ground(
        self, surface: GroundSurface, pose: np.ndarray, pixels_xy: np.ndarray, max_range_m: float | None
    ) -> np.ndarray:
        """(K, M, 2) pixels, row k seen by pose `pose[k]` -> (K, M, 3) ground points; NaN where a
        ray misses the ground or (with `max_range_m`) meets it farther than that."""
        pixels = np.asarray(pixels_xy, np.float64)
        k, m = pixels.shape[:2]
        xy = self.intrinsics.normalized(pixels.reshape(-1, 2)).reshape(k, m, 2)
        cam = np.concatenate((xy, np.ones((k, m, 1))), axis=2)
        rays = cam @ self.rotations[pose].transpose(0, 2, 1)  # batched matmul: einsum was ~5x slower
        rays /= np.linalg.norm(rays, axis=2, keepdims=True)
        origins = self.centres[pose]
        t = np.full(k * m, np.nan)
        flat_rays = rays.reshape(-1, 3)
        # The surface meets rays from one origin at a time: one call per distinct centre (the
        # camera's, the raised one's), in chunks: a DEM marches all its rays at once in
        # (rays x steps) arrays, ~50 MB for 512 rays over 3 km of a 1 m DEM.
        centre = np.repeat(self.centre_index[pose], m)
        for c in np.unique(centre):
            (which,) = np.nonzero(centre == c)
            for chunk in np.array_split(which, -(-len(which) // RAYS_PER_INTERSECT)):
                t[chunk] = surface.intersect(self.distinct_centres[c], flat_rays[chunk])
        t = t.reshape(k, m)
        if max_range_m is not None:
            t[t > max_range_m] = np.nan
        out: np.ndarray = origins[:, None, :] + t[..., None] * rays
        return out

    def project(self, pose: np.ndarray, points_enu: np.ndarray) -> np.ndarray:
        """(K, Q, 3) ENU points, row k seen by pose `pose[k]` -> (K, Q, 2) pixels; NaN behind it."""
        points = np.asarray(points_enu, np.float64)
        local = points - self.centres[pose][:, None, :]
        cam = local @ self.rotations[pose]  # world -> camera is the transpose, applied from the right
        return self.intrinsics.to_pixels(cam.reshape(-1, 3)).reshape(*points.shape[:2], 2)
