"""Pixel -> ground through a homography fitted (OpenCV) to surveyed ground control points.

Valid for flat ground: a plane seen by a pinhole camera is exactly a homography. The fit's
residuals give a pixel-level sigma, which the homography's local Jacobian turns into
metres for each pixel, so far pixels get wider radii than near ones.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from vision.errors import GeoError
from vision.geo.footprint import in_wgs84, local_footprint
from vision.geo.frame_projector import CHI2_2DOF_95, located
from vision.geo.local_frame import LocalFrame
from vision.geo.projector import footprint_each
from vision.geo.types import Footprint, GroundAnchor, GroundPosition, NoLocation
from vision.taxonomy import HeightPrior

MIN_GCPS = 4


class HomographyError(GeoError):
    """Ground control points cannot give a usable homography."""


def _apply(h: np.ndarray, pts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Map (N, 2) points, returning the mapped points and the homogeneous w of each."""
    homo = np.column_stack((pts, np.ones(len(pts)))) @ h.T
    with np.errstate(divide="ignore", invalid="ignore"):
        return homo[:, :2] / homo[:, 2:3], homo[:, 2]


@dataclass(frozen=True)
class HomographyProjector:
    """Pixel -> local ground metres via H, around a local frame (the camera's position)."""

    matrix: np.ndarray  # pixel -> local metres
    frame: LocalFrame
    width: int
    height: int
    fit_sigma_px: float  # residual sigma of the fit, in pixels (or an assumed one for exactly 4 GCPs)
    pixel_sigma_px: float
    residuals_m: tuple[float, ...]
    w_sign: float  # sign of w on the ground side of the horizon
    max_range_m: float = 3000.0
    sigma_assumed: bool = False
    source: str = "camera"

    @classmethod
    def fit(
        cls,
        pixels_xy: np.ndarray,
        ground_lonlat: np.ndarray,
        frame: LocalFrame,
        width: int,
        height: int,
        *,
        pixel_sigma_px: float = 2.0,
        assumed_fit_sigma_px: float = 3.0,
        max_range_m: float = 3000.0,
    ) -> HomographyProjector:
        pixels = np.asarray(pixels_xy, np.float64).reshape(-1, 2)
        lonlat = np.asarray(ground_lonlat, np.float64).reshape(-1, 2)
        if len(pixels) < MIN_GCPS or len(pixels) != len(lonlat):
            raise HomographyError(
                f"expected at least {MIN_GCPS} ground control points with one pixel each, "
                f"got {len(pixels)} pixels and {len(lonlat)} ground points"
            )
        gx, gy = frame.to_local(lonlat[:, 0], lonlat[:, 1])
        ground = np.column_stack((gx, gy))
        h, _ = cv2.findHomography(pixels, ground, 0)  # least squares over all points: no outlier dropping
        if h is None or not np.isfinite(h).all() or abs(np.linalg.det(h)) < 1e-18:
            raise HomographyError(
                "the ground control points are degenerate (three or more on one line, or "
                "repeated); survey points spread over the image"
            )
        mapped, w = _apply(h, pixels)
        if not (np.all(w > 0) or np.all(w < 0)):
            raise HomographyError(
                "the ground control points do not lie on one side of the horizon; check them"
            )
        residuals = np.linalg.norm(mapped - ground, axis=1)
        back, _ = _apply(np.linalg.inv(h), ground)
        pixel_residuals = np.linalg.norm(back - pixels, axis=1)
        dof = 2 * len(pixels) - 8
        if dof > 0:
            sigma = float(math.sqrt(np.sum(pixel_residuals**2) / dof))
            assumed = False
        else:
            sigma, assumed = assumed_fit_sigma_px, True
        return cls(
            matrix=h,
            frame=frame,
            width=width,
            height=height,
            fit_sigma_px=sigma,
            pixel_sigma_px=pixel_sigma_px,
            residuals_m=tuple(float(r) for r in residuals),
            w_sign=float(np.sign(w[0])),
            max_range_m=max_range_m,
            sigma_assumed=assumed,
        )

    def ground_local(self, pixels_xy: np.ndarray) -> np.ndarray:
        pts, w = _apply(self.matrix, np.asarray(pixels_xy, np.float64).reshape(-1, 2))
        bad = (np.sign(w) != self.w_sign) | (np.linalg.norm(pts, axis=1) > self.max_range_m)
        pts[bad] = np.nan
        return pts

    def _radius_95(self, pixels: np.ndarray) -> np.ndarray:
        sigma = math.hypot(self.fit_sigma_px, self.pixel_sigma_px)
        eps = 0.5
        base = self.ground_local(pixels)
        jx = (self.ground_local(pixels + [eps, 0]) - base) / eps
        jy = (self.ground_local(pixels + [0, eps]) - base) / eps
        jjt = np.einsum("ni,nj->nij", jx, jx) + np.einsum("ni,nj->nij", jy, jy)
        major = np.array([np.linalg.eigvalsh(m)[-1] if np.isfinite(m).all() else np.inf for m in jjt])
        return CHI2_2DOF_95 * sigma * np.sqrt(major)

    def locate(self, pixels_xy: np.ndarray) -> list[GroundPosition | NoLocation]:
        pixels = np.asarray(pixels_xy, np.float64).reshape(-1, 2)
        pts = self.ground_local(pixels)
        radii = self._radius_95(pixels)
        lon, lat = self.frame.to_lonlat(pts[:, 0], pts[:, 1])
        beyond = (
            "the pixel is above the horizon of the fitted ground plane or beyond "
            f"max_range_m={self.max_range_m:.0f}"
        )
        return located(
            pixels,
            (self.width, self.height),
            lon,
            lat,
            radii,
            [
                (~np.isfinite(pts).all(axis=1), lambda i: beyond),
                (
                    ~np.isfinite(radii),
                    lambda i: "the pixel is too close to the horizon for a determined position",
                ),
            ],
        )

    def effective_anchor(self, xyxy: np.ndarray, anchor: GroundAnchor) -> GroundAnchor:
        return anchor

    def footprint(
        self, xyxy: np.ndarray, anchor: GroundAnchor, height: HeightPrior | None = None
    ) -> Footprint | NoLocation:
        # A plane-to-plane mapping knows no camera position, so no height can be placed.
        return in_wgs84(local_footprint(self.ground_local, xyxy, anchor, oblique=True), self.frame)

    def footprints(
        self, xyxy: np.ndarray, anchors: Sequence[GroundAnchor], heights: Sequence[HeightPrior | None]
    ) -> list[Footprint | NoLocation]:
        return footprint_each(self, xyxy, anchors, heights)

    def describe(self) -> dict[str, Any]:
        return {
            "type": "camera",
            "method": "homography",
            "lon": self.frame.lon0,
            "lat": self.frame.lat0,
            "homography_pixel_to_local_m": self.matrix.round(9).tolist(),
            "gcp_residuals_m": [round(r, 3) for r in self.residuals_m],
            "fit_sigma_px": round(self.fit_sigma_px, 3),
            "fit_sigma_assumed": self.sigma_assumed,
            "max_range_m": self.max_range_m,
        }
