"""What a new place will see, measured on a test split (issue #11): the suites `patrol
evaluate` adds to its per-class figures.

- `per_source_figures`: each public set on its own (AP50, precision, recall at the operating
  thresholds, false alarms). A built dataset names every file `<source>__<original name>`
  (training.datasets.build), so an image's source is read from its name.
- `cross_class_false_alarms`: how often each class is reported on images holding only other
  classes or nothing (smoke on garbage photos), per 100 images.
- `merge_piles`: ground truth labelled per bag, merged into piles (touching or overlapping
  boxes become their enclosing box) the way the taxonomy counts a garbage_pile.
- `corruption_suite`: the split's images through each corruption of training.corruptions,
  each class's AP50 under each and the mean drop from the same images uncorrupted.

Imports neither torch nor ultralytics.
"""

from __future__ import annotations

import random
import tempfile
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from training.corruptions import corrupt, describe
from training.evaluate import (
    Collected,
    EvalData,
    ImageResult,
    ProgressFn,
    Report,
    Scored,
    collect,
    operating_thresholds,
    report_keys,
    score_images,
)
from vision.detectors.base import Detector
from vision.model_registry import InstalledModel
from vision.taxonomy import Taxonomy

SOURCE_SEPARATOR = "__"


def _per_100(count: int, total: int) -> float | None:
    return round(100.0 * count / total, 6) if total else None


# -- per source ---------------------------------------------------------------------------


def source_of(path: Path, data: EvalData) -> str:
    """The source a built dataset's image came from; a plain dataset is one source, its own."""
    prefix = path.name.split(SOURCE_SEPARATOR, 1)[0]
    return prefix if SOURCE_SEPARATOR in path.name and prefix in data.sources else data.name


def _alarm_rate(scored: Scored, indices: Sequence[int], key: str) -> dict[str, Any]:
    firing = sum(key in scored.operating_preds[i].classes for i in indices)
    return {"n_images": len(indices), "images_with_alarm": firing,
            "per_100_images": _per_100(firing, len(indices))}


def cross_class_false_alarms(scored: Scored) -> dict[str, dict[str, Any]]:
    """Per key: the images without ground truth of it on which it is reported at the operating
    thresholds, per 100 such images; split into images holding other classes and empty ones."""
    out: dict[str, dict[str, Any]] = {}
    for key in scored.keys:
        without = [i for i, g in enumerate(scored.gt) if key not in g.classes]
        others = [i for i in without if len(scored.gt[i])]
        empty = [i for i in without if not len(scored.gt[i])]
        out[key] = {**_alarm_rate(scored, without, key),
                    "on_other_classes": _alarm_rate(scored, others, key),
                    "on_empty": _alarm_rate(scored, empty, key)}
    return out


def _figures(scored: Scored, model: InstalledModel) -> dict[str, Any]:
    negatives = scored.negatives()
    false_alarms = scored.false_alarm_images()
    return {"n_images": len(scored.gt), "n_negative_images": len(negatives),
            "false_alarm_images": false_alarms,
            "false_alarms_per_100_negatives": _per_100(false_alarms, len(negatives)),
            "per_class": scored.per_class(model.card),
            "cross_class_false_alarms": cross_class_false_alarms(scored)}


def per_source_figures(collected: Collected, model: InstalledModel, taxonomy: Taxonomy) -> dict[str, Any]:
    """Each source's images scored on their own, the same way as the whole split."""
    data = collected.data
    thresholds = operating_thresholds(model.card, taxonomy)
    keys = report_keys(model.card, data, taxonomy)
    groups: dict[str, list[ImageResult]] = {}
    for image in collected.images:
        groups.setdefault(source_of(image.path, data), []).append(image)
    return {name: _figures(score_images(images, data.label_map, thresholds, keys), model)
            for name, images in sorted(groups.items())}


# -- objects counted as the taxonomy counts them ------------------------------------------


def merge_touching(xyxy: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Boxes that touch or overlap, directly or through others, replaced by their enclosing box;
    repeated until no two boxes touch (a merged box can reach a box neither part touched)."""
    boxes = [np.asarray(b, dtype=np.float64) for b in np.asarray(xyxy, dtype=np.float64).reshape(-1, 4)]
    merged = True
    while merged:
        merged = False
        for i in range(len(boxes)):
            for j in range(i + 1, len(boxes)):
                a, b = boxes[i], boxes[j]
                if a[0] <= b[2] and b[0] <= a[2] and a[1] <= b[3] and b[1] <= a[3]:
                    boxes[i] = np.concatenate([np.minimum(a[:2], b[:2]), np.maximum(a[2:], b[2:])])
                    del boxes[j]
                    merged = True
                    break
            if merged:
                break
    return np.array(boxes, dtype=np.float64).reshape(-1, 4)


def merge_piles(collected: Collected, key: str = "garbage_pile") -> tuple[Collected, dict[str, Any]]:
    """Ground truth of `key` merged into piles in every image; predictions are left as they are."""
    label_map = collected.data.label_map
    images: list[ImageResult] = []
    before = after = 0
    for image in collected.images:
        is_key = np.array([label_map[n] == key for n in image.gt_names], dtype=bool).reshape(-1)
        piles = merge_touching(image.gt_xyxy[is_key])
        before += int(is_key.sum())
        after += len(piles)
        pile_name = next((n for n in image.gt_names if label_map[n] == key), key)
        others = [n for n, k in zip(image.gt_names, is_key, strict=True) if not k]
        images.append(replace(image, gt_xyxy=np.concatenate([image.gt_xyxy[~is_key], piles]),
                              gt_names=(*others, *([pile_name] * len(piles)))))
    note = {"class": key, "boxes_before": before, "boxes_after": after,
            "rule": "touching or overlapping ground-truth boxes merged into their enclosing box, "
                    "repeatedly; predictions unchanged"}
    return replace(collected, images=tuple(images)), note


# -- the corruption suite -----------------------------------------------------------------


def _write_corrupted(images: Sequence[ImageResult], data: EvalData, name: str, seed: int,
                     folder: Path) -> tuple[Path, ...]:
    """The images under one corruption as PNG (lossless: the corruption is all that changed),
    with YOLO labels of the moved boxes beside them in the dataset's class ids."""
    (folder / "images").mkdir(parents=True)
    (folder / "labels").mkdir(parents=True)
    paths: list[Path] = []
    for image in images:
        read = cv2.imread(str(image.path), cv2.IMREAD_COLOR)
        if read is None:
            raise ValueError(f"{image.path}: unreadable, though it was read for the clean run")
        pixels = np.asarray(read, np.uint8)
        height, width = pixels.shape[:2]
        scale = np.array([width, height] * 2) / np.array(image.resolution_wh * 2, dtype=np.float64)
        out, boxes, keep = corrupt(name, pixels, image.gt_xyxy * scale, seed=seed, image_name=image.path.name)
        names = [n for n, k in zip(image.gt_names, keep, strict=True) if k]
        out_h, out_w = out.shape[:2]
        lines = [f"{data.names.index(n)} {(x1 + x2) / 2 / out_w:.6f} {(y1 + y2) / 2 / out_h:.6f} "
                 f"{(x2 - x1) / out_w:.6f} {(y2 - y1) / out_h:.6f}"
                 for n, (x1, y1, x2, y2) in zip(names, boxes, strict=True)]
        path = folder / "images" / f"{image.path.stem}.png"
        cv2.imwrite(str(path), out)
        (folder / "labels" / f"{image.path.stem}.txt").write_text("\n".join(lines), encoding="utf-8")
        paths.append(path)
    return tuple(paths)


def corruption_suite(model: InstalledModel, collected: Collected, taxonomy: Taxonomy,
                     names: Sequence[str], *, seed: int = 0, max_images: int | None = None,
                     workers: int = 2, progress: ProgressFn | None = None,
                     detector: Detector | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """AP50 per corruption and class (`metrics.corruption`) and how it was run, with each
    class's AP50 on the same images uncorrupted and its mean drop (`metrics.corruption_suite`).

    `max_images`: a seeded sample of the split instead of all of it (the suite runs the model
    once per corruption, slow on a CPU).
    """
    data = collected.data
    images = list(collected.images)
    if max_images is not None and max_images < len(images):
        images = sorted(random.Random(seed).sample(images, max_images), key=lambda im: im.path.name)
    thresholds = operating_thresholds(model.card, taxonomy)
    keys = report_keys(model.card, data, taxonomy)
    clean = score_images(images, data.label_map, thresholds, keys).per_class(model.card)
    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="patrol-corruption-") as tmp:
        for name in names:
            paths = _write_corrupted(images, data, name, seed, Path(tmp) / name)
            corrupted = collect(model, replace(data, images=paths), taxonomy, workers=workers,
                                progress=progress, detector=detector, engine=collected.engine)
            scored = score_images(corrupted.images, data.label_map, thresholds, keys)
            figures[name] = {}
            for key, row in scored.per_class(model.card).items():
                base, ap = clean[key]["ap50"], row["ap50"]
                figures[name][key] = {"ap50": ap, "precision": row["precision"], "recall": row["recall"],
                                      "drop": None if base is None or ap is None else round(base - ap, 6)}
    mean_drop: dict[str, float | None] = {}
    for key in keys:
        drops = [figures[name][key]["drop"] for name in names if figures[name][key]["drop"] is not None]
        mean_drop[key] = round(float(np.mean(drops)), 6) if drops else None
    suite = {"seed": seed, "n_images": len(images), "n_split_images": len(collected.images),
             "images": "all of the split" if len(images) == len(collected.images)
             else f"a seeded sample ({seed}) of {len(images)}",
             "corruptions": {name: describe(name) for name in names},
             "clean_ap50": {key: clean[key]["ap50"] for key in keys}, "mean_drop": mean_drop}
    return figures, suite


# -- into the summary ---------------------------------------------------------------------


def extend_summary(report: Report, collected: Collected, model: InstalledModel, taxonomy: Taxonomy, *,
                   per_source: bool, merged: dict[str, Any] | None, corruptions: Sequence[str],
                   corruption_images: int | None, seed: int, workers: int,
                   progress: ProgressFn | None = None, detector: Detector | None = None) -> None:
    """Add the suites asked for to `report.summary` (what the card's `metrics` store).
    Cross-class false alarms cost nothing more and are always added."""
    summary = report.summary
    if report.scored is not None:
        summary["cross_class_false_alarms"] = cross_class_false_alarms(report.scored)
    if merged is not None:
        summary["gt_merged"] = merged
    if per_source:
        summary["per_source"] = per_source_figures(collected, model, taxonomy)
    if corruptions:
        figures, suite = corruption_suite(model, collected, taxonomy, corruptions, seed=seed,
                                          max_images=corruption_images, workers=workers,
                                          progress=progress, detector=detector)
        summary["corruption"] = figures
        summary["corruption_suite"] = suite


def format_generalisation(summary: dict[str, Any]) -> str:
    """Plain-text lines for people: per source, cross-class false alarms, corruption AP50."""
    def fmt(value: float | None) -> str:
        return "-" if value is None else f"{value:.3f}"

    lines: list[str] = []
    for source, figures in summary.get("per_source", {}).items():
        rows = "  ".join(f"{key} AP50 {fmt(row['ap50'])} P {fmt(row['precision'])} R {fmt(row['recall'])}"
                         for key, row in figures["per_class"].items() if row["n_boxes"])
        lines.append(f"source {source}: {figures['n_images']} images; {rows or 'no violations'}; false "
                     f"alarms per 100 negatives {fmt(figures['false_alarms_per_100_negatives'])}")
    for key, row in summary.get("cross_class_false_alarms", {}).items():
        lines.append(f"{key} reported on {row['images_with_alarm']} of {row['n_images']} images without "
                     f"it ({fmt(row['per_100_images'])} per 100)")
    suite = summary.get("corruption_suite")
    for name, per_class in summary.get("corruption", {}).items():
        lines.append(f"{name:<10} " + "  ".join(f"{key} AP50 {fmt(row['ap50'])} (drop {fmt(row['drop'])})"
                                                for key, row in per_class.items()))
    if suite:
        lines.append(f"corruption suite on {suite['images']}: mean AP50 drop "
                     + ", ".join(f"{key} {fmt(d)}" for key, d in suite["mean_drop"].items()))
    return "\n".join(lines)
