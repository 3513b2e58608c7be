"""Pinhole camera geometry: intrinsics, orientation, pixel rays and projection.

Conventions (used by every frame camera, drone or tower):
- Pixels are continuous: (0, 0) is the top-left corner of the image, (width, height) the
  bottom-right one, the same convention as `Detections.xyxy`.
- The world frame is local east-north-up metres (see `local_frame`).
- Orientation is yaw (heading of the optical axis, degrees clockwise from true north), pitch
  (0 = horizontal, -90 = straight down, the DJI gimbal convention) and roll (positive turns the
  image clockwise as seen from behind the camera). At pitch -90 the top of the image points
  towards the yaw heading.
Lens distortion, when coefficients are given, is handled by OpenCV in both directions.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

FULL_FRAME_DIAGONAL_MM = math.hypot(36.0, 24.0)


class Intrinsics(BaseModel):
    """Image size and pinhole parameters in pixels, plus optional OpenCV distortion."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    width: int = Field(gt=0, description="Image width in pixels.")
    height: int = Field(gt=0, description="Image height in pixels.")
    fx: float = Field(gt=0, description="Focal length in pixels along x.")
    fy: float = Field(gt=0, description="Focal length in pixels along y.")
    cx: float = Field(description="Principal point x in pixels.")
    cy: float = Field(description="Principal point y in pixels.")
    distortion: tuple[float, ...] = Field(
        default=(), description="OpenCV distortion coefficients (k1, k2, p1, p2[, k3...]); empty for none."
    )

    @model_validator(mode="after")
    def _check_distortion(self) -> Intrinsics:
        if len(self.distortion) not in (0, 4, 5, 8, 12, 14):
            raise ValueError(
                f"expected 0, 4, 5, 8, 12 or 14 distortion coefficients, got {len(self.distortion)}"
            )
        return self

    @classmethod
    def from_hfov(cls, width: int, height: int, hfov_deg: float) -> Intrinsics:
        """Square pixels, centred principal point, horizontal field of view in degrees."""
        if not 0 < hfov_deg < 180:
            raise ValueError(f"expected a horizontal field of view in (0, 180) degrees, got {hfov_deg}")
        f = (width / 2.0) / math.tan(math.radians(hfov_deg) / 2.0)
        return cls(width=width, height=height, fx=f, fy=f, cx=width / 2.0, cy=height / 2.0)

    @classmethod
    def from_focal_mm(cls, width: int, height: int, focal_mm: float, sensor_width_mm: float) -> Intrinsics:
        if focal_mm <= 0 or sensor_width_mm <= 0:
            raise ValueError(
                f"expected positive focal length and sensor width in mm, got {focal_mm}, {sensor_width_mm}"
            )
        f = focal_mm * width / sensor_width_mm
        return cls(width=width, height=height, fx=f, fy=f, cx=width / 2.0, cy=height / 2.0)

    @classmethod
    def from_35mm_equivalent(cls, width: int, height: int, focal_35mm: float) -> Intrinsics:
        """The 35 mm equivalent focal length is defined on the diagonal (43.27 mm)."""
        if focal_35mm <= 0:
            raise ValueError(f"expected a positive 35 mm equivalent focal length, got {focal_35mm}")
        f = focal_35mm * math.hypot(width, height) / FULL_FRAME_DIAGONAL_MM
        return cls(width=width, height=height, fx=f, fy=f, cx=width / 2.0, cy=height / 2.0)

    @property
    def matrix(self) -> np.ndarray:
        return np.array([[self.fx, 0, self.cx], [0, self.fy, self.cy], [0, 0, 1]], dtype=np.float64)

    @property
    def hfov_deg(self) -> float:
        return math.degrees(2 * math.atan(self.width / 2.0 / self.fx))

    @property
    def vfov_deg(self) -> float:
        return math.degrees(2 * math.atan(self.height / 2.0 / self.fy))

    def normalized(self, pixels_xy: np.ndarray) -> np.ndarray:
        """(N, 2) pixels -> (N, 2) undistorted normalised image coordinates (x/z, y/z)."""
        pts = np.asarray(pixels_xy, np.float64).reshape(-1, 2)
        if not self.distortion:
            return np.column_stack(((pts[:, 0] - self.cx) / self.fx, (pts[:, 1] - self.cy) / self.fy))
        # The default 5 iterations leave ~0.01 px at wide-lens corners; iterate to convergence.
        criteria = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 100, 1e-12)
        out = cv2.undistortPointsIter(  # type: ignore[call-overload]  # the stubs refuse None for R and P
            pts.reshape(-1, 1, 2), self.matrix, np.asarray(self.distortion, np.float64), None, None, criteria
        )
        return out.reshape(-1, 2)

    def to_pixels(self, points_cam: np.ndarray) -> np.ndarray:
        """(N, 3) points in camera coordinates (x right, y down, z forward) -> (N, 2) pixels, the
        inverse of `normalized`; NaN for points at or behind the camera."""
        pts = np.asarray(points_cam, np.float64).reshape(-1, 3)
        pixels: np.ndarray
        with np.errstate(divide="ignore", invalid="ignore"):
            if not self.distortion:
                pixels = np.column_stack(
                    (self.fx * pts[:, 0] / pts[:, 2] + self.cx, self.fy * pts[:, 1] / pts[:, 2] + self.cy)
                )
            else:
                zero = np.zeros(3)
                out, _ = cv2.projectPoints(
                    pts.reshape(-1, 1, 3), zero, zero, self.matrix, np.asarray(self.distortion, np.float64)
                )
                pixels = out.reshape(-1, 2)
        pixels[~(pts[:, 2] > 0)] = np.nan
        return pixels


class Orientation(BaseModel):
    """Where the optical axis points, in degrees (see the module docstring for conventions)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    yaw_deg: float = Field(ge=-720, le=720, description="Heading of the optical axis, clockwise from north.")
    pitch_deg: float = Field(ge=-90, le=90, description="0 horizontal, -90 straight down.")
    roll_deg: float = Field(default=0.0, ge=-180, le=180, description="Clockwise image rotation.")

    def camera_to_world(self) -> np.ndarray:
        """3x3 rotation whose columns are the camera's x (right), y (down), z (forward) in ENU."""
        yaw, pitch, roll = (math.radians(a) for a in (self.yaw_deg, self.pitch_deg, self.roll_deg))
        sy, cy, sp, cp, sr, cr = (f(a) for a in (yaw, pitch, roll) for f in (math.sin, math.cos))
        # Unrolled because every pixel -> ground call builds it (np.cross alone cost ~0.1 ms):
        # forward = (sy cp, cy cp, sp), level right0 = (cy, -sy, 0), down0 = forward x right0
        # = (sy sp, cy sp, -cp); roll turns right0 and down0 about forward.
        return np.array(
            [
                [cr * cy + sr * sy * sp, cr * sy * sp - sr * cy, sy * cp],
                [-cr * sy + sr * cy * sp, cr * cy * sp + sr * sy, cy * cp],
                [-sr * cp, -cr * cp, sp],
            ]
        )

    def perturbed(self, d_yaw: float = 0.0, d_pitch: float = 0.0, d_roll: float = 0.0) -> Orientation:
        pitch = min(90.0, max(-90.0, self.pitch_deg + d_pitch))
        roll = (self.roll_deg + d_roll + 180.0) % 360.0 - 180.0
        return Orientation(yaw_deg=(self.yaw_deg + d_yaw) % 360.0, pitch_deg=pitch, roll_deg=roll)


class FrameCamera(BaseModel):
    """A camera at a local ENU position (metres) with intrinsics and an orientation."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    intrinsics: Intrinsics
    orientation: Orientation
    position_enu: tuple[float, float, float] = Field(description="Camera centre, local east/north/up metres.")

    def rays(self, pixels_xy: np.ndarray) -> np.ndarray:
        """(N, 2) pixels -> (N, 3) unit direction vectors in ENU."""
        xy = self.intrinsics.normalized(pixels_xy)
        cam = np.column_stack((xy, np.ones(len(xy))))
        world = cam @ self.orientation.camera_to_world().T
        return world / np.linalg.norm(world, axis=1, keepdims=True)

    def project(self, points_enu: np.ndarray) -> np.ndarray:
        """(N, 3) ENU points -> (N, 2) pixels; NaN for points behind the camera."""
        return self.projection()(points_enu)

    def projection(self) -> Callable[[np.ndarray], np.ndarray]:
        """`project` with the pose worked out once, for many calls with one camera (a fit)."""
        r_cw = self.orientation.camera_to_world()
        centre = np.asarray(self.position_enu, np.float64)

        def project(points_enu: np.ndarray) -> np.ndarray:
            pts = np.asarray(points_enu, np.float64).reshape(-1, 3)
            return self.intrinsics.to_pixels((pts - centre) @ r_cw)

        return project
