"""From an image file (and optional camera config) to the right ground projector, with reasons.

Precedence: a tower camera config given by the caller; a georeferenced GeoTIFF
(orthomosaic); a manual lon,lat given by the caller (overrides any EXIF GPS); a drone pose
in the XMP; a phone's EXIF GPS. Everything that was present but unusable is listed in
`reasons`, so a user checking a camera's calibration sees why a source was skipped.

The image's metadata comes from the one source reader (vision.image_io): pass the
`LoadedImage` that was detected on, and nothing is read again; a path is probed once,
header only. Pixels are those of the upright image, as `load_image` returns it and as
detections refer to it: `width`/`height` are upright, and a drone camera model read from a
photo with an EXIF orientation is turned into the upright frame (vision.geo.exif_orientation).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any, TypedDict

import numpy as np
from typing_extensions import Unpack

from vision.geo.dem import DemError
from vision.geo.drone import DroneGeometryError, build_drone_projector
from vision.geo.drone_metadata import DroneMetadata, read_drone_metadata
from vision.geo.exif_gps import PhotoGps, capture_time, parse_gps_ifd
from vision.geo.exif_orientation import MIRRORED, OrientationError, upright_camera, upright_size
from vision.geo.homography import HomographyError
from vision.geo.phone import PhonePositionPolicy, PhotographerProjector
from vision.geo.projector import GroundProjector
from vision.geo.tower import TowerCameraConfig, TowerConfigError, build_tower_projector
from vision.geo.types import GroundPosition
from vision.image_io import LoadedImage, probe_image
from vision.sources import GPS_IFD_TAG, ImageMetadata

GEOTIFF_SUFFIXES = (".tif", ".tiff", ".gtiff")


@dataclass
class ImageGeoreference:
    """The projector for one image (None when nothing usable was found) and why things were skipped."""

    path: str
    width: int
    height: int
    projector: GroundProjector | None
    reasons: list[str] = field(default_factory=list)
    captured_at: datetime | None = None
    orientation: int = 1  # the file's EXIF orientation; width/height are after applying it
    drone: DroneMetadata | None = None  # a drone photo's pose facts and where each was read

    @property
    def source(self) -> str | None:
        return None if self.projector is None else self.projector.source


def _orthomosaic(path: Path, accuracy_m: float, reasons: list[str]) -> ImageGeoreference | None:
    import rasterio
    from rasterio.errors import RasterioIOError

    from vision.geo.orthomosaic import OrthoGeoreference, OrthoProjector

    try:
        with rasterio.open(path) as src:
            if src.crs is None or src.transform.is_identity:
                reasons.append("GeoTIFF without a CRS or geotransform: not an orthomosaic")
                return None
    except RasterioIOError as exc:
        reasons.append(f"not readable as a GeoTIFF: {exc}")
        return None
    georef = OrthoGeoreference.from_path(path, accuracy_m)
    return ImageGeoreference(str(path), georef.width, georef.height, OrthoProjector(georef), reasons)


class GeoreferenceOptions(TypedDict, total=False):
    """What the caller knows beyond the file: a tower camera config and preset, a position given
    by hand (overrides EXIF GPS), a DEM and the take-off elevation, the phone position policy."""

    camera: TowerCameraConfig | str | Path | None
    preset: str | None
    manual_lonlat: tuple[float, float] | None
    dem_path: str | Path | None
    takeoff_elevation_m: float | None
    phone_policy: PhonePositionPolicy | None


def georeference_image(
    image: str | Path | LoadedImage, *, ortho_accuracy_m: float = 1.0, **options: Unpack[GeoreferenceOptions]
) -> ImageGeoreference:
    """The projector for an image: a decoded `LoadedImage` (its metadata, nothing re-read) or a
    file path (GeoTIFFs by suffix; other files probed once, header only).

    Raises ImageLoadError for unreadable files and TowerConfigError for a bad config; every
    other problem becomes a reason."""
    reasons: list[str] = []
    if isinstance(image, LoadedImage):
        name, meta = image.name, image.metadata
    else:
        path = Path(image)
        if path.suffix.lower() in GEOTIFF_SUFFIXES and options.get("camera") is None:
            ortho = _orthomosaic(path, ortho_accuracy_m, reasons)
            if ortho is not None:
                return ortho
        name, meta = str(path), probe_image(path).metadata
    return georeference_metadata(meta, name, reasons=reasons, **options)


def georeference_metadata(
    meta: ImageMetadata,
    name: str,
    *,
    reasons: list[str] | None = None,
    camera: TowerCameraConfig | str | Path | None = None,
    preset: str | None = None,
    manual_lonlat: tuple[float, float] | None = None,
    dem_path: str | Path | None = None,
    takeoff_elevation_m: float | None = None,
    phone_policy: PhonePositionPolicy | None = None,
) -> ImageGeoreference:
    """`georeference_image` for metadata already read (vision.sources.ImageMetadata)."""
    reasons = [] if reasons is None else reasons
    stored_w, stored_h = meta.stored_wh
    gps = parse_gps_ifd(meta.exif.get_ifd(GPS_IFD_TAG))
    taken = capture_time(meta.exif, gps if isinstance(gps, PhotoGps) else None)
    orientation = meta.orientation
    width, height = upright_size((stored_w, stored_h), orientation)
    result = ImageGeoreference(name, width, height, None, reasons, taken, orientation)

    if camera is not None:
        config = camera if isinstance(camera, TowerCameraConfig) else TowerCameraConfig.load(camera)
        if orientation != 1:
            # Not turned: a tower config is calibrated on frames as the camera streams them.
            result.width, result.height = stored_w, stored_h
            reasons.append(f"EXIF orientation {orientation}: the camera config is taken to describe the "
                           f"stored, unrotated frame, and so are pixels; strip the tag from tower snapshots")
        if (config.image_width, config.image_height) != (stored_w, stored_h):
            reasons.append(
                f"camera config {config.name!r} is for {config.image_width}x{config.image_height} "
                f"images, this one is {stored_w}x{stored_h}"
            )
            return result
        try:
            result.projector = build_tower_projector(config, preset, dem_path=dem_path)
        except (HomographyError, DemError, TowerConfigError) as exc:
            reasons.append(f"camera config {config.name!r}: {exc}")
        return result

    if manual_lonlat is not None:
        if isinstance(gps, PhotoGps):
            reasons.append("manual lon,lat given: it overrides the EXIF GPS position")
        result.projector = PhotographerProjector.from_manual(
            *manual_lonlat, policy=phone_policy, captured_at=taken
        )
        return result

    if meta.xmp_problem is not None:
        reasons.append(meta.xmp_problem)
    drone = result.drone = read_drone_metadata(meta)
    if drone is not None:
        reasons.extend(drone.reasons)
        pose, intrinsics = drone.pose(), drone.intrinsics
        if pose is not None and intrinsics is not None and orientation in MIRRORED:
            reasons.append(f"EXIF orientation {orientation} mirrors the photo: no drone camera model")
        elif pose is not None and intrinsics is not None:
            try:
                projector = build_drone_projector(
                    pose,
                    intrinsics,
                    dem_path=dem_path,
                    takeoff_elevation_m=takeoff_elevation_m,
                    description={"intrinsics_from": drone.sources.focal_length, "maker": drone.maker,
                                 "make": meta.make, "model": meta.model, "exif_orientation": orientation},
                )
                # XMP pose and intrinsics describe the stored sensor image; detections
                # are upright pixels.
                upright = upright_camera(projector.camera, orientation)
                result.projector = replace(projector, camera=upright)
                return result
            except (DroneGeometryError, DemError, OrientationError) as exc:
                reasons.append(f"drone pose unusable: {exc}")
    if isinstance(gps, PhotoGps):
        result.projector = PhotographerProjector.from_exif(gps, phone_policy, captured_at=taken)
    else:
        reasons.append(gps.reason)
    return result


def default_pixels(width: int, height: int) -> np.ndarray:
    """The image centre first, then the four corners (clockwise from top-left)."""
    return np.array([[width / 2, height / 2], [0, 0], [width, 0], [width, height], [0, height]], np.float64)


def locate_points(ref: ImageGeoreference, pixels_xy: np.ndarray | None = None) -> list[dict[str, Any]]:
    """One entry per pixel: `{"pixel": [x, y], "lon", "lat", "uncertainty_m"}` or
    `{"pixel": [x, y], "location": null, "reason"}`."""
    pixels = default_pixels(ref.width, ref.height) if pixels_xy is None else np.asarray(pixels_xy, np.float64)
    if ref.projector is None:
        reason = "; ".join(ref.reasons) or "no camera model"
        return [{"pixel": [float(x), float(y)], "location": None, "reason": reason} for x, y in pixels]
    out: list[dict[str, Any]] = []
    for (x, y), pos in zip(pixels, ref.projector.locate(pixels), strict=True):
        entry: dict[str, Any] = {"pixel": [float(x), float(y)]}
        if isinstance(pos, GroundPosition):
            entry.update(pos.to_json())
        else:
            entry.update({"location": None, "reason": pos.reason})
        out.append(entry)
    return out
