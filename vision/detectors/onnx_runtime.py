"""ONNX Runtime backend: the serving path. Imports neither torch nor ultralytics.

Reads what ultralytics' exporter writes into the ONNX metadata (names, imgsz, stride,
batch, end2end) and lets the caller override labels and end2end (a model card knows best).
Stateless after construction but for each calling thread's own input array (reused between
its calls): `InferenceSession.run` is thread-safe, so one detector can serve several threads.
"""

from __future__ import annotations

import ast
import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vision.detections import Detections
from vision.detectors.base import OnnxRuntimeConfig, SquareInputBackend
from vision.detectors.onnx_graph import session_model
from vision.errors import BackendUnavailableError, ModelError
from vision.postprocess import RawBoxes, decode_output
from vision.preprocess import LetterboxMeta, check_image, letterbox_batch, letterbox_shape, rect_canvas_wh

# What `max_batch` reports for a dynamic-batch model: large enough never to be the limit;
# the batcher's own size decides.
DYNAMIC_MAX_BATCH = 1024
REUSED_INPUT_BYTES = 16 * 2**20  # batch 1-8 at 320 px, 1-2 at 640: kept per lane between calls

_PROVIDERS: dict[str, tuple[str, ...]] = {
    "cpu": ("CPUExecutionProvider",),
    "cuda": ("CUDAExecutionProvider", "CPUExecutionProvider"),
    # TensorRT builds engines for the shapes it supports and hands the rest to CUDA.
    "tensorrt": ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"),
}


def _import_onnxruntime() -> Any:
    try:
        import onnxruntime
    except ImportError as exc:
        raise BackendUnavailableError(
            "onnxruntime is not installed; pip install onnxruntime (or onnxruntime-gpu for "
            "cuda/tensorrt) -c requirements/constraints.txt") from exc
    return onnxruntime


def _ort_errors() -> tuple[type[BaseException], ...]:
    """onnxruntime's own exception classes (Fail, InvalidProtobuf, ...; they derive from Exception)."""
    from onnxruntime.capi import onnxruntime_pybind11_state as state

    names = ("Fail", "InvalidArgument", "NoSuchFile", "NoModel", "InvalidProtobuf", "InvalidGraph",
             "RuntimeException", "NotImplemented", "EPFail", "ModelLoaded", "EngineError")
    return tuple(c for n in names if isinstance(c := getattr(state, n, None), type))


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


def read_model_info(session: Any) -> OnnxModelInfo:
    inputs, outputs = session.get_inputs(), session.get_outputs()
    if len(inputs) != 1:
        raise ModelError(f"expected one model input (images), got {[i.name for i in inputs]}")
    shape = inputs[0].shape
    if len(shape) != 4:
        raise ModelError(f"expected an NCHW image input, got shape {shape}")
    if isinstance(shape[1], int) and shape[1] != 3:
        raise ModelError(f"expected 3 input channels, got {shape[1]}")
    meta: Mapping[str, str] = session.get_modelmeta().custom_metadata_map
    static_batch = shape[0] if isinstance(shape[0], int) and shape[0] > 0 else None
    h, w = shape[2], shape[3]
    static_hw = (h, w) if isinstance(h, int) and isinstance(w, int) and h > 0 and w > 0 else None
    imgsz = _parse_imgsz(meta.get("imgsz"))
    if static_hw is not None:
        if static_hw[0] != static_hw[1]:
            raise ModelError(f"expected a square model input, got {static_hw[0]}x{static_hw[1]}")
        imgsz = static_hw[0]
    labels = parse_labels(meta["names"]) if "names" in meta else ()
    end2end = meta.get("end2end", "False").strip().lower() == "true"
    out_shape = outputs[0].shape
    if "end2end" not in meta and len(out_shape) == 3 and out_shape[-1] == 6:
        end2end = True  # (B, K, 6) without metadata: the layout of end-to-end heads
    return OnnxModelInfo(
        input_name=inputs[0].name,
        output_name=outputs[0].name,
        labels=labels,
        imgsz=imgsz,
        static_hw=static_hw,
        static_batch=static_batch,
        end2end=end2end,
        stride=int(meta.get("stride", "32")),
    )


def session_options(config: OnnxRuntimeConfig) -> Any:
    """Session options, chosen by measurement on the project's 2-core CPU (notes below)."""
    ort = _import_onnxruntime()
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # YOLO graphs are one chain of convolutions: parallel operator execution only adds
    # scheduling; inter_op_threads applies only to ORT_PARALLEL.
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.intra_op_num_threads = config.intra_op_threads or physical_core_count()
    options.inter_op_num_threads = config.inter_op_threads
    # Idle intra-op workers spin by default, burning the cores the loader, letterbox and
    # batcher threads need; on the 2-core reference box, under load, 2 spinning threads were
    # slower than 1 (v5nu 640: 162-209 vs 125-138 ms/img, min of 6), while 2 non-spinning
    # threads were on par or better (118-131). Batch 8 cost about what batch 1 cost per image
    # in every setting (no 6-10x penalty reproduced); disabling the memory pattern or the CPU
    # arena changed nothing measurable, so both stay on (ORT's defaults). With one thread per
    # run (the default, see OnnxRuntimeConfig) there is no pool and nothing to spin.
    if not config.allow_spinning:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3  # errors only: ORT's warnings about unused initialisers are noise
    return options


def resolve_lanes(config: OnnxRuntimeConfig) -> int:
    """Concurrent runs: as configured, else one per group of intra-op threads on CPU, 1 on a GPU."""
    if config.lanes:
        return config.lanes
    if config.device != "cpu":
        return 1
    return max(1, physical_core_count() // (config.intra_op_threads or physical_core_count()))


def choose_providers(device: str, available: Sequence[str]) -> list[str]:
    wanted = _PROVIDERS.get(device)
    if wanted is None:
        raise BackendUnavailableError(
            f"unknown onnxruntime device {device!r}; valid: {', '.join(_PROVIDERS)}")
    if wanted[0] not in available:
        hint = "" if device == "cpu" else " (install onnxruntime-gpu with matching CUDA/TensorRT libraries)"
        raise BackendUnavailableError(
            f"device {device!r} needs {wanted[0]}, which this onnxruntime does not offer; "
            f"available providers: {', '.join(available) or 'none'}{hint}")
    return [p for p in wanted if p in available]


class OnnxRuntimeDetector(SquareInputBackend):
    """A YOLO model exported to ONNX by ultralytics, run with ONNX Runtime."""

    def __init__(
        self,
        session: Any,
        *,
        conf: float,
        iou: float,
        max_det: int,
        imgsz: int | None = None,
        labels: Sequence[str] | None = None,
        end2end: bool | None = None,
        rect: bool | None = None,
        model_name: str = "",
        lanes: int = 1,
    ) -> None:
        info = read_model_info(session)
        size = imgsz or info.imgsz
        if size is None:
            raise ModelError("the model input size is dynamic and its metadata has no imgsz; set imgsz")
        if info.static_hw is not None and size != info.static_hw[0]:
            raise ModelError(f"the model takes {info.static_hw[0]}x{info.static_hw[1]} input, got imgsz "
                             f"{size}; re-export with dynamic=True or use imgsz {info.static_hw[0]}")
        names = tuple(labels) if labels is not None else info.labels
        if not names:
            raise ModelError("the model has no 'names' metadata; pass labels (e.g. from its model card)")
        self._session = session
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
        self._conf, self._iou, self._max_det = conf, iou, max_det
        self._model_name = model_name
        self._lanes = max(1, lanes)
        self._inputs = threading.local()  # each lane thread's reused network input (_input_array)

    @classmethod
    def from_config(
        cls,
        config: OnnxRuntimeConfig,
        *,
        labels: Sequence[str] | None = None,
        end2end: bool | None = None,
        rect: bool | None = None,
    ) -> OnnxRuntimeDetector:
        """Open the model; `labels`/`end2end` override the ONNX metadata (e.g. from a model card).

        `rect` chooses rectangular inputs (default: when the model's height and width are
        dynamic) or square ones.
        """
        ort = _import_onnxruntime()
        path = Path(config.model)
        if not path.is_file():
            raise ModelError(f"ONNX model {path} does not exist")
        providers = choose_providers(config.device, ort.get_available_providers())
        errors: tuple[type[BaseException], ...] = (*_ort_errors(), RuntimeError, ValueError)
        # On CPU the DFL head's Softmax runs on the last axis (same outputs, ~10 % faster per run;
        # vision.detectors.onnx_graph); GPU providers get the graph as exported (not measured there).
        model = session_model(path) if config.device == "cpu" else str(path)
        try:
            session = ort.InferenceSession(model, sess_options=session_options(config), providers=providers)
        except errors as exc:
            raise ModelError(f"onnxruntime cannot load {path}: {exc}") from exc
        # Registry layout models/<name>/model.onnx: the folder names the model.
        name = path.parent.name if path.name == "model.onnx" else path.stem
        return cls(session, conf=config.conf, iou=config.iou, max_det=config.max_det, imgsz=config.imgsz,
                   labels=labels, end2end=end2end, rect=rect, model_name=name, lanes=resolve_lanes(config))

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
        workers); `session.run` is thread-safe, and each thread has its own input array."""
        return self._lanes

    @property
    def providers(self) -> list[str]:
        return list(self._session.get_providers())

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
        # A C-contiguous float32 array is handed to ORT without a copy; io_binding would only
        # pay off for device memory (cuda/tensorrt), where the input is copied either way.
        (output,) = self._session.run([self._info.output_name], {self._info.input_name: blob})
        decoded = decode_output(output[:len(images)], end2end=self._end2end, conf=self._conf,
                                iou=self._iou, max_det=self._max_det)
        return [self._to_detections(raw, meta) for raw, meta in zip(decoded, metas, strict=True)]

    def _input_array(self, shape: tuple[int, int, int, int]) -> np.ndarray:
        """This thread's network input of `shape`, kept from its last call when the shape is the
        same. A fresh array per 320 px tile (1.2 MB) cost 0.8 ms of page faults, twice what
        filling it costs (1.1 vs 0.35 ms a tile); tiles come in runs of one shape. Per thread,
        since lanes run at once; ORT keeps nothing of its input after `run`. Inputs over
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
