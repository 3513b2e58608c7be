"""Inference speed, side by side: ultralytics predict, our pipeline, bare onnxruntime.

    python benchmarks/inference.py [--quick] [--tiled] [--json] [--model PATH.pt]

One run measures every contender on the same model and the same images, interleaved:
after a warm-up of each, every repetition runs each contender once over the whole image
set in turn, so a noisy neighbour on a shared machine slows them all alike. Reported rates
are medians over repetitions.

- ultralytics: `YOLO(pt).predict(image)` one image at a time (PyTorch CPU, its defaults
  otherwise, so its own rectangular letterbox).
- pipeline: `Pipeline.detect` called from several threads through the shared batcher,
  at batch 1 and at each batch size tried; ONNX Runtime underneath.
- bare onnxruntime: `session.run` on inputs letterboxed beforehand (no pre- or
  post-processing), batch 1, same session options as our backend.

The model defaults to a YOLOv5nu built from ultralytics' yolov5nu.yaml with nc=5:
untrained, no download. Speed does not depend on weight values, but NMS work depends on how
many boxes pass the score floor, so every contender uses the same `--conf`.

`--tiled` adds tiled inference of a 5472x3648 drone-sized image, in a subprocess that
imports neither torch nor ultralytics, so its peak RSS is the pipeline's own.

`--int8` adds the same pipeline on an INT8 static quantisation of the ONNX model
(training.quantize, as `patrol quantize` makes it), as further contenders in the same
interleaved run; `--int8-onnx` takes one made earlier instead.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

LABELS = ("garbage_pile", "straw_burning", "roadside_clutter", "illegal_structure", "blue_steel_roof")
DRONE_WH = (5472, 3648)


# -- model and images -------------------------------------------------------------------------

def build_default_pt(folder: Path) -> Path:
    """An untrained YOLOv5nu with the five patrol classes, saved as .pt (no download)."""
    from vision.detectors.ultralytics_offline import import_ultralytics

    ultralytics = import_ultralytics()
    from ultralytics.nn.tasks import DetectionModel

    model = DetectionModel(cfg="yolov5nu.yaml", nc=len(LABELS), verbose=False)
    model.names = dict(enumerate(LABELS))
    yolo = ultralytics.YOLO("yolov5nu.yaml")
    yolo.model = model
    path = folder / "yolov5nu-untrained.pt"
    yolo.save(path)
    return path


def model_labels(pt_path: Path) -> tuple[str, ...]:
    from vision.detectors.ultralytics_offline import import_ultralytics

    names = import_ultralytics().YOLO(str(pt_path)).names
    return tuple(str(names[i]) for i in range(len(names)))


def export_onnx(pt_path: Path, imgsz: int, folder: Path) -> tuple[Path, tuple[str, ...]]:
    from vision.detectors.ultralytics_offline import import_ultralytics

    ultralytics = import_ultralytics()
    yolo = ultralytics.YOLO(str(pt_path))
    labels = tuple(str(yolo.names[i]) for i in range(len(yolo.names)))
    exported = Path(yolo.export(format="onnx", imgsz=imgsz, dynamic=True, simplify=True, verbose=False))
    target = folder / "model.onnx"
    exported.replace(target)
    return target, labels


def synthetic_image(width: int, height: int, seed: int) -> np.ndarray:
    """Noise with filled shapes: textured enough that JPEG-like statistics do not matter."""
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    for _ in range(12):
        x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
        size = int(rng.integers(min(width, height) // 20, min(width, height) // 4))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        if rng.random() < 0.5:
            cv2.rectangle(image, (x, y), (x + size, y + size // 2), colour, -1)
        else:
            cv2.circle(image, (x, y), size // 2, colour, -1)
    return image


def image_set(n_each: int) -> list[np.ndarray]:
    sizes = [(1920, 1080), (640, 480)]
    return [synthetic_image(w, h, seed=100 * i + j) for i, (w, h) in enumerate(sizes) for j in range(n_each)]


def bench_card(labels: Sequence[str], imgsz: int, conf: float):
    """A card mapping each label onto itself when it is a taxonomy key; threshold = conf."""
    from vision.model_card import ModelCard
    from vision.taxonomy import Taxonomy

    keys = set(Taxonomy.default().keys)
    label_map = {label: label if label in keys else None for label in labels}
    return ModelCard(name="bench", version="untrained", sha256="0" * 64, input_size=imgsz,
                     labels=list(labels), label_map=label_map, thresholds={label: conf for label in labels})


# -- contenders -------------------------------------------------------------------------------

def ultralytics_contender(pt_path: Path, imgsz: int, conf: float, iou: float,
                          torch_threads: int | None) -> Callable[[list], None]:
    """`YOLO.predict` one image at a time; `torch_threads` None = what ultralytics itself sets.

    ultralytics' select_device() sets torch to min(8, cores - 1) threads when a predictor is
    made: 1 thread on a 2-core machine. torch's thread count is process-wide, so each
    contender sets its own before every pass.
    """
    import torch

    from vision.detectors.ultralytics_offline import import_ultralytics

    ultralytics = import_ultralytics()
    from ultralytics.utils import NUM_THREADS

    yolo = ultralytics.YOLO(str(pt_path))
    threads = NUM_THREADS if torch_threads is None else torch_threads

    def run(images: list[np.ndarray]) -> None:
        for image in images:
            # set before every call: the first predict() builds the predictor, which resets it
            torch.set_num_threads(threads)
            yolo.predict(image, imgsz=imgsz, conf=conf, iou=iou, verbose=False, device="cpu")
    run.threads = threads  # type: ignore[attr-defined]
    return run


def onnx_detector(onnx_path: Path, imgsz: int, conf: float, iou: float, labels: Sequence[str]):
    from vision.detectors.base import OnnxRuntimeConfig
    from vision.detectors.onnx_runtime import OnnxRuntimeDetector

    config = OnnxRuntimeConfig(model=onnx_path, imgsz=imgsz, conf=conf, iou=iou)
    detector = OnnxRuntimeDetector.from_config(config, labels=labels)
    detector.warmup()
    return detector, config


class PipelineContender:
    """Our pipeline at one max_batch, fed by enough threads to fill its batches."""

    def __init__(self, detector, card, max_batch: int) -> None:
        from vision.batcher import BatcherConfig
        from vision.pipeline import Pipeline

        self.pipeline = Pipeline(detector, card, batcher=BatcherConfig(max_batch=max_batch, max_wait_ms=5))
        self.callers = ThreadPoolExecutor(max(2, 2 * max_batch), thread_name_prefix=f"bench-b{max_batch}")

    def __call__(self, images: list[np.ndarray]) -> None:
        list(self.callers.map(lambda im: self.pipeline.detect(im, tiled=False), images))

    def close(self) -> None:
        self.callers.shutdown()
        self.pipeline.close()


def bare_ort_contender(onnx_path: Path, config, imgsz: int, images: list[np.ndarray],
                       rect: bool) -> Callable[[list], None]:
    """session.run only, on inputs letterboxed beforehand exactly as our backend does
    (rectangular, stride-multiple inputs when it uses them)."""
    import onnxruntime as ort

    from vision.detectors.onnx_runtime import read_model_info, session_options
    from vision.preprocess import letterbox_batch

    session = ort.InferenceSession(str(onnx_path), sess_options=session_options(config),
                                   providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    stride = read_model_info(session).stride if rect else None
    blobs = {id(image): letterbox_batch([image], imgsz, stride=stride)[0] for image in images}

    def run(batch: list[np.ndarray]) -> None:
        for image in batch:
            session.run(None, {name: blobs[id(image)]})
    return run


def quantize_for_bench(onnx_path: Path, imgsz: int, images: list[np.ndarray], folder: Path,
                       calib: Path | None) -> Path:
    """An int8 copy of the benchmark's model, calibrated on `calib` or on the benchmark's images.

    Speed does not depend on the calibrated ranges; accuracy does, and is measured by
    `patrol quantize` on a real dataset, not here.
    """
    from training.quantize import QuantizeOptions, calibration_images, quantize_onnx

    if calib is not None:
        paths = calibration_images(calib, n=32)
    else:
        calib_dir = folder / "calibration"
        calib_dir.mkdir(exist_ok=True)
        paths = []
        for i, image in enumerate(images):
            path = calib_dir / f"{i:03d}.png"
            cv2.imwrite(str(path), image)
            paths.append(path)
    target = folder / "model-int8.onnx"
    quantize_onnx(onnx_path, target, paths, imgsz, QuantizeOptions(n_images=len(paths)))
    return target


def interleaved(contenders: dict[str, Callable[[list], None]], images: list[np.ndarray],
                reps: int, warmup: int, group_size: int) -> dict[str, list[float]]:
    """images/s of each contender per group of images, round-robin.

    The set is cut into groups (each with both image sizes); every repetition runs each
    contender on one group, then the next group, so contenders alternate every second or
    so and a burst of load from another process hits them all.
    """
    groups = [images[i::len(images) // group_size] for i in range(len(images) // group_size)]
    for run in contenders.values():
        for _ in range(warmup):
            run(groups[0])
    rates: dict[str, list[float]] = {name: [] for name in contenders}
    order = random.Random(0)
    for _ in range(reps):
        for group in groups:
            # a fresh order each time: no contender always runs right after the same one
            # (what ran before can leave caches cold or threads waking up)
            names = list(contenders)
            order.shuffle(names)
            for name in names:
                started = time.perf_counter()
                contenders[name](group)
                rates[name].append(len(group) / (time.perf_counter() - started))
    return rates


# -- tiled inference, in a child process -------------------------------------------------------

def peak_rss_mb() -> float:
    """This process's peak resident memory.

    Linux's VmHWM belongs to the address space, which exec replaces, so it is the child's
    own; getrusage's ru_maxrss is carried over from the parent across fork and exec, so a
    child of a 1.2 GB parent would report at least 1.2 GB. ru_maxrss is the fallback
    elsewhere (KiB on Linux, bytes on macOS).
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def tiled_child(onnx_path: Path, imgsz: int, conf: float, iou: float, reps: int, max_batch: int) -> dict:
    """Runs in a fresh interpreter: tiled detection of one drone-sized image."""
    from vision.batcher import BatcherConfig
    from vision.pipeline import Pipeline

    labels = LABELS
    detector, _ = onnx_detector(onnx_path, imgsz, conf, iou, labels)
    rss_before_mb = peak_rss_mb()
    image = synthetic_image(*DRONE_WH, seed=7)
    with Pipeline(detector, bench_card(labels, imgsz, conf),
                  batcher=BatcherConfig(max_batch=max_batch, max_wait_ms=5)) as pipeline:
        pipeline.detect(image, tiled=True)  # warm-up
        times, tiles = [], 0
        for _ in range(reps):
            started = time.perf_counter()
            found = pipeline.detect(image, tiled=True)
            times.append(time.perf_counter() - started)
            tiles = found.metadata["tiles"]
    if "torch" in sys.modules:
        raise RuntimeError("the tiled child imported torch; its peak RSS would not be the pipeline's own")
    ms = statistics.median(times) * 1000
    return {"resolution_wh": list(DRONE_WH), "tiles": tiles, "ms_per_image": round(ms, 1),
            "tiles_per_s": round(tiles / (ms / 1000), 2), "max_batch": max_batch,
            "peak_rss_mb": round(peak_rss_mb(), 1),
            "rss_after_model_load_mb": round(rss_before_mb, 1), "reps": reps}


def run_tiled(onnx_path: Path, args: argparse.Namespace, max_batch: int) -> dict:
    command = [sys.executable, __file__, "--tiled-child", str(onnx_path), "--imgsz", str(args.imgsz),
               "--conf", str(args.conf), "--iou", str(args.iou), "--reps", str(1 if args.quick else 3),
               "--tiled-batch", str(max_batch)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"tiled benchmark child failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# -- main -------------------------------------------------------------------------------------

def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, help="ultralytics .pt; default: untrained yolov5nu, nc=5")
    parser.add_argument("--onnx", type=Path,
                        help="an ONNX export of --model made earlier (dynamic batch): skips the export")
    parser.add_argument("--imgsz", type=int, default=640)
    parser.add_argument("--conf", type=float, default=0.25, help="score floor for every contender")
    parser.add_argument("--iou", type=float, default=0.5)
    parser.add_argument("--batches", type=lambda s: [int(v) for v in s.split(",")], default=None,
                        help="pipeline batch sizes to try, e.g. 1,2,4,8")
    parser.add_argument("--reps", type=int, default=None, help="passes over the image set")
    parser.add_argument("--images-per-size", type=int, default=None,
                        help="images of each size (1920x1080, 640x480) in the set")
    parser.add_argument("--ultralytics-all-threads", action="store_true",
                        help="also time ultralytics with torch on every core (it sets cores - 1 itself; "
                             "on a busy 2-core box 2 torch threads were ~5x slower than 1)")
    parser.add_argument("--int8", action="store_true",
                        help="also time the pipeline on an INT8 static quantisation of the ONNX model")
    parser.add_argument("--int8-onnx", type=Path,
                        help="an INT8 model made earlier (e.g. models/NAME/model.onnx from patrol quantize) "
                             "of the same --model; implies --int8")
    parser.add_argument("--calib", type=Path,
                        help="calibration images for --int8 (dataset or folder); default: the benchmark's")
    parser.add_argument("--quick", action="store_true", help="fewer repetitions; under a minute")
    parser.add_argument("--tiled", action="store_true", help="also time tiled inference of 5472x3648")
    parser.add_argument("--json", action="store_true", help="last line: one JSON object")
    parser.add_argument("--tiled-child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--tiled-batch", type=int, default=1, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.tiled_child is not None:
        print(json.dumps(tiled_child(args.tiled_child, args.imgsz, args.conf, args.iou, args.reps or 3,
                                     args.tiled_batch)))
        return 0
    batches = args.batches or ([1, 2, 4] if args.quick else [1, 2, 4, 8])
    reps = args.reps or (3 if args.quick else 5)
    n_each = args.images_per_size or (max(batches) if args.quick else 2 * max(batches))
    group_size = min(2 * max(batches), 2 * n_each)  # enough callers in flight to fill the largest batch

    from rich.console import Console
    from rich.table import Table

    from vision.detectors.onnx_runtime import physical_core_count

    console = Console(stderr=args.json, width=120)
    with tempfile.TemporaryDirectory(prefix="patrol-bench-") as tmp:
        folder = Path(tmp)
        started = time.perf_counter()
        pt_path = args.model or build_default_pt(folder)
        if args.onnx is not None:
            if args.model is None:
                raise SystemExit("--onnx needs the --model it was exported from")
            onnx_path, labels = args.onnx, model_labels(pt_path)
        else:
            onnx_path, labels = export_onnx(pt_path, args.imgsz, folder)
        images = image_set(n_each)
        detector, config = onnx_detector(onnx_path, args.imgsz, args.conf, args.iou, labels)
        int8_path = args.int8_onnx
        if int8_path is None and args.int8:
            int8_path = quantize_for_bench(onnx_path, args.imgsz, images, folder, args.calib)
        int8_detector = None if int8_path is None else onnx_detector(int8_path, args.imgsz, args.conf,
                                                                       args.iou, labels)[0]
        weights = ("untrained weights: speed does not depend on weight values, NMS load on conf"
                   if args.model is None else "given weights")
        console.print(f"model {pt_path.name} ({weights}), imgsz {args.imgsz}, conf {args.conf} for all, "
                      f"{len(images)} images ({n_each} x 1920x1080, {n_each} x 640x480), "
                      f"groups of {group_size}, {reps} reps, "
                      f"onnxruntime threads {physical_core_count()}, "
                      f"{'rectangular' if getattr(detector, 'rect', False) else 'square'} inputs, "
                      f"export {time.perf_counter() - started:.1f} s")

        card = bench_card(labels, args.imgsz, args.conf)
        pipelines = {b: PipelineContender(detector, card, b) for b in batches}
        int8_pipelines = {} if int8_detector is None else {
            b: PipelineContender(int8_detector, card, b) for b in batches}
        ultra_default = ultralytics_contender(pt_path, args.imgsz, args.conf, args.iou, None)
        ultra_name = f"ultralytics predict (torch, {ultra_default.threads} thr, its default)"
        ultra_all_name = f"ultralytics predict (torch, {os.cpu_count()} thr)"
        contenders: dict[str, Callable[[list], None]] = {ultra_name: ultra_default}
        if args.ultralytics_all_threads and (os.cpu_count() or 1) != ultra_default.threads:
            contenders[ultra_all_name] = ultralytics_contender(pt_path, args.imgsz, args.conf, args.iou,
                                                               os.cpu_count() or 1)
        contenders |= {
            "bare onnxruntime session.run": bare_ort_contender(onnx_path, config, args.imgsz, images,
                                                               rect=bool(getattr(detector, "rect", False))),
        }
        for b, contender in pipelines.items():
            contenders[f"pipeline batch {b}"] = contender
        for b, contender in int8_pipelines.items():
            contenders[f"pipeline int8 batch {b}"] = contender
        try:
            rates = interleaved(contenders, images, reps=reps, warmup=1 if args.quick else 2,
                                group_size=group_size)
        finally:
            for contender in (*pipelines.values(), *int8_pipelines.values()):
                contender.close()
        median = {name: statistics.median(r) for name, r in rates.items()}
        per_batch = {b: median[f"pipeline batch {b}"] for b in batches}
        best_batch = max(per_batch, key=per_batch.get)
        ultra = median[ultra_name]
        ultra_best = max(median[name] for name in (ultra_name, ultra_all_name) if name in median)
        bare = median["bare onnxruntime session.run"]
        best = per_batch[best_batch]

        table = Table(title="inference speed (median images/s over groups and repetitions)")
        for column in ("contender", "images/s", "min", "max", "vs ultralytics", "vs bare ORT"):
            table.add_column(column, justify="right" if column != "contender" else "left")
        for name, r in rates.items():
            table.add_row(name, f"{median[name]:.2f}", f"{min(r):.2f}", f"{max(r):.2f}",
                          f"{median[name] / ultra:.2f}x", f"{median[name] / bare:.2f}x")
        console.print(table)
        console.print(f"best pipeline batch: {best_batch} -> {best:.2f} images/s = {best / ultra:.2f}x "
                      f"ultralytics as it runs by default (target >= 2.0x), {best / ultra_best:.2f}x its "
                      f"fastest thread setting, {best / bare:.2f}x bare session.run (target >= 0.85x)")
        summary = {
            "model": pt_path.name, "weights": "untrained" if args.model is None else "given",
            "imgsz": args.imgsz, "conf": args.conf, "threads": physical_core_count(),
            "images": len(images), "image_sizes": ["1920x1080", "640x480"], "reps": reps,
            "ultralytics_img_s": round(ultra, 3), "pipeline_img_s": round(best, 3),
            "pipeline_b1_img_s": round(per_batch[1], 3) if 1 in per_batch else None,
            "bare_ort_img_s": round(bare, 3),
            "ratio_vs_ultralytics": round(best / ultra, 3), "ratio_vs_bare": round(best / bare, 3),
            "ultralytics_threads": ultra_default.threads,
            "ultralytics_best_threads_img_s": round(ultra_best, 3),
            "ratio_vs_ultralytics_best_threads": round(best / ultra_best, 3),
            "best_batch": best_batch, "per_batch_img_s": {str(b): round(v, 3) for b, v in per_batch.items()},
        }
        if int8_pipelines:
            per_batch_int8 = {b: median[f"pipeline int8 batch {b}"] for b in batches}
            best_batch_int8 = max(per_batch_int8, key=per_batch_int8.get)
            best_int8 = per_batch_int8[best_batch_int8]
            console.print(f"int8: best batch {best_batch_int8} -> {best_int8:.2f} images/s = "
                          f"{best_int8 / ultra:.2f}x ultralytics, {best_int8 / best:.2f}x the float pipeline "
                          f"({int8_path.name})")
            summary |= {
                "int8_model": str(int8_path) if args.int8_onnx else "quantized here (training.quantize)",
                "pipeline_int8_img_s": round(best_int8, 3),
                "pipeline_int8_b1_img_s": round(per_batch_int8[1], 3) if 1 in per_batch_int8 else None,
                "ratio_int8_vs_ultralytics": round(best_int8 / ultra, 3),
                "ratio_int8_vs_fp32_pipeline": round(best_int8 / best, 3),
                "int8_best_batch": best_batch_int8,
                "int8_per_batch_img_s": {str(b): round(v, 3) for b, v in per_batch_int8.items()},
            }
        if args.tiled:
            tiled = run_tiled(onnx_path, args, best_batch)
            console.print(f"tiled {DRONE_WH[0]}x{DRONE_WH[1]}: {tiled['tiles']} tiles, "
                          f"{tiled['ms_per_image']:.0f} ms/image, {tiled['tiles_per_s']:.1f} tiles/s, "
                          f"peak RSS {tiled['peak_rss_mb']:.0f} MB (target < 2048 MB)")
            summary["tiled"] = tiled
    if args.json:
        print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
