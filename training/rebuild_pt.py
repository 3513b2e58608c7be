"""Rebuild trainable PyTorch weights from an installed model's ONNX export.

Why: fine-tuning (training/finetune.py, `patrol train --base`) must start from the model that
serves, but a model installed before exports shipped their checkpoint (the default model of
2026-11-23) has only its ONNX file. The export kept the module names (`model.2.cv1.conv.weight`)
and folded every batch norm into the convolution before it, so each `Conv` block's
convolution and bias are known exactly; what the fold lost is how that affine map was split
between the convolution and the batch norm.

The split is chosen so that the rebuilt model behaves in training as it does in serving:
each batch norm's running mean and variance are set to the per-channel mean and variance of
its convolution's output on calibration images (the model's own test images), and its scale
and shift so that, with those statistics, it adds exactly the exported bias. In evaluation the
rebuilt model therefore computes what the ONNX graph computes (up to float rounding), and in
training the batch statistics start close to the running ones, so the first steps of a
fine-tune do not jolt the activations. The result is checked against the ONNX file with the
export's own parity check (training/export.check_parity) before anything is written.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vision.errors import ModelError
from vision.model_registry import InstalledModel

PT_FILE = "model.pt"
# A channel whose convolution output hardly varies on the calibration images keeps this
# much variance, so the batch norm's scale never divides by ~0.
MIN_VARIANCE = 1e-6


@dataclass(frozen=True)
class RebuildReport:
    """What was rebuilt from where, for the card's provenance."""

    onnx_sha256: str
    architecture: str
    labels: list[str]
    conv_blocks: int
    plain_tensors: int
    calibration_images: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def onnx_initializers(onnx_path: Path) -> dict[str, np.ndarray]:
    """The graph's named weights (float32 arrays), by the names the export kept.

    A convolution's bias is filed under `<its weight's name minus .weight>.bias` from the Conv
    node's own bias input: the exporter shares one initializer between equal biases (an
    untrained model's zeros) and the simplifier drops all-zero ones (zeros here)."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(onnx_path)).graph
    tensors = {init.name: numpy_helper.to_array(init).astype(np.float32)  # writable copies
               for init in graph.initializer}
    for node in graph.node:
        weight_name = node.input[1] if node.op_type == "Conv" else ""
        if not weight_name.endswith(".weight") or weight_name not in tensors:
            continue
        bias_name = weight_name.removesuffix(".weight") + ".bias"
        if len(node.input) > 2 and node.input[2] in tensors:
            tensors[bias_name] = tensors[node.input[2]].copy()
        else:
            tensors[bias_name] = np.zeros(tensors[weight_name].shape[0], dtype=np.float32)
    return tensors


def _conv_blocks(model: Any) -> dict[str, Any]:
    """ultralytics `Conv` modules (convolution + batch norm) by their state-dict prefix."""
    from ultralytics.nn.modules.conv import Conv

    return {name: module for name, module in model.named_modules()
            if isinstance(module, Conv) and hasattr(module, "bn")}


def load_folded_weights(model: Any, tensors: dict[str, np.ndarray]) -> tuple[int, int]:
    """Copy the ONNX tensors into `model`, every batch norm an identity plus the folded bias.

    Returns (Conv blocks filled, plain tensors copied). Raises ModelError when any of the
    model's trainable tensors has no counterpart of its shape in the graph.
    """
    import torch

    blocks = _conv_blocks(model)
    filled: set[str] = set()
    with torch.no_grad():
        for prefix, block in blocks.items():
            weight, bias = tensors.get(f"{prefix}.conv.weight"), tensors.get(f"{prefix}.conv.bias")
            if weight is None or bias is None or tuple(weight.shape) != tuple(block.conv.weight.shape):
                raise ModelError(f"the ONNX graph has no folded convolution for {prefix} of shape "
                                 f"{tuple(block.conv.weight.shape)}; is it this architecture's export?")
            block.conv.weight.copy_(torch.from_numpy(weight))
            bn = block.bn
            bn.weight.fill_(1.0)
            bn.bias.copy_(torch.from_numpy(bias))
            bn.running_mean.zero_()
            bn.running_var.fill_(1.0 - bn.eps)
            filled.update(f"{prefix}.{part}" for part in ("conv.weight", "bn.weight", "bn.bias",
                                                          "bn.running_mean", "bn.running_var",
                                                          "bn.num_batches_tracked"))
        plain = 0
        for name, param in model.state_dict().items():
            if name in filled:
                continue
            source = tensors.get(name)
            if source is None or tuple(source.shape) != tuple(param.shape):
                raise ModelError(f"the ONNX graph has no tensor {name} of shape {tuple(param.shape)}")
            param.copy_(torch.from_numpy(source))
            plain += 1
    return len(blocks), plain


def calibrate_batch_norms(model: Any, batches: list[np.ndarray]) -> None:
    """Give each batch norm its convolution's output statistics on `batches`, keeping the
    block's function (evaluation mode) unchanged: scale = std, shift = mean + folded bias."""
    import torch

    blocks = _conv_blocks(model)
    sums: dict[str, torch.Tensor] = {}
    squares: dict[str, torch.Tensor] = {}
    counts: dict[str, int] = {}

    def hook_for(prefix: str) -> Any:
        def hook(_module: Any, _inputs: Any, output: torch.Tensor) -> None:
            flat = output.detach().double().transpose(0, 1).reshape(output.shape[1], -1)
            sums[prefix] = sums.get(prefix, 0) + flat.sum(dim=1)
            squares[prefix] = squares.get(prefix, 0) + (flat * flat).sum(dim=1)
            counts[prefix] = counts.get(prefix, 0) + flat.shape[1]
        return hook

    handles = [block.conv.register_forward_hook(hook_for(prefix)) for prefix, block in blocks.items()]
    model.eval()
    try:
        with torch.no_grad():
            for batch in batches:
                model(torch.from_numpy(batch))
    finally:
        for handle in handles:
            handle.remove()
    with torch.no_grad():
        for prefix, block in blocks.items():
            bn = block.bn
            mean = sums[prefix] / counts[prefix]
            variance = (squares[prefix] / counts[prefix] - mean * mean).clamp(min=MIN_VARIANCE)
            bias = bn.bias.detach().double().clone()
            bn.running_mean.copy_(mean.float())
            bn.running_var.copy_((variance - bn.eps).clamp(min=MIN_VARIANCE).float())
            # (y - mean) / sqrt(var + eps) * scale + shift == y + bias, for every y
            scale = torch.sqrt(bn.running_var.double() + bn.eps)
            bn.weight.copy_(scale.float())
            bn.bias.copy_((mean + bias).float())


def calibration_batches(images: list[np.ndarray], imgsz: int, batch: int = 8) -> list[np.ndarray]:
    """Letterboxed square NCHW float32 batches in [0, 1], as the served model sees its input."""
    from vision.preprocess import letterbox_batch

    out = []
    for start in range(0, len(images), batch):
        tensor, _ = letterbox_batch(images[start:start + batch], imgsz)
        out.append(tensor)
    return out


def rebuild_checkpoint(onnx_path: Path, labels: list[str], architecture: str, imgsz: int,
                       images: list[np.ndarray], out_path: Path) -> RebuildReport:
    """Rebuild `architecture` from the ONNX file, calibrate it on `images`, save a checkpoint.

    The checkpoint is what `patrol train --base` takes; nothing is returned unless it was saved.
    """
    from training.transplant import save_checkpoint_with_provenance
    from vision.detectors.ultralytics_offline import import_ultralytics
    from vision.model_registry import sha256_file

    if not images:
        raise ModelError("expected calibration images to rebuild batch norms from, got none")
    import_ultralytics()
    from ultralytics.nn.tasks import DetectionModel

    model = DetectionModel(cfg=architecture if architecture.endswith(".yaml") else f"{architecture}.yaml",
                           nc=len(labels), verbose=False)
    model.names = dict(enumerate(labels))
    blocks, plain = load_folded_weights(model, onnx_initializers(onnx_path))
    calibrate_batch_norms(model, calibration_batches(images, imgsz))
    report = RebuildReport(onnx_sha256=sha256_file(onnx_path), architecture=architecture, labels=list(labels),
                           conv_blocks=blocks, plain_tensors=plain, calibration_images=len(images))
    save_checkpoint_with_provenance(model, report.architecture, {"rebuilt_from_onnx": report.as_dict()},
                                    out_path)
    return report


def calibration_images(folders: list[Path], count: int) -> tuple[list[np.ndarray], list[str]]:
    """`count` images spread evenly over every image under `folders` (sorted, so the same
    folders give the same images), with their paths relative to their folder for the card."""
    import cv2

    from training.export import IMAGE_SUFFIXES

    found: list[tuple[Path, Path]] = []
    for folder in folders:
        if not folder.is_dir():
            raise ModelError(f"calibration folder {folder} does not exist")
        found += [(folder, p) for p in sorted(folder.rglob("*")) if p.suffix.lower() in IMAGE_SUFFIXES]
    if not found:
        raise ModelError(f"no images under {', '.join(map(str, folders))}")
    picks = sorted({int(i) for i in np.linspace(0, len(found) - 1, num=min(count, len(found))).round()})
    chosen = [found[i] for i in picks]
    images, names = [], []
    for folder, path in chosen:
        image = cv2.imread(str(path))
        if image is not None:
            images.append(image)
            # The folder's last parts (dataset/split/images) name it without this machine's path.
            names.append(f"{'/'.join(folder.resolve().parts[-3:])}::{path.relative_to(folder).as_posix()}")
    return images, names


def rebuild_installed(model: InstalledModel, folders: list[Path], count: int = 64) -> InstalledModel:
    """Rebuild `model`'s PyTorch weights from its ONNX file, check them against it with the
    export's parity check, and ship them beside it (model.pt, hashed in the card)."""
    import tempfile

    from training.export import check_parity
    from training.registry import attach_pytorch_weights

    model.verify()
    images, names = calibration_images(folders, count)
    card = model.card
    with tempfile.TemporaryDirectory(prefix="patrol-rebuild-") as tmp:
        checkpoint = Path(tmp) / PT_FILE
        report = rebuild_checkpoint(model.weights, card.labels, card.architecture or "yolov5nu",
                                    card.input_size, images, checkpoint)
        # Parity on images the calibration also saw is fine: calibration only splits each
        # block's affine map; it cannot bend the function towards these images.
        parity = check_parity(checkpoint, model.weights, images[:: max(1, len(images) // 8)][:8],
                              card.input_size)
        if not parity.passed:
            raise ModelError(f"the rebuilt weights disagree with {model.weights.name}: "
                             + "; ".join(parity.failures))
        sources = sorted({name.split("::")[0] for name in names})
        details = {"rebuild": report.as_dict(), "calibration": {"images": len(names), "folders": sources},
                   "parity": parity.as_dict()}
        return attach_pytorch_weights(
            model, checkpoint,
            origin="rebuilt from model.onnx (batch norms re-split on calibration images, "
                   "training/rebuild_pt.py); the training run's own checkpoint was not kept",
            details=details)
