"""Frame-to-webhook latency of smoke alerts, through the real camera watcher (benchmarks/streams.py).

`streams` cameras watch a clip of smoke at once, paced in real time (each keyframe handed over
at its stream time, one analysed frame per 2 s). Each frame goes to a `service.cameras`
`CameraWatcher` (what `CameraService` does with every frame its supervisor queues): detection
through the one shared pipeline of models/default, the smoke persistence rule (the default
`PersistenceRule`, k of n samples, growing or moving), recording through `service.recording`
into a SQLite ledger, the alert rule in the same transaction, and the `Dispatcher` woken to
POST the signed webhook to a receiver on loopback, which notes when each one arrived.

Latency = the receiver's arrival time - `received_at` of the frame that met the persistence
rule (the frame whose `process()` raised the alert). That frame counts as received when it
is due by the stream's clock, already decoded: one keyframe's decode (a few ms) is not in it.
Each stream plays the clip `rounds` times, each time as a new camera on a tower 5 km from
every other, so every round is a new issue and raises one alert.

The clip: real fire video frames (../shared/datasets/fire8-cctv-firesmoke, the `fire2_mp4`
frames in order, each held for one analysis interval), 640x640; where ../shared is absent, a
synthetic plume growing over fields (`synthetic_plume`), which models/default also calls
straw_burning. `clip_source` in the result says which.
"""

from __future__ import annotations

import json
import re
import statistics
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from service.cameras.config import AlertRule, CameraConfig, PresetWatch, WatchConfig, Webhook
from service.cameras.delivery import SIGNATURE_HEADER, TIMESTAMP_HEADER, Dispatcher, verify_signature
from service.cameras.receiver import Receiver
from service.cameras.watcher import CameraWatcher
from service.migrations import runner
from service.photo_analyzer import PipelineAnalyzer
from service.runtime import Runtime
from service.settings import Settings
from vision.geo.tower import TowerCameraConfig
from vision.pipeline import Pipeline
from vision.video import open_video, write_video

ROOT = Path(__file__).resolve().parent.parent
FIRE_FRAMES = ROOT.parent / "shared" / "datasets" / "fire8-cctv-firesmoke" / "valid" / "images"
SIZE = 640
FPS = 5
HOLD_S = 2.0  # each picture is on screen for one analysis interval, a keyframe at its start
PICTURES = 6  # the rule (3 of 5) is met on the third; the rest are the plume still burning
SECRET = "benchmark-webhook-secret-0123"
DELIVERY_WAIT_S = 30.0  # after the last frame, for deliveries still under way


def fire_pictures(folder: Path | None = None) -> list[np.ndarray] | None:
    """The fire2 video's frames in order (one fire seen from a fixed camera); None when absent."""
    folder = folder or FIRE_FRAMES
    def number(path: Path) -> int:
        match = re.search(r"_mp4-(\d+)_", path.name)
        return int(match.group(1)) if match else 0

    files = sorted(folder.glob("fire2_mp4-*.jpg"), key=number)[:PICTURES]
    if len(files) < PICTURES:
        return None
    pictures = [cv2.imread(str(f)) for f in files]
    if any(p is None for p in pictures):
        return None
    return [cv2.resize(p, (SIZE, SIZE), interpolation=cv2.INTER_AREA) for p in pictures if p is not None]


def synthetic_plume(grow: float, size: int = SIZE, seed: int = 1) -> np.ndarray:
    """Smoke rising from a fire on fields under a pale sky; `grow` (0..1) is the plume's height."""
    rng = np.random.default_rng(seed)  # the same turbulence each picture: one plume, growing
    image = np.empty((size, size, 3), np.float32)
    image[:] = (70, 110, 90)
    horizon = int(size * 0.35)
    image[:horizon] = (200, 180, 150)
    fields = cv2.resize(rng.normal(0, 1, (size // 16, size // 16)).astype(np.float32), (size, size))
    image[horizon:] += fields[horizon:, :, None] * 18
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    base_x, base_y, height = size * 0.5, size * 0.8, size * 0.55 * grow
    up = np.clip((base_y - yy) / height, 0, 1)
    width = 20 + 160 * grow * up
    drift = xx - base_x - 60 * up * grow  # the plume leans with the wind as it rises
    cone = np.exp(-(drift**2) / (2 * width**2)) * (yy < base_y) * (yy > base_y - height)
    noise = np.zeros((size, size), np.float32)
    for cell, weight in ((64, 1.0), (16, 0.5), (4, 0.25)):  # coarse billows, then finer wisps
        coarse = rng.random((size // cell, size // cell)).astype(np.float32)
        noise += weight * cv2.resize(coarse, (size, size))
    turbulence = cv2.GaussianBlur(noise, (0, 0), 3)
    alpha = np.clip(cone * (0.5 + 0.6 * turbulence / turbulence.max()), 0, 0.95)[..., None]
    image = image * (1 - alpha) + np.array((190, 190, 195), np.float32) * alpha
    flames = np.exp(-(((xx - base_x) / 40) ** 2 + ((yy - base_y) / 15) ** 2))[..., None]
    image = image * (1 - flames) + np.array((30, 120, 250), np.float32) * flames
    return np.clip(image, 0, 255).astype(np.uint8)


def smoke_clip(path: Path) -> tuple[Path, str]:
    """The clip every stream plays, and where its pictures came from."""
    pictures = fire_pictures()
    source = f"real: {PICTURES} fire2_mp4 frames of {FIRE_FRAMES.parent.parent.name}"
    if pictures is None:
        pictures = [synthetic_plume(0.6 + 0.08 * i) for i in range(PICTURES)]
        source = "synthetic plume (../shared absent)"
    hold = round(HOLD_S * FPS)
    write_video(path, (p for p in pictures for _ in range(hold)), fps=FPS, keyframe_every=hold)
    return path, source


def _arrivals(receiver: Receiver) -> tuple[dict[int, float], int]:
    """When each alert's webhook first arrived with a valid signature, and how many did not verify."""
    arrived: dict[int, float] = {}
    bad_signatures = 0
    for got in list(receiver.received):
        stamp, signature = got.headers.get(TIMESTAMP_HEADER, ""), got.headers.get(SIGNATURE_HEADER, "")
        if verify_signature(SECRET, stamp, signature, got.body):
            arrived.setdefault(int(json.loads(got.body)["alert_id"]), got.at)
        else:
            bad_signatures += 1
    return arrived, bad_signatures


def _camera(stream: int, round_: int, streams: int, clip: Path) -> CameraConfig:
    k = round_ * streams + stream
    tower = TowerCameraConfig(
        name=f"tower {k}",
        lon=116.0 + 0.05 * (k % 20),  # 0.05 deg ~ 5 km: every camera sees a fire of its own
        lat=31.0 + 0.05 * (k // 20),
        mount_height_m=30,
        heading_deg=90,
        tilt_deg=-15,
        image_width=SIZE,
        image_height=SIZE,
        hfov_deg={1.0: 60.0},
    )
    return CameraConfig(
        id=f"bench-{k}",
        name=f"benchmark tower {k}",
        url=str(clip),
        tower=tower,
        presets=(PresetWatch(preset="home", every_s=HOLD_S, settle_s=0.0, dwell_s=86_400),),
        classes=("straw_burning",),
    )


def percentile(values: list[float], q: float) -> float:
    """The q-quantile by rank (below 20 values, p95 is the largest)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def measure_alert_latency(pipeline: Pipeline, *, streams: int, rounds: int) -> dict[str, Any]:
    """Frame-to-webhook latency of smoke alerts from `streams` paced streams; see the module doc."""
    with tempfile.TemporaryDirectory(prefix="patrol-alerts-") as tmp:
        clip, clip_source = smoke_clip(Path(tmp) / "smoke.mp4")
        settings = Settings(database_url=f"sqlite:///{tmp}/ledger.db", data_dir=Path(tmp) / "data")
        settings.data_dir.mkdir(parents=True)
        runtime = Runtime.build(settings, analyzer=PipelineAnalyzer(settings, pipeline=pipeline))
        runner.upgrade(runtime.engine)
        receiver = Receiver("hook")
        cameras = [[_camera(s, r, streams, clip) for r in range(rounds)] for s in range(streams)]
        config = WatchConfig(
            cameras=tuple(c for per_stream in cameras for c in per_stream),
            rules=(AlertRule(name="burning-now", classes=("straw_burning",), webhooks=("office",)),),
            webhooks=(Webhook(name="office", url=receiver.url, secret=SECRET),),
        )
        dispatcher = Dispatcher(runtime.session_factory, config, clock=runtime.lease_clock)
        dispatcher.start()
        confirmed: dict[int, tuple[float, float]] = {}  # alert id -> (frame received_at, committed at)
        lock = threading.Lock()

        def watch(stream: int) -> None:
            time.sleep(stream * HOLD_S / streams)  # cameras do not all send keyframes at the same instant
            for camera in cameras[stream]:
                watcher = CameraWatcher(runtime, config, camera)
                watcher.on_alerts.append(lambda _ids: dispatcher.wake())  # as CameraService wires it
                for frame in _paced(clip):
                    result = watcher.process(frame)
                    if result is not None and result.alert_ids:
                        with lock:
                            for alert_id in result.alert_ids:
                                confirmed[alert_id] = (frame.received_at, time.time())
                getattr(watcher, "close", lambda: None)()  # clips still waiting, where the watcher keeps them

        began = time.monotonic()
        threads = [threading.Thread(target=watch, args=(s,), name=f"bench-{s}") for s in range(streams)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        deadline = time.monotonic() + DELIVERY_WAIT_S
        while set(confirmed) - set(_arrivals(receiver)[0]) and time.monotonic() < deadline:
            time.sleep(0.05)
        wall_s = time.monotonic() - began
        dispatcher.stop()
        receiver.close()
        runtime.close()

    arrived, bad_signatures = _arrivals(receiver)
    latencies = [arrived[a] - received for a, (received, _) in confirmed.items() if a in arrived]
    to_commit = [committed - received for received, committed in confirmed.values()]
    rule = config.persistence
    return {
        "alert_latency_p50_s": round(statistics.median(latencies), 3) if latencies else None,
        "alert_latency_p95_s": round(percentile(latencies, 0.95), 3) if latencies else None,
        "alert_latency_max_s": round(max(latencies), 3) if latencies else None,
        "alert_commit_p50_s": round(statistics.median(to_commit), 3) if to_commit else None,
        "latency_measures": (
            "frame_to_webhook: webhook arrival at a loopback receiver - received_at of the frame that met "
            "the smoke persistence rule; through CameraWatcher (detection, rule, recording in SQLite, "
            "alert) and the Dispatcher (signed POST); the keyframe's decode not included"
        ),
        "persistence_rule": f"{rule.k} of {rule.n} samples within {rule.window_s:g} s, "
        f"grown x{rule.min_growth:g} or moved (IoU <= {rule.max_static_iou:g})",
        "alert_streams": streams,
        "alerts_expected": streams * rounds,
        "alerts_raised": len(confirmed),
        "alerts_delivered": len(latencies),
        "bad_signatures": bad_signatures,
        "alert_run_wall_s": round(wall_s, 1),
        "clip_source": clip_source,
    }


def _paced(clip: Path) -> Iterator[Any]:
    """The clip's keyframes, each handed over when due by the stream's clock, received then."""
    started = time.time()
    with open_video(clip, every_s=HOLD_S, keyframes_only=True, decode_threads=1) as reader:
        for frame in reader:
            wait = started + frame.time_s - time.time()
            if wait > 0:
                time.sleep(wait)
            yield replace(frame, received_at=time.time())

