"""card.md's "Generalisation" section: the figures `patrol evaluate --per-source --corruptions`
stored in a card's metrics (training.generalisation), as tables for people."""

from __future__ import annotations

from typing import Any


def _fmt(value: Any) -> str:
    return "–" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)


def _per_source(metrics: dict[str, Any]) -> list[str]:
    sources: dict[str, Any] = metrics.get("per_source") or {}
    if not sources:
        return []
    lines = ["Each source of the test split on its own (precision and recall at the operating "
             "thresholds, IoU 0.5):", "",
             "| source | images | class | AP50 | precision | recall | boxes | false positives |",
             "|---|---|---|---|---|---|---|---|"]
    for source, figures in sources.items():
        for key, row in figures["per_class"].items():
            lines.append(f"| {source} | {figures['n_images']} | {key} | {_fmt(row['ap50'])} | "
                         f"{_fmt(row['precision'])} | {_fmt(row['recall'])} | {row['n_boxes']} | "
                         f"{row['fp']} |")
    lines += ["", "False alarms per 100 images without any violation: " + "; ".join(
        f"{source} {_fmt(f['false_alarms_per_100_negatives'])} ({f['n_negative_images']} images)"
        for source, f in sources.items()) + ".", ""]
    return lines


def _cross_class(metrics: dict[str, Any]) -> list[str]:
    alarms: dict[str, Any] = metrics.get("cross_class_false_alarms") or {}
    if not alarms:
        return []
    lines = ["Each class reported on images that do not hold it, per 100 images (at the operating "
             "thresholds):", "", "| class | all such images | holding other classes | holding nothing |",
             "|---|---|---|---|"]
    for key, row in alarms.items():
        cells = [f"{_fmt(r['per_100_images'])} ({r['images_with_alarm']} of {r['n_images']})"
                 for r in (row, row["on_other_classes"], row["on_empty"])]
        lines.append(f"| {key} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def _corruption(metrics: dict[str, Any]) -> list[str]:
    figures: dict[str, Any] = metrics.get("corruption") or {}
    suite: dict[str, Any] = metrics.get("corruption_suite") or {}
    if not figures:
        return []
    keys = list(suite.get("clean_ap50") or next(iter(figures.values())))
    sampled = suite.get("n_images") != suite.get("n_split_images")
    lines = [f"AP50 under each corruption of the test split ({suite.get('n_images')} of "
             f"{suite.get('n_split_images')} images{', a seeded sample' if sampled else ''}, seed "
             f"{suite.get('seed')}); in brackets the drop from the same images uncorrupted:", "",
             "| corruption | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|",
             "| none | " + " | ".join(_fmt((suite.get("clean_ap50") or {}).get(k)) for k in keys) + " |"]
    for name, per_class in figures.items():
        lines.append(f"| {name} | " + " | ".join(
            f"{_fmt(per_class[k]['ap50'])} ({_fmt(per_class[k]['drop'])})" for k in keys) + " |")
    lines += ["| mean drop | " + " | ".join(_fmt((suite.get("mean_drop") or {}).get(k)) for k in keys) + " |",
              ""]
    lines += [f"- {name}: {text}" for name, text in (suite.get("corruptions") or {}).items()]
    return [*lines, ""]


def generalisation_lines(metrics: dict[str, Any]) -> list[str]:
    """The section's lines; none when the card holds no such figures."""
    body = _per_source(metrics) + _cross_class(metrics) + _corruption(metrics)
    merged = metrics.get("gt_merged")
    if merged:
        body = [f"Ground truth of {merged['class']} was merged into piles before scoring ({merged['rule']}): "
                f"{merged['boxes_before']} boxes became {merged['boxes_after']}.", "", *body]
    return ["## Generalisation", "", *body] if body else []
