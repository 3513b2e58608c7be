"""INT8 static quantisation of an installed model, installed as a model of its own.

How `quantize_model` goes:
1. Calibration images: a dataset (its data.yaml; one split) or a folder of images, `n`
   of them spread evenly over the sorted list, so a run is repeatable.
2. `quant_pre_process` (ONNX shape inference and ONNX Runtime's basic graph optimisations),
   as onnxruntime's quantisation docs ask for before `quantize_static`. Its symbolic shape
   inference is skipped: it gives up on ultralytics' dynamic-size exports ("Incomplete
   symbolic shape inference"), and convolutional graphs do not need it.
3. `quantize_static` with a reader that feeds each image exactly as the serving backend
   does: `vision.image_io.load_image` (upright) then `vision.preprocess.letterbox_batch`,
   with the stride-multiple rectangle for models with dynamic height and width (what
   OnnxRuntimeDetector runs them at), so the ranges are those of the inputs it will see.
4. The detection head's tail stays float: everything between the last convolutions of
   the box and class branches and the output (reshapes, concats, the DFL softmax and its
   fixed 0..15 convolution, the anchor/stride box decode, the class sigmoid). Their
   values are coordinates in pixels and scores near the threshold; 8 bits there cost
   whole pixels and flip boxes across the score floor, while they are a sliver of the
   compute (`float_tail_nodes`).
5. The accuracy cost: our own evaluation (training.evaluate, the serving Pipeline) of
   the source and of the int8 model on the same split; both mAP50 go into the card.
6. The model folder is written by training.registry (the one writer of model folders),
   with the source's card, `quantization: "int8-static"` and a new sha256. The source's
   test metrics describe other weights and are not copied: evaluate the int8 model on
   test and record them as for any model.

Imports neither torch nor ultralytics.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from vision.errors import ImageLoadError, ModelError
from vision.model_registry import InstalledModel

# onnxruntime's telemetry is switched off by vision/__init__.py (imported above).

QUANTIZATION = "int8-static"


class QuantizeError(ModelError):
    """The model cannot be quantised as asked, or the result is not good enough to install."""


class QuantizeOptions(BaseModel):
    """How the model is quantised. Defaults chosen by measurement on the project's 2-core AVX2
    CPU (no VNNI), a yolov5nu at 320 after one epoch on patrol-public, calibrated on 100 train
    images, mAP50 on val (418 images) by training.evaluate: float 0.573; QDQ u8/s8 0.477
    (QOperator the same); + reduce_range 0.573; s8 symmetric activations 0.564 but ~2.5x slower
    (S8S8 kernels); the head's decode quantised too: 0.0."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    n_images: int = Field(default=100, ge=1, le=10_000, description="Calibration images.")
    quant_format: Literal["qdq", "qoperator"] = Field(
        default="qdq", description="QDQ (Quantize/DequantizeLinear pairs ORT fuses into int8 kernels) "
                                   "or QOperator (QLinearConv ... written into the graph).")
    per_channel: bool = Field(default=True, description="One weight scale per output channel.")
    activation_type: Literal["uint8", "int8"] = Field(default="uint8", description="Activation integers.")
    symmetric_activations: bool = Field(default=False, description="Zero point 0 for activations.")
    reduce_range: bool = Field(
        default=True, description="7-bit weights: avoids the int16 saturation of u8s8 multiply-adds "
                                  "(VPMADDUBSW) on x86 CPUs without VNNI. Measured on the 2-core AVX2 "
                                  "box, patrol-public val: mAP50 0.573 float, 0.573 with, 0.477 without.")
    calibration: Literal["minmax", "entropy", "percentile"] = Field(
        default="minmax", description="How activation ranges are chosen from the calibration data. entropy "
                    "and percentile keep every activation of every calibration image in memory.")
    keep_head_float: bool = Field(default=True, description="Leave the head's box decode and "
                                                            "sigmoid in float (float_tail_nodes).")


# -- calibration data ---------------------------------------------------------------------


def calibration_images(source: Path, *, split: str = "val", n: int = 100) -> list[Path]:
    """`n` images from a dataset split (a folder with data.yaml, or the data.yaml) or from a
    folder of images, spread evenly over the sorted list (deterministic)."""
    from training.datasets.yolo import list_images, read_data_yaml

    source = Path(source)
    if source.is_file() and source.suffix.lower() in (".yaml", ".yml"):
        found = list(read_data_yaml(source).images(split))
    elif (source / "data.yaml").is_file():
        found = list(read_data_yaml(source / "data.yaml").images(split))
    elif source.is_dir():
        found = list_images(source)
    else:
        raise QuantizeError(f"expected a dataset folder (with data.yaml), a data.yaml or a folder of "
                            f"images for calibration, got {source}")
    if not found:
        raise QuantizeError(f"no calibration images in {source}")
    if n < 1:
        raise QuantizeError(f"expected at least 1 calibration image, got n={n}")
    if len(found) <= n:
        return sorted(found)
    ordered = sorted(found)
    picks = np.linspace(0, len(ordered) - 1, n).round().astype(int)
    return [ordered[i] for i in picks]


@dataclass(frozen=True)
class InputGeometry:
    """How the serving backend letterboxes for this model."""

    input_name: str
    imgsz: int
    stride: int | None  # None: square imgsz x imgsz inputs (static-size models)


def input_geometry(onnx_path: Path, imgsz: int) -> InputGeometry:
    """The input name and letterbox rule OnnxRuntimeDetector would use for this file."""
    import onnxruntime as ort

    from vision.detectors.onnx_runtime import read_model_info

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    info = read_model_info(session)
    # OnnxRuntimeDetector's default: rectangular inputs when height and width are dynamic.
    return InputGeometry(info.input_name, imgsz, info.stride if info.static_hw is None else None)


class LetterboxCalibrationReader:
    """onnxruntime's CalibrationDataReader protocol: one letterboxed image per call, upright
    (EXIF orientation applied) and placed exactly as the serving backend places it."""

    def __init__(self, images: Sequence[Path], geometry: InputGeometry) -> None:
        self.images = list(images)
        self.geometry = geometry
        self.skipped: list[str] = []
        self._iter: Iterator[dict[str, np.ndarray]] | None = None

    def _feeds(self) -> Iterator[dict[str, np.ndarray]]:
        from vision.image_io import load_image
        from vision.preprocess import letterbox_batch

        for path in self.images:
            try:
                image = load_image(path)
            except ImageLoadError as exc:
                self.skipped.append(f"{path}: {exc.reason}")
                continue
            blob, _ = letterbox_batch([image.pixels], self.geometry.imgsz, stride=self.geometry.stride)
            yield {self.geometry.input_name: blob}

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._iter is None:
            self._iter = self._feeds()
        return next(self._iter, None)

    def rewind(self) -> None:
        self._iter = None


# -- which nodes stay float ---------------------------------------------------------------


def float_tail_nodes(graph: Any) -> list[str]:
    """Names of the nodes between the head's last convolutions and the graph outputs.

    Walks back from every output through producers, stopping at a Conv (a learned layer:
    it and everything before it is quantised) and at a Shape node (only its input's shape
    matters, not its values). A Conv fed by a Softmax is the DFL's fixed projection onto
    bins 0..15, part of the box decode, so the walk goes through it: in int8 its weights
    alone would be off by up to 5 %.
    """
    producer = {out: node for node in graph.node for out in node.output}
    seen: set[str] = set()
    tail: list[str] = []
    stack = [output.name for output in graph.output]
    while stack:
        node = producer.get(stack.pop())
        if node is None or node.name in seen:
            continue
        seen.add(node.name)
        if node.op_type == "Conv":
            fed_by = producer.get(node.input[0])
            if fed_by is None or fed_by.op_type != "Softmax":
                continue
        tail.append(node.name)
        if node.op_type != "Shape":
            stack.extend(node.input)
    return tail


def _name_unnamed_nodes(model: Any) -> None:
    """The quantiser selects nodes by name; give nameless ones a stable name."""
    for i, node in enumerate(model.graph.node):
        if not node.name:
            node.name = f"{node.op_type}_{i}_unnamed"


# -- quantising a file --------------------------------------------------------------------


def _onnx_errors() -> tuple[type[BaseException], ...]:
    """What onnx's checker and shape inference and onnxruntime's session raise (all derive
    from Exception directly, so they have to be named)."""
    from onnx.checker import ValidationError
    from onnx.shape_inference import InferenceError

    from vision.detectors.onnx_runtime import _ort_errors

    return (ValidationError, InferenceError, *_ort_errors())


@dataclass(frozen=True)
class QuantizeReport:
    """What was done to the file, for the card."""

    calibration_images: int
    calibration_skipped: tuple[str, ...]
    float_nodes: tuple[str, ...]
    options: QuantizeOptions
    onnxruntime: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "method": "onnxruntime.quantization.quantize_static",
            "onnxruntime": self.onnxruntime,
            **self.options.model_dump(),
            "calibration_images_used": self.calibration_images,
            "calibration_skipped": list(self.calibration_skipped),
            "float_nodes": len(self.float_nodes),
        }


def quantize_onnx(source: Path, target: Path, images: Sequence[Path], imgsz: int,
                  options: QuantizeOptions | None = None) -> QuantizeReport:
    """Write an int8 copy of `source` to `target`, calibrated on `images` letterboxed to `imgsz`.

    The source's metadata (labels, imgsz, stride ...) is carried over; onnxruntime's
    optimiser and quantiser do not keep it.
    """
    import onnx
    import onnxruntime as ort
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    options = options or QuantizeOptions()
    if not images:
        raise QuantizeError("expected at least one calibration image, got none")
    geometry = input_geometry(source, imgsz)
    source_model = onnx.load(str(source))
    metadata = {p.key: p.value for p in source_model.metadata_props}
    with tempfile.TemporaryDirectory(prefix="patrol-quantize-") as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        errors: tuple[type[BaseException], ...] = (*_onnx_errors(), ValueError, RuntimeError, KeyError,
                                                   OSError)
        try:
            quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
        except errors as exc:
            raise QuantizeError(f"quant_pre_process failed on {source}: {exc}") from exc
        model = onnx.load(str(prepared))
        _name_unnamed_nodes(model)
        onnx.save(model, str(prepared))
        exclude = float_tail_nodes(model.graph) if options.keep_head_float else []
        reader = LetterboxCalibrationReader(images, geometry)
        activation = QuantType.QUInt8 if options.activation_type == "uint8" else QuantType.QInt8
        method = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
                  "percentile": CalibrationMethod.Percentile}[options.calibration]
        try:
            quantize_static(
                str(prepared), str(target), reader,
                quant_format=QuantFormat.QDQ if options.quant_format == "qdq" else QuantFormat.QOperator,
                per_channel=options.per_channel, reduce_range=options.reduce_range,
                activation_type=activation, weight_type=QuantType.QInt8,
                nodes_to_exclude=exclude, calibrate_method=method,
                # Not CalibMaxIntermediateOutputs: in onnxruntime 1.32 the MinMax calibrator
                # drops each full chunk without folding it into the ranges. MinMax keeps only
                # per-tensor min/max per image anyway, so memory stays small.
                extra_options={"ActivationSymmetric": options.symmetric_activations},
            )
        except (ValueError, RuntimeError) as exc:
            if len(reader.skipped) == len(images):
                raise QuantizeError(f"none of the {len(images)} calibration images could be read: "
                                    f"{'; '.join(reader.skipped[:3])}") from exc
            raise QuantizeError(f"quantize_static failed on {source}: {exc}") from exc
        used = len(images) - len(reader.skipped)
    quantized = onnx.load(str(target))
    del quantized.metadata_props[:]
    for key, value in {**metadata, "quantization": QUANTIZATION}.items():
        quantized.metadata_props.add(key=key, value=value)
    onnx.save(quantized, str(target))
    return QuantizeReport(used, tuple(reader.skipped), tuple(exclude), options, ort.__version__)


# -- the model folder ---------------------------------------------------------------------


@dataclass(frozen=True)
class Accuracy:
    """Source and int8 model on the same split, by training.evaluate."""

    dataset: str
    dataset_hash: str
    split: str
    n_images: int
    source_map50: float | None
    int8_map50: float | None
    source_map50_95: float | None
    int8_map50_95: float | None

    @property
    def map50_drop(self) -> float | None:
        if self.source_map50 is None or self.int8_map50 is None:
            return None
        return self.source_map50 - self.int8_map50

    def as_dict(self) -> dict[str, Any]:
        drop = self.map50_drop
        return {"evaluator": "patrol evaluate (training.evaluate)", "dataset": self.dataset,
                "dataset_hash": self.dataset_hash, "split": self.split, "n_images": self.n_images,
                "source_map50": self.source_map50, "int8_map50": self.int8_map50,
                "source_map50_95": self.source_map50_95, "int8_map50_95": self.int8_map50_95,
                "map50_drop": None if drop is None else round(drop, 6)}


def _evaluate(model: InstalledModel, data: Path, split: str) -> dict[str, Any]:
    from training.evaluate import build_report, collect, open_eval_data
    from vision.taxonomy import Taxonomy

    taxonomy = Taxonomy.default()
    eval_data = open_eval_data(data, split, model.card, taxonomy)
    return build_report(collect(model, eval_data, taxonomy), model, taxonomy).summary


def measure_accuracy(source: InstalledModel, quantized: InstalledModel, data: Path, split: str) -> Accuracy:
    before = _evaluate(source, data, split)
    after = _evaluate(quantized, data, split)
    return Accuracy(dataset=str(after["dataset"]), dataset_hash=str(after["dataset_hash"]), split=split,
                    n_images=int(after["n_images"]), source_map50=before["map50"], int8_map50=after["map50"],
                    source_map50_95=before["map50_95"], int8_map50_95=after["map50_95"])


def _is_dataset(path: Path) -> bool:
    return (path.is_file() and path.suffix.lower() in (".yaml", ".yml")) or (path / "data.yaml").is_file()


@dataclass(frozen=True)
class QuantizeResult:
    model: InstalledModel
    report: QuantizeReport
    accuracy: Accuracy | None


def quantize_model(
    source: str | Path,
    calib: Path,
    name: str,
    *,
    split: str = "val",
    eval_data: Path | None = None,
    eval_split: str | None = None,
    models_dir: Path | None = None,
    options: QuantizeOptions | None = None,
    max_map50_drop: float | None = None,
    version: str | None = None,
    overwrite: bool = False,
    evaluate: bool = True,
) -> QuantizeResult:
    """Quantise an installed model and install the result as `name` (see the module doc).

    Accuracy is measured on `eval_data` (default: `calib` when it is a dataset) split
    `eval_split` (default: `split`), unless `evaluate` is off. With `max_map50_drop`, a
    model that loses more mAP50 than that is not installed (QuantizeError).
    """
    from training.registry import install_model
    from vision.model_registry import default_models_dir, resolve_model

    options = options or QuantizeOptions()
    original = resolve_model(source, models_dir)
    if (models_dir or default_models_dir()).joinpath(name).exists() and not overwrite:
        raise QuantizeError(f"model {name!r} is already installed in {models_dir or default_models_dir()}; "
                            f"choose another name, or pass overwrite")
    if original.card.quantization:
        raise QuantizeError(f"model {original.name!r} is already quantised ({original.card.quantization}); "
                            f"quantise its float source instead")
    if not evaluate:
        eval_data = None
    elif eval_data is None and _is_dataset(Path(calib)):
        eval_data = Path(calib)
    if max_map50_drop is not None and eval_data is None:
        raise QuantizeError("max_map50_drop needs a dataset to measure on: pass eval_data, or a dataset "
                            "as the calibration source")
    images = calibration_images(Path(calib), split=split, n=options.n_images)
    with tempfile.TemporaryDirectory(prefix="patrol-quantize-") as tmp:
        staged = Path(tmp) / "model.onnx"
        report = quantize_onnx(original.weights, staged, images, original.card.input_size, options)
        accuracy = None
        if eval_data is not None:
            # Evaluated where it lies: a provisional model folder inside the temp dir.
            provisional = install_model(staged, _card_fields(original, name, report, None, version),
                                        models_dir=Path(tmp) / "models")
            accuracy = measure_accuracy(original, provisional, eval_data, eval_split or split)
            drop = accuracy.map50_drop
            if max_map50_drop is not None and drop is not None and drop > max_map50_drop:
                raise QuantizeError(
                    f"int8 mAP50 {accuracy.int8_map50:.4f} vs {accuracy.source_map50:.4f} for "
                    f"{original.name!r} "
                    f"on {accuracy.dataset} [{accuracy.split}]: a drop of {drop:.4f} > the allowed "
                    f"{max_map50_drop}; not installed")
        installed = install_model(staged, _card_fields(original, name, report, accuracy, version),
                                  models_dir=models_dir, overwrite=overwrite)
    return QuantizeResult(installed, report, accuracy)


def _card_fields(original: InstalledModel, name: str, report: QuantizeReport, accuracy: Accuracy | None,
                 version: str | None) -> dict[str, Any]:
    card = original.card
    quantization = {
        "source_model": original.name, "source_version": card.version, "source_sha256": card.sha256,
        **report.as_dict(),
        "accuracy": None if accuracy is None else accuracy.as_dict(),
    }
    fields = card.model_dump(exclude={"sha256", "file"})
    fields.update({
        "name": name,
        "version": version or f"{card.version}-int8",
        "quantization": QUANTIZATION,
        # The source's test metrics were measured on its float weights: not these.
        "metrics": {},
        "training": {**card.training, "quantization": quantization},
    })
    return fields
