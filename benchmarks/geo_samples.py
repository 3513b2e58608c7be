"""The share of ../shared/geo-samples' photos read with a full camera pose (benchmarks/geo.py's
`geo_samples_full_pose`): a position, an altitude (above take-off or sea level), an attitude
and a focal length, each taken from wherever the real file has it (vision.geo.drone_metadata).

The denominator is the photos: orthomosaics (GeoTIFFs with a CRS and geotransform) are placed
by their raster, not by a camera, and are listed apart. A file that cannot be read counts as a
photo without a pose.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from vision.errors import ImageLoadError
from vision.geo.georeference import georeference_image

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".tif", ".tiff", ".png")
DEFAULT_FOLDER = Path(__file__).resolve().parents[2] / "shared" / "geo-samples"


def file_pose(path: Path) -> str:
    """"full", "orthomosaic", or what the file lacks / why it could not be read."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # rasterio: a frame TIFF has no geotransform
            ref = georeference_image(path)
    except ImageLoadError as exc:
        return f"unreadable: {exc.reason}"
    if ref.source == "orthomosaic":
        return "orthomosaic"
    if ref.drone is None:
        return "no drone metadata"
    if ref.drone.full_pose:
        return "full"
    missing = [fact for fact, source in ref.drone.sources.model_dump().items() if source is None]
    return "missing " + ", ".join(missing)


def geo_samples_full_pose(folder: Path = DEFAULT_FOLDER) -> dict[str, object]:
    """`geo_samples_full_pose` (a fraction; None without the folder), the photo count and each
    file's result."""
    found = folder.glob("*") if folder.is_dir() else ()
    files = sorted(p for p in found if p.suffix.lower() in IMAGE_SUFFIXES)
    per_file = {p.name: file_pose(p) for p in files}
    photos = [v for v in per_file.values() if v != "orthomosaic"]
    share = round(sum(v == "full" for v in photos) / len(photos), 4) if photos else None
    return {"geo_samples_full_pose": share, "geo_samples_photos": len(photos), "geo_samples_files": per_file}
