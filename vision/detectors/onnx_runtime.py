"""ONNX Runtime backend. Imports neither torch nor ultralytics.

Reads what ultralytics' exporter writes into the ONNX metadata (names, imgsz, stride,
batch, end2end) and lets the caller override labels and end2end (a model card knows best);
letterbox, decoding and lanes are vision.detectors.yolo_export's, shared with OpenVINO.
`InferenceSession.run` is thread-safe, so one detector serves its lanes' threads at once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Unpack

import numpy as np

from vision.detectors.base import OnnxRuntimeConfig
from vision.detectors.onnx_graph import session_model
from vision.detectors.yolo_export import (
    DYNAMIC_MAX_BATCH,
    BackendOptions,
    ExportedYoloBackend,
    ExportOverrides,
    OnnxModelInfo,
    cpu_lanes,
    model_info,
    options_from_config,
    parse_labels,
    physical_core_count,
)
from vision.errors import BackendUnavailableError, ModelError

# Re-exported: callers and tests import them from here since before the OpenVINO backend.
__all__ = ["DYNAMIC_MAX_BATCH", "OnnxModelInfo", "OnnxRuntimeDetector", "choose_providers", "parse_labels",
           "physical_core_count", "read_model_info", "resolve_lanes", "session_options"]

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


def read_model_info(session: Any) -> OnnxModelInfo:
    inputs, outputs = session.get_inputs(), session.get_outputs()
    meta: Mapping[str, str] = session.get_modelmeta().custom_metadata_map
    return model_info([i.name for i in inputs], inputs[0].shape, outputs[0].name, outputs[0].shape, meta)


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
    if config.lanes or config.device == "cpu":
        return cpu_lanes(config.lanes, config.intra_op_threads)
    return 1


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


class OnnxRuntimeDetector(ExportedYoloBackend):
    """A YOLO model exported to ONNX by ultralytics, run with ONNX Runtime."""

    engine = "onnxruntime"

    def __init__(self, session: Any, **options: Unpack[BackendOptions]) -> None:
        super().__init__(read_model_info(session), **options)
        self._session = session

    @classmethod
    def from_config(
        cls, config: OnnxRuntimeConfig, **overrides: Unpack[ExportOverrides]
    ) -> OnnxRuntimeDetector:
        """Open the model; `overrides` (labels, end2end, rect) take the place of the ONNX metadata."""
        ort = _import_onnxruntime()
        path = config.model_file("ONNX model")
        providers = choose_providers(config.device, ort.get_available_providers())
        errors: tuple[type[BaseException], ...] = (*_ort_errors(), RuntimeError, ValueError)
        # On CPU the DFL head's Softmax runs on the last axis (same outputs, ~10 % faster per run;
        # vision.detectors.onnx_graph); GPU providers get the graph as exported (not measured there).
        model = session_model(path) if config.device == "cpu" else str(path)
        try:
            session = ort.InferenceSession(model, sess_options=session_options(config), providers=providers)
        except errors as exc:
            raise ModelError(f"onnxruntime cannot load {path}: {exc}") from exc
        return cls(session, **options_from_config(config, path, resolve_lanes(config), overrides))

    # -- runtime --------------------------------------------------------------------------

    @property
    def providers(self) -> list[str]:
        return list(self._session.get_providers())

    def _infer(self, blob: np.ndarray) -> np.ndarray:
        # A C-contiguous float32 array is handed to ORT without a copy; io_binding would only
        # pay off for device memory (cuda/tensorrt), where the input is copied either way.
        (output,) = self._session.run([self._info.output_name], {self._info.input_name: blob})
        return np.asarray(output)
