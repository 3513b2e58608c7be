"""The change detector (vision/change): precision, recall and registration error on synthetic
epoch pairs (benchmarks/change_scenes.py).

Each pair: 800 x 800 px at 10 cm (80 m a side), standing roofs in both epochs, a car that
moves, 0-3 new structures (grey sheds and blue steel roofs, 4-25 m a side) in the later one,
a misregistration drawn uniformly in 0-2 m, and a seasonal colour change in 70 % of pairs.
Every pair is run twice: orthomosaics only (appearance) and with DSMs (height). A finding
whose box has IoU >= 0.3 with a new structure's box is a true positive (one per structure);
any other is a false positive (those on the moved car counted apart). Registration error:
the distance between the measured shift and the one drawn, in metres.

Usage: .venv/bin/python benchmarks/changes.py [--pairs N] [--seed S] [--quick] [--json]
With --json the last line is one JSON object: precision, recall, registration_error_m (the
median), for appearance mode (the harder one), with both modes under "modes".
Thresholds (vision/change/change.yaml) were set on seed 0; seed 1's false positives (moved
cars at 45 degrees) set the vehicle width; seed 2 (the default) is held out.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.change_scenes import EpochPairFiles, make_epoch_pair  # noqa: E402
from vision.change.detector import ChangeDetector, ChangeResult  # noqa: E402
from vision.postprocess import box_iou  # noqa: E402

MATCH_IOU = 0.3


def score(pair: EpochPairFiles, result: ChangeResult) -> dict[str, float]:
    """True positives, new structures, false positives (and those on the moved car), area errors."""
    found = result.detections
    truth = np.array([o.xyxy for o in pair.new], np.float64).reshape(-1, 4)
    cars = np.array([o.xyxy for o in pair.moved], np.float64).reshape(-1, 4)
    matched: set[int] = set()
    fp = on_car = 0
    area_errors = []
    for i, box in enumerate(found.xyxy.astype(np.float64)):
        iou = box_iou(box, truth) if len(truth) else np.zeros(0)
        j = int(iou.argmax()) if len(iou) else -1
        if j >= 0 and iou[j] >= MATCH_IOU and j not in matched:
            matched.add(j)
            area_errors.append(
                abs(float(found.data["area_m2"][i]) - pair.new[j].area_m2) / pair.new[j].area_m2
            )
        else:
            fp += 1
            on_car += int(len(cars) > 0 and float(box_iou(box, cars).max()) > 0)
    measured = np.array(result.registration.shift_px) * pair.gsd_m
    drawn = np.array(pair.shift_px) * pair.gsd_m
    return {
        "tp": len(matched),
        "n": len(truth),
        "fp": fp,
        "fp_car": on_car,
        "reg_error_m": float(np.linalg.norm(measured - drawn)),
        "area_error": float(np.median(area_errors)) if area_errors else math.nan,
    }


def run(pairs: int, seed: int, detector: ChangeDetector | None = None) -> dict[str, object]:
    detector = detector or ChangeDetector()
    rng = np.random.default_rng(seed)
    modes: dict[str, list[dict[str, float]]] = {"appearance": [], "dsm": []}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(pairs):
            pair = make_epoch_pair(
                rng,
                Path(tmp),
                shift_m=float(rng.uniform(0, 2)),
                new_sheds=int(rng.integers(0, 4)),
                seasonal=bool(rng.random() < 0.7),
                dsm=True,
                name=f"p{k}",
            )
            for mode, dsm in (("appearance", False), ("dsm", True)):
                result, _ = detector.run(
                    pair.before,
                    pair.after,
                    dsm_before=pair.dsm_before if dsm else None,
                    dsm_after=pair.dsm_after if dsm else None,
                )
                modes[mode].append(score(pair, result))
    summary = {}
    for mode, rows in modes.items():
        tp, n, fp = (sum(int(r[key]) for r in rows) for key in ("tp", "n", "fp"))
        errors = [r["reg_error_m"] for r in rows]
        areas = [r["area_error"] for r in rows if not math.isnan(r["area_error"])]
        summary[mode] = {
            "precision": round(tp / max(tp + fp, 1), 3),
            "recall": round(tp / max(n, 1), 3),
            "new_structures": n,
            "false_positives": fp,
            "false_positives_on_moved_car": sum(int(r["fp_car"]) for r in rows),
            "registration_error_m": round(float(np.median(errors)), 3),
            "registration_error_p95_m": round(float(np.percentile(errors, 95)), 3),
            "area_error_median_pct": round(100 * float(np.median(areas)), 1) if areas else None,
        }
    main = summary["appearance"]
    return {
        "precision": main["precision"],
        "recall": main["recall"],
        "registration_error_m": main["registration_error_m"],
        "modes": summary,
        "pairs": pairs,
        "seed": seed,
        "thresholds": detector.config.version,
        "seconds": round(time.perf_counter() - started, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pairs", type=int, default=40, help="epoch pairs (each run in both modes)")
    parser.add_argument(
        "--seed", type=int, default=2, help="thresholds were set on seeds 0 and 1; 2 is held out"
    )
    parser.add_argument("--quick", action="store_true", help="8 pairs")
    parser.add_argument("--json", action="store_true", help="end with one JSON line")
    args = parser.parse_args()
    result = run(8 if args.quick else args.pairs, args.seed)
    if not args.json or sys.stdout.isatty():
        for mode, figures in result["modes"].items():  # type: ignore[attr-defined]
            print(f"{mode:>10}: " + ", ".join(f"{k} {v}" for k, v in figures.items()))
    if args.json:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
