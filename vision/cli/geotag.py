"""`patrol geotag IMAGE`: the camera model derived from a file, and where its pixels land."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import numpy as np
import typer


def _parse_pixel(text: str) -> tuple[float, float]:
    parts = text.split(",")
    try:
        if len(parts) != 2:
            raise ValueError
        return float(parts[0]), float(parts[1])
    except ValueError:
        raise typer.BadParameter(f"expected a pixel as X,Y (e.g. 1920,1080), got {text!r}") from None


def geotag(
    image: Annotated[Path, typer.Argument(help="Photo (JPEG with EXIF/XMP) or orthomosaic GeoTIFF.")],
    pixel: Annotated[
        list[str] | None,
        typer.Option(
            "--pixel",
            help="Pixel X,Y to locate; repeat for more. Default: the centre, then the four corners.",
        ),
    ] = None,
    camera: Annotated[
        Path | None,
        typer.Option("--camera", help="Tower camera config (YAML or JSON); overrides the file's metadata."),
    ] = None,
    preset: Annotated[str | None, typer.Option("--preset", help="Preset id in the camera config.")] = None,
    lonlat: Annotated[
        str | None, typer.Option("--lonlat", help="Manual position LON,LAT (WGS-84); overrides EXIF GPS.")
    ] = None,
    dem: Annotated[
        Path | None, typer.Option("--dem", help="DEM GeoTIFF for terrain instead of flat ground.")
    ] = None,
    takeoff_elevation: Annotated[
        float | None,
        typer.Option("--takeoff-elevation", help="Drone take-off elevation (m, DEM datum); with --dem."),
    ] = None,
    gcj02: Annotated[
        bool,
        typer.Option(
            "--gcj02", help="Also give GCJ-02 coordinates per point, for Chinese basemaps (display only)."
        ),
    ] = False,
) -> None:
    """Print one JSON object: camera model, reasons, and a ground position (or null and why) per pixel."""
    from vision.errors import ImageLoadError
    from vision.geo.exif_gps import parse_manual_lonlat
    from vision.geo.frame_projector import FrameProjector
    from vision.geo.gcj02 import wgs84_to_gcj02
    from vision.geo.georeference import georeference_image, locate_points
    from vision.geo.homography import HomographyProjector
    from vision.geo.tower import TowerConfigError, expected_error

    pixels = [_parse_pixel(p) for p in pixel] if pixel else None
    try:
        manual = parse_manual_lonlat(lonlat) if lonlat else None
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--lonlat") from None
    try:
        ref = georeference_image(
            image,
            camera=camera,
            preset=preset,
            manual_lonlat=manual,
            dem_path=dem,
            takeoff_elevation_m=takeoff_elevation,
        )
    except (ImageLoadError, TowerConfigError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=2) from None
    points = locate_points(ref, None if pixels is None else np.asarray(pixels, dtype=np.float64))
    if gcj02:
        for p in points:
            if p.get("lon") is not None:
                g_lon, g_lat = wgs84_to_gcj02(p["lon"], p["lat"])
                p["gcj02"] = [round(g_lon, 8), round(g_lat, 8)]
    report = {
        "image": str(image),
        "size": [ref.width, ref.height],
        "source": ref.source,
        "captured_at": None if ref.captured_at is None else ref.captured_at.isoformat(),
        "camera": None if ref.projector is None else ref.projector.describe(),
        "reasons": ref.reasons,
        # A drone photo's pose facts: whether the pose is full and which tag each fact came from.
        "drone_metadata": None if ref.drone is None else ref.drone.summary(),
        "points": points,
    }
    if isinstance(ref.projector, (FrameProjector, HomographyProjector)):
        report["expected_error"] = expected_error(ref.projector)
    typer.echo(json.dumps(report, ensure_ascii=False, default=str))


def register(app: typer.Typer) -> None:
    app.command("geotag")(geotag)
