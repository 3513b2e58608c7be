"""From images to patrol findings: batching, tiling, operating thresholds and class mapping.

A `Pipeline` owns one detector and one `DynamicBatcher` in front of it; every caller (CLI
workers, API requests, camera loops) and every tile of a large image goes through that
one queue. The model card turns model labels into taxonomy keys: each label has an
operating threshold, and labels that map to nothing (helper classes such as
`garbage_bin`) are dropped from the findings but counted in the metadata.

Thread-safe: nothing per call is kept on `self`; the detector is only ever called from
the batcher's worker thread.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from vision.batcher import BatcherConfig, BatcherStats, DynamicBatcher
from vision.detections import Detections
from vision.detectors.base import Detector
from vision.detectors.engines import Device, open_export, resolve_engine
from vision.errors import GeoError, ImageLoadError, ModelError
from vision.ground_sampling import Resampling, resample_scale, target_gsd_m
from vision.image_io import DEFAULT_MAX_PIXELS, LoadedImage, load_image
from vision.model_card import ModelCard
from vision.model_registry import InstalledModel, resolve_model
from vision.rules import RULE_SOURCES, RuleSet, WholeImageRule, conform, with_footprints
from vision.sources import SOURCE_KINDS, SourceKind
from vision.taxonomy import Taxonomy
from vision.tiling import TileWindow, exceeds_input, merge_tile_detections, tile_windows

TileMode = bool | Literal["auto"]
# For files: "sniff" takes the kind the source reader found (DJI XMP: "drone", else "unknown").
FileSourceKind = SourceKind | Literal["sniff"]
# For images: "auto" takes a LoadedImage's kind (the source reader's), "unknown" for an array.
ImageSourceKind = SourceKind | Literal["auto"]
# Called with the number of raster windows detected so far (progress, leases, cancellation).
TileProgress = Callable[[int], None]


class TilingConfig(BaseModel):
    """When and how large images are cut into tiles.

    tiled="auto" decides by what the image is (vision.tiling.SourceKind): it is tiled when
    its longer side exceeds that kind's factor x the model input; a factor of None means
    never. tiled=True/False overrides the policy.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    tile_size: int | None = Field(default=None, ge=32, le=8192,
                                  description="Tile side in source pixels; None = the model input size.")
    overlap: float = Field(default=0.2, ge=0.0, lt=1.0,
                           description="Fraction of a tile shared with its neighbour; objects "
                                       "smaller than this always appear whole in some tile.")
    # Models are trained on whole frames: tiling a 1920x1080 hillside view into 320 px tiles
    # made the default model see smoke in 72 of 99 D-Fire negatives, against 1 untiled. So
    # frames of unknown kind and camera frames are tiled only when far larger than the input.
    auto_factor: float = Field(default=8.0, ge=1.0, le=100.0,
                               description="Images of unknown kind: tiled when the longer side exceeds "
                                           "auto_factor x the model input size.")
    citizen_factor: float | None = Field(
        default=None, ge=1.0, le=100.0,
        description="Citizen phone photos (随手拍); None = never tiled: they show the pile close up, "
                    "and tiles would cut it (and a 4000x3000 photo would cost ~100 tiles).")
    drone_factor: float | None = Field(
        default=1.0, ge=1.0, le=100.0,
        description="Drone photos: tiled whenever larger than the model input; objects are small.")
    camera_factor: float | None = Field(
        default=8.0, ge=1.0, le=100.0,
        description="Fixed/PTZ camera frames: only frames much larger than the input are tiled.")
    orthomosaic_factor: float | None = Field(
        default=1.0, ge=1.0, le=100.0,
        description="Orthomosaic windows: tiled whenever larger than the model input, like drone photos.")
    iou_threshold: float = Field(default=0.5, gt=0.0, le=1.0,
                                 description="NMS across tiles for objects seen whole twice.")
    match_threshold: float = Field(default=0.5, gt=0.0, le=1.0,
                                   description="IoU in the shared strip above which seam-cut parts merge.")
    ground_sized: bool = Field(
        default=True,
        description="Shrink a tiled image whose ground sampling distance is known (a drone pose, an "
                    "orthomosaic's transform) to the one its classes need before tiling "
                    "(vision.ground_sampling); False: tile at native resolution.")
    # How many pixels across the model needs to see an object; with the taxonomy's
    # min_size_m it sets the target GSD. Measured for the shipped model by
    # benchmarks/aerial_recall.py (168 garbage piles of 1-3 m pasted into the aerial vendors
    # test chips at 3 cm/px): recall 0.226 native; resampled at 16 px 0.036, 24 px 0.143,
    # 32 px 0.244. It needs about 32 px across a 1 m pile; a model trained on aerial views
    # of small objects needs fewer, and gains the speed (set it per model).
    object_px: float = Field(
        default=32.0, ge=4.0, le=512.0,
        description="Pixels across the smallest object of a class (its min_size_m) at the target "
                    "ground sampling distance: a property of the model and its input size.")

    def factor_for(self, source: SourceKind) -> float | None:
        """The tiling factor of a kind of image (None: never tiled under tiled='auto')."""
        factors: dict[str, float | None] = {
            "citizen": self.citizen_factor, "drone": self.drone_factor, "camera": self.camera_factor,
            "orthomosaic": self.orthomosaic_factor, "unknown": self.auto_factor}
        if source not in factors:
            raise ValueError(f"expected source to be one of {SOURCE_KINDS}, got {source!r}")
        return factors[source]


@dataclass(frozen=True)
class FileError:
    """Why one file gave no detections; `reason` is one of ImageLoadError.REASONS."""

    reason: str
    detail: str

    @classmethod
    def from_exception(cls, exc: ImageLoadError) -> FileError:
        return cls(exc.reason, exc.detail)


@dataclass(frozen=True)
class Timings:
    """Milliseconds spent on one file: reading+decoding, detecting (queue wait included)."""

    load_ms: float
    detect_ms: float

    @property
    def total_ms(self) -> float:
        return self.load_ms + self.detect_ms


@dataclass(frozen=True)
class FileResult:
    """The outcome for one file of `detect_many`: detections or an error, never both."""

    path: str
    resolution_wh: tuple[int, int] | None
    detections: Detections | None
    error: FileError | None
    timings: Timings
    image: LoadedImage | None = None  # only when asked for (e.g. to draw on); costs memory

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class _Submitted:
    """An image whose tiles are queued for inference."""

    resolution_wh: tuple[int, int]
    windows: list[TileWindow]
    futures: list[Future[Detections]]
    source: SourceKind
    ground: _GroundSampled | None = None  # tiled images only
    ruled: Detections | None = None  # the rules' findings (vision.rules), native pixels
    # A LoadedImage decoded reduced (vision.image_io, its source_wh): "native" above means the
    # decoded pixels, and this maps the findings on to the full-size source pixels.
    decoded: Resampling | None = None


@dataclass(frozen=True)
class _GroundSampled:
    """What a tiled image was detected at: its GSD (None: unknown), the target and the resampling."""

    gsd_m: float | None
    target_gsd_m: float | None
    resampling: Resampling

    def describe(self) -> dict[str, object]:
        return {"gsd_m": self.gsd_m, "target_gsd_m": self.target_gsd_m,
                "resampled_wh": self.resampling.resampled_wh}


@dataclass(frozen=True)
class _Loaded:
    """A file after loading: queued for inference, or the reason it could not be read."""

    path: str
    image: LoadedImage | None
    error: FileError | None
    submitted: _Submitted | None
    load_ms: float
    submitted_at: float


class Pipeline:
    """Detector + model card + taxonomy + one shared batcher."""

    def __init__(
        self,
        detector: Detector,
        card: ModelCard,
        taxonomy: Taxonomy | None = None,
        *,
        batcher: BatcherConfig | None = None,
        tiling: TilingConfig | None = None,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        rules: Sequence[WholeImageRule] = (),
    ) -> None:
        self.taxonomy = taxonomy or Taxonomy.default()
        card.check_taxonomy(self.taxonomy)
        if tuple(detector.labels) != tuple(card.labels):
            raise ModelError(f"model {card.name!r}: the detector's labels {list(detector.labels)} differ "
                             f"from its card's {card.labels}; the card must list the model's labels in order")
        self.detector = detector
        self.card = card
        self.tiling = tiling or TilingConfig()
        self.max_pixels = max_pixels
        config = batcher or BatcherConfig()
        if config.max_batch > detector.max_batch:
            # a static-batch export cannot take more; do not let the queue form bigger batches
            config = config.model_copy(update={"max_batch": detector.max_batch})
        if config.workers == 0:
            # Lanes only for a detector that says it is safe to call from several threads at
            # once (OnnxRuntimeDetector.lanes); any other runs from one worker thread.
            config = config.model_copy(update={"workers": max(1, int(getattr(detector, "lanes", 1)))})
        self.batcher_config = config
        self._keys = [card.label_map[label] for label in card.labels]
        # Rules (vision.rules) run beside the model on nadir views; their labels are taxonomy
        # keys and take the class ids after the model's.
        self.rules = RuleSet(rules, len(card.labels))
        unknown = sorted(k for k in self.rules.labels if k not in self.taxonomy)
        if unknown:
            raise ModelError(f"rules {self.rules.names} report unknown taxonomy keys {unknown}")
        self._labels = np.asarray([*card.labels, *self.rules.labels], dtype=str)
        all_keys = [*self._keys, *self.rules.labels]
        self._key_array = np.asarray([k or "" for k in all_keys], dtype=str)
        self._is_helper = np.array([k is None for k in all_keys], dtype=bool)
        self._rule_thresholds = np.array([self.taxonomy.get(k).threshold for k in self.rules.labels],
                                         dtype=np.float32)
        self._thresholds = np.array([card.threshold_for(label, self.taxonomy) for label in card.labels],
                                    dtype=np.float32)
        self._batcher: DynamicBatcher[np.ndarray, Detections] = DynamicBatcher(
            detector.predict_batch, config, name=f"pipeline[{card.name}]")

    # -- construction -------------------------------------------------------------------

    @classmethod
    def from_installed(
        cls,
        model: InstalledModel,
        taxonomy: Taxonomy | None = None,
        *,
        batcher: BatcherConfig | None = None,
        tiling: TilingConfig | None = None,
        intra_op_threads: int = 1,
        lanes: int = 0,
        allow_spinning: bool = False,
        device: Device = "cpu",
        engine: str = "auto",
        max_pixels: int = DEFAULT_MAX_PIXELS,
        rules: Sequence[WholeImageRule] = (),
    ) -> Pipeline:
        """Open an installed model's ONNX weights, labels from its card.

        `engine`: "onnxruntime", "openvino" or "auto" (OpenVINO for a float model on CPU when
        the openvino extra is installed and runs bf16/f16 on this CPU, else ONNX Runtime;
        vision.detectors.engines).
        `intra_op_threads`, `lanes` and `allow_spinning` as in OnnxRuntimeConfig (OpenVinoConfig
        takes the first two); the defaults (one thread per run, one run per core) won quiet and
        loaded on the reference box; benchmarks/README.md gives the setting per deployment.
        """
        card = model.card
        taxonomy = taxonomy or Taxonomy.default()
        # The backend's score floor is the lowest operating threshold: boxes below it would
        # be dropped here anyway, and fewer candidates make the backend's NMS cheaper.
        floor = min(card.threshold_for(label, taxonomy) for label in card.labels)
        detector = open_export(resolve_engine(engine, device=device, quantization=card.quantization),
                               model.weights, imgsz=card.input_size, conf=floor, labels=card.labels,
                               end2end=card.end2end, device=device, intra_op_threads=intra_op_threads,
                               lanes=lanes, allow_spinning=allow_spinning)
        detector.warmup()
        return cls(detector, card, taxonomy, batcher=batcher, tiling=tiling, max_pixels=max_pixels,
                   rules=rules)

    @classmethod
    def from_model(
        cls,
        name_or_path: str | Path | None = None,
        *,
        models_dir: Path | None = None,
        **kwargs: object,
    ) -> Pipeline:
        """A registry name ("default") or a model folder; the weights' sha256 is verified."""
        return cls.from_installed(resolve_model(name_or_path, models_dir), **kwargs)  # type: ignore[arg-type]

    @property
    def engine(self) -> str:
        """The runtime behind the detector ("onnxruntime", "openvino"), else the detector's class
        name (a test's painted detector, the ultralytics backend)."""
        return str(getattr(self.detector, "engine", "") or type(self.detector).__name__)

    @property
    def _batch_capacity(self) -> int:
        """Images the batcher's lanes take at once; streams keep twice this in flight."""
        return self.batcher_config.max_batch * self.batcher_config.workers

    # -- detection ----------------------------------------------------------------------

    def should_tile(self, resolution_wh: tuple[int, int], tiled: TileMode = "auto",
                    source: SourceKind = "unknown") -> bool:
        """tiled=True/False as given; "auto": the policy for `source` (TilingConfig)."""
        if tiled == "auto":
            return exceeds_input(resolution_wh, self.detector.input_size, self.tiling.factor_for(source))
        if not isinstance(tiled, bool):
            raise ValueError(f"expected tiled to be True, False or 'auto', got {tiled!r}")
        return tiled

    def decode_sizes(self) -> dict[SourceKind, int]:
        """The long side images of each kind are needed at, for `load_image(decode_sizes=...)`:
        the model input for kinds never tiled (TilingConfig: a citizen's photo), which the
        detector shrinks to it anyway; no entry for kinds tiled at native resolution or that
        rules look at."""
        return {kind: self.detector.input_size for kind in SOURCE_KINDS
                if self.tiling.factor_for(kind) is None and kind not in RULE_SOURCES}

    def detect(self, image: np.ndarray | LoadedImage, *, tiled: TileMode = "auto",
               source: ImageSourceKind = "auto", timeout: float | None = None,
               gsd_m: float | None = None) -> Detections:
        """Findings in one BGR uint8 HxWx3 image (or a LoadedImage), in source pixels.

        `source` says what the image is (vision.sources.SourceKind), which decides tiling
        when `tiled` is "auto"; "auto" takes a LoadedImage's own kind (the source reader's)
        and "unknown" for a bare array. `timeout` bounds the wait for room in the shared queue (QueueFullError
        after it). `gsd_m` is the image's ground sampling distance (metres per pixel); when
        not given, a LoadedImage's drone pose gives it. A tiled image finer than the target
        GSD is shrunk to it before tiling (TilingConfig.ground_sized); boxes are native pixels.
        """
        return self._finish(self._submit(image, tiled, timeout, source, gsd_m))

    def target_gsd_m(self, source: SourceKind) -> float | None:
        """The GSD (m/px) tiled images of `source` are shrunk to; None: kept native (ground
        sizing off, or no class the model reports names a minimum size)."""
        if not self.tiling.ground_sized:
            return None
        return target_gsd_m(self.taxonomy, self._keys, source, self.tiling.object_px)

    def resample_scale(self, gsd_m: float | None, source: SourceKind) -> float:
        """The factor in (0, 1] a tiled image of `source` at `gsd_m` is shrunk by (1: native)."""
        return resample_scale(gsd_m, self.target_gsd_m(source))

    def _ground_sampling(self, image: np.ndarray | LoadedImage, resolution_wh: tuple[int, int],
                         source: SourceKind, gsd_m: float | None) -> _GroundSampled:
        target = self.target_gsd_m(source)
        if target is not None:
            gsd_m = _known_gsd(image, gsd_m)
        return _GroundSampled(gsd_m, target,
                              Resampling.at_scale(resolution_wh, resample_scale(gsd_m, target)))

    def detect_raster(self, windows: Iterable[tuple[TileWindow, np.ndarray]], *,
                      resolution_wh: tuple[int, int], source: SourceKind = "orthomosaic",
                      on_progress: TileProgress | None = None, gsd_m: float | None = None) -> Detections:
        """Findings in a raster too large to hold in memory, given as its windows' pixels.

        Windows stream through the shared queue a few at a time (enough to fill a batch),
        so memory is a handful of windows plus the detections, whatever the raster's size;
        a window's pixels are dropped once detected. Thresholds apply per window, seams are
        merged across windows (as for a tiled image) and labels mapped to taxonomy keys.
        `on_progress(done)` is called after each window; an exception from it (a lost
        lease, a cancelled job) stops the run and cancels the windows still queued.
        Waits as long as it takes for room in the queue: a survey waits its turn.
        `gsd_m` (the raster's metres per pixel) shrinks each window by `resample_scale` before
        detection, so windows of tile size / scale native pixels make model-sized inputs;
        boxes come back in raster pixels.
        """
        scale = self.resample_scale(gsd_m, source)
        in_flight = max(2, 2 * self._batch_capacity)
        pending: deque[tuple[TileWindow, Resampling, Future[Detections]]] = deque()
        per_tile: list[tuple[TileWindow, Detections]] = []

        def collect() -> None:
            window, resampling, future = pending.popleft()
            per_tile.append((window, resampling.to_native(self._apply_thresholds(future.result()))))
            if on_progress is not None:
                on_progress(len(per_tile))

        try:
            for window, pixels in windows:
                checked = _checked_pixels(pixels)
                resampling = Resampling.at_scale((checked.shape[1], checked.shape[0]), scale)
                pending.append((window, resampling, self._batcher.submit(resampling.resize(checked))))
                if len(pending) >= in_flight:
                    collect()
            while pending:
                collect()
        finally:
            for _, _, future in pending:
                future.cancel()
        found = self._merge_and_map(per_tile, resolution_wh, source)
        found.metadata["ground_sampling"] = {"gsd_m": gsd_m, "target_gsd_m": self.target_gsd_m(source),
                                             "scale": scale}
        return found

    def _submit(self, image: np.ndarray | LoadedImage, tiled: TileMode,
                timeout: float | None = None, source: ImageSourceKind = "auto",
                gsd_m: float | None = None) -> _Submitted:
        """Queue the image (or its tiles) for inference; returns without waiting for results."""
        if source == "auto":
            source = image.kind if isinstance(image, LoadedImage) else "unknown"
        if source not in SOURCE_KINDS:
            raise ValueError(f"expected source to be one of {SOURCE_KINDS}, got {source!r}")
        pixels = native = _checked_pixels(image.pixels if isinstance(image, LoadedImage) else image)
        height, width = pixels.shape[:2]
        decoded = _decoded(image, (width, height))
        ground = None
        if self.should_tile((width, height), tiled, source):
            ground = self._ground_sampling(image, (width, height), source, gsd_m)
            pixels = ground.resampling.resize(pixels)
            windows = tile_windows(ground.resampling.resampled_wh,
                                   self.tiling.tile_size or self.detector.input_size, self.tiling.overlap)
        else:
            windows = [TileWindow(0, 0, width, height)]
        futures = []
        ruled = None
        try:
            for window in windows:
                futures.append(self._batcher.submit(window.crop(pixels), timeout=timeout))
            if self.rules and source in RULE_SOURCES:  # here, while the model works on the tiles
                known = ground.gsd_m if ground is not None and ground.gsd_m is not None else None
                known = known or _known_gsd(image, gsd_m)
                ruled = self._rule_thresholds_applied(self.rules.detect(native, known))
        except BaseException:
            for future in futures:
                future.cancel()
            raise
        return _Submitted((width, height), windows, futures, source, ground, ruled, decoded)

    def _finish(self, submitted: _Submitted) -> Detections:
        """Wait for the tiles' results; thresholds, seam merge, native pixels and class mapping."""
        per_tile = [(window, self._apply_thresholds(future.result()))
                    for window, future in zip(submitted.windows, submitted.futures, strict=True)]
        if submitted.ground is None:
            return self._merge_and_map(per_tile, submitted.resolution_wh, submitted.source,
                                       extra=submitted.ruled, decoded=submitted.decoded)
        resampling = submitted.ground.resampling
        found = self._merge_and_map(per_tile, resampling.resampled_wh, submitted.source, resampling,
                                    extra=submitted.ruled, decoded=submitted.decoded)
        found.metadata["ground_sampling"] = submitted.ground.describe()
        return found

    def _merge_and_map(self, per_tile: list[tuple[TileWindow, Detections]], resolution_wh: tuple[int, int],
                       source: SourceKind, resampling: Resampling | None = None,
                       extra: Detections | None = None, decoded: Resampling | None = None) -> Detections:
        """Windows' detections (in `resolution_wh` pixels) merged, then mapped back to the
        native image when `resampling` shrank it, and joined by `extra` (the rules' findings,
        native pixels); `decoded`: native pixels were a reduced decode, mapped on to the full
        size. With rules, every finding has a footprint (a box: its corners)."""
        if len(per_tile) == 1:
            found = per_tile[0][1]
        else:  # several windows (or none): seams merged, offsets into image pixels
            found = merge_tile_detections(per_tile, iou_threshold=self.tiling.iou_threshold,
                                          match_threshold=self.tiling.match_threshold,
                                          resolution_wh=resolution_wh)
        if resampling is not None:
            found, resolution_wh = resampling.to_native(found), resampling.native_wh
        if self.rules:
            found = with_footprints(found)
            if extra is not None:
                found = Detections.merge([found, conform(extra, found)], metadata=found.metadata)
        if decoded is not None:
            found, resolution_wh = _to_full_size(decoded, found), decoded.native_wh
        return self._to_findings(found, resolution_wh, len(per_tile), source)

    def _apply_thresholds(self, dets: Detections) -> Detections:
        keep = dets.confidence >= self._thresholds[dets.class_id]
        return dets[keep]

    def _rule_thresholds_applied(self, dets: Detections) -> Detections:
        return dets[dets.confidence >= self._rule_thresholds[dets.class_id - len(self.card.labels)]]

    def detect_rules_raster(self, windows: Iterable[tuple[TileWindow, np.ndarray]], *,
                            resolution_wh: tuple[int, int], gsd_m: float | None,
                            source: SourceKind = "orthomosaic") -> Detections:
        """The rules' findings over a raster's windows, in raster pixels (empty without rules).

        Rules need windows far larger than model tiles (vision.rules.raster_window_px): a
        roof must lie whole in one of them; `vision.geo.orthomosaic.detect_orthomosaic`
        reads them in a pass of their own."""
        found = self._rule_thresholds_applied(self.rules.detect_windows(windows, resolution_wh, gsd_m))
        return self._to_findings(found, resolution_wh, 0, source)

    def _to_findings(self, dets: Detections, resolution_wh: tuple[int, int], tiles: int,
                     source: SourceKind) -> Detections:
        helper = self._is_helper[dets.class_id]
        dropped = Counter(self._labels[dets.class_id[helper]].tolist())
        kept = dets[~helper]
        order = np.argsort(-kept.confidence, kind="stable")
        return Detections(
            xyxy=kept.xyxy[order],
            confidence=kept.confidence[order],
            class_id=kept.class_id[order],
            data={
                **{key: value[order] for key, value in kept.data.items()},
                "class_name": self._labels[kept.class_id[order]],
                "class_key": self._key_array[kept.class_id[order]],
            },
            metadata={
                "model": self.card.name,
                "model_version": self.card.version,
                "resolution_wh": resolution_wh,
                "tiles": tiles,
                "source_kind": source,
                "dropped_helper_labels": dict(sorted(dropped.items())),
                **({"rules": self.rules.names} if self.rules else {}),
            },
        )

    def detect_file(self, path: str | Path, *, tiled: TileMode = "auto", source: FileSourceKind = "sniff",
                    keep_image: bool = False) -> FileResult:
        """Load and detect one file; an unreadable image is returned as an error value.

        `source` "sniff" (the default) takes the kind the source reader found (DJI XMP: a
        drone photo; any other: "unknown"). `keep_image` returns the decoded image in the result, for
        drawing on it.
        """
        return self._collect(self._load_and_submit(path, tiled, source), keep_image)

    def _load_and_submit(self, path: str | Path, tiled: TileMode,
                         source: FileSourceKind = "sniff") -> _Loaded:
        started = time.perf_counter()
        try:
            loaded = load_image(path, max_pixels=self.max_pixels, kind=None if source == "sniff" else source)
        except ImageLoadError as exc:
            return _Loaded(str(path), None, FileError.from_exception(exc), None,
                           (time.perf_counter() - started) * 1000, 0.0)
        loaded_at = time.perf_counter()
        submitted = self._submit(loaded, tiled)
        return _Loaded(str(path), loaded, None, submitted, (loaded_at - started) * 1000, loaded_at)

    def _collect(self, item: _Loaded, keep_image: bool) -> FileResult:
        if item.image is None or item.submitted is None:
            return FileResult(item.path, None, None, item.error, Timings(item.load_ms, 0.0))
        detections = self._finish(item.submitted)
        detect_ms = (time.perf_counter() - item.submitted_at) * 1000
        return FileResult(item.path, item.image.resolution_wh, detections, None,
                          Timings(item.load_ms, detect_ms), item.image if keep_image else None)

    def detect_many(self, paths: Iterable[str | Path], *, workers: int = 2, tiled: TileMode = "auto",
                    source: FileSourceKind = "sniff", keep_images: bool = False) -> Iterator[FileResult]:
        """One FileResult per path, in input order; unreadable files are error values.

        `tiled` and `source` as for `detect_file`.

        `workers` threads read and decode files and queue them for inference without
        waiting for the results, so decoding the next images overlaps inference and the
        batcher sees enough images to fill its batches. Thresholds and tile merging run in
        the consuming thread. At most max(2 x workers, 2 x max_batch x lanes) files are in flight,
        whatever the length of `paths`.
        """
        if workers < 1:
            raise ValueError(f"expected workers >= 1, got {workers}")
        if source != "sniff" and source not in SOURCE_KINDS:
            raise ValueError(f"expected source to be 'sniff' or one of {SOURCE_KINDS}, got {source!r}")
        in_flight = max(2 * workers, 2 * self._batch_capacity)
        pending: deque[Future[_Loaded]] = deque()
        with ThreadPoolExecutor(workers, thread_name_prefix="detect-load") as pool:
            try:
                for path in paths:
                    pending.append(pool.submit(self._load_and_submit, path, tiled, source))
                    if len(pending) >= in_flight:
                        yield self._collect(pending.popleft().result(), keep_images)
                while pending:
                    yield self._collect(pending.popleft().result(), keep_images)
            finally:
                # The consumer stopped early (or an error escaped): drop what has not started
                # and what is still queued for inference.
                for future in pending:
                    if not future.cancel() and future.done() and future.exception() is None:
                        submitted = future.result().submitted
                        for tile_future in submitted.futures if submitted else ():
                            tile_future.cancel()

    # -- lifecycle ----------------------------------------------------------------------

    def stats(self) -> BatcherStats:
        return self._batcher.stats()

    def close(self, *, drain: bool = True) -> None:
        self._batcher.close(drain=drain)

    def __enter__(self) -> Pipeline:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self.close(drain=exc_type is None)


def _known_gsd(image: np.ndarray | LoadedImage, gsd_m: float | None) -> float | None:
    """Metres per pixel of the pixels detected on: `gsd_m` (per source pixel) when given, else
    a LoadedImage's from its drone pose (vision.geo.gsd), else None; a pixel of a reduced
    decode spans as many source pixels as it was reduced by."""
    if not isinstance(image, LoadedImage):
        return gsd_m
    if gsd_m is None:
        from vision.geo.gsd import photo_gsd_m

        try:
            gsd_m = photo_gsd_m(image)
        except (GeoError, ValueError):
            return None  # a pose that gives no camera model: the GSD is unknown
    decoded = _decoded(image, image.resolution_wh)
    return gsd_m if decoded is None or gsd_m is None else gsd_m * max(decoded.factor_xy)


def _decoded(image: np.ndarray | LoadedImage, resolution_wh: tuple[int, int]) -> Resampling | None:
    """How a LoadedImage decoded reduced maps on to its full size; None for full-size pixels."""
    if not isinstance(image, LoadedImage) or image.source_wh in (None, resolution_wh):
        return None
    return Resampling(image.full_wh, resolution_wh)


def _to_full_size(decoded: Resampling, dets: Detections) -> Detections:
    """Boxes (and the rules' pixel footprints) from the reduced decode to full-size pixels,
    clipped to the image: a reduced side is rounded up, so its last pixel may reach past it."""
    out = decoded.to_native(dets)
    width, height = decoded.native_wh
    np.clip(out.xyxy[:, 0::2], 0, width, out=out.xyxy[:, 0::2])
    np.clip(out.xyxy[:, 1::2], 0, height, out=out.xyxy[:, 1::2])
    if "footprint_xy" in out.data:
        out.data = {**out.data, "footprint_xy": (out.data["footprint_xy"] * np.asarray(
            decoded.factor_xy, np.float32)).astype(np.float32)}
    return out


def _checked_pixels(pixels: object) -> np.ndarray:
    if not isinstance(pixels, np.ndarray):
        raise ValueError(f"expected a BGR uint8 (H, W, 3) image, got {type(pixels).__name__}")
    if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[2] != 3:
        raise ValueError(f"expected a BGR uint8 (H, W, 3) image, got {pixels.dtype} {pixels.shape}")
    return pixels
