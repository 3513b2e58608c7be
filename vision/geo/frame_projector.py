"""Pixels of a frame camera (drone or tower) to WGS-84 ground points, footprints and areas.

The camera sits in a local metric frame centred on itself; each pixel's ray is met with the
ground surface (level ground or a DEM), and the hit is converted to WGS-84. Uncertainty is
propagated from the pose's error budget (`PoseUncertainty`) by perturbing each error source
by one sigma, stacking the resulting ground shifts into a covariance and reporting the 95 %
radius of its major axis.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from shapely.geometry import Polygon

from vision.geo.camera import FrameCamera, Orientation
from vision.geo.footprint import local_footprint
from vision.geo.local_frame import LocalFrame
from vision.geo.standing import area_uncertainty_95, extent_of, fit_prism, heading_axes, rectangle_corners
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
        out: list[GroundPosition | NoLocation] = []
        for i, (u, v) in enumerate(pixels):
            if not (-0.5 <= u <= intr.width + 0.5 and -0.5 <= v <= intr.height + 0.5):
                out.append(
                    NoLocation(f"pixel ({u:g}, {v:g}) is outside the {intr.width}x{intr.height} image")
                )
            elif not np.isfinite(t[i]):
                out.append(NoLocation("the pixel's ray does not meet the ground (at or above the horizon)"))
            elif t[i] > self.max_range_m:
                out.append(
                    NoLocation(
                        f"the ground point is {t[i]:.0f} m away, beyond max_range_m={self.max_range_m:.0f}"
                    )
                )
            elif not np.isfinite(radii[i]):
                out.append(
                    NoLocation(
                        "the pixel is within the tilt uncertainty of the horizon; its ground "
                        "position is undetermined"
                    )
                )
            else:
                e = None if elev is None or not np.isfinite(elev[i]) else float(elev[i])
                out.append(GroundPosition(float(lon[i]), float(lat[i]), float(radii[i]), e))
        return out

    def uncertainty_95(self, pixels_xy: np.ndarray, points: np.ndarray | None = None) -> np.ndarray:
        """95 % radius (m) of each pixel's ground point under the pose error budget; inf if undetermined."""
        pixels = np.asarray(pixels_xy, np.float64).reshape(-1, 2)
        base = self.ground_enu(pixels, limit_range=False) if points is None else points
        u = self.uncertainty
        o = self.camera.orientation
        pos = self.camera.position_enu
        variants: list[tuple[FrameCamera, np.ndarray, float]] = []
        for d_yaw, d_pitch, d_roll, sigma in (
            (1, 0, 0, u.yaw_deg),
            (0, 1, 0, u.pitch_roll_deg),
            (0, 0, 1, u.pitch_roll_deg),
        ):
            if sigma > 0:
                cam = self.camera.model_copy(
                    update={"orientation": o.perturbed(d_yaw * sigma, d_pitch * sigma, d_roll * sigma)}
                )
                variants.append((cam, pixels, 1.0))
        if u.vertical_m > 0:
            cam = self.camera.model_copy(update={"position_enu": (pos[0], pos[1], pos[2] + u.vertical_m)})
            variants.append((cam, pixels, 1.0))
        if u.pixel_px > 0:
            variants.append((self.camera, pixels + [u.pixel_px, 0.0], 1.0))
            variants.append((self.camera, pixels + [0.0, u.pixel_px], 1.0))
        cov = np.zeros((len(pixels), 2, 2))
        cov[:, 0, 0] = cov[:, 1, 1] = u.horizontal_m**2
        for cam, px, _ in variants:
            shifted = self.ground_enu(px, cam, limit_range=False)
            delta = shifted[:, :2] - base[:, :2]
            delta[~np.isfinite(delta).all(axis=1)] = np.inf
            cov += np.einsum("ni,nj->nij", delta, delta)
        with np.errstate(invalid="ignore"):
            major = np.array([np.linalg.eigvalsh(c)[-1] if np.isfinite(c).all() else np.inf for c in cov])
        return CHI2_2DOF_95 * np.sqrt(major)

    # -- footprints ----------------------------------------------------------------------

    def off_nadir_deg(self, pixel_xy: tuple[float, float]) -> float:
        ray = self.camera.rays(np.array([pixel_xy], np.float64))[0]
        return math.degrees(math.acos(max(-1.0, min(1.0, -float(ray[2])))))

    def effective_anchor(self, xyxy: np.ndarray, anchor: GroundAnchor) -> GroundAnchor:
        """Seen from nearly straight above, a standing object's base is under its centre, not its
        bottom edge (relief displacement leans it away from the nadir point, not down the image)."""
        x1, y1, x2, y2 = (float(v) for v in xyxy)
        if (
            anchor == "bottom_center"
            and self.off_nadir_deg(((x1 + x2) / 2, (y1 + y2) / 2)) <= self.nadir_footprint_deg
        ):
            return "center"
        return anchor

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
        box = np.asarray(xyxy, np.float64)
        anchor = self.effective_anchor(box, anchor)
        near_nadir = (
            self.off_nadir_deg(((box[0] + box[2]) / 2, (box[1] + box[3]) / 2)) <= self.nadir_footprint_deg
        )
        height_m, height_sigma_m = (0.0, 0.0) if height is None else (height.typical_m, height.sigma_m)

        def area_of(camera: FrameCamera, b: np.ndarray, h: float) -> float | None:
            moved = self._local_footprint(camera, b, anchor, h, near_nadir)
            return None if isinstance(moved, NoLocation) else float(moved[0].area)

        local = self._local_footprint(self.camera, box, anchor, height_m, near_nadir)
        if isinstance(local, NoLocation):
            return local
        polygon, method = local
        u = self.uncertainty
        spread = area_uncertainty_95(
            area_of,
            self.camera,
            box,
            height_m,
            float(polygon.area),
            height_sigma_m=height_sigma_m,
            vertical_m=u.vertical_m,
            pitch_roll_deg=u.pitch_roll_deg,
            yaw_deg=u.yaw_deg,
            pixel_px=u.pixel_px,
        )
        return Footprint(
            polygon=self.frame.polygon_to_wgs84(polygon),
            area_m2=float(polygon.area),
            method=method,
            area_uncertainty_m2=spread,
        )

    def _local_footprint(
        self, camera: FrameCamera, xyxy: np.ndarray, anchor: GroundAnchor, height_m: float, near_nadir: bool
    ) -> tuple[Polygon, str] | NoLocation:
        """The footprint in local metres as `camera` would see it (the uncertainty moves the camera)."""
        if height_m > 0:
            return self._prism_footprint(camera, xyxy, height_m, near_nadir)
        return local_footprint(
            lambda px: self.ground_enu(px, camera)[:, :2],
            xyxy,
            anchor,
            oblique=True,
            camera_xy=camera.position_enu[:2],
            samples_per_edge=self.edge_samples,
        )

    def _prism_footprint(
        self, camera: FrameCamera, xyxy: np.ndarray, height_m: float, near_nadir: bool
    ) -> tuple[Polygon, str] | NoLocation:
        x1, y1, x2, y2 = (float(v) for v in xyxy)
        hits = self.ground_enu(
            np.array([[x1, y2], [x2, y2], [(x1 + x2) / 2, y2], [x1, y1], [x2, y1]]), camera
        )
        bottom, whole = hits[:3], hits[[3, 4, 1, 0]]
        if not np.isfinite(bottom).all():
            return NoLocation("the box's bottom edge does not meet the ground")
        axes = heading_axes(camera)
        if np.isfinite(whole).all():
            start = extent_of(whole[:, :2], axes)
        else:  # the top is above the horizon: start from the bottom edge, as deep as it is wide
            near = extent_of(bottom[:2, :2], axes)
            start = np.array([near[0], near[1], near[2], near[2] + near[1] - near[0]])
        extent = fit_prism(camera, np.asarray(xyxy, np.float64), height_m, float(bottom[2, 2]), start)
        if extent is None:
            return NoLocation(
                f"no object {height_m:g} m tall standing on the ground has this box (the class's "
                "height prior does not fit what is seen)"
            )
        method = "relief_corrected_box" if near_nadir else "bottom_edge_height_prior"
        return Polygon(rectangle_corners(extent, axes)), method

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
