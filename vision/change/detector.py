"""New structures between two epochs, as `illegal_structure` findings.

Per window of the overlap (vision.change.epochs), after co-registration:

- with DSMs: the height gain (later minus earlier DSM) is at least `min_height_gain_m` where
  the earlier surface stood less than `before_height_max_m` above its local ground (a
  minimum filter over `ground_window_m`): there was nothing there; regions of at least
  `min_area_m2`.
- without: the later epoch's colours are matched to the earlier one's per window (per CIELAB
  channel, median and interquartile range), so a season's or a camera's colour shift moves the
  whole window and leaves no difference; what differs by more than `min_delta_e` after a
  blur, opened, is a change if it passes the shape filters: area, compactness (area over its
  minimum-area rectangle), aspect, not vegetation (excess-green index of its new look), not a
  vehicle (small and narrow: a moved car shows twice, where it was and where it is). And any
  blue steel roof the rule (vision.detectors.blue_roof) finds in the later epoch and not in
  the earlier one.

Each finding is a `Detections` row in the common grid's pixels (the earlier raster's, at the
working GSD; `EpochPair.transform` maps them to its CRS): class 0 (`illegal_structure`),
`data["footprint_xy"]` (its minimum-area rectangle), `data["area_m2"]` (its pixels' area),
`data["area_uncertainty_m2"]` (~95 % half-width: the rectangle's perimeter times a band measured
per kind), `data["kind"]` (height_gain, appearance, new_blue_roof), `data["height_gain_m"]` (NaN
without DSMs) and `data["crop_before"]`, `data["crop_after"]` (BGR arrays, the same place in
each epoch; `data["box_in_crop_xyxy"]`: the box in them). Thresholds are data: change.yaml
beside this file.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from vision.change.epochs import EpochFiles, EpochPair, EpochWindow
from vision.change.registration import Registration, co_register
from vision.config_files import load_config_file
from vision.detections import Detections
from vision.detectors.blue_roof import BlueRoofDetector
from vision.errors import GeoError
from vision.postprocess import box_iou, nms
from vision.rules import whole_in_raster
from vision.tiling import TileWindow, tile_windows

DEFAULT_CONFIG = Path(__file__).with_name("change.yaml")
LABEL = "illegal_structure"
DUPLICATE_IOU = 0.3


class ChangeConfig(BaseModel):
    """The detector's thresholds; values in change.yaml with why each is set so."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: str = Field(min_length=1, description="Version of these thresholds (goes to the findings).")
    max_shift_m: float = Field(gt=0, description="Largest misregistration corrected; beyond, refused.")
    work_gsd_m: float = Field(
        gt=0, le=5, description="Metres per pixel worked at, when the rasters are finer."
    )
    window_m: float = Field(gt=0, description="Window side on the ground.")
    overlap_m: float = Field(ge=0, description="Windows' overlap on the ground (< window_m).")
    min_height_gain_m: float = Field(gt=0, description="Least height gain of a new structure.")
    min_area_m2: float = Field(ge=0, description="Smallest new structure.")
    before_height_max_m: float = Field(ge=0, description="Highest earlier height above ground of 'none'.")
    ground_window_m: float = Field(gt=0, description="Side of the minimum filter giving the ground.")
    blur_m: float = Field(ge=0, description="Gaussian sigma before differencing colours.")
    min_delta_e: float = Field(gt=0, description="Least CIELAB difference of a change.")
    grow_delta_e: float = Field(gt=0, description="Least CIELAB difference a change grows over.")
    open_m: float = Field(ge=0, description="Opening removing slivers narrower than this.")
    min_compactness: float = Field(ge=0, le=1, description="Least area / minimum-area rectangle.")
    max_aspect: float = Field(ge=1, description="Longest long/short side ratio.")
    max_area_m2: float = Field(gt=0, description="Largest change reported (bigger: a field, a flood).")
    max_excess_green: float = Field(
        ge=-1, le=2, description="Most excess-green of a changed region's new look."
    )
    vehicle_max_area_m2: float = Field(ge=0, description="Regions this small...")
    vehicle_max_short_m: float = Field(ge=0, description="...and this narrow are vehicles.")
    new_roof_max_iou: float = Field(ge=0, le=1, description="Later roof vs earlier roofs: under this, new.")
    crop_margin_m: float = Field(ge=0, description="Ground around a change in its evidence crops.")
    area_band_appearance_m: float = Field(
        ge=0, description="Area uncertainty per metre of outline, changes seen by appearance (and roofs)."
    )
    area_band_height_m: float = Field(ge=0, description="Area uncertainty per metre of outline, by height.")

    @classmethod
    def read(cls, path: str | Path = DEFAULT_CONFIG) -> ChangeConfig:
        config = load_config_file(cls, Path(path), "change detector config", GeoError)
        if config.overlap_m >= config.window_m:
            raise GeoError(
                f"{path}: expected overlap_m < window_m, got {config.overlap_m} and {config.window_m}"
            )
        return config


@dataclass(frozen=True)
class ChangeResult:
    """The findings (earlier raster pixels) and how the epochs were aligned."""

    detections: Detections
    registration: Registration
    windows: int
    uses_dsm: bool


@dataclass(frozen=True)
class _Region:
    contour: np.ndarray
    mask: np.ndarray  # (h, w) bool, window pixels
    area_m2: float


def _regions(mask: np.ndarray, pixel_m: float) -> list[_Region]:
    count, labels = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
    out = []
    for label in range(1, count):
        region = labels == label
        contours, _ = cv2.findContours(region.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        contour = max(contours, key=cv2.contourArea)
        out.append(_Region(contour, region, float(region.sum()) * pixel_m**2))
    return out


def _match_colours(after_lab: np.ndarray, before_lab: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """The later window's Lab mapped channel by channel to the earlier one's median and spread."""
    out = np.empty_like(after_lab)
    for c in range(3):
        a, b = after_lab[..., c][valid], before_lab[..., c][valid]
        a_lo, a_mid, a_hi = np.percentile(a, (25, 50, 75))
        b_lo, b_mid, b_hi = np.percentile(b, (25, 50, 75))
        gain = float(np.clip((b_hi - b_lo) / max(a_hi - a_lo, 1e-3), 0.3, 3.0))
        out[..., c] = (after_lab[..., c] - a_mid) * gain + b_mid
    return out


def _lab(bgr: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(bgr.astype(np.float32) / 255.0, cv2.COLOR_BGR2LAB)


def excess_green(bgr: np.ndarray) -> np.ndarray:
    """2g - r - b over chromaticities (Woebbecke et al. 1995): vegetation is above ~0.1."""
    pixels = bgr.astype(np.float32)
    total = pixels.sum(axis=-1) + 1e-3
    b, g, r = (pixels[..., i] / total for i in range(3))
    return 2 * g - r - b


class ChangeDetector:
    """Finds new structures between two epochs; stateless after construction."""

    def __init__(self, config: ChangeConfig | None = None) -> None:
        self.config = config or ChangeConfig.read()
        self.roofs = BlueRoofDetector()

    @property
    def name(self) -> str:
        return f"change-rule@{self.config.version}"

    def run(
        self,
        before: str | Path,
        after: str | Path,
        *,
        dsm_before: str | Path | None = None,
        dsm_after: str | Path | None = None,
        on_window: Callable[[int, int], None] | None = None,
    ) -> tuple[ChangeResult, EpochPair]:
        """Co-register, then every window; returns the result and the (closed) pair for its grid.

        `on_window(done, total)` is called after each window (a job's progress and its lease
        check: raising there stops the run)."""
        cfg = self.config
        files = EpochFiles.of(before, after, dsm_before, dsm_after)
        with EpochPair(files, work_gsd_m=cfg.work_gsd_m) as pair:
            registration = co_register(pair, cfg.max_shift_m)
            size = max(64, round(cfg.window_m / pair.pixel_m))
            overlap = min(cfg.overlap_m / cfg.window_m, 0.9)
            parts, windows = [], 0
            area = pair.overlap
            total = len(tile_windows((area.width, area.height), size, overlap))
            for epoch in pair.windows(size, overlap):
                windows += 1
                found = self.detect_window(epoch, pair.pixel_m, use_dsm=pair.dsms is not None)
                local = TileWindow(
                    epoch.tile.x - area.x, epoch.tile.y - area.y, epoch.tile.width, epoch.tile.height
                )
                parts.append(
                    whole_in_raster(found, local, (area.width, area.height), (epoch.tile.x, epoch.tile.y))
                )
                if on_window is not None:
                    on_window(windows, total)
            merged = Detections.merge(parts, metadata={"model": self.name, "gsd_m": pair.pixel_m})
            if len(merged):
                merged = merged[nms(merged.xyxy, merged.confidence, DUPLICATE_IOU)]
            return ChangeResult(merged, registration, windows, pair.dsms is not None), pair

    def detect_window(self, epoch: EpochWindow, pixel_m: float, *, use_dsm: bool) -> Detections:
        """The changes in one aligned window, in window pixels."""
        rows: list[tuple[_Region, float, str, float]] = []  # region, score, kind, height gain
        if use_dsm:
            rows += self._height_gain(epoch, pixel_m)
        elif epoch.valid.mean() > 0.2:
            rows += self._appearance(epoch, pixel_m)
        found = self._detections(rows, epoch, pixel_m)
        roofs = self._new_roofs(epoch, pixel_m)
        both = Detections.merge([found, roofs]) if len(roofs) else found
        if len(both):
            both = both[nms(both.xyxy, both.confidence, DUPLICATE_IOU)]
        return both

    def _height_gain(self, epoch: EpochWindow, pixel_m: float) -> list[tuple[_Region, float, str, float]]:
        cfg = self.config
        if epoch.dsm_before is None or epoch.dsm_after is None:
            raise GeoError("expected both epochs' DSM windows for a height comparison, got none")
        before = np.where(epoch.valid, epoch.dsm_before, np.float32(1e9)).astype(np.float32)
        side = max(3, round(cfg.ground_window_m / pixel_m))
        ground = cv2.erode(before, np.ones((side, side), np.uint8))  # a minimum filter
        empty = (epoch.dsm_before - ground) < cfg.before_height_max_m
        gain = np.where(epoch.valid, epoch.dsm_after - epoch.dsm_before, 0.0)
        mask = (gain >= cfg.min_height_gain_m) & empty
        out = []
        for region in _regions(mask, pixel_m):
            if region.area_m2 < cfg.min_area_m2:
                continue
            height = float(np.median(gain[region.mask]))
            score = 0.5 + 0.5 * min(1.0, (height - cfg.min_height_gain_m) / cfg.min_height_gain_m)
            out.append((region, score, "height_gain", height))
        return out

    def _appearance(self, epoch: EpochWindow, pixel_m: float) -> list[tuple[_Region, float, str, float]]:
        cfg = self.config
        sigma = cfg.blur_m / pixel_m
        before, after = (
            _lab(cv2.GaussianBlur(img, (0, 0), sigma) if sigma > 0.3 else img)
            for img in (epoch.before, epoch.after)
        )
        matched = _match_colours(after, before, epoch.valid)
        delta = np.linalg.norm(matched - before, axis=-1)
        side = max(1, round(cfg.open_m / pixel_m))
        kernel = np.ones((side, side), np.uint8)
        strong = cv2.morphologyEx(
            ((delta >= cfg.min_delta_e) & epoch.valid).astype(np.uint8), cv2.MORPH_OPEN, kernel
        )
        # hysteresis: a change's whole extent is what differs by grow_delta_e and touches a strong
        # difference (a shed on ground of a colour near its own differs strongly only in part)
        weak = cv2.morphologyEx(
            ((delta >= cfg.grow_delta_e) & epoch.valid).astype(np.uint8), cv2.MORPH_OPEN, kernel
        )
        count, labels = cv2.connectedComponents(weak, connectivity=8)
        seeded = np.zeros(count, bool)
        seeded[np.unique(labels[strong > 0])] = True
        seeded[0] = False
        mask = seeded[labels]
        greenness = excess_green(epoch.after)
        out = []
        for region in _regions(mask, pixel_m):
            if not cfg.min_area_m2 <= region.area_m2 <= cfg.max_area_m2:
                continue
            (_, _), (w, h), _ = cv2.minAreaRect(region.contour)
            short_m, long_m = min(w, h) * pixel_m, max(w, h) * pixel_m
            compactness = region.area_m2 / max(short_m * long_m, 1e-6)
            if compactness < cfg.min_compactness or long_m / max(short_m, 1e-6) > cfg.max_aspect:
                continue  # ragged or a strip: a field's edge, a track, a shadow's rim
            if float(greenness[region.mask].mean()) > cfg.max_excess_green:
                continue  # it turned green: vegetation
            if region.area_m2 <= cfg.vehicle_max_area_m2 and short_m <= cfg.vehicle_max_short_m:
                continue  # a vehicle came or went
            strength = float(np.median(delta[region.mask]))
            score = 0.3 + 0.4 * min(1.0, (strength - cfg.min_delta_e) / cfg.min_delta_e) + 0.3 * compactness
            out.append((region, min(1.0, score), "appearance", math.nan))
        return out

    def _new_roofs(self, epoch: EpochWindow, pixel_m: float) -> Detections:
        """Blue roofs in the later window that overlap no roof in the earlier one."""
        later = self.roofs.detect(epoch.after, gsd_m=pixel_m)
        if not len(later):
            return self._detections([], epoch, pixel_m)
        earlier = self.roofs.detect(epoch.before, gsd_m=pixel_m)
        new = [
            i
            for i in range(len(later))
            if not len(earlier)
            or float(box_iou(later.xyxy[i], earlier.xyxy).max()) < self.config.new_roof_max_iou
        ]
        rows = []
        for i in new:
            mask = np.zeros(epoch.valid.shape, np.uint8)
            corners = later.data["footprint_xy"][i]
            cv2.fillPoly(mask, [np.round(corners).astype(np.int32)], 1)
            contour = np.round(corners).astype(np.int32).reshape(-1, 1, 2)
            area = float(later.data["area_m2"][i])
            rows.append(
                (_Region(contour, mask > 0, area), float(later.confidence[i]), "new_blue_roof", math.nan)
            )
        return self._detections(rows, epoch, pixel_m)

    def _detections(
        self, rows: list[tuple[_Region, float, str, float]], epoch: EpochWindow, pixel_m: float
    ) -> Detections:
        corners = np.array([cv2.boxPoints(cv2.minAreaRect(r[0].contour)) for r in rows], np.float32).reshape(
            -1, 4, 2
        )
        height, width = epoch.valid.shape
        xyxy = (
            np.concatenate([corners.min(axis=1), corners.max(axis=1)], axis=1) if rows else np.empty((0, 4))
        )
        xyxy = np.clip(xyxy, 0, [width, height, width, height])
        margin = round(self.config.crop_margin_m / pixel_m)
        crops_before, crops_after = np.empty(len(rows), object), np.empty(len(rows), object)
        in_crop = np.zeros((len(rows), 4), np.float32)
        for i, box in enumerate(xyxy):
            x0, y0 = max(0, int(box[0]) - margin), max(0, int(box[1]) - margin)
            x1, y1 = min(width, math.ceil(box[2]) + margin), min(height, math.ceil(box[3]) + margin)
            crops_before[i] = epoch.before[y0:y1, x0:x1].copy()
            crops_after[i] = epoch.after[y0:y1, x0:x1].copy()
            in_crop[i] = box - np.array([x0, y0, x0, y0], np.float32)
        perimeter_m = np.array(
            [np.linalg.norm(c - np.roll(c, 1, axis=0), axis=1).sum() * pixel_m for c in corners], np.float32
        )
        band = np.array(
            [self.config.area_band_height_m if r[2] == "height_gain" else self.config.area_band_appearance_m
             for r in rows],
            np.float32,
        )
        return Detections(
            xyxy=xyxy.astype(np.float32),
            confidence=np.array([r[1] for r in rows], np.float32),
            class_id=np.zeros(len(rows), np.int64),
            data={
                "class_key": np.array([LABEL] * len(rows), dtype="<U32"),
                "footprint_xy": corners,
                "area_m2": np.array([r[0].area_m2 for r in rows], np.float32),
                "area_uncertainty_m2": perimeter_m * band,
                "kind": np.array([r[2] for r in rows], dtype="<U16"),
                "height_gain_m": np.array([r[3] for r in rows], np.float32),
                "crop_before": crops_before,
                "crop_after": crops_after,
                "box_in_crop_xyxy": in_crop,
            },
        )
