"""Watchtower and PTZ cameras: a surveyed config, a ray-to-ground model or a GCP homography.

A config gives the camera's position, mounting height, heading and tilt at pan/tilt zero,
the horizontal field of view per zoom, and optional presets (pan, tilt, zoom, ground
control points). With at least four GCPs for a preset the homography fitted to them is
used; otherwise rays are met with level ground (or a DEM) at the tower's base.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from vision.config_files import load_config_file
from vision.errors import GeoError
from vision.geo.camera import FrameCamera, Intrinsics, Orientation
from vision.geo.dem import Dem, DemGround
from vision.geo.frame_projector import FrameProjector, PoseUncertainty
from vision.geo.homography import MIN_GCPS, HomographyProjector
from vision.geo.local_frame import LocalFrame
from vision.geo.surface import FlatGround
from vision.geo.types import GroundPosition, Latitude, Longitude


class TowerConfigError(GeoError):
    """A tower camera config file is unreadable or invalid."""


class GroundControlPoint(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    pixel: tuple[float, float] = Field(description="Pixel x, y in the preset's image.")
    lon: Longitude
    lat: Latitude


class Preset(BaseModel):
    """A PTZ preset: pan added to the heading, tilt of the optical axis, zoom, and optional GCPs."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    pan_deg: float = Field(default=0.0, ge=-360, le=360, description="Added to the camera's heading.")
    tilt_deg: float | None = Field(
        default=None,
        ge=-90,
        le=90,
        description="Tilt of the optical axis (negative is down); None keeps the camera's tilt.",
    )
    zoom: float = Field(default=1.0, gt=0)
    gcps: tuple[GroundControlPoint, ...] = ()

    @field_validator("id", mode="before")
    @classmethod
    def _id_as_text(cls, value: Any) -> str:
        return str(value)


class TowerCameraConfig(BaseModel):
    """One tower camera, as surveyed."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    lon: Longitude
    lat: Latitude
    mount_height_m: float = Field(
        gt=0, le=1000, description="Lens height above the ground at the tower's base."
    )
    base_elevation_m: float | None = Field(
        default=None, description="Ground elevation at the base (for a DEM)."
    )
    heading_deg: float = Field(ge=-360, le=360, description="Heading at pan 0, clockwise from true north.")
    tilt_deg: float = Field(ge=-90, le=45, description="Tilt at the home position, negative is down.")
    roll_deg: float = Field(default=0.0, ge=-45, le=45)
    image_width: int = Field(gt=0)
    image_height: int = Field(gt=0)
    hfov_deg: dict[float, float] = Field(description="Horizontal field of view (degrees) per zoom factor.")
    distortion: tuple[float, ...] = ()
    presets: tuple[Preset, ...] = ()
    uncertainty: PoseUncertainty = Field(
        default_factory=lambda: PoseUncertainty(
            horizontal_m=0.5, vertical_m=0.3, pitch_roll_deg=0.2, yaw_deg=0.3, pixel_px=2.0
        )
    )
    max_range_m: float = Field(default=3000.0, gt=0, le=50_000)

    @field_validator("hfov_deg")
    @classmethod
    def _fovs(cls, value: dict[float, float]) -> dict[float, float]:
        if not value:
            raise ValueError("expected at least one zoom: hfov_deg entry, e.g. {1: 60.0}")
        for zoom, fov in value.items():
            if zoom <= 0 or not 0 < fov < 180:
                raise ValueError(f"expected zoom > 0 and 0 < hfov < 180, got {zoom}: {fov}")
        return dict(sorted(value.items()))

    @model_validator(mode="after")
    def _unique_presets(self) -> TowerCameraConfig:
        ids = [p.id for p in self.presets]
        if len(ids) != len(set(ids)):
            raise ValueError(f"expected unique preset ids, got {ids}")
        return self

    @classmethod
    def load(cls, path: str | Path) -> TowerCameraConfig:
        return load_config_file(cls, Path(path), "camera config", TowerConfigError)  # .json or YAML

    def preset(self, preset_id: str | None) -> Preset:
        if preset_id is None:
            return Preset(id="home")
        for p in self.presets:
            if p.id == str(preset_id):
                return p
        raise TowerConfigError(
            f"unknown preset {preset_id!r}; known: {[p.id for p in self.presets] or 'none'}"
        )

    def hfov_at(self, zoom: float) -> float:
        """Field of view at a zoom, interpolated linearly in focal length between listed zooms."""
        zooms = list(self.hfov_deg)
        if zoom in self.hfov_deg:
            return self.hfov_deg[zoom]
        if not zooms[0] <= zoom <= zooms[-1]:
            raise TowerConfigError(f"zoom {zoom} is outside the calibrated range {zooms[0]}-{zooms[-1]}")
        inv_tan = [1.0 / math.tan(math.radians(self.hfov_deg[z]) / 2) for z in zooms]
        f = float(np.interp(zoom, zooms, inv_tan))
        return math.degrees(2 * math.atan(1.0 / f))


def build_tower_projector(
    config: TowerCameraConfig, preset_id: str | None = None, *, dem_path: str | Path | None = None
) -> FrameProjector | HomographyProjector:
    preset = config.preset(preset_id)
    frame = LocalFrame(config.lon, config.lat)
    if len(preset.gcps) >= MIN_GCPS:
        return HomographyProjector.fit(
            np.array([g.pixel for g in preset.gcps]),
            np.array([[g.lon, g.lat] for g in preset.gcps]),
            frame,
            config.image_width,
            config.image_height,
            pixel_sigma_px=config.uncertainty.pixel_px,
            max_range_m=config.max_range_m,
        )
    hfov = config.hfov_at(preset.zoom)
    f = (config.image_width / 2) / math.tan(math.radians(hfov) / 2)
    intrinsics = Intrinsics(
        width=config.image_width,
        height=config.image_height,
        fx=f,
        fy=f,
        cx=config.image_width / 2,
        cy=config.image_height / 2,
        distortion=config.distortion,
    )
    orientation = Orientation(
        yaw_deg=(config.heading_deg + preset.pan_deg) % 360.0,
        pitch_deg=config.tilt_deg if preset.tilt_deg is None else preset.tilt_deg,
        roll_deg=config.roll_deg,
    )
    if dem_path is None:
        surface: Any = FlatGround(reference_elevation_m=config.base_elevation_m)
        position = (0.0, 0.0, config.mount_height_m)
    else:
        dem = Dem.from_geotiff(dem_path, frame, radius_m=config.max_range_m)
        base = config.base_elevation_m
        if base is None:
            base = float(dem.elevation_at(np.array([0.0]), np.array([0.0]))[0])
            if not math.isfinite(base):
                raise TowerConfigError("the DEM has no elevation at the tower; set base_elevation_m")
        surface = DemGround(dem, max_range_m=config.max_range_m)
        position = (0.0, 0.0, base + config.mount_height_m)
    camera = FrameCamera(intrinsics=intrinsics, orientation=orientation, position_enu=position)
    return FrameProjector(
        camera=camera,
        frame=frame,
        surface=surface,
        uncertainty=config.uncertainty,
        source="camera",
        max_range_m=config.max_range_m,
        description={
            "name": config.name,
            "preset": preset.id,
            "zoom": preset.zoom,
            "method": "ray_to_ground",
            "gcps": len(preset.gcps),
        },
    )


def _distance_m(projector: FrameProjector | HomographyProjector, pos: GroundPosition) -> float:
    x, y = projector.frame.to_local(pos.lon, pos.lat)
    return float(math.hypot(float(x), float(y)))


def expected_error(projector: FrameProjector | HomographyProjector) -> dict[str, Any]:
    """The 95 % ground error at the image centre and at the far edge.

    The far edge is the top of the centre column, or, when the top is sky, the highest pixel
    of that column that still meets the ground within range (found by bisection).
    """
    if isinstance(projector, FrameProjector):
        width, height = projector.camera.intrinsics.width, projector.camera.intrinsics.height
    else:
        width, height = projector.width, projector.height
    cx = width / 2.0
    out: dict[str, Any] = {}
    centre = projector.locate(np.array([[cx, height / 2.0]]))[0]
    out["centre"] = _error_entry(projector, (cx, height / 2.0), centre)
    top = projector.locate(np.array([[cx, 0.0]]))[0]
    v = 0.0
    if not isinstance(top, GroundPosition):
        lo, hi = 0.0, float(height)
        if not isinstance(projector.locate(np.array([[cx, hi]]))[0], GroundPosition):
            out["far_edge"] = {
                "pixel": [cx, 0.0],
                "error_m": None,
                "reason": "no pixel of the centre column meets the ground",
            }
            return out
        for _ in range(30):
            mid = (lo + hi) / 2
            lo, hi = (
                (lo, mid)
                if isinstance(projector.locate(np.array([[cx, mid]]))[0], GroundPosition)
                else (mid, hi)
            )
        v = hi
        top = projector.locate(np.array([[cx, v]]))[0]
    out["far_edge"] = _error_entry(projector, (cx, v), top)
    return out


def _error_entry(
    projector: FrameProjector | HomographyProjector, pixel: tuple[float, float], pos: Any
) -> dict[str, Any]:
    if not isinstance(pos, GroundPosition):
        return {"pixel": [round(pixel[0], 2), round(pixel[1], 2)], "error_m": None, "reason": pos.reason}
    return {
        "pixel": [round(pixel[0], 2), round(pixel[1], 2)],
        "distance_m": round(_distance_m(projector, pos), 2),
        "error_m": round(pos.uncertainty_m, 2),
    }
