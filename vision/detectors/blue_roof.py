"""A rule, not a model: blue steel roofs (蓝色彩钢瓦) seen from above, with no labelled data.

Colour: saturated blue in CIELAB after a per-image correction for haze (per-channel black
point) and white balance (grey-world gains, white point), so a hazy or warm-balanced photo
gives the same hue angles. Shape: the blue regions that are compact, near-rectangular
(area against the minimum-area rectangle and the convex hull) and, when the ground sampling
distance is known, at least `min_area_m2` large and `min_short_side_m` wide (vehicles are
narrower). Texture, on L*: corrugation is gradients aligned in one direction with a periodic
profile across them (raises the score); a tarp is strong gradients in every direction
(wrinkles, rejected); a painted court is large, smooth and has bright lines inside
(rejected).

Each finding is an ordinary `Detections` row of class 0 (`blue_steel_roof`) in source
pixels, with `data["footprint_xy"]` (N, 4, 2), the rotated rectangle's corners, and
`data["area_m2"]` (NaN when the ground sampling distance is unknown). Thresholds are data:
`blue_roof.yaml` beside this file; the card is models/blue-roof-rule/card.json.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, model_validator

from vision.config_files import load_config_file
from vision.detections import Detections
from vision.errors import ModelError

DEFAULT_CONFIG = Path(__file__).with_name("blue_roof.yaml")
LABEL = "blue_steel_roof"


class BlueRoofConfig(BaseModel):
    """The rule's thresholds. Their values live in blue_roof.yaml only, with why each is set
    so; here are their meanings and bounds."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: str = Field(min_length=1, description="Version of these thresholds (goes to the findings).")
    # colour of a pixel, CIELAB after balance()
    hue_min_deg: float = Field(ge=0, le=360, description="Lowest hue angle atan2(b*, a*) of a blue pixel.")
    hue_max_deg: float = Field(ge=0, le=360, description="Highest hue angle of a blue pixel.")
    chroma_min: float = Field(ge=0, le=150, description="Least chroma of a blue pixel.")
    lightness_min: float = Field(ge=0, le=100, description="Darkest L* of a blue pixel.")
    lightness_max: float = Field(ge=0, le=100, description="Brightest L* of a blue pixel.")
    # colour of a region
    region_hue_min_deg: float = Field(ge=0, le=360, description="Lowest mean hue of a smooth region.")
    region_hue_max_deg: float = Field(ge=0, le=360, description="Highest mean hue of a region.")
    region_lightness_min: float = Field(ge=0, le=100, description="Darkest mean L* of a region.")
    shadow_lightness_max: float = Field(ge=0, le=100, description="Regions darker may be shadows.")
    shadow_ring_chroma_max: float = Field(ge=0, description="Ring pixels this grey...")
    shadow_ring_brighter_by: float = Field(ge=0, description="...and this much brighter in L*...")
    shadow_evidence_min: float = Field(ge=0, le=1, description="...ribbed like the region: a shadow.")
    # scale and size
    work_gsd_m: float = Field(gt=0, le=5, description="Metres per pixel worked at, when the image is finer.")
    max_side_px: int = Field(ge=64, le=16384, description="Longer working side when the scale is unknown.")
    min_area_m2: float = Field(ge=0, description="Smallest roof in square metres.")
    min_short_side_m: float = Field(ge=0, description="Narrowest roof in metres.")
    min_area_px: int = Field(ge=1, description="Smallest roof in source pixels, when the scale is unknown.")
    # shape
    min_rectangularity: float = Field(ge=0, le=1, description="Region area / its minimum-area rectangle's.")
    min_solidity: float = Field(ge=0, le=1, description="Region area / its convex hull's.")
    max_aspect: float = Field(ge=1, description="Longest long/short side ratio.")
    # texture
    rib_period_min_m: float = Field(gt=0, description="Shortest corrugation period.")
    rib_period_max_m: float = Field(gt=0, description="Longest corrugation period.")
    wrinkle_shading_min: float = Field(ge=0, description="Mean local L* deviation of a wrinkled region.")
    wrinkle_coherence_max: float = Field(ge=0, le=1, description="Gradient coherence of a wrinkled region.")
    court_min_area_m2: float = Field(ge=0, description="Smallest painted court.")
    court_line_fraction_min: float = Field(ge=0, le=1, description="Share of line pixels in a court.")
    court_corrugation_max: float = Field(ge=0, le=1, description="More corrugated: a roof, lines or not.")
    min_score: float = Field(ge=0, le=1, description="Findings scored lower are dropped.")

    @model_validator(mode="after")
    def _ranges(self) -> BlueRoofConfig:
        for low, high in (
            ("hue_min_deg", "hue_max_deg"),
            ("lightness_min", "lightness_max"),
            ("region_hue_min_deg", "region_hue_max_deg"),
            ("rib_period_min_m", "rib_period_max_m"),
        ):
            if getattr(self, low) >= getattr(self, high):
                raise ValueError(
                    f"expected {low} < {high}, got {getattr(self, low)} and {getattr(self, high)}"
                )
        return self

    @classmethod
    def read(cls, path: str | Path = DEFAULT_CONFIG) -> BlueRoofConfig:
        return load_config_file(cls, Path(path), "blue roof rule config", ModelError)


@dataclass(frozen=True)
class RegionFeatures:
    """What the rule measured on one blue region (working pixels unless said otherwise)."""

    area_px: float
    rect: tuple[Sequence[float], Sequence[float], float]  # cv2.minAreaRect: centre, (w, h), angle
    rectangularity: float
    solidity: float
    aspect: float
    chroma: float
    lightness: float
    hue_deg: float
    shading: float
    coherence: float
    corrugation: float
    line_fraction: float
    shadow_evidence: float


def balance(bgr: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
    """Haze and white balance, returns BGR float32 in [0, 1].

    Haze adds light: the darkest percentile of the darkest channel is taken off all three
    (one offset, so a scene without black things is not tinted). The colour cast is measured
    on near-grey pixels (roads, concrete, metal), twice, the second time on those grey after
    the first correction: grey-world over a whole scene would turn grey roofs blue in a green
    field. Too few grey pixels: no cast correction. White point: the brightest 0.1 %.
    """
    step = max(1, int(math.sqrt(bgr.shape[0] * bgr.shape[1] / 60_000)))  # stats on ~60k pixels
    sample = bgr[::step, ::step].reshape(-1, 3).astype(np.float32)
    offset = float(np.percentile(sample, 1, axis=0).min())
    sample = np.maximum(sample - offset, 0)
    gains = np.ones(3, np.float32)
    for spread in (0.3, 0.15):
        balanced = sample * gains
        b, g, r = balanced[:, 0], balanced[:, 1], balanced[:, 2]
        top, bottom = np.maximum(np.maximum(b, g), r), np.minimum(np.minimum(b, g), r)
        grey = ((top - bottom) < spread * top) & (top > np.percentile(top, 70))
        if grey.mean() < 0.005:
            break
        means = balanced[grey].mean(axis=0) + 1e-3
        gains = gains * np.clip(means.mean() / means, 0.6, 1.6).astype(np.float32)
    balanced = sample * gains
    # the brightest 0.1 %: a light roof is often the brightest thing and must not clip
    white = (
        float(np.percentile(np.maximum(np.maximum(balanced[:, 0], balanced[:, 1]), balanced[:, 2]), 99.9))
        or 1.0
    )
    out = bgr.astype(np.float32)
    out -= offset
    out *= gains / white
    return np.clip(out, 0.0, 1.0, out=out)


def _orientation(lightness: np.ndarray, where: np.ndarray) -> tuple[float, float]:
    """(coherence in [0, 1], dominant gradient direction in radians) of L* over `where`, from
    the mean structure tensor of Sobel gradients."""
    gx = cv2.Sobel(lightness, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(lightness, cv2.CV_32F, 0, 1, ksize=3)
    jxx, jyy, jxy = (float(v[where].mean()) for v in (gx * gx, gy * gy, gx * gy))
    coherence = math.sqrt((jxx - jyy) ** 2 + 4 * jxy**2) / (jxx + jyy + 1e-6)
    return coherence, 0.5 * math.atan2(2 * jxy, jxx - jyy)


class BlueRoofDetector:
    """The rule behind the detector interface (`labels`, `input_size`, `max_batch`, `warmup`,
    `predict_batch`); stateless after construction, so safe from any thread."""

    def __init__(self, config: BlueRoofConfig | None = None) -> None:
        self.config = config or BlueRoofConfig.read()

    @property
    def labels(self) -> tuple[str, ...]:
        return (LABEL,)

    @property
    def input_size(self) -> int:
        return self.config.max_side_px

    @property
    def max_batch(self) -> int:
        return 1

    @property
    def name(self) -> str:
        return f"blue-roof-rule@{self.config.version}"

    def warmup(self) -> None:
        self.detect(np.full((64, 64, 3), 114, np.uint8))

    def predict_batch(self, images: Sequence[np.ndarray]) -> list[Detections]:
        """Scale unknown: areas in pixels. Use `detect(image, gsd_m=...)` when it is known."""
        return [self.detect(image) for image in images]

    # -- the rule -------------------------------------------------------------------------

    def detect(self, image: np.ndarray, *, gsd_m: float | None = None) -> Detections:
        """Blue steel roofs in one BGR uint8 HxWx3 image; `gsd_m`: metres per source pixel."""
        if (
            not isinstance(image, np.ndarray)
            or image.dtype != np.uint8
            or image.ndim != 3
            or image.shape[2] != 3
        ):
            got = f"{image.dtype} {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
            raise ValueError(f"expected a BGR uint8 (H, W, 3) image, got {got}")
        if gsd_m is not None and not (math.isfinite(gsd_m) and gsd_m > 0):
            raise ValueError(f"expected a positive ground sampling distance in metres, got {gsd_m}")
        cfg = self.config
        height, width = image.shape[:2]
        if gsd_m is not None:
            scale = min(1.0, gsd_m / cfg.work_gsd_m)
        else:
            scale = min(1.0, cfg.max_side_px / max(height, width))
        work = (
            image
            if scale == 1.0
            else cv2.resize(
                image,
                (max(1, round(width * scale)), max(1, round(height * scale))),
                interpolation=cv2.INTER_AREA,
            )
        )
        work_gsd = None if gsd_m is None else gsd_m / scale
        lab = cv2.cvtColor(balance(np.asarray(work, np.uint8)), cv2.COLOR_BGR2Lab)
        lightness, a_star, b_star = lab[..., 0], lab[..., 1], lab[..., 2]
        chroma, hue = cv2.cartToPolar(a_star, b_star, angleInDegrees=True)
        in_range = (
            (hue >= cfg.hue_min_deg)
            & (hue <= cfg.hue_max_deg)
            & (chroma >= cfg.chroma_min)
            & (lightness >= cfg.lightness_min)
            & (lightness <= cfg.lightness_max)
        ).astype(np.uint8)
        # Opening drops specks (a blue shirt); closing joins a roof across its ribs' dark
        # lines and a court across its painted lines (measured afterwards as lines).
        side = max(3, (round(0.3 / work_gsd) if work_gsd else 5) | 1)
        blue = cv2.morphologyEx(in_range, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
        closed = cv2.morphologyEx(
            blue, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (side, side))
        )
        contours, _ = cv2.findContours(closed, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        min_area_work = cfg.min_area_m2 / work_gsd**2 if work_gsd else cfg.min_area_px * scale * scale
        rows: list[tuple[float, np.ndarray, float]] = []
        for contour in contours:
            if cv2.contourArea(contour) < min_area_work:
                continue
            features = self._features(contour, closed, lab, chroma, work_gsd)
            score = self._score(features, work_gsd)
            if score is not None and score >= cfg.min_score:
                area_m2 = features.area_px * work_gsd**2 if work_gsd else math.nan
                rows.append((score, cv2.boxPoints(features.rect) / scale, area_m2))
        return self._detections(rows, (width, height), gsd_m)

    def _features(
        self, contour: np.ndarray, closed: np.ndarray, lab: np.ndarray, chroma: np.ndarray, gsd: float | None
    ) -> RegionFeatures:
        area = float(cv2.contourArea(contour))
        rect = cv2.minAreaRect(contour)
        rect_w, rect_h = rect[1]
        hull_area = float(cv2.contourArea(cv2.convexHull(contour)))
        x, y, w, h = cv2.boundingRect(contour)
        inside = np.zeros((h, w), np.uint8)
        cv2.drawContours(inside, [contour], -1, 1, thickness=cv2.FILLED, offset=(-x, -y))
        # Colour and texture away from the edge, where the region meets the ground.
        core = cv2.erode(inside, np.ones((5, 5), np.uint8)).astype(bool) & closed[
            y : y + h, x : x + w
        ].astype(bool)
        if core.sum() < 16:
            core = inside.astype(bool)
        patch_lab = lab[y : y + h, x : x + w]
        patch_l = np.ascontiguousarray(patch_lab[..., 0])
        patch_c = chroma[y : y + h, x : x + w]
        lightness, region_chroma = float(patch_l[core].mean()), float(patch_c[core].mean())
        coherence, theta = _orientation(patch_l, core)
        corrugation = coherence * self._periodicity(patch_l, core, theta, gsd)
        # Court lines: inside the outline, clearly lighter and greyer than the paint around.
        lines = inside.astype(bool) & (patch_l > lightness + 10) & (patch_c < region_chroma - 15)
        return RegionFeatures(
            area_px=area,
            rect=rect,
            rectangularity=area / max(rect_w * rect_h, 1e-6),
            solidity=area / max(hull_area, 1e-6),
            aspect=max(rect_w, rect_h) / max(min(rect_w, rect_h), 1e-6),
            chroma=region_chroma,
            lightness=lightness,
            hue_deg=float(
                np.degrees(np.arctan2(patch_lab[..., 2][core].mean(), patch_lab[..., 1][core].mean())) % 360.0
            ),
            shading=self._shading(patch_l, core, gsd),
            coherence=coherence,
            corrugation=corrugation,
            line_fraction=float(lines.sum()) / max(area, 1.0),
            shadow_evidence=self._shadow_evidence(
                contour, lab, chroma, gsd, lightness, theta if coherence > 0.5 else None
            ),
        )

    @staticmethod
    def _shading(patch_l: np.ndarray, core: np.ndarray, gsd: float | None) -> float:
        """Mean local standard deviation of L* over ~1 m windows, after a blur that removes
        noise and ribs: high for a wrinkled tarp, low for a flat sheet (a gable's ridge is one
        line of windows)."""
        sigma = 0.15 / gsd if gsd else 3.0
        window = max(3, round(1.0 / gsd) if gsd else 20)
        blurred = cv2.GaussianBlur(patch_l, (0, 0), sigma)
        mean = cv2.blur(blurred, (window, window))
        var = cv2.blur(blurred * blurred, (window, window)) - mean * mean
        return float(np.sqrt(np.maximum(var, 0))[core].mean())

    def _shadow_evidence(
        self,
        contour: np.ndarray,
        lab: np.ndarray,
        chroma: np.ndarray,
        gsd: float | None,
        lightness: float,
        theta: float | None,
    ) -> float:
        """Evidence that the region is a shadow on ribbed grey metal: the share of a 1 m ring
        around it that is grey and brighter, weighted by how well that lit grey shows ribs
        running the way the region's do (coherence x cos² of the angle between them). A
        shadow's surface goes on, lit, beyond it; a dark roof beside a road does not continue
        into the road."""
        cfg = self.config
        pad = max(3, round(1.0 / gsd) if gsd else 10)
        height, width = chroma.shape
        x, y, w, h = cv2.boundingRect(contour)
        x0, y0, x1, y1 = max(0, x - pad), max(0, y - pad), min(width, x + w + pad), min(height, y + h + pad)
        region = np.zeros((y1 - y0, x1 - x0), np.uint8)
        cv2.drawContours(region, [contour], -1, 1, thickness=cv2.FILLED, offset=(-x0, -y0))
        # the ring starts 3 px out: the region's own edge is a strong gradient along one side
        ring = cv2.dilate(region, np.ones((2 * pad + 1, 2 * pad + 1), np.uint8)).astype(bool) & ~cv2.dilate(
            region, np.ones((7, 7), np.uint8)
        ).astype(bool)
        patch_l = np.ascontiguousarray(lab[y0:y1, x0:x1, 0])
        lit_grey = (
            ring
            & (chroma[y0:y1, x0:x1] < cfg.shadow_ring_chroma_max)
            & (patch_l > lightness + cfg.shadow_ring_brighter_by)
        )
        if theta is None or lit_grey.sum() < 16:
            return 0.0
        coherence, ring_theta = _orientation(patch_l, lit_grey)
        return float(lit_grey.sum() / ring.sum()) * coherence * math.cos(ring_theta - theta) ** 2

    def _periodicity(self, patch_l: np.ndarray, core: np.ndarray, theta: float, gsd: float | None) -> float:
        """Peak autocorrelation of the mean L* profile across the ribs, at a rib period."""
        cfg = self.config
        ys, xs = np.nonzero(core)
        t = xs * math.cos(theta) + ys * math.sin(theta)
        bins = np.round(t - t.min()).astype(np.int64)
        counts = np.bincount(bins)
        valid = counts > 0
        profile = np.bincount(bins, weights=patch_l[ys, xs])[valid] / counts[valid]
        if len(profile) < 16:
            return 0.0
        profile = profile - np.convolve(profile, np.ones(9) / 9, mode="same")  # remove shading
        profile = profile[4:-4]
        var = float(np.dot(profile, profile))
        if var <= 1e-6:
            return 0.0
        lo = max(2, int(cfg.rib_period_min_m / gsd)) if gsd else 2
        hi = min(len(profile) // 2, int(math.ceil(cfg.rib_period_max_m / gsd)) if gsd else 12)
        if hi < lo:
            return 0.0
        best = max(float(np.dot(profile[:-lag], profile[lag:])) / var for lag in range(lo, hi + 1))
        return max(0.0, min(1.0, best))

    def _score(self, f: RegionFeatures, gsd: float | None) -> float | None:
        """The finding's score from its features, or None when a filter rejects it."""
        cfg = self.config
        short = min(f.rect[1])
        if gsd is not None and short * gsd < cfg.min_short_side_m:
            return None  # a vehicle
        if f.hue_deg > cfg.region_hue_max_deg or (
            f.hue_deg < cfg.region_hue_min_deg and f.corrugation < cfg.court_corrugation_max
        ):
            return None  # violet; or cyan and smooth: a pool (a light roof shows its ribs)
        if f.lightness < cfg.region_lightness_min or (
            f.lightness < cfg.shadow_lightness_max and f.shadow_evidence >= cfg.shadow_evidence_min
        ):
            return None  # dark, or darker than the grey it lies in: a shadow (skylight makes it blue)
        if (
            f.rectangularity < cfg.min_rectangularity
            or f.solidity < cfg.min_solidity
            or f.aspect > cfg.max_aspect
        ):
            return None  # irregular: a tarp, water, a field
        if f.shading >= cfg.wrinkle_shading_min and f.coherence <= cfg.wrinkle_coherence_max:
            return None  # wrinkled: a tarp
        area_m2 = f.area_px * gsd**2 if gsd is not None else None
        if (
            (area_m2 is None or area_m2 >= cfg.court_min_area_m2)
            and f.line_fraction >= cfg.court_line_fraction_min
            and f.corrugation <= cfg.court_corrugation_max
        ):
            return None  # a painted court
        shape = (
            (f.rectangularity - cfg.min_rectangularity)
            / (1.0 - cfg.min_rectangularity + 1e-6)
            * (f.solidity - cfg.min_solidity)
            / (1.0 - cfg.min_solidity + 1e-6)
        )
        colour = min(1.0, (f.chroma - cfg.chroma_min) / 40.0)
        score = 0.4 + 0.25 * min(1.0, max(0.0, shape)) + 0.2 * max(0.0, colour) + 0.15 * f.corrugation
        return float(min(1.0, score))

    def _detections(
        self, rows: list[tuple[float, np.ndarray, float]], resolution_wh: tuple[int, int], gsd_m: float | None
    ) -> Detections:
        width, height = resolution_wh
        corners = np.array([r[1] for r in rows], np.float32).reshape(-1, 4, 2)
        xyxy = (
            np.concatenate([corners.min(axis=1), corners.max(axis=1)], axis=1) if rows else np.empty((0, 4))
        )
        return Detections(
            xyxy=np.clip(xyxy, 0, [width, height, width, height]).astype(np.float32),
            confidence=np.array([r[0] for r in rows], np.float32),
            class_id=np.zeros(len(rows), np.int64),
            data={"footprint_xy": corners, "area_m2": np.array([r[2] for r in rows], np.float32)},
            metadata={"model": self.name, "resolution_wh": resolution_wh, "gsd_m": gsd_m},
        )
