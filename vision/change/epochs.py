"""Two epochs of one area on a common grid: the earlier orthomosaic's (coarsened to a working GSD
when it is finer, averaging, so that a window's arrays stay a few megabytes).

The later orthomosaic (and each DSM) is warped onto the earlier one's pixel grid through a
rasterio WarpedVRT, lazily: only the window asked for is read and resampled, so memory stays
a window whatever the rasters' size. A measured misregistration (`shift_px`) is applied in
the VRT's transform, so the later epoch is resampled once, already aligned. Only the overlap
of the two footprints is visited.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from affine import Affine

from vision.geo.orthomosaic import OrthomosaicError
from vision.tiling import TileWindow, tile_windows


@dataclass(frozen=True)
class EpochWindow:
    """One window of both epochs, in the common grid's pixels (offset `tile.x`, `tile.y`)."""

    tile: TileWindow
    before: np.ndarray  # (h, w, 3) uint8 BGR
    after: np.ndarray  # (h, w, 3) uint8 BGR, on the same pixels
    valid: np.ndarray  # (h, w) bool: both epochs have data here
    dsm_before: np.ndarray | None  # (h, w) float32 metres, NaN where unknown
    dsm_after: np.ndarray | None


def _bands(src: Any, path: Path) -> list[int]:
    if src.count >= 3:
        return [1, 2, 3]
    if src.count == 1:
        return [1, 1, 1]
    raise OrthomosaicError(f"{path}: expected 1 or 3+ bands, got {src.count}")


def _to_uint8(array: np.ndarray, path: Path) -> np.ndarray:
    if array.dtype == np.uint8:
        return array
    if array.dtype == np.uint16:
        return (array >> 8).astype(np.uint8)
    raise OrthomosaicError(f"{path}: expected uint8 or uint16 bands, got {array.dtype}")


@dataclass(frozen=True)
class EpochFiles:
    """The two epochs' orthomosaics and, where the office has them, their DSMs: both or neither,
    since a height gain needs a surface on each side. Checked here once, for every caller."""

    before: Path
    after: Path
    dsms: tuple[Path, Path] | None = None

    @classmethod
    def of(
        cls,
        before: str | Path,
        after: str | Path,
        dsm_before: str | Path | None,
        dsm_after: str | Path | None,
    ) -> EpochFiles:
        if dsm_before is None and dsm_after is None:
            return cls(Path(before), Path(after))
        if dsm_before is None or dsm_after is None:
            raise OrthomosaicError("expected a DSM for both epochs or for neither, got one")
        return cls(Path(before), Path(after), (Path(dsm_before), Path(dsm_after)))


class EpochPair:
    """Open both epochs (a context manager); `windows()` yields them aligned, window by window."""

    def __init__(self, files: EpochFiles, *, work_gsd_m: float | None = None, cache_mb: int = 128) -> None:
        self.paths = (files.before, files.after)
        self.dsm_paths = files.dsms
        self._cache_mb = cache_mb
        self._work_gsd_m = work_gsd_m
        self._stack = ExitStack()
        self._shift_px = (0.0, 0.0)
        self._vrts: dict[str, Any] = {}

    def __enter__(self) -> EpochPair:
        import rasterio

        self._stack.enter_context(rasterio.Env(GDAL_CACHEMAX=self._cache_mb * 1024 * 1024))
        self.before = self._open(self.paths[0])
        self.after = self._open(self.paths[1])
        self.dsms = None if self.dsm_paths is None else tuple(self._open(p) for p in self.dsm_paths)
        self.crs = self.before.crs
        if self.crs.is_geographic:
            raise OrthomosaicError(
                f"{self.paths[0]}: expected a projected CRS (metres) for the earlier epoch, got {self.crs}"
            )
        native: Affine = self.before.transform
        native_m = math.sqrt(abs(native.a * native.e - native.b * native.d))
        # finer than the working GSD: the common grid is coarser, so a window's arrays stay small
        factor = max(1.0, (self._work_gsd_m or 0.0) / native_m)
        self.transform = native @ Affine.scale(factor)
        self.pixel_m = native_m * factor
        self.width = max(1, math.floor(self.before.width / factor))
        self.height = max(1, math.floor(self.before.height / factor))
        self._source = self.before
        if factor > 1.0:
            from rasterio.enums import Resampling
            from rasterio.vrt import WarpedVRT

            self._source = self._stack.enter_context(
                WarpedVRT(
                    self.before,
                    crs=self.crs,
                    transform=self.transform,
                    width=self.width,
                    height=self.height,
                    resampling=Resampling.average,
                )
            )
        self.overlap = self._overlap_window()
        self.shift_px = (0.0, 0.0)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def _open(self, path: Path) -> Any:
        import rasterio

        try:
            src = self._stack.enter_context(rasterio.open(path))
        except rasterio.errors.RasterioIOError as exc:
            raise OrthomosaicError(f"{path}: cannot open as a raster: {exc}") from exc
        if src.crs is None:
            raise OrthomosaicError(f"{path}: expected a georeferenced raster (a CRS), got none")
        return src

    def _overlap_window(self) -> TileWindow:
        """The common grid's pixels that every raster covers."""
        from rasterio.warp import transform_bounds
        from rasterio.windows import from_bounds

        left, bottom, right, top = self.before.bounds
        for other in (self.after, *(self.dsms or ())):
            ol, ob, orr, ot = transform_bounds(other.crs, self.crs, *other.bounds)
            left, bottom, right, top = max(left, ol), max(bottom, ob), min(right, orr), min(top, ot)
        if right <= left or top <= bottom:
            raise OrthomosaicError(f"{self.paths[0]} and {self.paths[1]}: the epochs do not overlap")
        win = from_bounds(left, bottom, right, top, transform=self.transform)
        x0, y0 = max(0, math.ceil(win.col_off - 1e-6)), max(0, math.ceil(win.row_off - 1e-6))
        x1 = min(self.width, math.floor(win.col_off + win.width + 1e-6))
        y1 = min(self.height, math.floor(win.row_off + win.height + 1e-6))
        if x1 - x0 < 8 or y1 - y0 < 8:
            raise OrthomosaicError(f"{self.paths[0]} and {self.paths[1]}: the overlap is under 8 pixels")
        return TileWindow(x0, y0, x1 - x0, y1 - y0)

    @property
    def shift_px(self) -> tuple[float, float]:
        """The later epoch's content offset (x, y) in earlier-grid pixels, corrected for."""
        return self._shift_px

    @shift_px.setter
    def shift_px(self, shift: tuple[float, float]) -> None:
        from rasterio.enums import Resampling
        from rasterio.vrt import WarpedVRT

        self._shift_px = (float(shift[0]), float(shift[1]))
        # pixel (x, y) of the VRT shows the later epoch at the map place of earlier pixel (x+dx, y+dy)
        transform = self.transform @ Affine.translation(*self._shift_px)
        grid = {
            "crs": self.crs,
            "transform": transform,
            "width": self.width,
            "height": self.height,
        }
        self._vrts = {
            "after": self._stack.enter_context(WarpedVRT(self.after, resampling=Resampling.bilinear, **grid)),
        }
        if self.dsms is not None:
            for name, src, tf in (
                ("dsm_before", self.dsms[0], self.transform),
                ("dsm_after", self.dsms[1], transform),
            ):
                self._vrts[name] = self._stack.enter_context(
                    WarpedVRT(
                        src,
                        resampling=Resampling.bilinear,
                        src_nodata=src.nodata,
                        nodata=np.nan,
                        dtype="float32",
                        **{**grid, "transform": tf},
                    )
                )

    def windows(self, size_px: int, overlap: float) -> Iterator[EpochWindow]:
        """The overlap in windows of `size_px` (overlap a fraction), one window in memory at a time."""
        area = self.overlap
        for local in tile_windows((area.width, area.height), size_px, overlap):
            yield self.read(TileWindow(area.x + local.x, area.y + local.y, local.width, local.height))

    def read(self, tile: TileWindow) -> EpochWindow:
        from rasterio.windows import Window

        window = Window(tile.x, tile.y, tile.width, tile.height)
        before = _to_uint8(
            self._source.read(_bands(self.before, self.paths[0]), window=window), self.paths[0]
        )
        vrt = self._vrts["after"]
        after = _to_uint8(vrt.read(_bands(self.after, self.paths[1]), window=window), self.paths[1])
        valid = (self._source.read_masks(1, window=window) > 0) & (vrt.read_masks(1, window=window) > 0)
        dsm_before = dsm_after = None
        if self.dsms is not None:
            dsm_before = self._vrts["dsm_before"].read(1, window=window).astype(np.float32)
            dsm_after = self._vrts["dsm_after"].read(1, window=window).astype(np.float32)
            valid &= np.isfinite(dsm_before) & np.isfinite(dsm_after)
        return EpochWindow(
            tile=tile,
            before=np.ascontiguousarray(np.transpose(before[::-1], (1, 2, 0))),
            after=np.ascontiguousarray(np.transpose(after[::-1], (1, 2, 0))),
            valid=valid,
            dsm_before=dsm_before,
            dsm_after=dsm_after,
        )
