"""INT8 static quantisation of an installed model, installed as a model of its own.

How `quantize_model` goes:
1. Calibration images: a dataset (its data.yaml; one split, train by default) or a folder
   of images, `n` of them, the same share from each source of a built dataset and spread
   evenly over each source's sorted list, so a run is repeatable and every source's
   activations shape the ranges.
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
   compute (`float_tail_nodes`). Chosen learned layers may stay float too (FLOAT_GROUPS,
   QuantizeOptions.float_groups), picked by benchmarks/quantize_sensitivity.py.
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
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from training.generalisation import SOURCE_SEPARATOR
from training.quantize_choices import ActivationName, CalibrationName, FloatGroup, QuantFormatName
from vision.errors import ImageLoadError, ModelError
from vision.model_registry import InstalledModel

if TYPE_CHECKING:
    from training.evaluate import EvalData
    from vision.taxonomy import Taxonomy

# onnxruntime's telemetry is switched off by vision/__init__.py (imported above).

QUANTIZATION = "int8-static"


class QuantizeError(ModelError):
    """The model cannot be quantised as asked, or the result is not good enough to install."""


class QuantizeOptions(BaseModel):
    """How the model is quantised. Defaults chosen by measurement on the project's 2-core AVX2
    CPU (no VNNI), a yolov5nu at 320 after one epoch on patrol-public, calibrated on 100 train
    images, mAP50 on val (418 images) by training.evaluate: float 0.573; QDQ u8/s8 0.477
    (QOperator the same); + reduce_range 0.573; s8 symmetric activations 0.564 but ~2.5x slower
    (S8S8 kernels); the head's decode quantised too: 0.0.

    Calibration set, method and float groups measured on the shipped default (float test mAP50
    0.8006, patrol-public test, 606 images; benchmarks/quantize_sensitivity.py): 100 val images
    spread over the sorted list (the old default, 83 % garbage photos) lost 2.8 points; 100
    train images, half per source, 2.1 points (with the pyramid pool float); 300 of them 0.5
    points with MinMax, 1.3 with percentile (99.999) and 1.5 with entropy, which clip the few
    large activations the detections depend on. Left float besides the tail: the stem 0.3, the
    head's output convs 0.6 (no gain alone), the pyramid pool 0.1, stem and pool 0.2, all three
    -0.2 (a gain): 17 more float nodes, whose cost was within the shared box's noise (bare int8
    session.run 1.64-1.92x float with all three, 1.49-1.76x with the tail alone)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    n_images: int = Field(default=300, ge=1, le=10_000, description="Calibration images.")
    quant_format: QuantFormatName = Field(
        default="qdq",
        description="QDQ (Quantize/DequantizeLinear pairs ORT fuses into int8 kernels) "
        "or QOperator (QLinearConv ... written into the graph).",
    )
    per_channel: bool = Field(default=True, description="One weight scale per output channel.")
    activation_type: ActivationName = Field(default="uint8", description="Activation integers.")
    symmetric_activations: bool = Field(default=False, description="Zero point 0 for activations.")
    reduce_range: bool = Field(
        default=True,
        description="7-bit weights: avoids the int16 saturation of u8s8 multiply-adds "
        "(VPMADDUBSW) on x86 CPUs without VNNI. Measured on the 2-core AVX2 "
        "box, patrol-public val: mAP50 0.573 float, 0.573 with, 0.477 without.",
    )
    calibration: CalibrationName = Field(
        default="minmax",
        description="How activation ranges are chosen from the calibration data. entropy "
        "and percentile keep every activation of one calibration chunk in memory.",
    )
    keep_head_float: bool = Field(
        default=True, description="Leave the head's box decode and sigmoid in float (float_tail_nodes)."
    )
    float_groups: tuple[FloatGroup, ...] = Field(
        default=("stem", "head_outputs", "pyramid_pool"),
        description="Learned layers also left in float (FLOAT_GROUPS): 'stem' (the first conv), "
        "'head_outputs' (the box and class branches' last convs), 'pyramid_pool' (SPPF). Default: "
        "the groups whose float copy measured a gain (benchmarks/quantize_sensitivity.py).",
    )
    calibration_chunk: int = Field(
        default=25,
        ge=1,
        le=10_000,
        description="Images per calibration pass (onnxruntime's strided "
        "calibration): bounds the memory of entropy and percentile.",
    )


# -- calibration data ---------------------------------------------------------------------


def calibration_images(source: Path, *, split: str = "train", n: int = 300) -> list[Path]:
    """`n` images from a dataset split (a folder with data.yaml, or the data.yaml) or from a
    folder of images, the same share from each source of a built dataset (its files are
    named `<source>__...`) and spread evenly over each source's sorted list (deterministic).

    Per source rather than over the whole list: patrol-public's train split is 75 % garbage
    photos, and ranges calibrated on its sorted list left the smoke frames' activations to
    chance (`benchmarks/quantize_sensitivity.py` measures the difference)."""
    from training.datasets.yolo import list_images, read_data_yaml

    source = Path(source)
    if source.is_file() and source.suffix.lower() in (".yaml", ".yml"):
        found = list(read_data_yaml(source).images(split))
    elif (source / "data.yaml").is_file():
        found = list(read_data_yaml(source / "data.yaml").images(split))
    elif source.is_dir():
        found = list_images(source)
    else:
        raise QuantizeError(
            f"expected a dataset folder (with data.yaml), a data.yaml or a folder of "
            f"images for calibration, got {source}"
        )
    if not found:
        raise QuantizeError(f"no calibration images in {source}")
    if n < 1:
        raise QuantizeError(f"expected at least 1 calibration image, got n={n}")
    groups: dict[str, list[Path]] = {}
    for path in sorted(found):
        groups.setdefault(_source_prefix(path), []).append(path)
    quotas = _shares(n, {name: len(paths) for name, paths in groups.items()})
    chosen: list[Path] = []
    for name, paths in groups.items():
        picks = np.linspace(0, len(paths) - 1, quotas[name]).round().astype(int)
        chosen.extend(paths[i] for i in picks)
    return sorted(chosen)


def _source_prefix(path: Path) -> str:
    """`<source>` of a built dataset's `<source>__<name>` file; "" for any other name."""
    name = path.name
    return name.split(SOURCE_SEPARATOR, 1)[0] if SOURCE_SEPARATOR in name else ""


def _shares(n: int, sizes: dict[str, int]) -> dict[str, int]:
    """`n` split as evenly as the group sizes allow: a group smaller than its share gives all
    it has and the rest goes to the others (in name order for the remainders)."""
    shares = dict.fromkeys(sizes, 0)
    left = min(n, sum(sizes.values()))
    while left:
        open_groups = sorted(name for name in sizes if shares[name] < sizes[name])
        each, extra = divmod(left, len(open_groups))
        for i, name in enumerate(open_groups):
            take = min(each + (1 if i < extra else 0), sizes[name] - shares[name])
            shares[name] += take
            left -= take
    return shares


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
        self._range = slice(0, len(self.images))
        self._iter: Iterator[dict[str, np.ndarray]] | None = None

    def __len__(self) -> int:
        return len(self.images)

    def set_range(self, start_index: int, end_index: int) -> None:
        """onnxruntime's strided calibration (CalibStridedMinMax) reads the images a chunk at a
        time, so the histogram methods hold one chunk's activations, not every image's."""
        self._range = slice(start_index, end_index)
        self._iter = None

    def _feeds(self) -> Iterator[dict[str, np.ndarray]]:
        from vision.image_io import load_image
        from vision.preprocess import letterbox_batch

        for path in self.images[self._range]:
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


def stem_conv_nodes(graph: Any) -> list[str]:
    """The convolutions that read a graph input (the image) directly: the stem.

    Their input is the letterboxed image, whose 0..1 pixels int8 holds well, but their 3-channel
    kernels are the fewest weights per output of any layer, so per-channel rounding costs them
    the most."""
    inputs = {value.name for value in graph.input} - {init.name for init in graph.initializer}
    return [
        node.name for node in graph.node if node.op_type == "Conv" and node.input and node.input[0] in inputs
    ]


def head_output_conv_nodes(graph: Any, tail: Sequence[str]) -> list[str]:
    """The learned convolutions whose outputs feed the float tail: the box and class branches'
    last 1x1 convolutions, which write the box-distribution logits and the class logits.

    Quantised, their outputs are 8-bit logits read by the float softmax and sigmoid: one step
    of a wide logit range moves a score near the threshold across it."""
    producer = {out: node for node in graph.node for out in node.output}
    in_tail = set(tail)
    found: list[str] = []
    for node in graph.node:
        if node.name not in in_tail:
            continue
        for name in node.input:
            feeding = producer.get(name)
            if (
                feeding is not None
                and feeding.op_type == "Conv"
                and feeding.name not in in_tail
                and feeding.name not in found
            ):
                found.append(feeding.name)
    return found


def pyramid_pool_nodes(graph: Any) -> list[str]:
    """The spatial pyramid pooling block (YOLO's SPPF): each Concat that stacks MaxPool outputs,
    those MaxPools, the convolution and activation (SiLU: Sigmoid, Mul) that feeds them, and the
    convolution and activation that read the Concat.

    The pools repeat the largest activations of the deepest features, and the Concat makes them
    share one 8-bit range with their unpooled input; the measured cost is in
    benchmarks/quantize_sensitivity.py."""
    producer = {out: node for node in graph.node for out in node.output}
    readers: dict[str, list[Any]] = {}
    for node in graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)
    found: list[str] = []

    def add(node: Any) -> None:
        if node.name not in found:
            found.append(node.name)

    for concat in graph.node:
        feeding = [producer.get(name) for name in concat.input]
        if concat.op_type != "Concat" or not any(n is not None and n.op_type == "MaxPool" for n in feeding):
            continue
        stack = [n for n in feeding if n is not None]
        while stack:  # back through the pools and the SiLU to the convolution feeding them
            node = stack.pop()
            if node.op_type not in ("MaxPool", "Sigmoid", "Mul", "Conv") or node.name in found:
                continue
            add(node)
            if node.op_type != "Conv":
                stack.extend(producer[name] for name in node.input if name in producer)
        add(concat)
        for conv in readers.get(concat.output[0], []):
            if conv.op_type != "Conv":
                continue
            add(conv)
            for act in readers.get(conv.output[0], []):
                if act.op_type in ("Sigmoid", "Mul"):
                    add(act)
                    for mul in readers.get(act.output[0], []) if act.op_type == "Sigmoid" else []:
                        if mul.op_type == "Mul":
                            add(mul)
    return found


FLOAT_GROUPS: dict[str, Callable[[Any, Sequence[str]], list[str]]] = {
    "stem": lambda graph, _tail: stem_conv_nodes(graph),
    "head_outputs": head_output_conv_nodes,
    "pyramid_pool": lambda graph, _tail: pyramid_pool_nodes(graph),
}


def nodes_kept_float(graph: Any, *, keep_head_float: bool, groups: Sequence[str]) -> list[str]:
    """Every node left in float: the head's tail (`float_tail_nodes`) when asked, then each
    group's nodes (FLOAT_GROUPS), in that order without repeats."""
    tail = float_tail_nodes(graph) if keep_head_float else []
    chosen = list(tail)
    for group in groups:
        if group not in FLOAT_GROUPS:
            raise QuantizeError(f"unknown float group {group!r}; expected one of {', '.join(FLOAT_GROUPS)}")
        chosen.extend(name for name in FLOAT_GROUPS[group](graph, tail) if name not in chosen)
    return chosen


def chunk_size(total: int, at_most: int) -> int:
    """The largest chunk of at most `at_most` images that divides `total`: onnxruntime's strided
    calibration refuses a last chunk shorter than the others."""
    return max(d for d in range(1, max(1, min(total, at_most)) + 1) if total % d == 0)


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


def quantize_onnx(
    source: Path,
    target: Path,
    images: Sequence[Path],
    imgsz: int,
    options: QuantizeOptions | None = None,
    *,
    calibration_cache: Path | None = None,
) -> QuantizeReport:
    """Write an int8 copy of `source` to `target`, calibrated on `images` letterboxed to `imgsz`.

    `calibration_cache`: onnxruntime's JSON of activation ranges, written by the first call and
    read by the next ones instead of calibrating again (the caller keeps it to one source,
    image set and calibration method; benchmarks/quantize_sensitivity.py compares float groups).

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
        errors: tuple[type[BaseException], ...] = (
            *_onnx_errors(),
            ValueError,
            RuntimeError,
            KeyError,
            OSError,
        )
        try:
            quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
        except errors as exc:
            raise QuantizeError(f"quant_pre_process failed on {source}: {exc}") from exc
        model = onnx.load(str(prepared))
        _name_unnamed_nodes(model)
        onnx.save(model, str(prepared))
        exclude = nodes_kept_float(
            model.graph, keep_head_float=options.keep_head_float, groups=options.float_groups
        )
        reader = LetterboxCalibrationReader(images, geometry)
        activation = QuantType.QUInt8 if options.activation_type == "uint8" else QuantType.QInt8
        method = {
            "minmax": CalibrationMethod.MinMax,
            "entropy": CalibrationMethod.Entropy,
            "percentile": CalibrationMethod.Percentile,
        }[options.calibration]
        try:
            quantize_static(
                str(prepared),
                str(target),
                reader,
                quant_format=QuantFormat.QDQ if options.quant_format == "qdq" else QuantFormat.QOperator,
                per_channel=options.per_channel,
                reduce_range=options.reduce_range,
                activation_type=activation,
                weight_type=QuantType.QInt8,
                nodes_to_exclude=exclude,
                calibrate_method=method,
                calibration_cache_path=None if calibration_cache is None else str(calibration_cache),
                # Not CalibMaxIntermediateOutputs: in onnxruntime 1.32 the MinMax calibrator
                # drops each full chunk without folding it into the ranges. MinMax keeps only
                # per-tensor min/max per image anyway, so memory stays small.
                extra_options={
                    "ActivationSymmetric": options.symmetric_activations,
                    "CalibStridedMinMax": chunk_size(len(images), options.calibration_chunk),
                },
            )
        except (ValueError, RuntimeError) as exc:
            if len(reader.skipped) == len(images):
                raise QuantizeError(
                    f"none of the {len(images)} calibration images could be read: "
                    f"{'; '.join(reader.skipped[:3])}"
                ) from exc
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
        return {
            "evaluator": "patrol evaluate (training.evaluate)",
            "dataset": self.dataset,
            "dataset_hash": self.dataset_hash,
            "split": self.split,
            "n_images": self.n_images,
            "source_map50": self.source_map50,
            "int8_map50": self.int8_map50,
            "source_map50_95": self.source_map50_95,
            "int8_map50_95": self.int8_map50_95,
            "map50_drop": None if drop is None else round(drop, 6),
        }


def _evaluate(model: InstalledModel, data: Path, split: str) -> dict[str, Any]:
    from training.evaluate import build_report, collect, open_eval_data
    from vision.taxonomy import Taxonomy

    taxonomy = Taxonomy.default()
    eval_data = open_eval_data(data, split, model.card, taxonomy)
    return build_report(collect(model, eval_data, taxonomy), model, taxonomy).summary


def evaluate_weights(
    weights: Path, model: InstalledModel, data: EvalData, taxonomy: Taxonomy
) -> dict[str, Any]:
    """training.evaluate's summary for an ONNX file that is not installed (a variant being
    compared), read with `model`'s card: one session.run at a time and one loader thread, so a
    sweep of variants takes one core of a shared box."""
    from training.evaluate import SCORE_FLOOR, build_report, collect
    from vision.detectors.base import OnnxRuntimeConfig
    from vision.detectors.onnx_runtime import OnnxRuntimeDetector

    card = model.card
    detector = OnnxRuntimeDetector.from_config(
        OnnxRuntimeConfig(model=weights, imgsz=card.input_size, conf=SCORE_FLOOR, lanes=1),
        labels=card.labels,
        end2end=card.end2end,
    )
    return build_report(collect(model, data, taxonomy, workers=1, detector=detector), model, taxonomy).summary


def measure_accuracy(source: InstalledModel, quantized: InstalledModel, data: Path, split: str) -> Accuracy:
    before = _evaluate(source, data, split)
    after = _evaluate(quantized, data, split)
    return Accuracy(
        dataset=str(after["dataset"]),
        dataset_hash=str(after["dataset_hash"]),
        split=split,
        n_images=int(after["n_images"]),
        source_map50=before["map50"],
        int8_map50=after["map50"],
        source_map50_95=before["map50_95"],
        int8_map50_95=after["map50_95"],
    )


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
    split: str = "train",
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
        raise QuantizeError(
            f"model {name!r} is already installed in {models_dir or default_models_dir()}; "
            f"choose another name, or pass overwrite"
        )
    if original.card.quantization:
        raise QuantizeError(
            f"model {original.name!r} is already quantised ({original.card.quantization}); "
            f"quantise its float source instead"
        )
    if not evaluate:
        eval_data = None
    elif eval_data is None and _is_dataset(Path(calib)):
        eval_data = Path(calib)
    if max_map50_drop is not None and eval_data is None:
        raise QuantizeError(
            "max_map50_drop needs a dataset to measure on: pass eval_data, or a dataset "
            "as the calibration source"
        )
    images = calibration_images(Path(calib), split=split, n=options.n_images)
    with tempfile.TemporaryDirectory(prefix="patrol-quantize-") as tmp:
        staged = Path(tmp) / "model.onnx"
        report = quantize_onnx(original.weights, staged, images, original.card.input_size, options)
        accuracy = None
        if eval_data is not None:
            # Evaluated where it lies: a provisional model folder inside the temp dir.
            provisional = install_model(
                staged, _card_fields(original, name, report, None, version), models_dir=Path(tmp) / "models"
            )
            accuracy = measure_accuracy(original, provisional, eval_data, eval_split or split)
            drop = accuracy.map50_drop
            if max_map50_drop is not None and drop is not None and drop > max_map50_drop:
                raise QuantizeError(
                    f"int8 mAP50 {accuracy.int8_map50:.4f} vs {accuracy.source_map50:.4f} for "
                    f"{original.name!r} "
                    f"on {accuracy.dataset} [{accuracy.split}]: a drop of {drop:.4f} > the allowed "
                    f"{max_map50_drop}; not installed"
                )
        installed = install_model(
            staged,
            _card_fields(original, name, report, accuracy, version),
            models_dir=models_dir,
            overwrite=overwrite,
        )
    return QuantizeResult(installed, report, accuracy)


def _card_fields(
    original: InstalledModel,
    name: str,
    report: QuantizeReport,
    accuracy: Accuracy | None,
    version: str | None,
) -> dict[str, Any]:
    card = original.card
    quantization = {
        "source_model": original.name,
        "source_version": card.version,
        "source_sha256": card.sha256,
        **report.as_dict(),
        "accuracy": None if accuracy is None else accuracy.as_dict(),
    }
    fields = card.model_dump(exclude={"sha256", "file"})
    fields.update(
        {
            "name": name,
            "version": version or f"{card.version}-int8",
            "quantization": QUANTIZATION,
            # The source's test metrics were measured on its float weights: not these.
            "metrics": {},
            "training": {**card.training, "quantization": quantization},
        }
    )
    return fields
