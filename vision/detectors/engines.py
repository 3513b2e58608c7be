"""Which runtime runs an installed model's ONNX export: ONNX Runtime or OpenVINO.

Both read the same file and share letterbox, decoding and lanes (vision.detectors.yolo_export),
so the engine is a deployment choice, like lanes: `Pipeline.from_installed(engine=...)`, the
service's PATROL_ENGINE, `patrol detect --engine`. "auto" is what measured fastest on CPU for
the model's kind (benchmarks/README.md, "Engines"), falling back to ONNX Runtime, which is
always installed, when the openvino extra is not.

OpenVINO won only where its CPU plugin runs float layers in a reduced precision (bfloat16 on a
CPU with avx512_bf16 or AMX): there its pipeline ran 1.5-1.8x ONNX Runtime's. On an AVX2-only
CPU it runs f32 and lost (37.0 against 48.3 images/s, same run), so "auto" asks the plugin
which precision it would use before choosing it.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal, get_args

from vision.errors import BackendUnavailableError

if TYPE_CHECKING:
    from vision.detectors.yolo_export import ExportedYoloBackend

Engine = Literal["auto", "onnxruntime", "openvino"]
ENGINES: tuple[str, ...] = get_args(Engine)
Device = Literal["cpu", "cuda", "tensorrt"]


def openvino_importable() -> bool:
    """Whether the openvino extra is installed (found, not imported: importing it costs ~0.3 s)."""
    return importlib.util.find_spec("openvino") is not None


REDUCED_PRECISIONS = frozenset({"bf16", "f16"})


def openvino_precision() -> str:
    """The precision OpenVINO's CPU plugin runs float layers in on this CPU, unless told
    otherwise ("f32", "bf16" or "f16"; its INFERENCE_PRECISION_HINT). Imports openvino."""
    import openvino

    return openvino.Core().get_property("CPU", "INFERENCE_PRECISION_HINT").get_type_name()


def openvino_wins_here() -> bool:
    """Whether "auto" picks OpenVINO for a float model on CPU: the extra is installed and its
    plugin runs in a reduced precision here (the measured reason it was faster)."""
    return openvino_importable() and openvino_precision() in REDUCED_PRECISIONS


def resolve_engine(engine: str, *, device: Device = "cpu", quantization: str | None = None) -> str:
    """The runtime `engine` names; "auto": OpenVINO for a float model on CPU when installed and
    its plugin runs bf16/f16 here (`openvino_wins_here`), else ONNX Runtime. Quantized models
    run on ONNX Runtime only, which they were calibrated and measured with: OpenVINO 2026.4
    ran models/default-int8's QDQ graph to test mAP50 0.219 against ONNX Runtime's 0.803
    (benchmarks/README.md, "Engines")."""
    if engine not in ENGINES:
        raise BackendUnavailableError(f"unknown engine {engine!r}; valid engines: {', '.join(ENGINES)}")
    if engine == "auto":
        use_openvino = device == "cpu" and quantization is None and openvino_wins_here()
        return "openvino" if use_openvino else "onnxruntime"
    if engine == "openvino" and device != "cpu":
        raise BackendUnavailableError(f"the openvino engine runs on cpu only, got device {device!r}; "
                                      f"use the onnxruntime engine for cuda/tensorrt")
    if engine == "openvino" and quantization is not None:
        raise BackendUnavailableError(f"the model is quantized ({quantization}); the openvino engine "
                                      f"scored such a model far below onnxruntime, which it was "
                                      f"calibrated with: use the onnxruntime (or auto) engine")
    return engine


def open_export(
    engine: str,
    weights: Path,
    *,
    imgsz: int,
    conf: float,
    labels: Sequence[str],
    end2end: bool,
    device: Device = "cpu",
    intra_op_threads: int = 1,
    lanes: int = 0,
    allow_spinning: bool = False,
) -> ExportedYoloBackend:
    """The detector for an ONNX export under a resolved engine ("onnxruntime" or "openvino");
    `allow_spinning` is an ONNX Runtime session option, not passed to OpenVINO."""
    if engine == "openvino":
        from vision.detectors.base import OpenVinoConfig
        from vision.detectors.openvino_runtime import OpenVinoDetector

        openvino = OpenVinoConfig(model=weights, imgsz=imgsz, conf=conf, intra_op_threads=intra_op_threads,
                                  lanes=lanes)
        return OpenVinoDetector.from_config(openvino, labels=labels, end2end=end2end)
    if engine != "onnxruntime":
        raise BackendUnavailableError(f"expected a resolved engine (onnxruntime or openvino), got {engine!r}")
    from vision.detectors.base import OnnxRuntimeConfig
    from vision.detectors.onnx_runtime import OnnxRuntimeDetector

    config = OnnxRuntimeConfig(model=weights, imgsz=imgsz, conf=conf, device=device,
                               intra_op_threads=intra_op_threads, lanes=lanes, allow_spinning=allow_spinning)
    return OnnxRuntimeDetector.from_config(config, labels=labels, end2end=end2end)
