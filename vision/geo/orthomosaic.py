"""Orthomosaic GeoTIFFs: windowed tiles for the detector, and tile boxes back to WGS-84 polygons.

The raster is never read whole: `iter_tiles` reads one window at a time (rasterio), with
GDAL's block cache capped, so rasters far larger than memory work. A tile's pixel boxes go
through the window's affine transform into the raster CRS and are reprojected to WGS-84;
areas are measured in a local metric frame centred on each polygon (so EPSG:4326 rasters
get true square metres too).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from affine import Affine
from pyproj import CRS, Transformer
from shapely.geometry import Polygon

from vision.detections import Detections
from vision.errors import GeoError
from vision.geo.local_frame import WGS84, area_m2, transform_geometry
from vision.geo.projector import footprint_each
from vision.geo.types import Footprint, Geotag, GroundAnchor, GroundPosition, NoLocation
from vision.taxonomy import HeightPrior
from vision.tiling import TileWindow, tile_windows

if TYPE_CHECKING:
    from vision.pipeline import Pipeline


class OrthomosaicError(GeoError):
    """The raster cannot be used as an orthomosaic (no CRS, unsupported bands or data type)."""


@dataclass(frozen=True)
class OrthoTile:
    """One window of the raster: where it is, its BGR uint8 pixels, and its own affine transform.

    `tile` is the `vision.tiling.TileWindow` (so per-tile detections merge with
    `merge_tile_detections`); `window` is the same as a rasterio Window.
    """

    tile: TileWindow
    window: Any  # rasterio.windows.Window
    image: np.ndarray  # (h, w, 3) uint8 BGR
    transform: Affine


def _to_uint8(array: np.ndarray, path: str) -> np.ndarray:
    if array.dtype == np.uint8:
        return array
    if array.dtype == np.uint16:
        return (array >> 8).astype(np.uint8)
    raise OrthomosaicError(
        f"{path}: expected uint8 or uint16 bands, got {array.dtype}; convert the raster first"
    )


def iter_tiles(
    path: str | Path, tile_size: int = 1024, overlap: float = 0.2, cache_mb: int = 128
) -> Iterator[OrthoTile]:
    """Yield (window, BGR uint8 tile, window transform) over the whole raster, one window in memory at a time.

    Windows come from `vision.tiling.tile_windows` (overlap is a fraction of the tile), so the
    tiled pipeline's seam-aware merge applies unchanged.

    Bands: 3 or more are read as RGB (bands 1-3); an alpha band (or the dataset mask) blanks
    nodata to black; a single band is repeated as grey.
    """
    import rasterio
    from rasterio.enums import ColorInterp, MaskFlags
    from rasterio.windows import Window

    with rasterio.Env(GDAL_CACHEMAX=cache_mb * 1024 * 1024), rasterio.open(path) as src:
        if src.crs is None:
            raise OrthomosaicError(f"{path}: expected a georeferenced raster (a CRS), got none")
        if src.count >= 3:
            bands = [1, 2, 3]
        elif src.count == 1:
            bands = [1, 1, 1]
        else:
            raise OrthomosaicError(f"{path}: expected 1 or 3+ bands, got {src.count}")
        has_alpha = ColorInterp.alpha in src.colorinterp or any(
            MaskFlags.per_dataset in f or MaskFlags.alpha in f for f in src.mask_flag_enums
        )
        for tile in tile_windows((src.width, src.height), tile_size, overlap):
            window = Window(tile.x, tile.y, tile.width, tile.height)
            rgb = _to_uint8(src.read(bands, window=window), str(path))
            if has_alpha:
                rgb = rgb * (src.read_masks(1, window=window) > 0)[None].astype(np.uint8)
            bgr = np.ascontiguousarray(np.transpose(rgb[::-1], (1, 2, 0)))
            yield OrthoTile(tile=tile, window=window, image=bgr, transform=src.window_transform(window))


@dataclass(frozen=True)
class OrthoGeoreference:
    """The raster's CRS and affine transform, with a cached transformer to WGS-84."""

    crs: CRS
    transform: Affine
    width: int
    height: int
    absolute_accuracy_m: float = 1.0  # typical orthomosaic without ground control; pass yours
    captured_at: datetime | None = None  # TIFFTAG_DATETIME: local time without an offset (TIFF spec)

    @classmethod
    def from_path(cls, path: str | Path, absolute_accuracy_m: float = 1.0) -> OrthoGeoreference:
        """Everything the raster's header says, read once."""
        import rasterio

        with rasterio.open(path) as src:
            if src.crs is None:
                raise OrthomosaicError(f"{path}: expected a georeferenced raster (a CRS), got none")
            return cls(
                CRS.from_user_input(src.crs.to_wkt()),
                src.transform,
                src.width,
                src.height,
                absolute_accuracy_m,
                _tiff_datetime(src.tags().get("TIFFTAG_DATETIME")),
            )

    def to_wgs84(self) -> Transformer:
        return self._to_wgs84

    @cached_property
    def _to_wgs84(self) -> Transformer:
        return Transformer.from_crs(self.crs, WGS84, always_xy=True)

    @cached_property
    def _pixel_size_m(self) -> float:
        poly = pixel_box_polygon(
            (self.width / 2, self.height / 2, self.width / 2 + 1, self.height / 2 + 1), self.transform
        )
        return float(np.sqrt(area_m2(transform_geometry(poly, self.to_wgs84()))))

    def pixel_size_m(self) -> float:
        return self._pixel_size_m


def _tiff_datetime(raw: str | None) -> datetime | None:
    if not raw:
        return None
    try:
        return datetime.strptime(raw.strip(), "%Y:%m:%d %H:%M:%S")
    except ValueError:
        return None  # a malformed date costs the date, not the survey


def pixel_box_polygon(xyxy: Sequence[float], transform: Affine) -> Polygon:
    """A pixel box as a polygon in the raster CRS (rotated/sheared transforms included)."""
    x1, y1, x2, y2 = (float(v) for v in xyxy)
    return Polygon([transform @ (x1, y1), transform @ (x2, y1), transform @ (x2, y2), transform @ (x1, y2)])


def tile_detections_to_geotags(
    detections: Detections,
    window_transform: Affine,
    crs: CRS | Any,
    *,
    absolute_accuracy_m: float = 1.0,
    to_wgs84: Transformer | None = None,
) -> list[Geotag | NoLocation]:
    """Per-tile pixel Detections -> one Geotag each (WGS-84 centre, polygon, area in m²).

    `window_transform` is the tile's own transform (`OrthoTile.transform`), so boxes stay in
    tile pixels; pass the full raster's transform for boxes already in raster pixels. The
    point is the box centre for every class: an orthomosaic is already a top-down view.
    A finding with an outline and an area (`data["footprint_xy"]` and `data["area_m2"]`, a
    rule's rotated rectangle: see vision.rules) is measured by that outline
    ("raster_outline"), not by its box: a roof at 45° would read twice its area.
    """
    transformer = to_wgs84 or Transformer.from_crs(CRS.from_user_input(crs), WGS84, always_xy=True)
    gsd = _pixel_size(window_transform, transformer)
    radius = absolute_accuracy_m + gsd
    out: list[Geotag | NoLocation] = []
    # float64 first: with NumPy 2 a float32 pixel times a degree-sized transform stays float32 (~1 m).
    # a model's box carries its own corners and no area: measured as a box
    has_outline = "footprint_xy" in detections.data and "area_m2" in detections.data
    outlines = detections.data["footprint_xy"].astype(np.float64) if has_outline else np.empty((0, 4, 2))
    measured = np.isfinite(detections.data["area_m2"]) if has_outline else np.zeros(len(detections), bool)
    for i, box in enumerate(detections.xyxy.astype(np.float64)):
        outlined = bool(measured[i])
        if outlined:
            local = Polygon([window_transform @ (float(x), float(y)) for x, y in outlines[i]])
        else:
            local = pixel_box_polygon(box, window_transform)
        wgs = transform_geometry(local, transformer)
        if not wgs.is_valid or wgs.is_empty or not np.isfinite(wgs.bounds).all():
            out.append(NoLocation("the box does not reproject to WGS-84 (outside the CRS's area of use)"))
            continue
        cx, cy = window_transform @ ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2)
        lon, lat = transformer.transform(cx, cy)
        anchor: GroundAnchor = "center"
        out.append(
            Geotag(
                point=GroundPosition(float(lon), float(lat), radius),
                anchor=anchor,
                source="orthomosaic",
                footprint=Footprint(polygon=wgs, area_m2=area_m2(wgs),
                                    method="raster_outline" if outlined else "raster_box"),
            )
        )
    return out


def _pixel_size(transform: Affine, to_wgs84: Transformer) -> float:
    poly = transform_geometry(pixel_box_polygon((0, 0, 1, 1), transform), to_wgs84)
    return float(np.sqrt(area_m2(poly))) if poly.is_valid and np.isfinite(poly.bounds).all() else 0.0


@dataclass(frozen=True)
class OrthoDetections:
    """Detections of a whole orthomosaic in raster pixels, with one geotag each."""

    detections: Detections
    geotags: list[Geotag | NoLocation]
    georef: OrthoGeoreference
    tiles: int
    windows: list[TileWindow]
    window_px: int  # side of the raster windows read (`iter_tiles`' tile_size): model tiles at the target GSD


def detect_orthomosaic(
    path: str | Path,
    pipeline: Pipeline,
    *,
    absolute_accuracy_m: float = 1.0,
    on_progress: Callable[[int, int], None] | None = None,
) -> OrthoDetections:
    """Every window of the raster through the pipeline's shared queue; one finding per object.

    Windows are the pipeline's tiles (its tiling config: tile size, overlap, thresholds),
    read one at a time (`iter_tiles`) and streamed (`Pipeline.detect_raster`), so memory
    stays a few windows whatever the raster's size; seams are merged across windows and
    each finding is geotagged through the raster's transform. A raster finer than the
    pipeline's target GSD is read in windows of tile size / scale native pixels, each
    shrunk to a model tile (vision.ground_sampling). `on_progress(done, total)` follows the
    windows; an exception from it stops the run. The pipeline's rules (vision.rules) then read
    the raster again in their own larger windows, and their findings join the model's.
    """
    georef = OrthoGeoreference.from_path(path, absolute_accuracy_m)
    tile_size = pipeline.tiling.tile_size or pipeline.detector.input_size
    gsd_m = georef.pixel_size_m() or None
    window_px = math.ceil(tile_size / pipeline.resample_scale(gsd_m, "orthomosaic"))
    overlap = pipeline.tiling.overlap
    windows = tile_windows((georef.width, georef.height), window_px, overlap)
    progress = None if on_progress is None else (lambda done: on_progress(done, len(windows)))
    detections = pipeline.detect_raster(
        ((tile.tile, tile.image) for tile in iter_tiles(path, window_px, overlap)),
        resolution_wh=(georef.width, georef.height),
        source="orthomosaic",
        on_progress=progress,
        gsd_m=gsd_m,
    )
    if pipeline.rules:  # rules see roofs whole: a pass of their own, in windows of ~100 m
        from vision.rules import raster_window_px

        rule_px, rule_overlap = raster_window_px(gsd_m)
        ruled = pipeline.detect_rules_raster(
            ((tile.tile, tile.image) for tile in iter_tiles(path, rule_px, rule_overlap)),
            resolution_wh=(georef.width, georef.height),
            gsd_m=gsd_m,
        )
        both = Detections.merge([detections, ruled], metadata=detections.metadata)
        detections = both[np.argsort(-both.confidence, kind="stable")]
    geotags = tile_detections_to_geotags(
        detections,
        georef.transform,
        georef.crs,
        absolute_accuracy_m=absolute_accuracy_m,
        to_wgs84=georef.to_wgs84(),
    )
    return OrthoDetections(detections, geotags, georef, len(windows), windows, window_px)


@dataclass(frozen=True)
class OrthoProjector:
    """Pixel -> ground for a whole orthomosaic (for `patrol geotag` and single-image use)."""

    georef: OrthoGeoreference
    source: str = "orthomosaic"

    def locate(self, pixels_xy: np.ndarray) -> list[GroundPosition | NoLocation]:
        pixels = np.asarray(pixels_xy, np.float64).reshape(-1, 2)
        xs, ys = self.georef.transform @ (pixels[:, 0], pixels[:, 1])  # type: ignore[operator]  # Affine maps arrays too
        lon, lat = self.georef.to_wgs84().transform(np.asarray(xs), np.asarray(ys))
        radius = self.georef.absolute_accuracy_m + self.georef.pixel_size_m()
        out: list[GroundPosition | NoLocation] = []
        for i, (u, v) in enumerate(pixels):
            if not (0 <= u <= self.georef.width and 0 <= v <= self.georef.height):
                out.append(
                    NoLocation(
                        f"pixel ({u:g}, {v:g}) is outside the {self.georef.width}x{self.georef.height} raster"
                    )
                )
            elif not (np.isfinite(lon[i]) and np.isfinite(lat[i])):
                out.append(NoLocation("the pixel does not reproject to WGS-84"))
            else:
                out.append(GroundPosition(float(lon[i]), float(lat[i]), radius))
        return out

    def effective_anchor(self, xyxy: np.ndarray, anchor: GroundAnchor) -> GroundAnchor:
        return "center"

    def footprint(
        self, xyxy: np.ndarray, anchor: GroundAnchor, height: HeightPrior | None = None
    ) -> Footprint | NoLocation:
        # An orthomosaic is already on the ground: boxes map through the raster, heights play no part.
        tag = tile_detections_to_geotags(
            Detections(xyxy=np.asarray([xyxy], np.float32), confidence=np.ones(1, np.float32),
                       class_id=np.zeros(1, np.int64)),
            self.georef.transform,
            self.georef.crs,
            to_wgs84=self.georef.to_wgs84(),
        )[0]
        if isinstance(tag, NoLocation):
            return tag
        return tag.footprint if tag.footprint is not None else NoLocation("no footprint")

    def footprints(
        self, xyxy: np.ndarray, anchors: Sequence[GroundAnchor], heights: Sequence[HeightPrior | None]
    ) -> list[Footprint | NoLocation]:
        return footprint_each(self, xyxy, anchors, heights)

    def describe(self) -> dict[str, Any]:
        g = self.georef
        return {
            "type": "orthomosaic",
            "crs": g.crs.to_string(),
            "transform": list(g.transform)[:6],
            "width": g.width,
            "height": g.height,
            "pixel_size_m": round(g.pixel_size_m(), 4),
            "absolute_accuracy_m": g.absolute_accuracy_m,
        }
