"""How many 1080p H.264 camera streams one core can watch, side by side by decoding strategy.

    python benchmarks/streams.py [--quick] [--json] [--seconds S] [--streams N]

Each stream is analysed once every 2 s (one frame through the real pipeline of models/default
at its input size). The limit is decode, so decode is measured per stream-second of video, in
CPU seconds on one thread (FFmpeg threads = 1, ONNX Runtime intra-op threads = 1), for:

- pyav_keyframes: PyAV with `skip_frame = "NONKEY"` (vision.video, keyframes_only=True);
- pyav_all: PyAV decoding every frame, converting only the sampled ones;
- opencv_all: OpenCV's VideoCapture (FFmpeg backend) grabbing every frame, retrieving the sampled.

streams_per_core = 1 / (decode CPU per stream-second + detection CPU per frame / 2 s), for each
strategy; the headline `streams_per_core` is the keyframe strategy vision.video uses.

The clip is generated: 1080p at 25 fps, a keyframe every 2 s, with moving noise (a pessimistic
case for the decoder: real hillsides compress far better).

`rss_mb_per_stream`: N StreamSupervisors (keyframes only, queue 2) replaying the clip at once,
the process's RSS growth over one, divided by N.

`streams_per_core_measured`: the same, measured rather than derived: `--measured-streams`
streams of the 1080p clip run at once, paced in real time (each keyframe decoded and handed to
the pipeline at its stream time), and the stream-seconds watched divided by the CPU seconds the
process used meanwhile. `detect_latency_p50_s` / `_p95_s`: in that run, the wall time from a
frame being due to its detections being ready.

`alert_latency_p50_s` / `_p95_s`: frame-to-webhook latency of smoke alerts, after the
persistence rule is met, through the real camera watcher, ledger and dispatcher to a webhook
receiver on loopback (benchmarks/stream_alerts.py; `latency_measures` says exactly what).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.stream_alerts import measure_alert_latency, percentile  # noqa: E402
from vision.pipeline import Pipeline  # noqa: E402
from vision.proc_status import rss_mb  # noqa: E402
from vision.video import StreamSupervisor, open_video, write_video  # noqa: E402

ANALYSE_EVERY_S = 2.0
FPS = 25
GOP = 50  # a keyframe every 2 s, as many cameras are set


def noise_frames(count: int, size_wh: tuple[int, int] = (1920, 1080), seed: int = 0):  # type: ignore[no-untyped-def]
    width, height = size_wh
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, (height // 4, width // 4, 3), dtype=np.uint8)
    base = cv2.resize(base, (width, height), interpolation=cv2.INTER_LINEAR)
    for i in range(count):
        frame = np.roll(base, i * 4, axis=1)  # the scene pans: real motion for the inter frames
        frame = cv2.add(frame, rng.integers(0, 12, frame.shape, dtype=np.uint8))
        yield frame


def make_clip(path: Path, seconds: float) -> Path:
    write_video(path, noise_frames(round(seconds * FPS)), fps=FPS, keyframe_every=GOP)
    return path


def cpu_s() -> float:
    return time.process_time()  # all threads of this process


def decode_pyav(clip: Path, keyframes_only: bool) -> int:
    with open_video(clip, every_s=ANALYSE_EVERY_S, keyframes_only=keyframes_only,
                    decode_threads=1) as reader:
        return sum(1 for _ in reader)


def decode_opencv(clip: Path) -> int:
    capture = cv2.VideoCapture(str(clip), cv2.CAP_FFMPEG, [cv2.CAP_PROP_N_THREADS, 1])
    fps = capture.get(cv2.CAP_PROP_FPS) or FPS
    step = round(fps * ANALYSE_EVERY_S)
    kept = index = 0
    while capture.grab():
        if index % step == 0:
            ok, _ = capture.retrieve()
            kept += ok
        index += 1
    capture.release()
    return kept


def measure_decode(clip: Path, seconds: float, repeats: int) -> dict[str, dict[str, float]]:
    """CPU seconds per stream-second for each strategy; medians over interleaved repeats."""
    contenders = {
        "pyav_keyframes": lambda: decode_pyav(clip, True),
        "pyav_all": lambda: decode_pyav(clip, False),
        "opencv_all": lambda: decode_opencv(clip),
    }
    costs: dict[str, list[float]] = {name: [] for name in contenders}
    kept: dict[str, int] = {}
    for name, run in contenders.items():  # warm-up
        kept[name] = run()
    for _ in range(repeats):
        for name, run in contenders.items():
            before = cpu_s()
            run()
            costs[name].append((cpu_s() - before) / seconds)
    return {name: {"cpu_s_per_stream_s": statistics.median(values), "frames_analysed": kept[name]}
            for name, values in costs.items()}


def measure_detection(pipeline: Pipeline, clip: Path, repeats: int) -> float:
    """CPU seconds per analysed 1080p frame through the pipeline (camera kind, untiled)."""
    frames = [f.pixels for f in open_video(clip, every_s=ANALYSE_EVERY_S, keyframes_only=True)]
    pipeline.detect(frames[0], source="camera")
    before = cpu_s()
    for _ in range(repeats):
        for pixels in frames:
            pipeline.detect(pixels, source="camera")
    return (cpu_s() - before) / (repeats * len(frames))


def measure_rss(clip: Path, streams: int, seconds: float) -> float:
    base = rss_mb()
    supervisors = [StreamSupervisor(str(clip), every_s=ANALYSE_EVERY_S, keyframes_only=True, queue_size=2,
                                    name=f"bench-{i}") for i in range(streams)]
    for supervisor in supervisors:
        supervisor.start()
    deadline = time.monotonic() + seconds
    peak = base
    while time.monotonic() < deadline:
        for supervisor in supervisors:
            supervisor.get(timeout=0.05)
        peak = max(peak, rss_mb())
    for supervisor in supervisors:
        supervisor.stop()
    return (peak - base) / streams


def measure_paced(pipeline: Pipeline, clip: Path, streams: int, seconds: float) -> tuple[list[float], float]:
    """`streams` streams paced in real time at once: frame-to-detection latencies, and the CPU
    seconds the process used per stream-second watched."""
    latencies: list[float] = []
    lock = threading.Lock()

    def watch(offset_s: float) -> None:
        started = time.monotonic() + offset_s
        with open_video(clip, every_s=ANALYSE_EVERY_S, keyframes_only=True, decode_threads=1) as reader:
            for frame in reader:
                if frame.time_s > seconds:
                    break
                due = started + frame.time_s  # when a live camera would have sent this keyframe
                wait = due - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                available = max(due, time.monotonic())
                pipeline.detect(frame.pixels, source="camera")
                with lock:
                    latencies.append(time.monotonic() - available)

    threads = [threading.Thread(target=watch, args=(i * ANALYSE_EVERY_S / streams,)) for i in range(streams)]
    before = cpu_s()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies, (cpu_s() - before) / (streams * seconds)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a 10 s clip, fewer repeats")
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    parser.add_argument("--seconds", type=float, default=None,
                        help="clip length (default 10, 30 without --quick)")
    parser.add_argument("--streams", type=int, default=4, help="concurrent streams for RSS and alert latency")
    parser.add_argument("--measured-streams", type=int, default=8,
                        help="concurrent 1080p streams for the measured streams per core")
    parser.add_argument("--rounds", type=int, default=None,
                        help="smoke alerts per stream for the alert latency (default 3, 5 without --quick)")
    parser.add_argument("--model", default="default")
    args = parser.parse_args(argv)
    seconds = args.seconds or (10.0 if args.quick else 30.0)
    repeats = 2 if args.quick else 5
    rounds = args.rounds or (3 if args.quick else 5)

    load_before = os.getloadavg()[0]  # latencies on a shared machine mean little without it
    with tempfile.TemporaryDirectory(prefix="patrol-streams-") as tmp:
        began = time.monotonic()
        clip = make_clip(Path(tmp) / "1080p.mp4", seconds)
        print(f"clip: {seconds:g} s of 1080p H.264 at {FPS} fps, keyframe every {GOP} frames, "
              f"{clip.stat().st_size / 1e6:.1f} MB, made in {time.monotonic() - began:.1f} s",
              file=sys.stderr)
        decode = measure_decode(clip, seconds, repeats)
        pipeline = Pipeline.from_model(args.model, intra_op_threads=1)
        with pipeline:
            detect_cpu_s = measure_detection(pipeline, clip, repeats)
            rss_per_stream = measure_rss(clip, args.streams, 4.0 if args.quick else 10.0)
            latencies, measured_cpu_s = measure_paced(pipeline, clip, args.measured_streams, seconds)
            alerts = measure_alert_latency(pipeline, streams=args.streams, rounds=rounds)

    per_core = {name: 1.0 / (d["cpu_s_per_stream_s"] + detect_cpu_s / ANALYSE_EVERY_S)
                for name, d in decode.items()}
    result = {
        "streams_per_core": round(per_core["pyav_keyframes"], 2),
        "streams_per_core_by_decoder": {k: round(v, 2) for k, v in per_core.items()},
        "keyframes_vs_all_frames": round(per_core["pyav_keyframes"] / per_core["pyav_all"], 2),
        "pyav_all_vs_opencv_all": round(per_core["pyav_all"] / per_core["opencv_all"], 2),
        "decode_cpu_s_per_stream_s": {k: round(v["cpu_s_per_stream_s"], 4) for k, v in decode.items()},
        "detect_cpu_s_per_frame": round(detect_cpu_s, 4),
        "analysed_every_s": ANALYSE_EVERY_S,
        "rss_mb_per_stream": round(rss_per_stream, 1),
        "streams_per_core_measured": round(1.0 / measured_cpu_s, 2),
        "measured_streams": args.measured_streams,
        "measured_cpu_s_per_stream_s": round(measured_cpu_s, 4),
        "detect_latency_p50_s": round(statistics.median(latencies), 3),
        "detect_latency_p95_s": round(percentile(latencies, 0.95), 3),
        **alerts,
        "model": pipeline.card.name,
        "cores": os.cpu_count(),
        "load_avg_1m": [round(load_before, 1), round(os.getloadavg()[0], 1)],  # at start, at end
        "clip_s": seconds,
    }
    for name, cost in result["decode_cpu_s_per_stream_s"].items():  # type: ignore[attr-defined]
        print(f"{name:15s} decode {cost:.4f} CPU s per stream-second -> {per_core[name]:.1f} streams/core",
              file=sys.stderr)
    print(f"measured: {args.measured_streams} paced 1080p streams at once -> "
          f"{result['streams_per_core_measured']} streams/core; smoke frame-to-webhook "
          f"p50 {result['alert_latency_p50_s']} s, p95 {result['alert_latency_p95_s']} s "
          f"({result['alerts_delivered']} of {result['alerts_expected']} alerts delivered)", file=sys.stderr)
    if args.json:
        print(json.dumps(result))
    else:
        print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
