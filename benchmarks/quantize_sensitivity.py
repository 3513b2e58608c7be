"""Which layers of a model cost accuracy when quantised to INT8, measured rather than guessed.

    python benchmarks/quantize_sensitivity.py --data BUILT [--model default] [--split test]
        [--n 300] [--calibrations minmax,percentile,entropy] [--json]

BUILT is a dataset built by `patrol datasets build` (the one the model's card was measured on,
so the float row reproduces the card). Calibration images come from its train split, the same
share from each source (training.quantize.calibration_images). Each calibration method's
activation ranges are computed once (onnxruntime's calibration cache) and every variant of that
method is quantised from them, so variants differ only in what stays float:

- `tail`: the head's box decode and class sigmoid (training.quantize.float_tail_nodes), which
  every variant keeps float (quantised, the decode gave mAP50 0.0);
- `tail+GROUP` for each of training.quantize.FLOAT_GROUPS (the stem conv, the head's output
  convs, the pyramid pooling block), with the first calibration method;
- `tail+all`: every group at once, and the default groups (QuantizeOptions.float_groups) when
  they are another combination.

Each row: per-class AP50 and mAP50 on --split through the project's own evaluation
(training.evaluate, the serving Pipeline at one lane and one loader thread, so it uses one core),
the drop from the float model, and the speed of bare `session.run` (one thread, the same
letterboxed images, median of interleaved passes) as a ratio to the float model's, since every
layer left float costs time. One core's work at a time; ~1 minute a variant on the shared
2-core box, plus the calibrations (minmax ~1 min, percentile ~1.5, entropy ~2.5).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SPEED_IMAGES = 16
SPEED_PASSES = 3


def evaluate(path: Path, source: Any, data: Any, taxonomy: Any) -> dict[str, Any]:
    """mAP50 and per-class AP50 of the ONNX file at `path`, read with the source's card."""
    from training.quantize import evaluate_weights

    summary = evaluate_weights(path, source, data, taxonomy)
    return {
        "map50": summary["map50"],
        "ap50": {key: figures["ap50"] for key, figures in summary["per_class"].items()},
    }


def speeds(paths: dict[str, Path], images: Sequence[Path], imgsz: int) -> dict[str, float]:
    """Images/s of bare `session.run` (one thread) per file, passes interleaved so that the
    shared box's load falls on every file alike; median over passes."""
    import onnxruntime as ort

    from training.quantize import input_geometry
    from vision.image_io import load_image
    from vision.preprocess import letterbox_batch

    geometry = input_geometry(next(iter(paths.values())), imgsz)
    blobs = [letterbox_batch([load_image(p).pixels], imgsz, stride=geometry.stride)[0] for p in images]
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    sessions = {
        name: ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        for name, path in paths.items()
    }
    rates: dict[str, list[float]] = {name: [] for name in sessions}
    for _ in range(SPEED_PASSES + 1):  # the first pass warms up and is dropped
        for name, session in sessions.items():
            started = time.perf_counter()
            for blob in blobs:
                session.run(None, {geometry.input_name: blob})
            rates[name].append(len(blobs) / (time.perf_counter() - started))
    return {name: statistics.median(r[1:]) for name, r in rates.items()}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="a dataset built by patrol datasets build")
    parser.add_argument("--model", default="default", help="installed float model (name or folder)")
    parser.add_argument("--split", default="test", help="split the accuracy is measured on")
    parser.add_argument("--n", type=int, default=300, help="calibration images from the train split")
    parser.add_argument(
        "--calibrations",
        default="minmax,percentile,entropy",
        help="calibration methods; the groups are tried with the first",
    )
    parser.add_argument("--json", action="store_true", help="last line: one JSON object")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    from training.evaluate import open_eval_data
    from training.quantize import FLOAT_GROUPS, QuantizeOptions, calibration_images, quantize_onnx
    from vision.model_registry import resolve_model
    from vision.taxonomy import Taxonomy

    taxonomy = Taxonomy.default()
    source = resolve_model(args.model)
    data = open_eval_data(args.data, args.split, source.card, taxonomy)
    images = calibration_images(args.data, split="train", n=args.n)
    methods = [m for m in args.calibrations.split(",") if m]
    variants: list[tuple[str, str, tuple[str, ...]]] = [(f"{m} tail", m, ()) for m in methods]
    variants += [(f"{methods[0]} tail+{g}", methods[0], (g,)) for g in FLOAT_GROUPS]
    variants.append((f"{methods[0]} tail+all", methods[0], tuple(FLOAT_GROUPS)))
    chosen = QuantizeOptions().float_groups  # the shipped recipe, when it is none of the rows above
    if len(chosen) > 1 and set(chosen) != set(FLOAT_GROUPS):
        variants.append((f"{methods[0]} tail+{'+'.join(chosen)}", methods[0], chosen))
    print(
        f"{source.name}: {len(images)} calibration images (train), accuracy on {data.name} "
        f"[{args.split}] ({len(data.images)} images)",
        file=sys.stderr,
    )
    rows: dict[str, dict[str, Any]] = {
        "fp32": {**evaluate(source.weights, source, data, taxonomy), "float_nodes": None}
    }
    paths = {"fp32": source.weights}
    with tempfile.TemporaryDirectory(prefix="patrol-qsens-") as tmp:
        for name, method, groups in variants:
            target = Path(tmp) / f"{name.replace(' ', '_').replace('+', '-')}.onnx"
            report = quantize_onnx(
                source.weights,
                target,
                images,
                source.card.input_size,
                QuantizeOptions(n_images=len(images), calibration=method, float_groups=groups),
                calibration_cache=Path(tmp) / f"ranges-{method}.json",
            )
            rows[name] = {**evaluate(target, source, data, taxonomy), "float_nodes": len(report.float_nodes)}
            paths[name] = target
            print(f"{name}: mAP50 {rows[name]['map50']}", file=sys.stderr)
        speed = speeds(
            paths, images[:: max(1, len(images) // SPEED_IMAGES)][:SPEED_IMAGES], source.card.input_size
        )
    base = rows["fp32"]
    keys = list(base["ap50"])
    print(
        f"{'variant':32} {'float nodes':>11} "
        + " ".join(f"{k:>16}" for k in keys)
        + f" {'mAP50':>8} {'drop':>7} {'img/s':>7} {'x fp32':>7}"
    )
    for name, row in rows.items():
        row["map50_drop"] = None if name == "fp32" else round(base["map50"] - row["map50"], 6)
        row["img_s"] = round(speed[name], 2)
        row["speed_vs_fp32"] = round(speed[name] / speed["fp32"], 3)
        drop = "" if row["map50_drop"] is None else f"{row['map50_drop']:.4f}"
        print(
            f"{name:32} {row['float_nodes'] or '':>11} "
            + " ".join(f"{row['ap50'][k] or 0:16.4f}" for k in keys)
            + f" {row['map50']:8.4f} {drop:>7} {row['img_s']:7.1f} {row['speed_vs_fp32']:7.2f}"
        )
    if args.json:
        print(
            json.dumps(
                {
                    "model": source.name,
                    "dataset": data.name,
                    "dataset_hash": data.hash,
                    "split": args.split,
                    "n_images": len(data.images),
                    "calibration_images": len(images),
                    "variants": rows,
                }
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
