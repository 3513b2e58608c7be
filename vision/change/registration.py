"""The shift between two epochs, measured on their overlap by phase correlation.

Colours change between surveys (season, sun, camera), edges much less: each window is
compared as gradient magnitude (Sobel on grey), Hann-tapered, with cv2.phaseCorrelate. A few
windows spread over the overlap each give a shift and a peak response; the shift is the
median of those whose peak is clear (one window of changed ground cannot pull it). The
result is bounded by the caller's limit: a larger shift means the rasters are not of the
same place or one is badly georeferenced, and differencing them would report everything.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from vision.change.epochs import EpochPair
from vision.errors import GeoError
from vision.tiling import TileWindow


class MisregistrationError(GeoError):
    """The epochs are shifted more than the limit, or no window gave a clear shift."""


@dataclass(frozen=True)
class Registration:
    """The measured shift of the later epoch on the earlier grid."""

    shift_px: tuple[float, float]
    shift_m: float  # its length on the ground
    windows_used: int
    windows_tried: int
    spread_px: float  # median distance of the windows' shifts from the median: its consistency


def _edges(bgr: np.ndarray) -> np.ndarray:
    grey = cv2.GaussianBlur(cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY).astype(np.float32), (0, 0), 1.0)
    magnitude = cv2.magnitude(cv2.Sobel(grey, cv2.CV_32F, 1, 0), cv2.Sobel(grey, cv2.CV_32F, 0, 1))
    return magnitude - float(magnitude.mean())


def _sample_windows(area: TileWindow, size: int, count_per_axis: int) -> list[TileWindow]:
    """Up to count² windows of `size` spread evenly over `area` (one, smaller, if it is small)."""
    w, h = min(size, area.width), min(size, area.height)
    xs = np.linspace(area.x, area.x + area.width - w, count_per_axis).round().astype(int)
    ys = np.linspace(area.y, area.y + area.height - h, count_per_axis).round().astype(int)
    return list({TileWindow(int(x), int(y), w, h) for x in xs for y in ys})


def measure_shift(
    pair: EpochPair, *, window_px: int = 512, per_axis: int = 3, min_response: float = 0.05
) -> Registration:
    """The later epoch's content offset on the earlier grid (pixels), over up to 9 windows."""
    shifts = []
    windows = _sample_windows(pair.overlap, window_px, per_axis)
    for tile in windows:
        epoch = pair.read(tile)
        if epoch.valid.mean() < 0.9 or min(tile.width, tile.height) < 32:
            continue  # a window at a raster's edge: its nodata border would be the strongest edge
        hann = cv2.createHanningWindow((tile.width, tile.height), cv2.CV_32F)
        (dx, dy), response = cv2.phaseCorrelate(_edges(epoch.before), _edges(epoch.after), hann)
        if response >= min_response:
            shifts.append((dx, dy))
    if not shifts:
        raise MisregistrationError(
            f"no clear shift between the epochs in {len(windows)} windows (phase correlation peak under "
            f"{min_response}); the rasters may not show the same place"
        )
    found = np.array(shifts)
    median = np.median(found, axis=0)
    spread = float(np.median(np.hypot(*(found - median).T)))
    dx, dy = float(median[0]), float(median[1])
    return Registration((dx, dy), math.hypot(dx, dy) * pair.pixel_m, len(shifts), len(windows), spread)


def co_register(pair: EpochPair, max_shift_m: float, **options: int | float) -> Registration:
    """Measure the shift, refuse one beyond `max_shift_m`, and apply it to the pair."""
    found = measure_shift(pair, **options)  # type: ignore[arg-type]
    if found.shift_m > max_shift_m:
        raise MisregistrationError(
            f"the epochs are {found.shift_m:.2f} m apart, more than the {max_shift_m:g} m allowed "
            "(max_shift_m); co-register them first or raise the limit"
        )
    pair.shift_px = found.shift_px
    return found
