"""The small interface every detector backend implements, and the config they share.

A detector is stateless after load: `load()` builds it from a config, `warmup()` runs one
dummy batch so the first real call is not slow, and `predict_batch(images)` maps a list of
BGR uint8 HxWx3 arrays to one `Detections` per image, boxes in that image's pixels.
Batching, tiling and threading live outside it (vision/batcher.py, vision/tiling.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal, Protocol, runtime_checkable

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from vision.detections import Detections
from vision.errors import ModelError


class DetectorConfigBase(BaseModel):
    """Fields every backend understands."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: Path = Field(description="Path to the weights: .onnx for onnxruntime, .pt for ultralytics.")
    imgsz: int | None = Field(default=None, ge=32, le=4096,
                              description="Square input size; None takes it from the model.")
    conf: float = Field(default=0.05, ge=0.0, le=1.0,
                        description="Score floor applied by the backend. Per-class operating "
                                    "thresholds from the model card are applied later, above it.")
    iou: float = Field(default=0.5, gt=0.0, le=1.0, description="NMS IoU threshold (class-aware).")
    max_det: int = Field(default=300, ge=1, le=10_000, description="Most boxes kept per image.")

    def model_file(self, kind: str) -> Path:
        """`model`, refused (ModelError, naming it as `kind`) unless it is a file: before a runtime
        is asked to load it (ultralytics would try to download a missing "name.pt")."""
        if not self.model.is_file():
            raise ModelError(f"{kind} {self.model} does not exist")
        return self.model


class LanesConfig(DetectorConfigBase):
    """How an ONNX export's runtime spreads inferences over CPU cores (ONNX Runtime and OpenVINO alike).

    Measured on the 2-core reference box (benchmarks/README.md, "CPU settings"): one thread
    per inference and one inference per core (lanes) beat one inference split over both cores,
    quiet and under load: a lane never waits at an operator's barrier for a thread that the OS
    has parked, and no idle thread spins on a core the decoder needs. OpenVINO the same way
    (one stream per lane, "Engines"): at load 2.6 and 3.6, 102 and 49 images/s against 81 and
    35 for one infer request on both cores (its latency default).
    """

    intra_op_threads: int = Field(default=1, ge=0, le=256,
                                  description="Threads inside one inference (session.run, an OpenVINO "
                                              "stream); 0 = one per physical core. 1 with one lane per "
                                              "core is fastest on CPU for many images in flight; 0 "
                                              "(with lanes=1) gives one image the lowest latency.")
    lanes: int = Field(default=0, ge=0, le=64,
                       description="Inferences at once (the pipeline's batcher workers); 0 = physical "
                                   "cores // intra_op_threads on cpu, 1 on cuda/tensorrt.")


class OnnxRuntimeConfig(LanesConfig):
    type: Literal["onnxruntime"] = "onnxruntime"
    device: Literal["cpu", "cuda", "tensorrt"] = Field(
        default="cpu", description="Execution provider; cuda and tensorrt need onnxruntime-gpu.")
    allow_spinning: bool = Field(default=False,
                                 description="Let idle intra-op threads spin (ONNX Runtime's default): "
                                             "a few percent faster on an idle machine with "
                                             "intra_op_threads > 1, several times slower under load.")
    inter_op_threads: int = Field(default=1, ge=1, le=64,
                                  description="Operators run in parallel; 1 (sequential) is fastest "
                                              "for YOLO-shaped graphs.")


class OpenVinoConfig(LanesConfig):
    """The same ONNX export run by OpenVINO (the `openvino` extra): one stream per lane."""

    type: Literal["openvino"] = "openvino"
    # bf16 cost no AP50 on the default model's test split (benchmarks/README.md, "Engines").
    precision: Literal["f32", "bf16", "f16"] | None = Field(
        default=None,
        description="OpenVINO's INFERENCE_PRECISION_HINT; None = the plugin's choice (bf16 on CPUs "
                    "with AVX512-BF16 or AMX, else f32).")
    device: Literal["cpu"] = Field(default="cpu", description="OpenVINO device; only its CPU plugin is "
                                                              "measured here.")


class UltralyticsConfig(DetectorConfigBase):
    type: Literal["ultralytics"] = "ultralytics"
    device: str = Field(default="cpu", description="torch device string, e.g. 'cpu' or 'cuda:0'.")
    half: bool = Field(default=False, description="fp16 inference (CUDA only).")


DetectorConfig = OnnxRuntimeConfig | OpenVinoConfig | UltralyticsConfig


@runtime_checkable
class Detector(Protocol):
    """What the pipeline needs of a backend."""

    @property
    def labels(self) -> tuple[str, ...]:
        """The model's class labels, indexed by class id."""

    @property
    def input_size(self) -> int:
        """The square network input size in pixels."""

    @property
    def max_batch(self) -> int:
        """The largest batch the loaded model accepts (1 for static-batch exports)."""

    def warmup(self) -> None:
        """Run one dummy batch so the first real request is not slow."""

    def predict_batch(self, images: Sequence[np.ndarray]) -> list[Detections]:
        """One Detections per image (BGR uint8 HxWx3), boxes in that image's pixels."""


class SquareInputBackend:
    """What the backends share of `Detector`: the labels and square input side their constructors
    set, and a warm-up on one frame of letterbox grey (114), the colour real inputs are padded with."""

    _labels: tuple[str, ...]
    _size: int

    @property
    def labels(self) -> tuple[str, ...]:
        return self._labels

    @property
    def input_size(self) -> int:
        return self._size

    def warmup(self) -> None:
        self.predict_batch([np.full((self._size, self._size, 3), 114, np.uint8)])

    def predict_batch(self, images: Sequence[np.ndarray]) -> list[Detections]:
        raise NotImplementedError  # each backend runs its own model
