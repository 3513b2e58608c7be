"""Export a trained .pt to ONNX (dynamic batch) and prove the ONNX model is the same model.

Three checks, on sample images (the dataset's val images, else synthetic ones); the export
fails when any is outside its tolerance:
1. Raw outputs: the same letterboxed batch through the PyTorch model and through ONNX
   Runtime's CPU execution provider; the largest difference in box coordinates (network
   pixels) and in class scores.
2. Dynamic batch: the whole batch at once vs one image at a time through ONNX Runtime.
3. Detections: our serving backend (`OnnxRuntimeDetector`) vs ultralytics' own predict on
   the .pt (`UltralyticsDetector`, square letterbox): every box scored clearly above the
   floor on one side has a partner of the same class on the other with IoU >= 0.99 or
   corners within 1 px, and scores within 1e-3. Boxes within SCORE_BAND of the floor may
   fall on either side of it and are not required to match.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vision.errors import ModelError

# onnxruntime's telemetry is switched off by vision/__init__.py (imported above).

OPSET = 17                 # onnxruntime >= 1.14, TensorRT 8.6+, OpenVINO: all run opset 17
RAW_BOX_TOLERANCE_PX = 0.05
RAW_SCORE_TOLERANCE = 1e-4
BATCH_TOLERANCE = 1e-3     # batched vs single: different kernels, same maths
BOX_MIN_IOU = 0.99
BOX_TOLERANCE_PX = 1.0
SCORE_TOLERANCE = 1e-3
SCORE_BAND = 2e-3          # boxes this close to the floor may be kept by one backend only
CHECK_CONF = 0.001         # floor for the detections check: low, so that even a barely trained
                           # model yields boxes to compare (ultralytics validates at 0.001 too)
CHECK_MAX_DET = 100


class ExportError(ModelError):
    """The ONNX export failed or does not agree with the PyTorch model."""


@dataclass(frozen=True)
class ParityReport:
    images: int
    raw_max_box_diff_px: float
    raw_max_score_diff: float
    batch_max_diff: float
    boxes_compared: int
    boxes_unmatched: int
    worst_box_iou: float | None
    worst_box_corner_px: float | None
    worst_score_diff: float | None
    conf: float
    tolerances: dict[str, float] = field(default_factory=lambda: {
        "raw_box_px": RAW_BOX_TOLERANCE_PX, "raw_score": RAW_SCORE_TOLERANCE,
        "batch": BATCH_TOLERANCE, "box_min_iou": BOX_MIN_IOU, "box_px": BOX_TOLERANCE_PX,
        "score": SCORE_TOLERANCE, "score_band": SCORE_BAND})
    failures: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed}


def export_onnx(weights: Path, out_path: Path, imgsz: int) -> Path:
    """ultralytics export (dynamic batch and size, onnxslim, opset pinned) to `out_path`."""
    from training.transplant import check_ultralytics_checkpoint
    from vision.detectors.ultralytics_offline import import_ultralytics

    check_ultralytics_checkpoint(weights)
    ultralytics = import_ultralytics()
    with tempfile.TemporaryDirectory(prefix="patrol-export-") as tmp:
        # ultralytics writes beside the weights; export a copy so the run folder stays as it was.
        staged = Path(tmp) / "model.pt"
        shutil.copyfile(weights, staged)
        try:
            produced = Path(ultralytics.YOLO(str(staged), task="detect").export(
                format="onnx", dynamic=True, simplify=True, opset=OPSET, imgsz=imgsz, batch=1,
                device="cpu", verbose=False))
        except (RuntimeError, ValueError, AssertionError, OSError) as exc:
            raise ExportError(f"ONNX export of {weights} failed: {exc}") from exc
        out_path.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(produced, out_path)
    return out_path


# -- comparison -----------------------------------------------------------------------------

def _iou(a: np.ndarray, b: np.ndarray) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else float(np.all(a == b))


def compare_detections(reference: Any, candidate: Any, conf: float) -> tuple[int, int, list[float]]:
    """Match two Detections of one image. Returns (compared, unmatched, [worst iou, corner px, score]).

    Greedy: reference boxes by descending score take the unused candidate box of the same
    class with the highest IoU. A box is required to match only if its score is above
    conf + SCORE_BAND; its partner then must satisfy the box and score tolerances.
    """
    used = np.zeros(len(candidate.xyxy), dtype=bool)
    compared = unmatched = 0
    worst = [1.0, 0.0, 0.0]
    order = np.argsort(-reference.confidence)
    for i in order:
        box, cls, score = reference.xyxy[i], reference.class_id[i], float(reference.confidence[i])
        best_j, best_iou = -1, -1.0
        for j in np.flatnonzero((candidate.class_id == cls) & ~used):
            iou = _iou(box, candidate.xyxy[j])
            if iou > best_iou:
                best_j, best_iou = int(j), iou
        required = score > conf + SCORE_BAND
        corner = float(np.abs(candidate.xyxy[best_j] - box).max()) if best_j >= 0 else float("inf")
        close = best_j >= 0 and (best_iou >= BOX_MIN_IOU or corner <= BOX_TOLERANCE_PX)
        if close:
            used[best_j] = True
            compared += 1
            worst = [min(worst[0], best_iou), max(worst[1], corner),
                     max(worst[2], abs(score - float(candidate.confidence[best_j])))]
        elif required:
            unmatched += 1
    # Candidate boxes clearly above the floor that nothing took.
    leftover = (~used) & (candidate.confidence > conf + SCORE_BAND)
    return compared, unmatched + int(leftover.sum()), worst


def _raw_outputs(weights: Path, onnx_path: Path, images: list[np.ndarray], imgsz: int
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(torch, onnx batched, onnx one by one) raw outputs (N, 4 + nc, anchors) on one letterboxed batch."""
    import onnxruntime as ort
    import torch

    from vision.detectors.ultralytics_offline import import_ultralytics
    from vision.preprocess import letterbox_batch

    ultralytics = import_ultralytics()
    blob, _ = letterbox_batch(images, imgsz)
    model = ultralytics.YOLO(str(weights), task="detect").model.float().eval()
    with torch.no_grad():
        out = model(torch.from_numpy(blob))
    reference = (out[0] if isinstance(out, list | tuple) else out).numpy()
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    batched = session.run(None, {name: blob})[0]
    single = np.concatenate([session.run(None, {name: blob[i:i + 1]})[0] for i in range(len(blob))])
    return reference, batched, single


def check_parity(weights: Path, onnx_path: Path, images: list[np.ndarray], imgsz: int,
                 conf: float = CHECK_CONF) -> ParityReport:
    """Run the three checks of the module doc; the report lists every tolerance broken."""
    from training.transplant import check_ultralytics_checkpoint
    from vision.detectors import load_detector
    from vision.detectors.base import OnnxRuntimeConfig, UltralyticsConfig

    if not images:
        raise ExportError("expected at least one sample image for the parity check, got none")
    check_ultralytics_checkpoint(weights)
    reference, batched, single = _raw_outputs(weights, onnx_path, images, imgsz)
    failures = []
    if reference.shape != batched.shape:
        failures.append(f"raw output shape: torch {reference.shape} vs onnx {batched.shape}")
        raw_box = raw_score = batch_diff = float("inf")
    else:
        raw_box = float(np.abs(reference[:, :4] - batched[:, :4]).max())
        raw_score = float(np.abs(reference[:, 4:] - batched[:, 4:]).max())
        batch_diff = float(np.abs(batched - single).max())
        if raw_box > RAW_BOX_TOLERANCE_PX:
            failures.append(f"raw boxes differ by {raw_box:.4g} px > {RAW_BOX_TOLERANCE_PX}")
        if raw_score > RAW_SCORE_TOLERANCE:
            failures.append(f"raw scores differ by {raw_score:.3g} > {RAW_SCORE_TOLERANCE}")
        if batch_diff > BATCH_TOLERANCE:
            failures.append(f"batched vs single ONNX outputs differ by {batch_diff:.3g} > {BATCH_TOLERANCE}")

    common = {"imgsz": imgsz, "conf": conf, "max_det": CHECK_MAX_DET}
    torch_detector = load_detector(UltralyticsConfig(model=weights, **common), warmup=False)
    onnx_detector = load_detector(OnnxRuntimeConfig(model=onnx_path, device="cpu", **common), warmup=False)
    compared = unmatched = 0
    worst = [1.0, 0.0, 0.0]
    for ref, cand in zip(torch_detector.predict_batch(images), onnx_detector.predict_batch(images),
                         strict=True):
        c, u, w = compare_detections(ref, cand, conf)
        compared, unmatched = compared + c, unmatched + u
        if c:
            worst = [min(worst[0], w[0]), max(worst[1], w[1]), max(worst[2], w[2])]
    if unmatched:
        failures.append(f"{unmatched} boxes scored above {conf + SCORE_BAND:g} by one backend have no "
                        f"partner within IoU {BOX_MIN_IOU} / {BOX_TOLERANCE_PX} px in the other")
    if compared and worst[2] > SCORE_TOLERANCE:
        failures.append(f"matched scores differ by up to {worst[2]:.3g} > {SCORE_TOLERANCE}")
    return ParityReport(
        images=len(images), raw_max_box_diff_px=raw_box, raw_max_score_diff=raw_score,
        batch_max_diff=batch_diff, boxes_compared=compared, boxes_unmatched=unmatched,
        worst_box_iou=worst[0] if compared else None, worst_box_corner_px=worst[1] if compared else None,
        worst_score_diff=worst[2] if compared else None, conf=conf, failures=failures)


# -- sample images --------------------------------------------------------------------------

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


def synthetic_samples(count: int = 4, seed: int = 0) -> list[np.ndarray]:
    """Noise with bright blocks, in several aspect ratios (exercises the letterbox padding)."""
    rng = np.random.default_rng(seed)
    images = []
    for i in range(count):
        h, w = (120 + 40 * i, 200 - 30 * i)
        image = rng.integers(0, 255, size=(h, w, 3), dtype=np.uint8)
        image[h // 4: h // 2, w // 4: w // 2] = (0, 0, 230)
        images.append(image)
    return images


def sample_images(folder: Path | None, data_yaml: Path | None,
                  count: int = 8) -> tuple[list[np.ndarray], str]:
    """Up to `count` images from `folder`, else the dataset's val split, else synthetic ones."""
    import cv2

    candidates: list[Path] = []
    source = "synthetic"
    if folder is not None:
        candidates = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        source = folder.as_posix() if not folder.is_absolute() else folder.name  # no machine paths in cards
        if not candidates:
            raise ExportError(f"no images ({', '.join(IMAGE_SUFFIXES)}) under {folder}")
    elif data_yaml is not None and data_yaml.is_file():
        import yaml

        data = yaml.safe_load(data_yaml.read_text(encoding="utf-8")) or {}
        root = Path(data.get("path") or data_yaml.parent)
        root = root if root.is_absolute() else data_yaml.parent / root
        val = data.get("val")
        for entry in [val] if isinstance(val, str) else (val or []):
            path = Path(entry) if Path(entry).is_absolute() else root / entry
            if path.is_dir():
                candidates += sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        source = f"{data_yaml.parent.name} val split" if candidates else source
    images = [image for p in candidates[:count] if (image := cv2.imread(str(p))) is not None]
    if folder is not None and not images:
        raise ExportError(f"none of the images under {folder} could be read")
    return (images, source) if images else (synthetic_samples(), "synthetic")


# -- the model folder -----------------------------------------------------------------------

@dataclass(frozen=True)
class ExportResult:
    folder: Path
    onnx: Path
    card: Any  # vision.model_card.ModelCard
    parity: ParityReport


def _read_checkpoint_facts(weights: Path) -> dict[str, Any]:
    from training.transplant import check_ultralytics_checkpoint
    from vision.detectors.ultralytics_offline import import_ultralytics

    check_ultralytics_checkpoint(weights)

    yolo = import_ultralytics().YOLO(str(weights), task="detect")
    ckpt = yolo.ckpt if isinstance(getattr(yolo, "ckpt", None), dict) else {}
    train_args = ckpt.get("train_args") or {}
    yaml_file = str((getattr(yolo.model, "yaml", None) or {}).get("yaml_file", ""))
    labels = [str(yolo.names[i]) for i in range(len(yolo.names))]
    return {"labels": labels, "train_args": train_args, "architecture": Path(yaml_file).stem,
            "imgsz": train_args.get("imgsz"), "data": train_args.get("data"),
            "branched": ckpt.get("branched")}


def _run_record_for(weights: Path) -> dict[str, Any] | None:
    """The run_record.json of the run that produced runs/<name>/weights/<file>.pt, if any."""
    from training.run_record import RECORD_JSON

    path = weights.resolve().parent.parent / RECORD_JSON
    if not path.is_file():
        return None
    import json

    return json.loads(path.read_text(encoding="utf-8"))


def default_label_map(labels: list[str], dataset_map: dict[str, str | None] | None) -> dict[str, str | None]:
    """The dataset card's label map; without one, labels that are taxonomy keys map to themselves."""
    from vision.taxonomy import Taxonomy

    if dataset_map is not None:
        missing = [label for label in labels if label not in dataset_map]
        if missing:
            raise ExportError(f"the dataset card's label map lacks the model's labels {missing}")
        return {label: dataset_map[label] for label in labels}
    taxonomy = Taxonomy.default()
    return {label: (label if label in taxonomy else None) for label in labels}


def export_model(weights: Path, name: str, models_dir: Path | None = None, *, imgsz: int | None = None,
                 samples: Path | None = None, version: str | None = None, overwrite: bool = False,
                 conf: float = CHECK_CONF) -> ExportResult:
    """Export, check against PyTorch, and install as models_dir/name/{model.onnx, card.json, card.md}.

    Nothing is installed unless the parity check passes. The card is written by
    training.registry (the one writer of model folders); evaluation metrics come later.
    """
    from datetime import UTC, datetime

    from training.registry import install_model
    from training.run_record import relative_path
    from vision.model_registry import sha256_file

    if not weights.is_file():
        raise ExportError(f"weights {weights} not found")
    facts = _read_checkpoint_facts(weights)
    size = int(imgsz or facts["imgsz"] or 640)
    record = _run_record_for(weights)
    # The card names the run and the weights within it, not where they lay on this machine.
    run_dir = weights.resolve().parent.parent if record is not None else None
    run_id = (record or {}).get("run_id") or (run_dir.name if run_dir is not None else None)
    data_record = (record or {}).get("data") or {}
    data_yaml = Path(facts["data"]) if facts["data"] else None
    label_map = default_label_map(facts["labels"], data_record.get("label_map"))
    with tempfile.TemporaryDirectory(prefix="patrol-export-") as tmp:
        staged = export_onnx(weights, Path(tmp) / "model.onnx", size)
        images, source = sample_images(samples, data_yaml)
        parity = check_parity(weights, staged, images, size, conf=conf)
        if not parity.passed:
            raise ExportError(f"the ONNX export of {weights} disagrees with the PyTorch model: "
                              + "; ".join(parity.failures))
        fields = {
            "name": name,
            "version": version or datetime.now(UTC).strftime("%Y.%m.%d-%H%M"),
            "architecture": facts["architecture"],
            "input_size": size,
            "labels": facts["labels"],
            "label_map": label_map,
            "trained_classes": sorted({key for key in label_map.values() if key is not None}),
            "dataset": {k: data_record[k] for k in ("name", "version", "hash", "hash_source", "data_yaml")
                        if data_record.get(k) is not None},
            "training": {"run_id": run_id,
                         "weights": relative_path(weights, run_dir) if run_dir is not None else weights.name,
                         "weights_sha256": sha256_file(weights),
                         "run": record or {},
                         # a base and a taught branch served together (training/branches.py)
                         **({"branched": facts["branched"]} if facts["branched"] else {}),
                         "export": {"opset": OPSET, "dynamic": True, "simplify": True, "samples": source,
                                    "parity": parity.as_dict()}},
            "attribution": list(data_record.get("attribution") or []),
        }
        installed = install_model(staged, fields, models_dir=models_dir, overwrite=overwrite,
                                  checkpoint=weights,
                                  checkpoint_origin=f"the weights the ONNX file was exported from "
                                                    f"({fields['training']['weights']})")
    return ExportResult(folder=installed.folder, onnx=installed.weights, card=installed.card, parity=parity)
