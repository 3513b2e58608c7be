"""The camera service end to end on a real stream: a generated H.264 clip replayed as a camera through
vision.video's supervisor, smoke confirmed, recorded, and an alert delivered to a loopback webhook."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
from prometheus_client import generate_latest
from sqlalchemy import select

from service.cameras.config import AlertRule, CameraConfig, PresetWatch, RetryPolicy, WatchConfig, Webhook
from service.cameras.models import CameraStateChange
from service.cameras.receiver import Receiver
from service.cameras.runner import CameraService
from tests.service.cameras.test_watcher import SECRET, SMOKE, TOWER, WH
from tests.vision.fakes import paint_box
from vision.video import write_video


def _clip(path: Path, seconds: int = 6, fps: int = 5) -> Path:
    frames = []
    for i in range(seconds * fps):
        pixels = np.zeros((WH[1], WH[0], 3), np.uint8)
        grow = 2 * i
        paint_box(pixels, (300 - grow, 200 - 2 * grow, 330 + grow, 260), SMOKE, 0.9)
        frames.append(pixels)
    write_video(path, frames, fps=fps, keyframe_every=fps)
    return path


def test_a_replayed_clip_raises_a_delivered_alert(settings, analyzer, clock, tmp_path):
    from service.runtime import Runtime

    runtime = Runtime.build(settings, analyzer=analyzer, clock=clock)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    hook = Receiver()
    camera = CameraConfig(
        id="replay",
        name="replayed tower",
        url=str(_clip(tmp_path / "tower.mp4")),
        tower=TOWER,
        presets=(PresetWatch(preset="home", every_s=1.0, settle_s=0.0),),
    )
    config = WatchConfig(
        cameras=(camera,),
        rules=(AlertRule(name="burning-now", classes=("straw_burning",), webhooks=("office",)),),
        webhooks=(Webhook(name="office", url=hook.url, secret=SECRET),),
        retry=RetryPolicy(first_delay_s=0.1, factor=1.0),
    )
    service = CameraService(runtime, config, read_timeout_s=5, open_timeout_s=5)
    service.start()
    try:
        assert hook.arrived.wait(60), "no alert arrived within 60 s"
        metrics = generate_latest(runtime.metrics.registry).decode()
    finally:
        service.stop()
        hook.close()
        runtime.engine.dispose()
    assert len(hook.delivered()) == 1
    assert 'patrol_camera_state{camera="replay",state="online"} 1.0' in metrics
    with runtime.session_factory() as session:
        states = session.scalars(
            select(CameraStateChange.state)
            .where(CameraStateChange.camera_id == "replay")
            .order_by(CameraStateChange.id)
        ).all()
    assert states[0] == "offline" and "online" in states
    left = {t.name for t in threading.enumerate()} & {"watch[replay]", "stream[replay]", "alert-dispatcher"}
    assert left == set()  # stop() ended every thread it started
