"""What every runtime of an ultralytics ONNX export shares: the file's metadata, the letterboxed
input, the decoded output, and lanes of calls at once.

ONNX Runtime (vision.detectors.onnx_runtime) and OpenVINO (vision.detectors.openvino_runtime)
run the same file; they differ only in how the network input becomes the raw output
(`ExportedYoloBackend._infer`), so a box found by one is found by the other through the same
letterbox, decoding, NMS and mapping back to source pixels.
"""

from __future__ import annotations

import ast
import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Required, TypedDict, Unpack

import numpy as np

from vision.detections import Detections
from vision.detectors.base import DetectorConfigBase, SquareInputBackend
from vision.errors import ModelError
from vision.postprocess import RawBoxes, decode_output
from vision.preprocess import LetterboxMeta, check_image, letterbox_batch, letterbox_shape, rect_canvas_wh

# What `max_batch` reports for a dynamic-batch model: large enough never to be the limit;
# the batcher's own size decides.
DYNAMIC_MAX_BATCH = 1024
REUSED_INPUT_BYTES = 16 * 2**20  # batch 1-8 at 320 px, 1-2 at 640: kept per lane between calls

# A dimension as a runtime reports it: an int when static, a name, None or -1 when dynamic.
Dim = int | str | None


def physical_core_count() -> int:
    """Physical cores this process may use: min(cores, CPUs in the affinity mask)."""
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = os.cpu_count() or 1
    try:
        import psutil  # optional: present with the train extra; without it, count logical CPUs
        physical = psutil.cpu_count(logical=False) or usable
    except ImportError:
        physical = usable
    return max(1, min(usable, physical))


def cpu_lanes(lanes: int, threads_per_lane: int) -> int:
    """Calls at once on CPU: `lanes` when set, else one per group of `threads_per_lane` physical
    cores (0 threads: all cores in one lane)."""
    if lanes:
        return lanes
    cores = physical_core_count()
    return max(1, cores // (threads_per_lane or cores))


@dataclass(frozen=True)
class OnnxModelInfo:
    """What the ONNX file says about itself."""

    input_name: str
    output_name: str
    labels: tuple[str, ...]
    imgsz: int | None          # from metadata, or from a static input shape
    static_hw: tuple[int, int] | None
    static_batch: int | None
    end2end: bool
    stride: int


def parse_labels(raw: str) -> tuple[str, ...]:
    """ultralytics' `names` metadata ("{0: 'a', 1: 'b'}") -> ('a', 'b'); literal_eval, never eval."""
    try:
        names = ast.literal_eval(raw)
    except (ValueError, SyntaxError) as exc:
        raise ModelError(
            f"expected the ONNX metadata 'names' to be a dict literal, got {raw[:80]!r}") from exc
    if isinstance(names, (list, tuple)):
        names = dict(enumerate(names))
    if not isinstance(names, dict) or not names:
        raise ModelError(f"expected the ONNX metadata 'names' to map class ids to labels, got {raw[:80]!r}")
    try:
        ids = sorted(int(k) for k in names)
    except (TypeError, ValueError) as exc:
        raise ModelError(f"expected integer class ids in 'names', got {list(names)[:5]}") from exc
    if ids != list(range(len(ids))):
        raise ModelError(f"expected class ids 0..{len(ids) - 1} in 'names', got {ids}")
    return tuple(str(names[k] if k in names else names[str(k)]) for k in ids)


def _parse_imgsz(raw: str | None) -> int | None:
    if raw is None:
        return None
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError) as exc:
        raise ModelError(f"expected the ONNX metadata 'imgsz' like '[640, 640]', got {raw!r}") from exc
    if isinstance(value, int):
        return value
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(v, int) for v in value):
        if value[0] != value[1]:
            raise ModelError(f"expected a square model input, got imgsz {list(value)}; "
                             f"export with a single imgsz")
        return int(value[0])
    raise ModelError(f"expected the ONNX metadata 'imgsz' like '[640, 640]', got {raw!r}")


def _static(dim: Dim) -> int | None:
    return dim if isinstance(dim, int) and dim > 0 else None


def model_info(input_names: Sequence[str], input_shape: Sequence[Dim], output_name: str,
               output_shape: Sequence[Dim], meta: Mapping[str, str]) -> OnnxModelInfo:
    """The model's facts from what any runtime reports: its inputs' names, the image input's and the
    first output's shapes (ints where static) and ultralytics' metadata strings."""
    if len(input_names) != 1:
        raise ModelError(f"expected one model input (images), got {list(input_names)}")
    if len(input_shape) != 4:
        raise ModelError(f"expected an NCHW image input, got shape {list(input_shape)}")
    if _static(input_shape[1]) not in (None, 3):
        raise ModelError(f"expected 3 input channels, got {input_shape[1]}")
    h, w = _static(input_shape[2]), _static(input_shape[3])
    static_hw = (h, w) if h is not None and w is not None else None
    imgsz = _parse_imgsz(meta.get("imgsz"))
    if static_hw is not None:
        if static_hw[0] != static_hw[1]:
            raise ModelError(f"expected a square model input, got {static_hw[0]}x{static_hw[1]}")
        imgsz = static_hw[0]
    end2end = meta.get("end2end", "False").strip().lower() == "true"
    if "end2end" not in meta and len(output_shape) == 3 and output_shape[-1] == 6:
        end2end = True  # (B, K, 6) without metadata: the layout of end-to-end heads
    return OnnxModelInfo(
        input_name=input_names[0],
        output_name=output_name,
        labels=parse_labels(meta["names"]) if "names" in meta else (),
        imgsz=imgsz,
        static_hw=static_hw,
        static_batch=_static(input_shape[0]),
        end2end=end2end,
        stride=int(meta.get("stride", "32")),
    )


class ExportOverrides(TypedDict, total=False):
    """What a runtime's `from_config` takes instead of the export's metadata (e.g. from a model card):
    `labels`, `end2end`, and `rect`, rectangular inputs (default: when the model's height and width
    are dynamic) or square ones. None or absent: the metadata's choice."""

    labels: Sequence[str] | None
    end2end: bool | None
    rect: bool | None


class BackendOptions(ExportOverrides, total=False):
    """`ExportedYoloBackend`'s options, for a runtime's constructor to pass on."""

    conf: Required[float]
    iou: Required[float]
    max_det: Required[int]
    imgsz: int | None
    model_name: str
    lanes: int


def options_from_config(
    config: DetectorConfigBase, path: Path, lanes: int, overrides: ExportOverrides
) -> BackendOptions:
    """A runtime's `from_config` options: the config's thresholds and size, the model's name (from
    `path`), the lanes the runtime resolved and the caller's overrides."""
    return {"conf": config.conf, "iou": config.iou, "max_det": config.max_det, "imgsz": config.imgsz,
            "model_name": model_name_of(path), "lanes": lanes, **overrides}


class ExportedYoloBackend(SquareInputBackend):
    """A YOLO model exported to ONNX by ultralytics, whatever runs it: letterbox, `_infer`, decode.

    Stateless after construction but for each calling thread's own input array (reused between
    its calls), so `lanes` threads may call `predict_batch` at once when `_infer` is thread-safe.
    """

    engine: str = ""  # the runtime's name, as `Pipeline.from_installed(engine=...)` takes it

    def __init__(self, info: OnnxModelInfo, **options: Unpack[BackendOptions]) -> None:
        imgsz, labels, end2end = options.get("imgsz"), options.get("labels"), options.get("end2end")
        rect = options.get("rect")
        size = imgsz or info.imgsz
        if size is None:
            raise ModelError("the model input size is dynamic and its metadata has no imgsz; set imgsz")
        if info.static_hw is not None and size != info.static_hw[0]:
            raise ModelError(f"the model takes {info.static_hw[0]}x{info.static_hw[1]} input, got imgsz "
                             f"{size}; re-export with dynamic=True or use imgsz {info.static_hw[0]}")
        names = tuple(labels) if labels is not None else info.labels
        if not names:
            raise ModelError("the model has no 'names' metadata; pass labels (e.g. from its model card)")
        self._info = info
        self._size = int(size)
        self._labels = names
        self._label_array = np.asarray(names, dtype=str)
        self._end2end = info.end2end if end2end is None else end2end
        if rect and info.static_hw is not None:
            raise ModelError("rectangular inputs need a model exported with dynamic height and width")
        # Rectangular inputs (ultralytics' predict default) when the model allows them: a
        # 1920x1080 frame runs at 640x384, measured 1.6x faster than 640x640 here.
        self._rect = info.static_hw is None if rect is None else rect
        self._conf, self._iou, self._max_det = options["conf"], options["iou"], options["max_det"]
        self._model_name = options.get("model_name", "")
        self._lanes = max(1, options.get("lanes", 1))
        self._inputs = threading.local()  # each lane thread's reused network input (_input_array)

    # -- Detector protocol --------------------------------------------------------------

    @property
    def max_batch(self) -> int:
        return self._info.static_batch or DYNAMIC_MAX_BATCH

    @property
    def end2end(self) -> bool:
        return self._end2end

    @property
    def lanes(self) -> int:
        """How many `predict_batch` calls may usefully run at once (the pipeline's batcher
        workers); each thread has its own input array."""
        return self._lanes

    @property
    def rect(self) -> bool:
        """Whether inputs are stride-multiple rectangles rather than squares."""
        return self._rect

    def predict_batch(self, images: Sequence[np.ndarray]) -> list[Detections]:
        results: list[Detections | None] = [None] * len(images)
        step = self.max_batch
        for indices in self._groups(images):
            for start in range(0, len(indices), step):
                part = indices[start:start + step]
                for i, detections in zip(part, self._predict_chunk([images[i] for i in part]), strict=True):
                    results[i] = detections
        return results  # type: ignore[return-value]  # every slot is filled above

    # -- what a runtime supplies --------------------------------------------------------

    def _infer(self, blob: np.ndarray) -> np.ndarray:
        """The model's first output for one NCHW float32 input; called from lane threads at once."""
        raise NotImplementedError

    # -- internals ----------------------------------------------------------------------

    def _groups(self, images: Sequence[np.ndarray]) -> list[list[int]]:
        """Images that share one network input shape; one group when inputs are square.

        Grouping by rectangle, not padding a mixed batch to its largest one, keeps every
        image's result independent of what else was in the batch.
        """
        for i, image in enumerate(images):
            check_image(image, i)
        if not self._rect:
            return [list(range(len(images)))] if len(images) else []
        groups: dict[tuple[int, int], list[int]] = {}
        for i, image in enumerate(images):
            canvas = rect_canvas_wh((image.shape[1], image.shape[0]), self._size, self._info.stride)
            groups.setdefault(canvas, []).append(i)
        return list(groups.values())

    def _predict_chunk(self, images: Sequence[np.ndarray]) -> list[Detections]:
        stride, batch = (self._info.stride if self._rect else None), self._info.static_batch
        out = self._input_array(letterbox_shape(images, self._size, stride=stride, batch_size=batch))
        blob, metas = letterbox_batch(images, self._size, stride=stride, batch_size=batch, out=out)
        output = self._infer(blob)
        decoded = decode_output(output[:len(images)], end2end=self._end2end, conf=self._conf,
                                iou=self._iou, max_det=self._max_det)
        return [self._to_detections(raw, meta) for raw, meta in zip(decoded, metas, strict=True)]

    def _input_array(self, shape: tuple[int, int, int, int]) -> np.ndarray:
        """This thread's network input of `shape`, kept from its last call when the shape is the
        same. A fresh array per 320 px tile (1.2 MB) cost 0.8 ms of page faults, twice what
        filling it costs (1.1 vs 0.35 ms a tile); tiles come in runs of one shape. Per thread,
        since lanes run at once; neither runtime keeps its input after a call. Inputs over
        REUSED_INPUT_BYTES are not kept (a large batch would hold its memory per lane)."""
        kept: np.ndarray | None = getattr(self._inputs, "array", None)
        if kept is not None and kept.shape == shape:
            return kept
        fresh = np.empty(shape, np.float32)
        self._inputs.array = fresh if fresh.nbytes <= REUSED_INPUT_BYTES else None
        return fresh

    def _to_detections(self, raw: RawBoxes, meta: LetterboxMeta) -> Detections:
        class_id = raw.class_id
        if len(class_id) and (class_id.min() < 0 or class_id.max() >= len(self._labels)):
            raise ModelError(f"the model returned class ids up to {int(class_id.max())}, but has "
                             f"{len(self._labels)} labels; pass labels that match the model")
        return Detections(
            xyxy=meta.to_source(raw.xyxy),
            confidence=raw.confidence,
            class_id=class_id,
            data={"class_name": self._label_array[class_id]},
            metadata={"resolution_wh": meta.resolution_wh, "model": self._model_name},
        )


def model_name_of(path: Path) -> str:
    """Registry layout models/<name>/model.onnx: the folder names the model; else the file's stem."""
    return path.parent.name if path.name == "model.onnx" else path.stem
