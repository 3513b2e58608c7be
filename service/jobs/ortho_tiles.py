"""XYZ tiles (Web Mercator, 256 px PNG) of an orthomosaic survey's stored GeoTIFF, drawn by rio-tiler.

The office's own orthomosaics are the map page's imagery (no basemap needed). rio-tiler reads
only the windows a tile covers, reprojects them to Web Mercator and gives a mask from the
raster's nodata value, alpha band or internal mask; the PNG carries it as alpha, so nodata and
the ground beyond the raster's edge are transparent.

Bounds on the work one request can cause:
- the zoom range comes from the raster's resolution: `maxzoom` is the zoom closest to its
  ground resolution (rio-tiler), so nobody renders 20 levels of upsampled pixels;
- `minzoom` is rio-tiler's (the whole raster in about one tile) but no lower than
  `MAX_DECIMATION_LEVELS` below the coarsest level the file holds (its overviews). Without
  overviews a tile at zoom z reads 256 * 2**(maxzoom - z) source pixels on a side, so 4 levels
  caps a tile at a 4096² px read; a survey tool's overviews (gdaladdo) lift the cap.
Outside that range, outside the raster, or for a job that is no orthomosaic: NotFoundError (404).

Each request opens the file itself: a rasterio dataset must not be shared between threads, and
opening a local GeoTIFF costs about a millisecond beside the tile's read.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from service.errors import NotFoundError
from service.jobs.models import Job, JobKind
from service.jobs.store import JobInputStore

if TYPE_CHECKING:
    from rio_tiler.io import Reader

TILE_SIZE_PX = 256
MAX_DECIMATION_LEVELS = 4  # zoom levels below the coarsest stored level; see the module docstring
GDAL_CACHE_MB = 64  # per open tile read; the orthomosaic job's iter_tiles takes 128 for whole windows

# Set once, not per call (warnings.catch_warnings is not thread-safe, and tiles render in threads):
# a raster without overviews is answered by the zoom range below, and uint16 scaling is intended.
warnings.filterwarnings("ignore", message="The dataset has no Overviews", module="rio_tiler")
warnings.filterwarnings("ignore", message="Invalid type: `uint16`", module="rio_tiler")


@dataclass(frozen=True)
class TileLayer:
    """What a map needs to add the layer: where it is (WGS-84) and which zooms it has."""

    bounds_lonlat: tuple[float, float, float, float]  # west, south, east, north
    minzoom: int
    maxzoom: int

    @property
    def center(self) -> tuple[float, float, int]:
        west, south, east, north = self.bounds_lonlat
        return ((west + east) / 2, (south + north) / 2, max(self.minzoom, self.maxzoom - 2))


def orthomosaic_path(session: Session, data_dir: Path, job_id: str) -> Path:
    """The stored GeoTIFF of orthomosaic job `job_id`; NotFoundError for no job or another kind."""
    job = session.get(Job, job_id)
    if job is None or job.kind != JobKind.orthomosaic.value:
        raise NotFoundError(f"no orthomosaic survey {job_id}")
    path = JobInputStore(data_dir).path_of(job.input_path)
    if not path.is_file():
        raise NotFoundError(f"the GeoTIFF of survey {job_id} is no longer stored")
    return path


@contextmanager
def _reader(path: Path) -> Iterator[Reader]:
    import rasterio
    from rasterio.errors import RasterioError
    from rio_tiler.io import Reader

    try:
        with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB * 1024 * 1024), Reader(str(path)) as reader:
            yield reader
    except RasterioError as exc:
        # The upload passed the GeoTIFF check at submit; a file that fails now is damaged on disk.
        raise NotFoundError(f"the stored GeoTIFF cannot be read ({type(exc).__name__})") from None


def _zoom_range(reader: Reader) -> tuple[int, int]:
    maxzoom = int(reader.maxzoom)
    factors = _dataset(reader).overviews(1)
    stored_levels = int(math.log2(max(factors))) if factors else 0
    return max(int(reader.minzoom), maxzoom - stored_levels - MAX_DECIMATION_LEVELS), maxzoom


def layer_info(path: Path) -> TileLayer:
    from rio_tiler.constants import WGS84_CRS

    with _reader(path) as reader:
        minzoom, maxzoom = _zoom_range(reader)
        west, south, east, north = reader.get_geographic_bounds(WGS84_CRS)
    return TileLayer((west, south, east, north), minzoom, maxzoom)


def render_tile(path: Path, z: int, x: int, y: int) -> bytes:
    """Tile (z, x, y) as a 256 px RGBA PNG: RGB from bands 1-3 (or grey from a single band),
    alpha 0 where the raster has no data."""
    from rio_tiler.errors import TileOutsideBounds

    if not (0 <= x < 2**z and 0 <= y < 2**z):
        raise NotFoundError(f"tile {z}/{x}/{y} does not exist: x and y run from 0 to {2**z - 1} at zoom {z}")
    with _reader(path) as reader:
        minzoom, maxzoom = _zoom_range(reader)
        if not minzoom <= z <= maxzoom:
            raise NotFoundError(f"zoom {z} is outside this orthomosaic's range {minzoom}-{maxzoom}")
        bands = _dataset(reader).count - (1 if _has_alpha_band(reader) else 0)
        indexes = (1, 2, 3) if bands >= 3 else (1,)
        try:
            image = reader.tile(x, y, z, tilesize=TILE_SIZE_PX, indexes=indexes)
        except TileOutsideBounds:
            raise NotFoundError(f"tile {z}/{x}/{y} lies outside the orthomosaic") from None
    # Bands other than uint8 are scaled from their type's range by render(): uint16 keeps its top
    # 8 bits, as the orthomosaic job reads it.
    return bytes(image.render(img_format="PNG"))


def _has_alpha_band(reader: Reader) -> bool:
    from rasterio.enums import ColorInterp

    return ColorInterp.alpha in _dataset(reader).colorinterp


def _dataset(reader: Reader) -> Any:
    """The open rasterio dataset: Reader's attribute is optional only until its __init__ opens it."""
    if reader.dataset is None:
        raise NotFoundError("the stored GeoTIFF is not open")
    return reader.dataset

