"""Tiles sized by the ground: shrink an aerial image to the ground sampling distance its classes need.

A 20 MP drone photo from 100 m shows about 2.7 cm of ground per pixel, so the smallest thing
the patrol reports (a garbage pile of 1 m) spans about 37 pixels, while the model sees an
object from far fewer. Slicing the photo at its native resolution spends several times the
inference the objects need. So each class has a minimum size in metres (the taxonomy's
`min_size_m`), the model needs `object_px` pixels across an object (a property of the model,
vision.pipeline.TilingConfig), and the coarsest ground sampling distance (GSD, metres per
pixel) that still shows every class the model reports is

    target GSD = min over those classes of min_size_m / object_px.

An image finer than that is shrunk to it (cv2.INTER_AREA: each output pixel averages the
input pixels it covers, so thin structures fade instead of aliasing) before it is tiled, and
boxes come back in native pixels (`Resampling.to_native`), so footprints, evidence crops and
everything downstream see the image they always saw. Resampling never enlarges: an image
coarser than the target, or of unknown GSD (no pose), stays native.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import cv2
import numpy as np

from vision.detections import Detections
from vision.sources import SourceKind
from vision.taxonomy import Taxonomy


def target_gsd_m(taxonomy: Taxonomy, class_keys: Iterable[str | None], source: SourceKind,
                 object_px: float) -> float | None:
    """The coarsest GSD (m/px) at which every class in `class_keys` that applies to `source`
    and has a `min_size_m` still spans `object_px` pixels; None when no class says (keep native).

    Keys the taxonomy does not know, and None (helper labels), are ignored. An orthomosaic is
    stitched from drone photos: a class that applies to drone photos applies to it too.
    """
    if not object_px > 0:
        raise ValueError(f"expected object_px > 0, got {object_px}")
    kinds = {source, "drone"} if source == "orthomosaic" else {source}
    wanted = set(class_keys)
    needs = [spec.min_size_m / object_px for spec in taxonomy
             if spec.key in wanted and spec.min_size_m is not None and kinds & set(spec.sources)]
    return min(needs) if needs else None


def resample_scale(native_gsd_m: float | None, target_gsd_m: float | None) -> float:
    """The factor (0, 1] to shrink an image of `native_gsd_m` to `target_gsd_m`; 1 keeps it native.

    1 when either is unknown or the image is already at or coarser than the target.
    """
    for name, value in (("native_gsd_m", native_gsd_m), ("target_gsd_m", target_gsd_m)):
        if value is not None and not (math.isfinite(value) and value > 0):
            raise ValueError(f"expected {name} to be a positive number of metres or None, got {value}")
    if native_gsd_m is None or target_gsd_m is None or native_gsd_m >= target_gsd_m:
        return 1.0
    return native_gsd_m / target_gsd_m


@dataclass(frozen=True)
class Resampling:
    """An image of `native_wh` shown at `resampled_wh`; maps boxes between the two exactly.

    The factors are per axis (each side is rounded to whole pixels separately), so a box
    maps back to the native pixels it covered, whatever the rounding.
    """

    native_wh: tuple[int, int]
    resampled_wh: tuple[int, int]

    def __post_init__(self) -> None:
        for name, (w, h) in (("native_wh", self.native_wh), ("resampled_wh", self.resampled_wh)):
            if w < 1 or h < 1:
                raise ValueError(f"expected {name} of at least 1x1, got {w}x{h}")
        if self.resampled_wh[0] > self.native_wh[0] or self.resampled_wh[1] > self.native_wh[1]:
            raise ValueError(f"expected resampled_wh no larger than native_wh {self.native_wh}, "
                             f"got {self.resampled_wh}")

    @classmethod
    def at_scale(cls, native_wh: tuple[int, int], scale: float) -> Resampling:
        """`native_wh` shrunk by `scale` in (0, 1], each side rounded, at least 1 pixel."""
        if not 0.0 < scale <= 1.0:
            raise ValueError(f"expected a scale in (0, 1], got {scale}")
        w, h = native_wh
        return cls((w, h), (max(1, round(w * scale)), max(1, round(h * scale))))

    @property
    def identity(self) -> bool:
        return self.native_wh == self.resampled_wh

    @property
    def factor_xy(self) -> tuple[float, float]:
        """Native pixels per resampled pixel along x and y (>= 1)."""
        return (self.native_wh[0] / self.resampled_wh[0], self.native_wh[1] / self.resampled_wh[1])

    def resize(self, image: np.ndarray) -> np.ndarray:
        """The native image at `resampled_wh` (INTER_AREA); the image itself when nothing changes."""
        height, width = image.shape[:2]
        if (width, height) != self.native_wh:
            raise ValueError(f"expected an image of {self.native_wh[0]}x{self.native_wh[1]}, "
                             f"got {width}x{height}")
        if self.identity:
            return image
        return cv2.resize(image, self.resampled_wh, interpolation=cv2.INTER_AREA)

    def to_native(self, detections: Detections) -> Detections:
        """A copy with boxes in native pixels (resampled pixels x the per-axis factor)."""
        if self.identity:
            return detections
        fx, fy = self.factor_xy
        out = detections[np.arange(len(detections))]
        out.xyxy = (detections.xyxy.astype(np.float64) * np.array([fx, fy, fx, fy])).astype(np.float32)
        return out
