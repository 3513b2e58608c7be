"""Inference speed, side by side with what a skeptical user would run instead, quiet and loaded.

    python benchmarks/inference.py [--quick] [--json] [--int8] [--sahi] [--tiled]

Same ONNX model for every contender (models/default, 320 px), same score floor (the lowest
of the card's operating thresholds, which is what the pipeline gives its backend), the same
images: fire8 CCTV frames from ../shared/datasets (synthetic 608x608 JPEGs when ../shared is
absent). Contenders:

- ultralytics ONNX: `YOLO("model.onnx").predict(x)` one image at a time (its ONNX backend:
  ONNX Runtime at its default options).
- ultralytics torch N thr: `YOLO(pt).predict(x)` with torch at N threads, for N = 1 (what
  ultralytics sets on 2 cores) and every core; the .pt is the same architecture
  (yolov5nu) built untrained, since the shipped model is ONNX only: speed does not depend
  on weight values.
- bare ORT defaults / bare ORT ours: letterbox + `session.run`, no NMS, one image at a time,
  ONNX Runtime's default session options / our backend's (vision.detectors.onnx_runtime).
- bare ORT ours, lanes: the same, one `session.run` per core at once (our pipeline's
  parallelism without the pipeline), reported beside the others, not as "best bare".
- OpenVINO: letterbox + the compiled model (CPU, its default latency hint), no NMS.
- pipeline: `Pipeline.from_model` at its defaults (engine "auto": OpenVINO for the float model
  when installed and it runs bf16/f16 on this CPU, else ONNX Runtime; vision.detectors.engines);
  from files `detect_many`, from arrays `detect` from 2 x lanes caller threads (a server's
  concurrent requests).
- pipeline onnxruntime / pipeline openvino: the same with the engine "auto" did not choose
  (OpenVINO only when installed), so both engines are measured side by side. With `--variants`, also
  1 lane x all cores (default engine) and ONNX Runtime's 1 lane x all cores with spinning,
  for the per-deployment recommendation in benchmarks/README.md.

Each contender runs in both modes: from files (decode included: cv2.imread for the bare
ones, their own reader for ultralytics and the pipeline) and from decoded arrays (decode
excluded for all). Each runs quiet and under the benchmark's own background load
(benchmarks/background_load.py: one busy process per core at 50 % duty), alternating every
repetition; in each repetition the contenders run in a fresh random order. Rates are
medians over repetitions; the load average at the start and end is printed beside them.

`--sahi` adds tiled inference of one 20 MP drone photo (5472x3648; no photo of that size is in
../shared/geo-samples, so it is a mosaic of the frames, stated to be a DJI Phantom 4 Pro photo
(FC6310: 8.8 mm lens, 13.2 mm sensor) taken straight down from 100 m: 2.74 cm per pixel, through
vision.geo.gsd as a real pose would be). Contenders, quiet and loaded: SAHI's
`get_sliced_prediction` (ultralytics ONNX backend, the same model) with 320 px slices and 0.2
overlap at NATIVE resolution, as SAHI users run it; our pipeline with the same slices
("same slices", issue #12); and our pipeline with tiles sized by the ground (the photo shrunk
to the target GSD of the model's classes, vision.ground_sampling, then tiled), the survey
default. `sahi_img_s`, `tiled_img_s` (ground-sized), `ratio_tiled_vs_sahi` and
`survey_photos_per_min` are quiet figures. With `--tiled` as well, `recall_native` and
`recall_resampled` come from benchmarks/aerial_recall.py: the recall of garbage piles of
1-3 m pasted into the aerial vendors test chips, found at native resolution and after
shrinking to the target GSD (its docstring says why that and not the vendors' own labels:
the shipped model does not know their class). `--tiled` adds the peak-RSS measurement of
tiling a 5472x3648 image in a child process that imports neither torch nor ultralytics.
`--quick` with either: one quiet pass per 20 MP contender, and the frame contenders on 8
frames x 2 reps without torch, so the run fits about 10 minutes on a busy 2-core box.
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
from typing import Any

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.background_load import BackgroundLoad  # noqa: E402

FIRE8 = ROOT.parent / "shared" / "datasets" / "fire8-cctv-firesmoke"
DRONE_WH = (5472, 3648)
# The stated camera of the 20 MP photo: DJI Phantom 4 Pro (FC6310) straight down from 100 m.
DRONE_FOCAL_MM, DRONE_SENSOR_WIDTH_MM, DRONE_ALTITUDE_M = 8.8, 13.2, 100.0
IOU = 0.5
MODES = ("files", "arrays")
# An item is a path (files mode) or a decoded BGR array (arrays mode).
Run = Callable[[Sequence[Any]], None]


# -- images -----------------------------------------------------------------------------------

def fire8_frames(n: int, folder: Path) -> tuple[list[Path], str]:
    """The first `n` fire8 frames (valid, then train), or synthetic JPEGs without ../shared."""
    found = [p for split in ("valid", "train") for p in sorted((FIRE8 / split / "images").glob("*.jpg"))]
    if len(found) >= n:
        return found[:n], f"fire8 frames ({FIRE8})"
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        image = cv2.GaussianBlur(rng.integers(0, 256, (608, 608, 3), dtype=np.uint8), (0, 0), 3)
        cv2.rectangle(image, (100 + i, 200), (300, 400 + i), (40, 90, 200), -1)
        path = folder / f"synthetic-{i:03d}.jpg"
        cv2.imwrite(str(path), image, [cv2.IMWRITE_JPEG_QUALITY, 90])
        paths.append(path)
    return paths, "synthetic 608x608 JPEGs (../shared/datasets absent)"


def drone_mosaic(frames: Sequence[Path], resolution_wh: tuple[int, int]) -> np.ndarray:
    """A drone-photo-sized image tiled from real frames (texture and boxes like a scene)."""
    width, height = resolution_wh
    rows = []
    decoded = [cv2.imread(str(p)) for p in frames]
    side = decoded[0].shape[0]
    for y in range(0, height, side):
        row = [decoded[(y // side * 13 + x // side) % len(decoded)] for x in range(0, width, side)]
        rows.append(np.hstack(row))
    return np.ascontiguousarray(np.vstack(rows)[:height, :width])


def drone_gsd_m(resolution_wh: tuple[int, int]) -> float:
    """The stated photo's GSD, from its camera and pose the way a real DJI photo's would be read."""
    from vision.geo.camera import Intrinsics
    from vision.geo.drone import DronePose, build_drone_projector
    from vision.geo.gsd import frame_gsd_m

    intrinsics = Intrinsics.from_focal_mm(*resolution_wh, DRONE_FOCAL_MM, DRONE_SENSOR_WIDTH_MM)
    pose = DronePose(lon=117.2, lat=31.8, relative_altitude_m=DRONE_ALTITUDE_M, yaw_deg=0.0, pitch_deg=-90.0)
    gsd = frame_gsd_m(build_drone_projector(pose, intrinsics))
    if gsd is None:
        raise RuntimeError("a nadir photo from 100 m has a GSD")
    return gsd


def as_array(item: Any) -> np.ndarray:
    """What each bare contender does with an item: decode a path, take an array as it is."""
    if isinstance(item, np.ndarray):
        return item
    image = cv2.imread(str(item), cv2.IMREAD_COLOR)
    if image is None:
        raise RuntimeError(f"cannot decode {item}")
    return image


# -- contenders -------------------------------------------------------------------------------

def ultralytics_onnx(onnx_path: Path, imgsz: int, conf: float) -> Run:
    from vision.detectors.ultralytics_offline import import_ultralytics

    yolo = import_ultralytics().YOLO(str(onnx_path), task="detect")

    def run(items: Sequence[Any]) -> None:
        for item in items:
            yolo.predict(str(item) if isinstance(item, Path) else item, imgsz=imgsz, conf=conf, iou=IOU,
                         verbose=False, device="cpu")
    return run


def untrained_pt(labels: Sequence[str], folder: Path) -> Path:
    """yolov5nu (the shipped model's architecture) with the model's classes, untrained: no download."""
    from vision.detectors.ultralytics_offline import import_ultralytics

    ultralytics = import_ultralytics()
    from ultralytics.nn.tasks import DetectionModel

    model = DetectionModel(cfg="yolov5nu.yaml", nc=len(labels), verbose=False)
    model.names = dict(enumerate(labels))
    yolo = ultralytics.YOLO("yolov5nu.yaml")
    yolo.model = model
    path = folder / "yolov5nu-untrained.pt"
    yolo.save(path)
    return path


def ultralytics_torch(pt_path: Path, imgsz: int, conf: float, threads: int) -> Run:
    import torch

    from vision.detectors.ultralytics_offline import import_ultralytics

    yolo = import_ultralytics().YOLO(str(pt_path))

    def run(items: Sequence[Any]) -> None:
        for item in items:
            # torch's thread count is process-wide and the first predict() resets it: set it every call
            torch.set_num_threads(threads)
            yolo.predict(str(item) if isinstance(item, Path) else item, imgsz=imgsz, conf=conf, iou=IOU,
                         verbose=False, device="cpu")
    return run


def bare_ort(onnx_path: Path, imgsz: int, options: Any, lanes: int = 1) -> Run:
    """letterbox + session.run, no NMS; `options` None = ONNX Runtime's defaults."""
    import onnxruntime as ort

    from vision.preprocess import letterbox_batch

    session = ort.InferenceSession(str(onnx_path), sess_options=options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name

    def one(item: Any) -> None:
        session.run(None, {name: letterbox_batch([as_array(item)], imgsz, stride=32)[0]})

    if lanes == 1:
        def run(items: Sequence[Any]) -> None:
            for item in items:
                one(item)
        return run
    pool = ThreadPoolExecutor(lanes, thread_name_prefix="bare-lane")

    def run_lanes(items: Sequence[Any]) -> None:
        list(pool.map(one, items))
    return run_lanes


def openvino_compiled(onnx_path: Path, imgsz: int) -> Run | str:
    """letterbox + OpenVINO's compiled model on CPU; a reason string when OpenVINO is missing."""
    try:
        import openvino
    except ImportError:
        return "openvino is not installed (pip install openvino)"
    from vision.preprocess import letterbox_batch

    compiled = openvino.Core().compile_model(str(onnx_path), "CPU")
    request = compiled.create_infer_request()

    def run(items: Sequence[Any]) -> None:
        for item in items:
            request.infer([letterbox_batch([as_array(item)], imgsz, stride=32)[0]])
    return run


class PipelineRun:
    """Our pipeline; files through detect_many, arrays through detect from caller threads."""

    def __init__(self, model_dir: Path, **options: Any) -> None:
        from vision.pipeline import Pipeline

        self.pipeline = Pipeline.from_model(model_dir, **options)
        config = self.pipeline.batcher_config
        self.callers = ThreadPoolExecutor(max(2, 2 * config.workers * config.max_batch),
                                          thread_name_prefix="bench-caller")

    def __call__(self, items: Sequence[Any]) -> None:
        if isinstance(items[0], Path):
            for result in self.pipeline.detect_many(items, tiled=False):
                if not result.ok:
                    raise RuntimeError(f"{result.path}: {result.error}")
        else:
            list(self.callers.map(lambda image: self.pipeline.detect(image, tiled=False), items))

    def close(self) -> None:
        self.callers.shutdown()
        self.pipeline.close()


# -- measuring --------------------------------------------------------------------------------

def measure(contenders: dict[str, Run], inputs: dict[str, Sequence[Any]], load: BackgroundLoad,
            reps: int, warmup: int) -> dict[tuple[str, str, str], list[float]]:
    """images/s per (contender, mode, condition), one pass over the set each, interleaved.

    Every repetition runs every contender in every mode once quiet and once loaded (which
    comes first alternates), each condition's passes in a fresh random order, so a burst from
    another process hits all contenders alike.
    """
    for run in contenders.values():
        for mode in MODES:
            for _ in range(warmup):
                run(inputs[mode])
    rates: dict[tuple[str, str, str], list[float]] = {}
    order = random.Random(0)
    for rep in range(reps):
        for condition in (("quiet", "loaded") if rep % 2 == 0 else ("loaded", "quiet")):
            load.set(condition == "loaded")
            passes = [(name, mode) for name in contenders for mode in MODES]
            order.shuffle(passes)
            for name, mode in passes:
                items = inputs[mode]
                started = time.perf_counter()
                contenders[name](items)
                elapsed = time.perf_counter() - started
                rates.setdefault((name, mode, condition), []).append(len(items) / elapsed)
    load.off()
    return rates


def tiled_vs_sahi(model_dir: Path, onnx_path: Path, imgsz: int, conf: float, image: np.ndarray,
                  gsd_m: float, load: BackgroundLoad, reps: int,
                  conditions: tuple[str, ...] = ("quiet", "loaded")) -> dict[str, Any]:
    """SAHI's slices at native resolution against our tiles, the same slices and sized by the
    ground (the image at `gsd_m` shrunk to the pipeline's target GSD); s/image per condition."""
    from sahi import AutoDetectionModel
    from sahi.predict import get_sliced_prediction

    from vision.detectors.ultralytics_offline import import_ultralytics
    from vision.pipeline import Pipeline, TilingConfig

    import_ultralytics()  # SAHI imports ultralytics itself: offline settings first
    overlap = 0.2
    sahi_model = AutoDetectionModel.from_pretrained(model_type="ultralytics", model_path=str(onnx_path),
                                                    confidence_threshold=conf, device="cpu", image_size=imgsz)
    pipeline = Pipeline.from_model(model_dir, tiling=TilingConfig(tile_size=imgsz, overlap=overlap))
    counts: dict[str, int] = {}

    def ours(image: np.ndarray = image) -> None:
        counts["ours_tiles"] = pipeline.detect(image, tiled=True).metadata["tiles"]

    def ground_sized(image: np.ndarray = image) -> None:
        counts["ground_sized_tiles"] = pipeline.detect(image, tiled=True, source="drone",
                                                       gsd_m=gsd_m).metadata["tiles"]

    def sahi(image: np.ndarray = image) -> None:
        # perform_standard_pred=False: slices only, as ours (SAHI's default adds one full-image pass)
        get_sliced_prediction(image, sahi_model, slice_height=imgsz, slice_width=imgsz,
                              overlap_height_ratio=overlap, overlap_width_ratio=overlap,
                              perform_standard_pred=False, verbose=0)

    contenders = {"pipeline tiled": ours, "sahi sliced": sahi, "pipeline ground-sized": ground_sized}
    corner = np.ascontiguousarray(image[:3 * imgsz, :3 * imgsz])
    for run in contenders.values():
        run(corner)  # warm-up (sessions, first-call costs) on a corner: a whole 20 MP pass costs minutes
    times: dict[tuple[str, str], list[float]] = {}
    order = random.Random(1)
    try:
        for rep in range(reps):
            for condition in (conditions if rep % 2 == 0 else conditions[::-1]):
                load.set(condition == "loaded")
                names = list(contenders)
                order.shuffle(names)
                for name in names:
                    started = time.perf_counter()
                    contenders[name]()
                    times.setdefault((name, condition), []).append(time.perf_counter() - started)
    finally:
        load.off()
        pipeline.close()
    from sahi.slicing import get_slice_bboxes

    height, width = image.shape[:2]
    counts["sahi_slices"] = len(get_slice_bboxes(height, width, slice_height=imgsz, slice_width=imgsz,
                                                 overlap_height_ratio=overlap, overlap_width_ratio=overlap))
    median = {key: statistics.median(v) for key, v in times.items()}
    out: dict[str, Any] = {"resolution_wh": [width, height], "slice": imgsz, "overlap": overlap, **counts,
                           "gsd_m": round(gsd_m, 5), "target_gsd_m": pipeline.target_gsd_m("drone"),
                           "object_px": pipeline.tiling.object_px,
                           "resample_scale": round(pipeline.resample_scale(gsd_m, "drone"), 4), "reps": reps}
    for condition in conditions:
        suffix = "" if condition == "quiet" else "_loaded"
        ours_s, sahi_s = median[("pipeline tiled", condition)], median[("sahi sliced", condition)]
        ground_s = median[("pipeline ground-sized", condition)]
        out[f"pipeline_s_per_image{suffix}"] = round(ours_s, 3)
        out[f"sahi_s_per_image{suffix}"] = round(sahi_s, 3)
        out[f"ground_sized_s_per_image{suffix}"] = round(ground_s, 3)
        out[f"ratio{suffix}"] = round(sahi_s / ours_s, 3)
        out[f"ratio_ground_sized{suffix}"] = round(sahi_s / ground_s, 3)
    return out


# -- tiled peak memory, in a child process -----------------------------------------------------

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


def tiled_child(model_dir: Path, reps: int) -> dict[str, Any]:
    """Runs in a fresh interpreter: tiled detection of one drone-sized image."""
    from vision.pipeline import Pipeline

    with Pipeline.from_model(model_dir) as pipeline:
        rss_before_mb = peak_rss_mb()
        image = np.random.default_rng(7).integers(0, 256, (DRONE_WH[1], DRONE_WH[0], 3), dtype=np.uint8)
        if reps > 1:
            pipeline.detect(image, tiled=True)  # warm-up (--quick: one timed pass, first-call costs in it)
        times, tiles = [], 0
        for _ in range(reps):
            started = time.perf_counter()
            tiles = pipeline.detect(image, tiled=True).metadata["tiles"]
            times.append(time.perf_counter() - started)
    if "torch" in sys.modules:
        raise RuntimeError("the tiled child imported torch; its peak RSS would not be the pipeline's own")
    ms = statistics.median(times) * 1000
    return {"resolution_wh": list(DRONE_WH), "tiles": tiles, "ms_per_image": round(ms, 1),
            "tiles_per_s": round(tiles / (ms / 1000), 2), "peak_rss_mb": round(peak_rss_mb(), 1),
            "rss_after_model_load_mb": round(rss_before_mb, 1), "reps": reps}


def run_tiled_child(model_dir: Path, reps: int) -> dict[str, Any]:
    command = [sys.executable, __file__, "--tiled-child", "--model-dir", str(model_dir), "--reps", str(reps)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"tiled benchmark child failed:\n{done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


# -- main -------------------------------------------------------------------------------------

def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--model-dir", type=Path, default=ROOT / "models" / "default",
                        help="an installed model folder (model.onnx + card.json)")
    parser.add_argument("--int8-dir", type=Path, default=ROOT / "models" / "default-int8",
                        help="the INT8 model for --int8")
    parser.add_argument("--images", type=int, default=None, help="frames in the set (default 40, quick 16)")
    parser.add_argument("--reps", type=int, default=None, help="repetitions (default 5, quick 3)")
    parser.add_argument("--duty", type=float, default=0.5, help="background load: busy fraction per core")
    parser.add_argument("--variants", action="store_true",
                        help="also the pipeline at 1 lane x all cores, with and without spinning")
    parser.add_argument("--no-torch", action="store_true", help="leave out the ultralytics torch contenders")
    parser.add_argument("--int8", action="store_true", help="also the pipeline on --int8-dir")
    parser.add_argument("--sahi", action="store_true", help="also tiled inference against SAHI")
    parser.add_argument("--tiled", action="store_true", help="also the peak RSS of tiling 5472x3648")
    parser.add_argument("--quick", action="store_true", help="fewer images and repetitions")
    parser.add_argument("--json", action="store_true", help="last line: one JSON object")
    parser.add_argument("--tiled-child", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.tiled_child:
        print(json.dumps(tiled_child(args.model_dir, args.reps or 3)))
        return 0
    # --quick with --sahi/--tiled (../shared/checks/S-drone) is read for the 20 MP photo and the
    # recall: the frame contenders get half the frames and two reps, and no torch (ultralytics
    # torch at 2 threads ran 0.3 images/s at load 20, 5 of the run's 14 minutes), so the run fits
    # ~10 minutes on a busy 2-core box (P-cpu's plain --quick run gives their figures).
    extras = args.quick and (args.sahi or args.tiled)
    no_torch = args.no_torch or extras
    reps = args.reps or (2 if extras else 3 if args.quick else 5)
    n_images = args.images or (8 if extras else 16 if args.quick else 40)

    from rich.console import Console
    from rich.table import Table

    from vision.detectors.base import OnnxRuntimeConfig
    from vision.detectors.engines import openvino_importable
    from vision.detectors.onnx_runtime import physical_core_count, session_options
    from vision.model_registry import resolve_model
    from vision.taxonomy import Taxonomy

    console = Console(stderr=args.json, width=130)
    model = resolve_model(args.model_dir)
    card, onnx_path, imgsz = model.card, model.weights, model.card.input_size
    taxonomy = Taxonomy.default()
    conf = min(card.threshold_for(label, taxonomy) for label in card.labels)  # the pipeline's floor
    cores = physical_core_count()
    load_before = os.getloadavg()
    summary: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="patrol-bench-") as tmp, \
            BackgroundLoad(cores, duty=args.duty, max_s=3600) as load:
        paths, source = fire8_frames(n_images, Path(tmp))
        inputs: dict[str, Sequence[Any]] = {"files": paths, "arrays": [as_array(p) for p in paths]}
        console.print(f"model {card.name} ({onnx_path}), {imgsz} px, conf floor {conf:.4f}, IoU {IOU}; "
                      f"{len(paths)} images: {source}; {reps} reps; {cores} cores; "
                      f"loaded = {load.describe()}; "
                      f"load average before {load_before[0]:.2f}")
        pipelines = {"pipeline": PipelineRun(args.model_dir)}
        engine = pipelines["pipeline"].pipeline.engine
        # the engine "auto" did not choose, measured beside it (when it can run here)
        other_engine = ("onnxruntime" if engine == "openvino"
                        else "openvino" if openvino_importable() else None)
        if other_engine is not None:
            pipelines[f"pipeline {other_engine}"] = PipelineRun(args.model_dir, engine=other_engine)
        console.print(f"pipeline engine at its defaults: {engine}"
                      + (f" (also measured: {other_engine})" if other_engine else ""))
        if args.variants:
            pipelines["pipeline 1 lane x all cores"] = PipelineRun(
                args.model_dir, intra_op_threads=0, lanes=1)
            pipelines["pipeline onnxruntime 1 lane x all cores, spinning"] = PipelineRun(
                args.model_dir, intra_op_threads=0, lanes=1, allow_spinning=True, engine="onnxruntime")
        if args.int8:
            pipelines["pipeline int8"] = PipelineRun(args.int8_dir)
        ours = session_options(OnnxRuntimeConfig(model=onnx_path))
        contenders: dict[str, Run] = {
            "ultralytics ONNX": ultralytics_onnx(onnx_path, imgsz, conf),
            "bare ORT defaults": bare_ort(onnx_path, imgsz, None),
            "bare ORT ours": bare_ort(onnx_path, imgsz, ours),
            f"bare ORT ours, {cores} lanes": bare_ort(onnx_path, imgsz, ours, lanes=cores),
        }
        bare_names = ["bare ORT defaults", "bare ORT ours"]
        openvino = openvino_compiled(onnx_path, imgsz)
        if isinstance(openvino, str):
            console.print(f"[yellow]OpenVINO left out: {openvino}[/yellow]")
        else:
            contenders["OpenVINO compiled"] = openvino
        torch_names = []
        if not no_torch:
            pt_path = untrained_pt(card.labels, Path(tmp))
            for threads in sorted({1, cores}):
                torch_names.append(f"ultralytics torch {threads} thr")
                contenders[torch_names[-1]] = ultralytics_torch(pt_path, imgsz, conf, threads)
        contenders |= pipelines
        try:
            rates = measure(contenders, inputs, load, reps, warmup=1)
        finally:
            for pipeline in pipelines.values():
                pipeline.close()
        load_after = os.getloadavg()
        median = {key: statistics.median(v) for key, v in rates.items()}

        def rate(name: str, mode: str = "files", condition: str = "quiet") -> float:
            return median[(name, mode, condition)]

        table = Table(title=f"images/s, median of {reps} (load average {load_before[0]:.2f} -> "
                            f"{load_after[0]:.2f} besides ours)")
        for column in ("contender", "files quiet", "arrays quiet", "files loaded", "arrays loaded"):
            table.add_column(column, justify="left" if column == "contender" else "right")
        for name in contenders:
            table.add_row(name, *(f"{rate(name, m, c):.1f}" for c in ("quiet", "loaded") for m in MODES))
        console.print(table)

        def best_bare(mode: str, condition: str) -> float:
            # OpenVINO is a bare runtime too: the best of them is the bar
            names = bare_names + (["OpenVINO compiled"] if "OpenVINO compiled" in contenders else [])
            return max(rate(n, mode, condition) for n in names)

        pipe = {(m, c): rate("pipeline", m, c) for m in MODES for c in ("quiet", "loaded")}
        summary = {
            "model": card.name, "imgsz": imgsz, "conf": round(conf, 4), "images": len(paths),
            "source": source,
            "reps": reps, "cores": cores, "load": load.describe(),
            "loadavg_before": round(load_before[0], 2), "loadavg_after": round(load_after[0], 2),
            "img_s": {f"{name} | {mode} | {condition}": round(v, 2)
                      for (name, mode, condition), v in median.items()},
            "pipeline_engine": engine,
            "pipeline_img_s": round(pipe[("files", "quiet")], 2),
            "pipeline_loaded_img_s": round(pipe[("files", "loaded")], 2),
            "ratio_vs_bare_best": round(pipe[("files", "quiet")] / best_bare("files", "quiet"), 3),
            "ratio_vs_bare_best_arrays": round(pipe[("arrays", "quiet")] / best_bare("arrays", "quiet"), 3),
            "ratio_vs_bare_best_loaded": round(pipe[("files", "loaded")] / best_bare("files", "loaded"), 3),
            "ratio_vs_bare_lanes": round(pipe[("files", "quiet")] / rate(f"bare ORT ours, {cores} lanes"), 3),
        }
        if other_engine is not None:
            summary[f"ratio_vs_pipeline_{other_engine}"] = round(
                pipe[("files", "quiet")] / rate(f"pipeline {other_engine}"), 3)
            summary[f"ratio_vs_pipeline_{other_engine}_loaded"] = round(
                pipe[("files", "loaded")] / rate(f"pipeline {other_engine}", condition="loaded"), 3)
        for condition, suffix in (("quiet", ""), ("loaded", "_loaded")):
            for mode, msuffix in (("files", ""), ("arrays", "_arrays")):
                summary[f"ratio_vs_ultralytics_onnx{msuffix}{suffix}"] = round(
                    pipe[(mode, condition)] / rate("ultralytics ONNX", mode, condition), 3)
                if torch_names:
                    summary[f"ratio_vs_ultralytics_torch_best{msuffix}{suffix}"] = round(
                        pipe[(mode, condition)] / max(rate(n, mode, condition) for n in torch_names), 3)
        if args.int8:
            summary["ratio_int8_vs_ultralytics_onnx"] = round(
                rate("pipeline int8") / rate("ultralytics ONNX"), 3)
            summary["ratio_int8_vs_ultralytics_onnx_loaded"] = round(
                rate("pipeline int8", condition="loaded") / rate("ultralytics ONNX", condition="loaded"), 3)
            summary["ratio_int8_vs_pipeline"] = round(rate("pipeline int8") / pipe[("files", "quiet")], 3)
            onnxruntime_pipeline = "pipeline" if engine == "onnxruntime" else "pipeline onnxruntime"
            summary["ratio_int8_vs_pipeline_onnxruntime"] = round(
                rate("pipeline int8") / rate(onnxruntime_pipeline), 3)
        console.print(
            f"from files, quiet: pipeline {pipe[('files', 'quiet')]:.1f} images/s = "
            f"{summary['ratio_vs_bare_best']:.2f}x the best bare runtime (goal 0.95), "
            f"{summary['ratio_vs_ultralytics_onnx']:.2f}x ultralytics ONNX (goal 1.1); loaded: "
            f"{summary['ratio_vs_ultralytics_onnx_loaded']:.2f}x ultralytics ONNX (goal 1.5)")
        if args.int8:
            console.print(
                f"from files, quiet: pipeline on {args.int8_dir.name} {rate('pipeline int8'):.1f} images/s = "
                f"{summary['ratio_int8_vs_ultralytics_onnx']:.2f}x ultralytics ONNX (fp32; goal 1.4), "
                f"{summary['ratio_int8_vs_pipeline']:.2f}x the fp32 pipeline")
        if args.sahi:
            mosaic = drone_mosaic(paths, DRONE_WH)  # a 20 MP photo, --quick too: the survey's real size
            # --quick: one quiet pass each (a 20 MP SAHI pass takes over a minute on a busy box)
            conditions = ("quiet",) if args.quick else ("quiet", "loaded")
            tiled = tiled_vs_sahi(args.model_dir, onnx_path, imgsz, conf, mosaic, drone_gsd_m(DRONE_WH), load,
                                  1 if args.quick else 3, conditions)
            summary["tiled_vs_sahi"] = tiled
            summary["sahi_img_s"] = round(1 / tiled["sahi_s_per_image"], 4)
            summary["tiled_img_s"] = round(1 / tiled["ground_sized_s_per_image"], 4)
            summary["survey_photos_per_min"] = round(60 / tiled["ground_sized_s_per_image"], 2)
            for suffix in ("", "_loaded")[:len(conditions)]:
                summary[f"ratio_tiled_same_slices_vs_sahi{suffix}"] = tiled[f"ratio{suffix}"]
                summary[f"ratio_tiled_vs_sahi{suffix}"] = tiled[f"ratio_ground_sized{suffix}"]
            loaded = "" if args.quick else (f", {tiled['ratio_loaded']:.2f}x loaded (goal 1.2); ground-sized "
                                            f"{tiled['ratio_ground_sized_loaded']:.2f}x loaded")
            console.print(f"tiled {tiled['resolution_wh']}: {tiled['ours_tiles']} tiles (SAHI "
                          f"{tiled['sahi_slices']} slices) of {imgsz} px: pipeline {tiled['ratio']:.2f}x "
                          f"SAHI quiet{loaded}")
            console.print(f"sized by the ground ({tiled['gsd_m']} m/px -> target {tiled['target_gsd_m']}, "
                          f"{tiled['ground_sized_tiles']} tiles): {summary['tiled_img_s']:.3f} photos/s = "
                          f"{summary['survey_photos_per_min']:.1f} photos/min, "
                          f"{tiled['ratio_ground_sized']:.2f}x SAHI quiet (goal 3)")
            if args.tiled:
                from benchmarks.aerial_recall import measure as aerial_recall

                recall = aerial_recall(args.model_dir, imgsz, 0.2, () if args.quick else (16, 24))
                summary["aerial_recall"] = recall
                summary["recall_native"] = recall["recall_native"]
                summary["recall_resampled"] = recall["recall_resampled"]
                console.print(f"recall of {recall['piles']} pasted 1-3 m garbage piles on the aerial vendors "
                              f"test chips (assumed {recall['assumed_gsd_m'] * 100:g} cm/px): native "
                              f"{recall['recall_native']:.3f}, resampled {recall['recall_resampled']:.3f} "
                              f"(goal: within 0.01); by object_px {recall['recall_by_object_px']}")
    if args.tiled:
        summary["tiled"] = run_tiled_child(args.model_dir, 1 if args.quick else 3)
        console.print(f"tiled {DRONE_WH[0]}x{DRONE_WH[1]}: {summary['tiled']['tiles']} tiles, "
                      f"peak RSS {summary['tiled']['peak_rss_mb']:.0f} MB")
    if args.json:
        print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
