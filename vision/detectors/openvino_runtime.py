"""OpenVINO backend: the same ultralytics ONNX export, run by OpenVINO's CPU plugin.

Letterbox, decoding, NMS and lanes are vision.detectors.yolo_export's, shared with the ONNX
Runtime backend; only `_infer` differs. One compiled model has one stream per lane (weights
shared), and each lane thread keeps its own infer request (a request is not thread-safe; a
compiled model is). `openvino` is an optional extra, imported only when this backend is opened.

Precision: on CPUs with AVX512-BF16 or AMX the CPU plugin runs float layers in bfloat16 unless
told otherwise (INFERENCE_PRECISION_HINT); that is most of why it beats ONNX Runtime's f32 on
the reference box. `OpenVinoConfig.precision` sets it; benchmarks/README.md ("Engines") gives
the accuracy measured both ways.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any, Unpack

import numpy as np

from vision.detectors.base import OpenVinoConfig
from vision.detectors.yolo_export import (
    BackendOptions,
    Dim,
    ExportedYoloBackend,
    ExportOverrides,
    OnnxModelInfo,
    cpu_lanes,
    model_info,
    options_from_config,
)
from vision.errors import BackendUnavailableError, ModelError

EXTRA_HINT = "pip install 'patrol-vision[openvino]' (or openvino -c requirements/constraints.txt)"


def import_openvino() -> Any:
    try:
        import openvino
    except ImportError as exc:
        raise BackendUnavailableError(f"openvino is not installed; {EXTRA_HINT}, or use the "
                                      f"onnxruntime engine") from exc
    return openvino


def _dims(partial_shape: Any) -> list[Dim]:
    return [dim.get_length() if dim.is_static else None for dim in partial_shape]


def read_model_info(model: Any) -> OnnxModelInfo:
    """What an `openvino.Model` read from an ultralytics ONNX file says about itself: OpenVINO's
    ONNX reader keeps the file's metadata under the model's rt_info "framework"."""
    meta: dict[str, str] = {}
    if model.has_rt_info(["framework"]):
        framework: Mapping[str, Any] = model.get_rt_info()["framework"]
        meta = {str(key): model.get_rt_info(["framework", key]).astype(str) for key in framework}
    inputs, output = model.inputs, model.outputs[0]
    return model_info([i.get_any_name() for i in inputs], _dims(inputs[0].get_partial_shape()),
                      output.get_any_name(), _dims(output.get_partial_shape()), meta)


def compile_options(config: OpenVinoConfig, lanes: int) -> dict[str, Any]:
    """One stream per lane, each with `intra_op_threads` threads (0: all cores for one lane)."""
    threads = config.intra_op_threads or max(1, cpu_lanes(0, 1) // lanes)
    options: dict[str, Any] = {"NUM_STREAMS": lanes, "INFERENCE_NUM_THREADS": lanes * threads}
    if config.precision is not None:
        options["INFERENCE_PRECISION_HINT"] = config.precision
    return options


class OpenVinoDetector(ExportedYoloBackend):
    """A YOLO model exported to ONNX by ultralytics, run with OpenVINO."""

    engine = "openvino"

    def __init__(self, compiled: Any, model: Any, **options: Unpack[BackendOptions]) -> None:
        """`compiled`: the `openvino.CompiledModel`; `model`: the `openvino.Model` it came from."""
        super().__init__(read_model_info(model), **options)
        self._compiled = compiled
        self._requests = threading.local()  # each lane thread's own infer request

    @classmethod
    def from_config(cls, config: OpenVinoConfig, **overrides: Unpack[ExportOverrides]) -> OpenVinoDetector:
        """Open the model; `overrides` as for `OnnxRuntimeDetector.from_config`."""
        openvino = import_openvino()
        path = config.model_file("ONNX model")
        lanes = cpu_lanes(config.lanes, config.intra_op_threads)
        core = openvino.Core()
        try:
            model = core.read_model(str(path))
            compiled = core.compile_model(model, "CPU", compile_options(config, lanes))
        except (RuntimeError, ValueError) as exc:  # OpenVINO's errors derive from RuntimeError
            raise ModelError(f"openvino cannot load {path}: {exc}") from exc
        return cls(compiled, model, **options_from_config(config, path, lanes, overrides))

    # -- runtime --------------------------------------------------------------------------

    def property(self, name: str) -> Any:
        """A compiled model property, e.g. "INFERENCE_PRECISION_HINT" or "NUM_STREAMS"."""
        return self._compiled.get_property(name)

    def _infer(self, blob: np.ndarray) -> np.ndarray:
        request = getattr(self._requests, "request", None)
        if request is None:
            request = self._requests.request = self._compiled.create_infer_request()
        # share_inputs: the lane's input array is read in place (it is not touched until the call
        # returns); the output is copied out of the request, which the lane's next call reuses.
        result = request.infer({0: blob}, share_inputs=True)
        return np.asarray(result[0])
