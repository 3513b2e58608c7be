"""`patrol evaluate`: run an installed ONNX model through our own Pipeline over a dataset split
and report what ships: per-class AP, precision and recall at the operating thresholds, false
alarms on negative images, PR curves and a confusion matrix.

How a run goes:
1. The model folder is resolved and its weights' sha256 verified (vision.model_registry).
2. The Pipeline is built from a copy of the card whose per-label thresholds are all the
   score floor (0.001), so it returns every candidate the backend keeps; its letterbox,
   decoding, NMS, tiling and label map are the serving ones.
3. Ground truth (YOLO labels) and predictions are both mapped onto taxonomy keys: ground
   truth through the dataset card's label map (or, for a plain data.yaml, names that are
   taxonomy keys or labels of the model), predictions through the model card's. Helper
   labels (mapped to null) are no class of their own in `per_class`, which lists every key
   the model or the dataset maps onto: a key with ground truth that the model never
   predicts scores AP 0 there, and `map50` is the mean over keys with ground truth.
4. AP50 and AP50-95 per key come from pycocotools (training.metrics) on the floor-level
   predictions; precision, recall and false alarms from the predictions at or above each
   label's operating threshold (the card's, else the taxonomy default).

Imports neither torch nor ultralytics.
"""

from __future__ import annotations

import importlib.metadata
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from training.datasets.card import CARD_JSON, DatasetCard, dataset_hash
from training.datasets.errors import DatasetError
from training.datasets.labels import LabelIssue, read_label_file
from training.datasets.yolo import DataYaml, label_path_for, read_data_yaml
from training.metrics import (
    IOU_MATCH,
    CocoEvaluation,
    ImageBoxes,
    ThresholdChoice,
    best_f1_threshold,
    confusion_matrix,
)
from vision.detectors.base import Detector
from vision.model_card import ModelCard
from vision.model_registry import InstalledModel, sha256_file
from vision.taxonomy import Taxonomy

SCORE_FLOOR = 0.001
MIN_CHOSEN_THRESHOLD = 0.05
ProgressFn = Callable[[int, int], None]


# -- the dataset side ---------------------------------------------------------------------


@dataclass(frozen=True)
class EvalData:
    """One split of a dataset, with how its class names map onto taxonomy keys."""

    name: str
    hash: str
    hash_source: str  # "dataset_card" or "files"
    split: str
    names: tuple[str, ...]
    label_map: dict[str, str | None]
    images: tuple[Path, ...]
    # A built dataset's sources: its files are named `<source>__<original name>` (datasets build).
    sources: tuple[str, ...] = ()


def _hash_plain_dataset(data: DataYaml) -> str:
    """The dataset card's hash rule applied to a data.yaml without a card: every image and label
    file of every split, paths relative to the data.yaml's folder, plus the names."""
    base = data.path.parent.resolve()
    files: list[tuple[str, str]] = []
    seen: set[Path] = set()
    for images in data.existing_splits().values():
        for image in images:
            for path in (image, label_path_for(image)):
                resolved = path.resolve()
                if resolved in seen or not resolved.is_file():
                    continue
                seen.add(resolved)
                rel = resolved.relative_to(base).as_posix() if resolved.is_relative_to(base) \
                    else resolved.as_posix()
                files.append((rel, sha256_file(resolved)))
    return dataset_hash(files, data.names)


def open_eval_data(data: str | Path, split: str, card: ModelCard, taxonomy: Taxonomy) -> EvalData:
    """A built dataset folder, its data.yaml, or any YOLO data.yaml whose names are taxonomy keys
    (names that are the model's own labels map through the model card)."""
    path = Path(data)
    yaml_path = path / "data.yaml" if path.is_dir() else path
    parsed = read_data_yaml(yaml_path)
    card_path = yaml_path.parent / CARD_JSON
    if card_path.is_file():
        dataset_card = DatasetCard.read(card_path)
        if list(parsed.names) != dataset_card.labels:
            raise DatasetError(f"{yaml_path}: names {list(parsed.names)} differ from its dataset card's "
                               f"labels {dataset_card.labels}; rebuild the dataset")
        name, digest, source = dataset_card.name, dataset_card.hash, "dataset_card"
        label_map = dict(dataset_card.label_map)
        sources = tuple(source.name for source in dataset_card.sources)
    else:
        sources = ()
        label_map = {}
        unknown = []
        for class_name in parsed.names:
            if class_name in taxonomy:
                label_map[class_name] = class_name
            elif class_name in card.label_map:
                label_map[class_name] = card.label_map[class_name]
            else:
                unknown.append(class_name)
        if unknown:
            raise DatasetError(
                f"{yaml_path}: class names {unknown} are neither taxonomy keys ({', '.join(taxonomy.keys)}) "
                f"nor labels of model {card.name!r} ({', '.join(card.labels)}); rename them or build the "
                f"dataset with `patrol datasets build` so its card maps them")
        name, digest, source = yaml_path.parent.name, _hash_plain_dataset(parsed), "files"
    unknown_keys = sorted({k for k in label_map.values() if k is not None and k not in taxonomy})
    if unknown_keys:
        raise DatasetError(f"{yaml_path}: maps onto unknown taxonomy keys {unknown_keys}")
    images = parsed.images(split)
    if not images:
        raise DatasetError(f"{yaml_path}: the {split!r} split has no images")
    return EvalData(name=name, hash=digest, hash_source=source, split=split, names=parsed.names,
                    label_map=label_map, images=images, sources=sources)


# -- running the model --------------------------------------------------------------------


@dataclass(frozen=True)
class ImageResult:
    """Ground truth and floor-level predictions of one image, in pixels."""

    path: Path
    resolution_wh: tuple[int, int]
    gt_xyxy: np.ndarray
    gt_names: tuple[str, ...]        # dataset class names
    pred_xyxy: np.ndarray
    pred_scores: np.ndarray
    pred_labels: tuple[str, ...]     # model labels
    pred_keys: tuple[str, ...]       # taxonomy keys


@dataclass(frozen=True)
class Collected:
    data: EvalData
    images: tuple[ImageResult, ...]
    label_issues: tuple[LabelIssue, ...]
    unreadable: tuple[str, ...]
    engine: str = "onnxruntime"  # what ran the model (Pipeline.engine): figures differ by runtime


def evaluation_card(card: ModelCard, floor: float = SCORE_FLOOR) -> ModelCard:
    """The card with every operating threshold at `floor`: the Pipeline then keeps all candidates."""
    return card.model_copy(update={"thresholds": dict.fromkeys(card.labels, floor)})


def collect(model: InstalledModel, data: EvalData, taxonomy: Taxonomy, *, floor: float = SCORE_FLOOR,
            workers: int = 2, progress: ProgressFn | None = None, detector: Detector | None = None,
            engine: str = "onnxruntime") -> Collected:
    """Run the model over every image of the split and read each image's ground truth.

    `detector` replaces the model's ONNX weights (tests use a detector with known answers);
    the Pipeline around it is the same. `engine` runs the weights (vision.detectors.engines):
    ONNX Runtime by default, not the serving "auto", because the cards' figures are ONNX
    Runtime's and a fresh evaluation must reproduce them exactly; OpenVINO's bf16 moves scores
    in the second decimal.
    """
    from vision.pipeline import Pipeline

    floor_card = evaluation_card(model.card, floor)
    images: list[ImageResult] = []
    issues: list[LabelIssue] = []
    unreadable: list[str] = []
    valid_ids = range(len(data.names))
    if detector is None:
        pipeline = Pipeline.from_installed(InstalledModel(model.name, model.folder, floor_card), taxonomy,
                                           engine=engine)
    else:
        pipeline = Pipeline(detector, floor_card, taxonomy)
    with pipeline:
        results = pipeline.detect_many(data.images, workers=workers, tiled=False)
        for done, result in enumerate(results, start=1):
            if progress is not None:
                progress(done, len(data.images))
            if result.error is not None or result.detections is None or result.resolution_wh is None:
                reason = result.error.detail if result.error else "no result"
                unreadable.append(f"{result.path}: {reason}")
                continue
            width, height = result.resolution_wh
            boxes, file_issues = read_label_file(label_path_for(Path(result.path)), valid_ids)
            issues.extend(file_issues)
            gt_xyxy = np.array([b.xyxy_pixels(width, height) for b in boxes], dtype=np.float64).reshape(-1, 4)
            dets = result.detections
            images.append(ImageResult(
                path=Path(result.path), resolution_wh=(width, height),
                gt_xyxy=gt_xyxy, gt_names=tuple(data.names[b.class_id] for b in boxes),
                pred_xyxy=dets.xyxy.astype(np.float64), pred_scores=dets.confidence.astype(np.float64),
                pred_labels=tuple(str(v) for v in dets.data.get("class_name", [])),
                pred_keys=tuple(str(v) for v in dets.data.get("class_key", []))))
    return Collected(data, tuple(images), tuple(issues), tuple(unreadable), pipeline.engine)


# -- metrics ------------------------------------------------------------------------------


def operating_thresholds(card: ModelCard, taxonomy: Taxonomy) -> dict[str, float]:
    """The threshold each non-helper label is used at (card, else taxonomy default)."""
    return {label: card.threshold_for(label, taxonomy) for label in card.labels
            if card.label_map.get(label) is not None}


def _ordered_keys(keys: set[str], taxonomy: Taxonomy) -> list[str]:
    return [k for k in taxonomy.keys if k in keys]


def _gt_in_key_space(image: ImageResult, label_map: dict[str, str | None]) -> ImageBoxes:
    keys = [label_map[n] for n in image.gt_names]
    keep = np.array([k is not None for k in keys], dtype=bool)
    return ImageBoxes(image.gt_xyxy[keep], tuple(k for k in keys if k is not None))


def _preds_in_key_space(image: ImageResult, thresholds: dict[str, float] | None) -> ImageBoxes:
    keep = np.ones(len(image.pred_scores), dtype=bool)
    if thresholds is not None:
        keep = np.array([score >= thresholds.get(label, math.inf)
                         for score, label in zip(image.pred_scores, image.pred_labels, strict=True)],
                        dtype=bool).reshape(-1)
    kept_keys = tuple(k for k, ok in zip(image.pred_keys, keep, strict=True) if ok)
    return ImageBoxes(image.pred_xyxy[keep], kept_keys, image.pred_scores[keep])


def _round(value: float | None) -> float | None:
    return None if value is None else round(float(value), 6)


@dataclass(frozen=True)
class Report:
    """The JSON object `patrol evaluate --json` prints, and what the plots need."""

    summary: dict[str, Any]
    keys: tuple[str, ...]
    floor_eval: CocoEvaluation
    confusion: np.ndarray
    confusion_rows: tuple[str, ...]
    confusion_cols: tuple[str, ...]
    scored: Scored | None = None  # what the figures came from, for the generalisation suites


def evaluator_version() -> str:
    try:
        return f"pycocotools {importlib.metadata.version('pycocotools')} COCOeval bbox"
    except importlib.metadata.PackageNotFoundError:
        return "pycocotools COCOeval bbox"


@dataclass(frozen=True)
class Scored:
    """Images' ground truth and predictions in key space, scored by COCOeval twice: with every
    floor-level prediction (AP) and with those at the operating thresholds (P, R, false alarms)."""

    keys: tuple[str, ...]
    gt: list[ImageBoxes]
    operating_preds: list[ImageBoxes]
    floor_eval: CocoEvaluation
    operating_eval: CocoEvaluation

    def per_class(self, card: ModelCard) -> dict[str, dict[str, Any]]:
        rows: dict[str, dict[str, Any]] = {}
        for key in self.keys:
            ap = self.floor_eval.class_ap(key)
            counts = self.operating_eval.match_counts(key)
            rows[key] = {
                "ap50": _round(ap.ap50), "ap50_95": _round(ap.ap50_95),
                "precision": _round(counts.precision), "recall": _round(counts.recall),
                "n_images": sum(key in g.classes for g in self.gt), "n_boxes": counts.n_gt,
                "tp": counts.tp, "fp": counts.fp,
                "labels": sorted(label for label, k in card.label_map.items() if k == key),
            }
        return rows

    def negatives(self) -> list[int]:
        return [i for i, g in enumerate(self.gt) if len(g) == 0]

    def false_alarm_images(self) -> int:
        """Images without any violation on which something is reported at the operating thresholds."""
        return sum(len(self.operating_preds[i]) > 0 for i in self.negatives())


def score_images(images: Sequence[ImageResult], label_map: dict[str, str | None],
                 thresholds: dict[str, float], keys: tuple[str, ...]) -> Scored:
    sizes = [image.resolution_wh for image in images]
    gt = [_gt_in_key_space(image, label_map) for image in images]
    floor_preds = [_preds_in_key_space(image, None) for image in images]
    operating_preds = [_preds_in_key_space(image, thresholds) for image in images]
    return Scored(keys, gt, operating_preds, CocoEvaluation(gt, floor_preds, sizes, keys),
                  CocoEvaluation(gt, operating_preds, sizes, keys))


def report_keys(card: ModelCard, data: EvalData, taxonomy: Taxonomy) -> tuple[str, ...]:
    """Every key the model or the dataset maps onto, in taxonomy order."""
    model_keys = {k for k in card.label_map.values() if k is not None}
    data_keys = {k for k in data.label_map.values() if k is not None}
    return tuple(_ordered_keys(model_keys | data_keys, taxonomy))


def build_report(collected: Collected, model: InstalledModel, taxonomy: Taxonomy) -> Report:
    data, images, card = collected.data, collected.images, model.card
    thresholds = operating_thresholds(card, taxonomy)
    keys = report_keys(card, data, taxonomy)
    scored = score_images(images, data.label_map, thresholds, keys)
    operating_preds, floor_eval = scored.operating_preds, scored.floor_eval
    per_class = scored.per_class(card)
    measured = [v for v in per_class.values() if v["ap50"] is not None]
    negatives = scored.negatives()
    false_alarm_images = scored.false_alarm_images()
    helper_gt = sorted({n for image in images for n in image.gt_names if data.label_map[n] is None})
    rows = (*keys, *helper_gt)
    # Rows: keys, then helper labels by name (a bin mistaken for a garbage pile shows there).
    gt_rows = [ImageBoxes(image.gt_xyxy, tuple(data.label_map[n] or n for n in image.gt_names))
               for image in images]
    cm = confusion_matrix(gt_rows, operating_preds, rows)
    # Helper labels never appear as predictions (the Pipeline drops them): keep only key columns.
    columns = (*keys, "background")
    cm = cm[:, [*range(len(keys)), len(rows)]]
    summary: dict[str, Any] = {
        "model": card.name,
        "model_version": card.version,
        "model_sha256": card.sha256,
        "engine": collected.engine,
        "dataset": data.name,
        "dataset_hash": data.hash,
        "dataset_hash_source": data.hash_source,
        "split": data.split,
        "n_images": len(images),
        "n_negative_images": len(negatives),
        "images_unreadable": len(collected.unreadable),
        "label_issues": len(collected.label_issues),
        "thresholds": {label: _round(t) for label, t in thresholds.items()},
        "score_floor": SCORE_FLOOR,
        "iou_match": IOU_MATCH,
        "evaluator": evaluator_version(),
        "per_class": per_class,
        "map50": _round(float(np.mean([v["ap50"] for v in measured]))) if measured else None,
        "map50_95": _round(float(np.mean([v["ap50_95"] for v in measured]))) if measured else None,
        "false_alarms_per_100_negatives": (_round(100.0 * false_alarm_images / len(negatives))
                                           if negatives else None),
    }
    return Report(summary, keys, floor_eval, cm, (*rows, "background"), columns, scored)


# -- thresholds ---------------------------------------------------------------------------


def choose_thresholds(collected: Collected, card: ModelCard, *, floor: float = MIN_CHOSEN_THRESHOLD
                      ) -> dict[str, ThresholdChoice | None]:
    """Per non-helper model label: the score maximising F1 at IoU 0.5 on these images.

    A label's predictions are matched against ground truth of the same label when the
    dataset has that label (our built datasets do), else against ground truth of the
    label's taxonomy key. Ties go to the higher score; no threshold below `floor`.
    """
    data, images = collected.data, collected.images
    sizes = [image.resolution_wh for image in images]
    choices: dict[str, ThresholdChoice | None] = {}
    for label in card.labels:
        key = card.label_map.get(label)
        if key is None:
            continue
        if label in data.names:
            def truth_of(name: str, wanted: str = label) -> bool:
                return name == wanted
        else:
            def truth_of(name: str, wanted: str = key) -> bool:
                return data.label_map.get(name) == wanted
        gt = []
        preds = []
        for image in images:
            g_keep = np.array([truth_of(n) for n in image.gt_names], dtype=bool).reshape(-1)
            gt.append(ImageBoxes(image.gt_xyxy[g_keep], (label,) * int(g_keep.sum())))
            p_keep = np.array([lab == label for lab in image.pred_labels], dtype=bool).reshape(-1)
            preds.append(ImageBoxes(image.pred_xyxy[p_keep], (label,) * int(p_keep.sum()),
                                    image.pred_scores[p_keep]))
        evaluation = CocoEvaluation(gt, preds, sizes, (label,))
        choices[label] = best_f1_threshold(evaluation.scored_matches(label), floor=floor)
    return choices


def format_table(summary: dict[str, Any]) -> str:
    """A plain-text table of the per-class figures for people."""
    header = f"{'class':<18}{'AP50':>8}{'AP50-95':>9}{'P':>8}{'R':>8}{'images':>8}{'boxes':>7}"
    lines = [f"model {summary['model']} ({summary['model_version']}) on {summary['dataset']} "
             f"[{summary['split']}], dataset hash {summary['dataset_hash'][:12]}, engine "
             f"{summary.get('engine', 'onnxruntime')}", header]

    def fmt(value: float | None, width: int) -> str:
        return f"{'-':>{width}}" if value is None else f"{value:>{width}.3f}"

    for key, row in summary["per_class"].items():
        lines.append(f"{key:<18}{fmt(row['ap50'], 8)}{fmt(row['ap50_95'], 9)}{fmt(row['precision'], 8)}"
                     f"{fmt(row['recall'], 8)}{row['n_images']:>8}{row['n_boxes']:>7}")
    false_alarms = fmt(summary["false_alarms_per_100_negatives"], 0).strip()
    lines.append(f"mAP50 {fmt(summary['map50'], 0).strip()}  mAP50-95 {fmt(summary['map50_95'], 0).strip()}  "
                 f"false alarms per 100 negatives {false_alarms} "
                 f"({summary['n_negative_images']} negative images)")
    return "\n".join(lines)

