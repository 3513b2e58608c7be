"""Synthetic survey epoch pairs: the same place twice, with new sheds, as GeoTIFFs with truth.

The earlier epoch is ground texture (grass, soil, a concrete road; benchmarks/ortho_scenes.py's
scene builder) with standing roofs and a parked car. The later epoch is the same ground with
the car moved elsewhere and `new_sheds` new structures (grey sheds and blue steel roofs), under
an optional seasonal colour change (per-channel gains: greens yellowing, a brighter or darker
sun, a smooth brightness gradient across the area) and its own sensor noise. The later raster
is misregistered by `shift_m` (its geotransform is off by that much in a random direction),
as a second survey without ground control is. With `dsm`, both epochs get a DSM (gently
sloping ground, 3-4 m roofs, 1.5 m cars, 2.5-4.5 m new sheds) on the same grids.

Truth is in the earlier raster's pixels (the grid changes are reported on).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from affine import Affine

from benchmarks.ortho_scenes import SceneBuilder, SceneObject

CRS = "EPSG:32650"  # UTM 50N: a projected grid in metres, as survey tools write
ORIGIN = (500_000.0, 3_500_000.0)
NEW_KINDS = ("roof", "grey_roof")


@dataclass(frozen=True)
class EpochPairFiles:
    before: Path
    after: Path
    dsm_before: Path | None
    dsm_after: Path | None
    new: list[SceneObject]  # the new structures, earlier-raster pixels
    moved: list[SceneObject]  # the car where it was and where it is: not to be reported
    shift_m: tuple[float, float]  # the later raster's geotransform error (east, north)
    gsd_m: float

    @property
    def shift_px(self) -> tuple[float, float]:
        """Where the later epoch's content lies from its true place, in earlier-grid pixels (x, y)."""
        return self.shift_m[0] / self.gsd_m, -self.shift_m[1] / self.gsd_m


def _write(path: Path, array: npt.NDArray[np.generic], transform: Affine) -> Path:
    import rasterio

    bands = array[None] if array.ndim == 2 else np.transpose(array[..., ::-1], (2, 0, 1))  # BGR -> RGB
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=bands.shape[2],
        height=bands.shape[1],
        count=bands.shape[0],
        dtype=bands.dtype,
        crs=CRS,
        transform=transform,
    ) as dst:
        dst.write(bands)
    return path


def _heights(objects: list[SceneObject], shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    import cv2

    out = np.zeros(shape, np.float32)
    for obj in objects:
        mask = np.zeros(shape, np.uint8)
        cv2.fillPoly(mask, [np.round(obj.polygon_xy).astype(np.int32)], 1)
        height = 1.5 if obj.kind in ("car", "truck") else float(rng.uniform(2.5, 4.5))
        out[mask > 0] = height
    return out


def make_epoch_pair(
    rng: np.random.Generator,
    out_dir: Path,
    *,
    size_px: int = 800,
    gsd_m: float = 0.1,
    shift_m: float = 1.0,
    new_sheds: int = 2,
    seasonal: bool = True,
    move_car: bool = True,
    dsm: bool = False,
    name: str = "pair",
) -> EpochPairFiles:
    """Write `name`_before.tif / _after.tif (and _dsm_*.tif) under `out_dir`; return them and the truth."""
    builder = SceneBuilder(rng, size_px, gsd_m)
    for kind in ("grey_roof", "red_roof"):  # standing in both epochs
        builder.other_roof(kind)
    base = builder.image.copy()
    standing = list(builder.objects)
    if move_car:
        builder.vehicle("car")
    before = builder.image.copy()
    before_objects = list(builder.objects)
    builder.image = base.copy()
    if move_car:
        builder.vehicle("car")  # placed apart from everything: moved
    count = len(builder.objects)
    for i in range(new_sheds):
        if NEW_KINDS[i % 2] == "roof":
            builder.roof()
        else:
            builder.other_roof("grey_roof")
    new = [o for o in builder.objects[count:] if o.kind in NEW_KINDS]
    after = builder.image.copy()
    after_objects = standing + builder.objects[len(before_objects) :]
    if seasonal:
        gains = np.array(
            [rng.uniform(0.75, 0.9), rng.uniform(0.85, 1.0), rng.uniform(1.05, 1.25)], np.float32
        )
        ys = np.linspace(-1, 1, size_px, dtype=np.float32)[:, None, None]
        after = after * gains * float(rng.uniform(0.85, 1.15)) * (1 + 0.06 * ys)
    noisy = [np.clip(img + rng.normal(0, 3, img.shape), 0, 255).astype(np.uint8) for img in (before, after)]
    angle = float(rng.uniform(0, 2 * math.pi))
    shift = (shift_m * math.cos(angle), shift_m * math.sin(angle))
    grid = Affine.translation(*ORIGIN) @ Affine.scale(gsd_m, -gsd_m)
    wrong = Affine.translation(ORIGIN[0] + shift[0], ORIGIN[1] + shift[1]) @ Affine.scale(gsd_m, -gsd_m)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = [
        _write(out_dir / f"{name}_before.tif", noisy[0], grid),
        _write(out_dir / f"{name}_after.tif", noisy[1], wrong),
    ]
    dsms: list[Path | None] = [None, None]
    if dsm:
        ys_m, xs_m = np.mgrid[0:size_px, 0:size_px].astype(np.float32) * gsd_m
        ground = 50.0 + 0.02 * xs_m + 0.01 * ys_m
        shape = (size_px, size_px)
        for i, (objects, transform) in enumerate(((before_objects, grid), (after_objects, wrong))):
            surface = ground + _heights(objects, shape, rng) + rng.normal(0, 0.05, shape).astype(np.float32)
            dsms[i] = _write(
                out_dir / f"{name}_dsm_{('before', 'after')[i]}.tif", surface.astype(np.float32), transform
            )
    moved = [o for o in builder.objects if o.kind == "car"]  # the earlier place, then the later
    return EpochPairFiles(files[0], files[1], dsms[0], dsms[1], new, moved, shift, gsd_m)
