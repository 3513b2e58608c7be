"""Move the COCO-trained backbone and neck of an official YOLOv5 checkpoint into ultralytics' YOLOv5u.

The official `yolov5n.pt` is a full pickle of the ultralytics/yolov5 repository's classes
(`models.yolo.Model`, `models.common.Conv`, ...). Unpickling it the ordinary way would
import and run whatever the file names, so it is read with torch's weights-only unpickler,
and each class the file may legitimately name is mapped onto an inert stand-in that only
stores its attributes. Real torch modules are not rebuilt either: nothing in the file gets
to run a constructor, `__setstate__` or hook of ours beyond a dict update, and any other
global (`os.system`, `builtins.eval`, ...) is refused with its name in the error.

The tensors are then read straight out of the stand-ins' `_parameters` and `_buffers`,
turned to float32, and copied into ultralytics' `yolov5nu.yaml` DetectionModel wherever the
name and shape match. The backbone and neck (layers 0-23) share names with the original;
the anchor-free Detect head (layer 24) does not and keeps its fresh initialisation.
"""

from __future__ import annotations

import pickle
import pickletools
import re
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, cast

from vision.errors import ModelError
from vision.model_registry import sha256_file

YOLOV5N_SHA256 = "4f180cf23ba0717ada0badd6c685026d73d48f184d00fc159c2641284b2ac0a3"
TARGET_ARCHITECTURE = "yolov5nu.yaml"

# Every global an official ultralytics/yolov5 (v6-v7) detection checkpoint names, beside
# the tensor, storage and container globals torch's weights-only unpickler allows itself.
_YOLOV5_CLASSES = (
    "models.yolo.Model", "models.yolo.DetectionModel", "models.yolo.Detect",
    "models.common.Conv", "models.common.C3", "models.common.SPPF", "models.common.SPP",
    "models.common.Concat", "models.common.Bottleneck", "models.common.BottleneckCSP",
    "models.common.Focus", "models.common.DWConv",
)
_TORCH_NN_CLASSES = (
    "torch.nn.modules.activation.SiLU", "torch.nn.modules.activation.LeakyReLU",
    "torch.nn.modules.activation.ReLU", "torch.nn.modules.activation.Hardswish",
    "torch.nn.modules.batchnorm.BatchNorm2d", "torch.nn.modules.container.ModuleList",
    "torch.nn.modules.container.Sequential", "torch.nn.modules.conv.Conv2d",
    "torch.nn.modules.linear.Identity", "torch.nn.modules.pooling.MaxPool2d",
    "torch.nn.modules.upsampling.Upsample",
)
ALLOWED_CLASS_NAMES: tuple[str, ...] = _YOLOV5_CLASSES + _TORCH_NN_CLASSES
# Tensor, storage and container globals, which torch's weights-only reader vets itself.
_TORCH_DATA_PREFIXES = ("torch.", "collections.OrderedDict", "__builtin__.set",
                        "builtins.set")


class UnsafeCheckpointError(ModelError):
    """A checkpoint names a global outside the allow-list; it was not loaded."""


class PickledModule:
    """Inert stand-in for a module class named in a checkpoint: it only keeps the pickled state.

    No constructor runs (the unpickler calls `__new__`), and `__setstate__` is a plain dict
    update, so a crafted state cannot trigger code. `source_name` says which class it stood for.
    """

    source_name = "?"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # The unpickler builds instances with __new__; only a crafted REDUCE calls the class.
        raise pickle.UnpicklingError(f"the pickle calls {self.source_name}(...); a checkpoint only "
                                     f"rebuilds modules, it never calls them")

    def __setstate__(self, state: dict[str, Any]) -> None:
        if not isinstance(state, dict):
            raise pickle.UnpicklingError(
                f"expected a dict as the state of {self.source_name}, got {type(state).__name__}")
        self.__dict__.update(state)

    @property
    def class_name(self) -> str:
        return self.source_name.rsplit(".", 1)[-1]


def _stand_ins() -> list[Callable[..., Any] | tuple[Callable[..., Any], str]]:
    # One subclass per global, so a loaded object still says which class it stood for.
    return [(type(name.rsplit(".", 1)[-1], (PickledModule,), {"source_name": name}), name)
            for name in ALLOWED_CLASS_NAMES]


def load_yolov5_checkpoint(path: Path, expected_sha256: str | None = YOLOV5N_SHA256) -> dict[str, Any]:
    """Read an official YOLOv5 checkpoint without executing it; modules come back as stand-ins.

    `expected_sha256=None` skips the checksum (for other YOLOv5 checkpoints); the
    allow-list still applies.
    """
    import torch

    if not path.is_file():
        raise ModelError(f"{path}: checkpoint not found")
    if expected_sha256 is not None:
        actual = sha256_file(path)
        if actual != expected_sha256:
            raise ModelError(f"{path}: expected sha256 {expected_sha256}, got {actual}; "
                             f"not the official checkpoint (pass expected_sha256=None to skip)")
    try:
        # weights_only=True passed explicitly: TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD cannot override it.
        with torch.serialization.safe_globals(_stand_ins()):
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise UnsafeCheckpointError(
            f"{path}: refused to load: {_refusal_reason(str(exc), path)}. Only the allow-listed YOLOv5 "
            f"and torch.nn classes may appear; do not load this file with weights_only=False") from None
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("model"), PickledModule):
        keys = sorted(map(str, checkpoint))[:8] if isinstance(checkpoint, dict) else "-"
        raise ModelError(f"{path}: expected a YOLOv5 checkpoint dict with a 'model' module, got "
                         f"{type(checkpoint).__name__} with keys {keys}")
    return checkpoint


def _pickle_bytes(path: Path) -> bytes:
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            member = next((n for n in archive.namelist() if n.endswith("data.pkl")), None)
            return archive.read(member) if member else b""
    return path.read_bytes()


_STRING_OPS = {"SHORT_BINUNICODE", "BINUNICODE", "UNICODE", "BINUNICODE8", "STRING", "BINSTRING",
               "SHORT_BINSTRING"}
_NO_PUSH_OPS = {"PROTO", "FRAME", "MEMOIZE", "PUT", "BINPUT", "LONG_BINPUT"}


def pickled_globals(path: Path) -> list[str]:
    """Every global a pickle names, read with pickletools: nothing is executed.

    Covers torch zip checkpoints (archive/data.pkl) and bare pickles. STACK_GLOBAL operands
    are followed through the memo; one that cannot be resolved is listed as "?", and an
    extension-registry reference (EXT1/2/4) as "?ext:<code>", so that callers refuse them.
    """
    names: list[str] = []
    recent: list[str | None] = []        # what each push put on the stack, when it was a string
    memo: dict[int, str | None] = {}
    try:
        for opcode, arg, _ in pickletools.genops(_pickle_bytes(path)):
            op = opcode.name
            if op in ("GLOBAL", "INST"):
                names.append(str(arg).replace(" ", "."))
                recent.append(None)
            elif op == "STACK_GLOBAL":
                module, name = (recent[-2], recent[-1]) if len(recent) >= 2 else (None, None)
                names.append(f"{module}.{name}" if module and name else "?")
                recent.append(None)
            elif op.startswith("EXT"):
                names.append(f"?ext:{arg}")
                recent.append(None)
            elif op in _STRING_OPS:
                recent.append(str(arg))
            elif op in ("GET", "BINGET", "LONG_BINGET"):
                recent.append(memo.get(arg) if isinstance(arg, int) else None)
            elif op == "MEMOIZE":
                memo[len(memo)] = recent[-1] if recent else None
            elif op in ("PUT", "BINPUT", "LONG_BINPUT"):
                if isinstance(arg, int):
                    memo[arg] = recent[-1] if recent else None
            elif op not in _NO_PUSH_OPS:
                recent.append(None)
    except (ValueError, EOFError):
        names.append("?unreadable")  # a truncated or odd stream cannot be vouched for
    return list(dict.fromkeys(names))


# What ultralytics checkpoints written by `patrol transplant` and `patrol train` name.
_ULTRALYTICS_CHECKPOINT_PREFIXES = ("torch.nn.modules.", "ultralytics.nn.")
_ULTRALYTICS_CHECKPOINT_NAMES = frozenset({
    "__builtin__.set", "builtins.set", "collections.OrderedDict", "_codecs.encode",
    "torch._utils._rebuild_parameter", "torch._utils._rebuild_parameter_with_state",
    "torch._utils._rebuild_tensor_v2", "torch.Size", "torch.device",
    "torch.FloatStorage", "torch.HalfStorage", "torch.BFloat16Storage", "torch.DoubleStorage",
    "torch.LongStorage", "torch.IntStorage", "torch.ShortStorage", "torch.ByteStorage",
    "torch.CharStorage", "torch.BoolStorage",
    "numpy.core.multiarray.scalar", "numpy._core.multiarray.scalar", "numpy.dtype",
    "ultralytics.utils.IterableSimpleNamespace",  # training args in a mid-run last.pt; attributes only
    # A base and a taught branch served together (training/branches.py): a DetectionModel subclass
    # of ours that adds no state of its own to unpickle, only a forward.
    "training.branches.BranchedDetectionModel",
})


def check_ultralytics_checkpoint(path: Path) -> None:
    """Refuse a .pt before ultralytics unpickles it in full (it must, to rebuild the model) if
    its pickle names anything beyond torch/ultralytics module classes and tensor storage.

    Only those callables can then run while loading. This is what stands between
    `patrol train --base X.pt` / `patrol export X.pt` and a planted checkpoint.
    """
    if not zipfile.is_zipfile(path):
        raise UnsafeCheckpointError(f"{path}: expected a zip-format torch checkpoint (torch >= 1.6), "
                                    f"got another format; re-save it or start from `patrol transplant`")
    unknown = [name for name in pickled_globals(path)
               if name not in _ULTRALYTICS_CHECKPOINT_NAMES
               and not name.startswith(_ULTRALYTICS_CHECKPOINT_PREFIXES)]
    if unknown:
        raise UnsafeCheckpointError(
            f"{path}: refused to load: its pickle names {', '.join(unknown[:5])}, beyond the torch and "
            f"ultralytics module classes a checkpoint of ours holds. An official YOLOv5 .pt goes "
            f"through `patrol transplant` first")


def _refusal_reason(torch_message: str, path: Path) -> str:
    """What was refused: the unlisted globals the file names, else torch's own reason."""
    allowed = set(ALLOWED_CLASS_NAMES)
    unlisted = [name for name in pickled_globals(path)
                if name not in allowed and not name.startswith(_TORCH_DATA_PREFIXES)]
    if unlisted:
        return f"it names the global(s) {', '.join(unlisted[:5])}"
    match = re.search(r"GLOBAL ([\w.]+)", torch_message)
    if match:
        return f"it names the global {match.group(1)}"
    match = re.search(r"Unsupported operand (\d+)", torch_message)
    if match:
        return f"it uses pickle opcode {match.group(1)}, which the weights-only reader does not support"
    for line in torch_message.splitlines():
        if any(key in line for key in ("reduce", "Can only", "the pickle calls", "expected a dict")):
            return line.strip()
    return torch_message.strip().splitlines()[0] if torch_message.strip() else "unpickling failed"


def _module_tensors(module: PickledModule, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(name, tensor) pairs in state_dict order, walked from the stand-ins' dicts, no hooks run."""
    import torch

    skipped_buffers = module.__dict__.get("_non_persistent_buffers_set") or set()
    for kind in ("_parameters", "_buffers"):
        for name, value in (module.__dict__.get(kind) or {}).items():
            if value is None or (kind == "_buffers" and name in skipped_buffers):
                continue
            if not isinstance(value, torch.Tensor):
                raise ModelError(f"expected a tensor at {prefix}{name}, got {type(value).__name__}")
            yield prefix + name, value
    for name, child in (module.__dict__.get("_modules") or {}).items():
        if child is None:
            continue
        if not isinstance(child, PickledModule):
            raise ModelError(f"expected a module at {prefix}{name}, got {type(child).__name__}")
        yield from _module_tensors(child, f"{prefix}{name}.")


def yolov5_state_dict(checkpoint: dict[str, Any]) -> dict[str, Any]:
    """The checkpoint's tensors by state_dict name, float32 (the official files are fp16)."""
    model = checkpoint.get("ema") or checkpoint["model"]
    out = {}
    for name, tensor in _module_tensors(model):
        tensor = tensor.detach()
        out[name] = (tensor.float() if tensor.is_floating_point() else tensor.clone()).contiguous()
    if not out:
        raise ModelError("the checkpoint holds no tensors")
    return out


def yolov5_layer_types(checkpoint: dict[str, Any]) -> list[str]:
    """Class names of the checkpoint's top-level layers (model.model.0, 1, ...)."""
    layers = checkpoint["model"].__dict__["_modules"]["model"].__dict__["_modules"]
    return [layer.class_name for layer in layers.values()]


@dataclass(frozen=True)
class TransplantReport:
    source: str
    source_sha256: str
    architecture: str
    nc: int
    labels: list[str]
    transplanted: list[str] = field(repr=False)
    skipped_source: dict[str, str] = field(repr=False)   # source tensor -> why it was not copied
    untouched_target: list[str] = field(repr=False)      # target tensors left at initialisation
    layer_types_match: bool = True

    @property
    def counts(self) -> dict[str, int]:
        return {"transplanted": len(self.transplanted), "skipped_source": len(self.skipped_source),
                "untouched_target": len(self.untouched_target)}

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "counts": self.counts}


def match_tensors(source: dict[str, Any], target: dict[str, Any]
                  ) -> tuple[dict[str, Any], dict[str, str], list[str]]:
    """Split source tensors into (copyable by name and shape, skipped with a reason, target leftovers)."""
    copy: dict[str, Any] = {}
    skipped: dict[str, str] = {}
    for name, tensor in source.items():
        if name not in target:
            skipped[name] = "no tensor of that name in the target"
        elif tuple(tensor.shape) != tuple(target[name].shape):
            skipped[name] = f"shape {tuple(tensor.shape)} != target {tuple(target[name].shape)}"
        else:
            copy[name] = tensor
    untouched = [name for name in target if name not in copy]
    return copy, skipped, untouched


def transplant(source_path: Path, labels: list[str], *, expected_sha256: str | None = YOLOV5N_SHA256,
               architecture: str = TARGET_ARCHITECTURE) -> tuple[Any, TransplantReport]:
    """Build ultralytics' `architecture` with len(labels) classes and copy matching tensors into it.

    Returns the DetectionModel (float32, names set) and a report of what moved.
    """
    from vision.detectors.ultralytics_offline import import_ultralytics

    if not labels:
        raise ValueError("expected at least one label, got none")
    import_ultralytics()
    from torch import nn
    from ultralytics.nn.tasks import DetectionModel

    checkpoint = load_yolov5_checkpoint(source_path, expected_sha256)
    source = yolov5_state_dict(checkpoint)
    model = DetectionModel(cfg=architecture, nc=len(labels), verbose=False)
    model.names = dict(enumerate(labels))
    target = model.state_dict()
    copy, skipped, untouched = match_tensors(source, target)
    if not copy:
        raise ModelError(f"{source_path}: no tensor matches {architecture} by name and shape; "
                         f"is it a YOLOv5 detection checkpoint of the same scale?")
    result = model.load_state_dict(copy, strict=False)
    if result.unexpected_keys:
        raise ModelError(f"unexpected keys after matching: {result.unexpected_keys[:5]}")
    layers = cast("nn.Module", model.model)  # an nn.Sequential; torch types attributes as Tensor | Module
    target_types = [type(layer).__name__ for layer in layers.children()]
    source_types = yolov5_layer_types(checkpoint)
    # The head differs on purpose (anchor-based vs anchor-free Detect); the rest must not.
    types_match = source_types[:-1] == target_types[:-1]
    report = TransplantReport(
        source=str(source_path), source_sha256=sha256_file(source_path), architecture=architecture,
        nc=len(labels), labels=list(labels), transplanted=sorted(copy), skipped_source=skipped,
        untouched_target=untouched, layer_types_match=types_match)
    return model, report


def save_ultralytics_checkpoint(model: Any, report: TransplantReport, out_path: Path) -> Path:
    """Write an ultralytics checkpoint usable as `patrol train --base`; provenance under 'transplant'."""
    return save_checkpoint_with_provenance(model, report.architecture, {"transplant": report.as_dict()},
                                           out_path)


def save_checkpoint_with_provenance(model: Any, architecture: str, provenance: dict[str, Any],
                                    out_path: Path) -> Path:
    """An ultralytics checkpoint of `model` (as `patrol train --base` takes), with `provenance`
    saying where its weights came from stored beside them.

    Written in float32, not in half precision as `YOLO.save` writes: a rebuilt checkpoint must
    match its ONNX source within the export's parity tolerance (1e-4 on scores), which half
    precision weights miss.
    """
    from copy import deepcopy
    from datetime import UTC, datetime

    from vision.detectors.ultralytics_offline import import_ultralytics

    ultralytics = import_ultralytics()
    import torch

    out_path.parent.mkdir(parents=True, exist_ok=True)
    checkpoint = {**provenance, "train_args": {}, "ema": None,
                  "model": deepcopy(model).float().to(memory_format=torch.contiguous_format),
                  "architecture": architecture, "date": datetime.now(UTC).isoformat(),
                  "version": ultralytics.__version__,
                  "license": "AGPL-3.0 License (https://ultralytics.com/license)"}
    torch.save(checkpoint, out_path)
    return out_path
