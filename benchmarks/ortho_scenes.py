"""Synthetic nadir orthophotos with blue steel roofs and the things mistaken for them.

A scene is ground texture (grass, soil, concrete, a road) at a known ground sampling
distance, with objects placed apart from each other, each with its true footprint:

- `roof`: blue steel roof, 4-25 m a side, any orientation, one of several blue shades, ribs
  (corrugation, period 0.2-0.3 m) and optionally a gable (two planes lit differently);
- `tarp`: a blue tarp, an irregular outline with wrinkles (shading in every direction);
- `car` (4.5 x 1.8 m) and `truck` (7-9 x 2.4 m box behind a white cab), blue;
- `pool`: a turquoise swimming pool with a light coping; `water`: a dark irregular pond;
- `court`: a blue-painted court (28 x 15 m) with white lines;
- `shadow`: a grey corrugated metal roof with a bluish shadow across part of it;
- `grey_roof`, `red_roof`: other roofs, for a realistic background.

Then the whole image gets a colour cast (per-channel gains), haze (a blend towards a
grey-blue airlight) and sensor noise. Used by benchmarks/blue_roof.py and the rule's tests.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np
import numpy.typing as npt

CONFUSIONS = ("tarp", "car", "truck", "pool", "water", "court", "shadow")
BLUE_SHADES_BGR = (
    (165, 85, 30),
    (190, 115, 50),
    (135, 65, 20),
    (200, 135, 75),
    (155, 95, 40),
    (180, 100, 25),
)


@dataclass(frozen=True)
class SceneObject:
    kind: str
    polygon_xy: npt.NDArray[np.float64]  # (K, 2) pixel outline
    area_m2: float

    @property
    def xyxy(self) -> npt.NDArray[np.float64]:
        return np.concatenate([self.polygon_xy.min(axis=0), self.polygon_xy.max(axis=0)])


@dataclass
class Scene:
    image: npt.NDArray[np.uint8]
    gsd_m: float
    objects: list[SceneObject] = field(default_factory=list)

    def of_kind(self, kind: str) -> list[SceneObject]:
        return [o for o in self.objects if o.kind == kind]


def rectangle(center: tuple[float, float], size_px: tuple[float, float], angle_deg: float) -> np.ndarray:
    return cv2.boxPoints((center, size_px, angle_deg)).astype(np.float64)


def _fill(mask_shape: tuple[int, int], polygon: np.ndarray) -> np.ndarray:
    mask = np.zeros(mask_shape, np.uint8)
    cv2.fillPoly(mask, [np.round(polygon * 16).astype(np.int32)], 1, lineType=cv2.LINE_AA, shift=4)
    return mask.astype(bool)


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], scale_px: float) -> np.ndarray:
    """Noise with features about `scale_px` wide, in [-1, 1]."""
    small = (max(2, int(shape[0] / scale_px)), max(2, int(shape[1] / scale_px)))
    base = rng.standard_normal(small).astype(np.float32)
    out = cv2.resize(base, (shape[1], shape[0]), interpolation=cv2.INTER_CUBIC)
    return out / (np.abs(out).max() + 1e-6)


def _paint(
    image: np.ndarray, mask: np.ndarray, bgr: tuple[float, float, float], shading: np.ndarray | float = 1.0
) -> None:
    colour = np.asarray(bgr, np.float32)
    shade = shading[mask][:, None] if isinstance(shading, np.ndarray) else shading
    image[mask] = colour * shade


def _ribs(shape: tuple[int, int], angle_rad: float, period_px: float, depth: float) -> np.ndarray:
    ys, xs = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float32)
    t = xs * math.cos(angle_rad) + ys * math.sin(angle_rad)
    wave = np.sin(2 * math.pi * t / period_px)
    return 1.0 + depth * np.sign(wave) * np.abs(wave) ** 0.5  # trapezoidal-ish ribs


class SceneBuilder:
    """Draws one scene; objects are placed by rejection so that none overlap."""

    def __init__(self, rng: np.random.Generator, size_px: int, gsd_m: float) -> None:
        self.rng = rng
        self.size = size_px
        self.gsd = gsd_m
        self.image = self._ground()
        self.objects: list[SceneObject] = []
        self._taken: list[tuple[float, float, float]] = []  # centre x, y, radius

    def _ground(self) -> np.ndarray:
        rng, n = self.rng, self.size
        grass = np.array([60, 120, 80], np.float32)
        soil = np.array([90, 120, 150], np.float32)
        mix = (_smooth_noise(rng, (n, n), n / 4) + 1) / 2
        image = grass * (1 - mix[..., None]) + soil * mix[..., None]
        image *= (1 + 0.15 * _smooth_noise(rng, (n, n), 8))[..., None]
        # a concrete road across the scene
        y0 = rng.uniform(0.1, 0.9) * n
        road = rectangle((n / 2, y0), (n * 1.5, 5.0 / self.gsd), float(rng.uniform(-30, 30)))
        _paint(image, _fill((n, n), road), (130, 135, 140))
        return image

    def place(self, radius_px: float) -> tuple[float, float] | None:
        if 2 * radius_px >= self.size:
            return None
        for _ in range(200):
            x, y = self.rng.uniform(radius_px, self.size - radius_px, 2)
            if all(math.hypot(x - a, y - b) > radius_px + r + 2 / self.gsd for a, b, r in self._taken):
                self._taken.append((float(x), float(y), radius_px))
                return float(x), float(y)
        return None

    def _rect_object(
        self, kind: str, size_m: tuple[float, float], angle: float | None = None
    ) -> tuple[np.ndarray, np.ndarray] | None:
        w, h = size_m[0] / self.gsd, size_m[1] / self.gsd
        centre = self.place(math.hypot(w, h) / 2)
        if centre is None:
            return None
        poly = rectangle(centre, (w, h), float(self.rng.uniform(0, 180)) if angle is None else angle)
        mask = _fill(self.image.shape[:2], poly)
        self.objects.append(SceneObject(kind, poly, size_m[0] * size_m[1]))
        return poly, mask

    def roof(self, kind: str = "roof", bgr: tuple[float, float, float] | None = None) -> None:
        rng = self.rng
        size = (float(rng.uniform(4, 25)), float(rng.uniform(4, 18)))
        angle = float(rng.uniform(0, 180))
        placed = self._rect_object(kind, size, angle)
        if placed is None:
            return
        _, mask = placed
        shade = BLUE_SHADES_BGR[rng.integers(len(BLUE_SHADES_BGR))] if bgr is None else bgr
        ribs = _ribs(
            mask.shape,
            math.radians(angle),
            float(rng.uniform(0.2, 0.3)) / self.gsd,
            float(rng.uniform(0.08, 0.18)),
        )
        shading = ribs * (1 + 0.04 * _smooth_noise(rng, mask.shape, 20))
        if rng.random() < 0.5:  # a gable: the two planes are lit differently
            ys, xs = np.mgrid[0 : mask.shape[0], 0 : mask.shape[1]]
            cx, cy = self._taken[-1][:2]
            side = ((xs - cx) * math.cos(math.radians(angle)) + (ys - cy) * math.sin(math.radians(angle))) > 0
            shading = shading * np.where(side, 1.0, float(rng.uniform(0.75, 0.9)))
        _paint(self.image, mask, shade, shading)

    def _blob(
        self, radius_m: tuple[float, float], room: float, vertices: int, spread: tuple[float, float]
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """An irregular outline (radii varying by `spread` around a random radius) and its mask."""
        radius = float(self.rng.uniform(*radius_m)) / self.gsd
        centre = self.place(radius * room)
        if centre is None:
            return None
        angles = np.sort(self.rng.uniform(0, 2 * math.pi, vertices))
        radii = radius * self.rng.uniform(*spread, len(angles))
        poly = np.stack([centre[0] + radii * np.cos(angles), centre[1] + radii * np.sin(angles)], axis=1)
        return poly, _fill(self.image.shape[:2], poly)

    def tarp(self) -> None:
        rng = self.rng
        blob = self._blob((2.5, 6.0), 1.3, 11, (0.55, 1.3))
        if blob is None:
            return
        poly, mask = blob
        wrinkles = (
            1
            + 0.35 * _smooth_noise(rng, mask.shape, 0.35 / self.gsd)
            + 0.15 * _smooth_noise(rng, mask.shape, 0.15 / self.gsd)
        )
        _paint(self.image, mask, (200, 90, 25), wrinkles)
        self.objects.append(SceneObject("tarp", poly, float(mask.sum()) * self.gsd**2))

    def vehicle(self, kind: str) -> None:
        rng = self.rng
        size = (4.5, 1.8) if kind == "car" else (float(rng.uniform(7, 9)), 2.4)
        placed = self._rect_object(kind, size)
        if placed is None:
            return
        poly, mask = placed
        shade = BLUE_SHADES_BGR[rng.integers(len(BLUE_SHADES_BGR))]
        _paint(self.image, mask, shade, 1 + 0.05 * _smooth_noise(rng, mask.shape, 10))
        if kind == "truck":  # a white cab at one end
            a, b = poly[0], poly[1]
            cab = np.array([a, b, b + (poly[2] - b) * 0.22, a + (poly[3] - a) * 0.22])
            _paint(self.image, _fill(mask.shape, cab), (225, 225, 225))

    def pool(self) -> None:
        rng = self.rng
        size = (float(rng.uniform(8, 14)), float(rng.uniform(4, 7)))
        coping = 0.6
        placed = self._rect_object("pool", (size[0] + 2 * coping, size[1] + 2 * coping))
        if placed is None:
            return
        poly, mask = placed
        _paint(self.image, mask, (205, 210, 215))
        centre = poly.mean(axis=0)
        inner = centre + (poly - centre) * (np.array(size) / (np.array(size) + 2 * coping)).min()
        water = _fill(mask.shape, inner)
        turquoise = ((205, 175, 40), (200, 190, 70), (215, 160, 30))[rng.integers(3)]
        _paint(self.image, water, turquoise, 1 + 0.04 * _smooth_noise(rng, mask.shape, 12))

    def water(self) -> None:
        blob = self._blob((5.0, 10.0), 1.2, 14, (0.7, 1.15))
        if blob is None:
            return
        poly, mask = blob
        _paint(self.image, mask, (85, 75, 35), 1 + 0.05 * _smooth_noise(self.rng, mask.shape, 30))
        self.objects.append(SceneObject("water", poly, float(mask.sum()) * self.gsd**2))

    def court(self) -> None:
        rng = self.rng
        placed = self._rect_object("court", (28.0, 15.0))
        if placed is None:
            return
        poly, mask = placed
        _paint(
            self.image,
            mask,
            BLUE_SHADES_BGR[rng.integers(len(BLUE_SHADES_BGR))],
            1 + 0.03 * _smooth_noise(rng, mask.shape, 15),
        )
        width = max(1, round(0.05 / self.gsd))
        lines = np.zeros(mask.shape, np.uint8)
        centre = poly.mean(axis=0)
        for shrink in (0.95, 0.35):  # the outer line and a centre box
            ring = centre + (poly - centre) * shrink
            cv2.polylines(lines, [np.round(ring).astype(np.int32)], True, 1, width)
        cv2.line(
            lines,
            tuple(np.round((poly[0] + poly[1]) / 2).astype(int)),
            tuple(np.round((poly[2] + poly[3]) / 2).astype(int)),
            1,
            width,
        )
        cv2.circle(lines, tuple(np.round(centre).astype(int)), round(1.8 / self.gsd), 1, width)
        _paint(self.image, lines.astype(bool) & mask, (235, 235, 235))

    def shadow(self) -> None:
        rng = self.rng
        size = (float(rng.uniform(6, 16)), float(rng.uniform(5, 12)))
        angle = float(rng.uniform(0, 180))
        placed = self._rect_object("shadow", size, angle)
        if placed is None:
            return
        poly, mask = placed
        ribs = _ribs(mask.shape, math.radians(angle), 0.25 / self.gsd, 0.1)
        _paint(self.image, mask, (160, 158, 155), ribs)
        # skylight-lit shadow: dark and bluish over a part of the roof
        cut = poly.copy()
        cut[1] = poly[0] + (poly[1] - poly[0]) * float(rng.uniform(0.4, 0.8))
        cut[2] = poly[3] + (poly[2] - poly[3]) * float(rng.uniform(0.4, 0.8))
        shade = _fill(mask.shape, cut) & mask
        self.image[shade] *= np.array([0.62, 0.5, 0.42], np.float32)

    def other_roof(self, kind: str) -> None:
        placed = self._rect_object(kind, (float(self.rng.uniform(5, 15)), float(self.rng.uniform(5, 12))))
        if placed is None:
            return
        colour = (150, 150, 148) if kind == "grey_roof" else (60, 70, 170)
        _paint(self.image, placed[1], colour, 1 + 0.05 * _smooth_noise(self.rng, placed[1].shape, 10))

    def finish(self) -> np.ndarray:
        rng = self.rng
        image = self.image * rng.uniform(0.85, 1.15, 3).astype(np.float32)  # white balance cast
        haze = float(rng.uniform(0.0, 0.3))
        image = image * (1 - haze) + np.array([200, 190, 180], np.float32) * haze
        image += rng.normal(0, 3, image.shape).astype(np.float32)
        return np.clip(image, 0, 255).astype(np.uint8)


def make_scene(
    rng: np.random.Generator,
    *,
    size_px: int = 1000,
    gsd_m: float | None = None,
    roofs: int | None = None,
    confusions: tuple[str, ...] | None = None,
) -> Scene:
    """One scene: `roofs` blue roofs (0-3 by default) and `confusions` (1-3 at random by default)."""
    gsd = float(rng.uniform(0.03, 0.06)) if gsd_m is None else gsd_m
    builder = SceneBuilder(rng, size_px, gsd)
    if confusions is None:
        confusions = tuple(
            str(c) for c in rng.choice(CONFUSIONS, size=int(rng.integers(1, 4)), replace=False)
        )
    for kind in confusions:
        {
            "tarp": builder.tarp,
            "pool": builder.pool,
            "water": builder.water,
            "court": builder.court,
            "shadow": builder.shadow,
        }.get(kind, lambda k=kind: builder.vehicle(k))()
    for _ in range(int(rng.integers(0, 4)) if roofs is None else roofs):
        builder.roof()
    for kind in ("grey_roof", "red_roof"):  # background roofs last: they must not crowd out the rest
        if rng.random() < 0.6:
            builder.other_roof(kind)
    return Scene(
        builder.finish(), gsd, [o for o in builder.objects if o.kind not in ("grey_roof", "red_roof")]
    )
