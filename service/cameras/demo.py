"""`patrol demo-camera` (`make demo-camera`): a bundled photo replayed as a watchtower camera, smoke
confirmed, and the signed alert and the loudspeaker's broadcast arriving on loopback.

1. A clip is made from `samples/photos/smoke-cctv-newsmoke1-82.jpg` (a real smoke photo,
   CC BY 4.0, samples/SOURCES.md): the view closes in on the plume over 12 s, so it grows in
   the frame as smoke does; a still photo repeated would be a fixed cloud, which the
   persistence rule rightly refuses.
2. A fresh ledger under `out/camera-demo/` (SQLite, evidence and clips in `data/`).
3. A webhook receiver and a loudspeaker on 127.0.0.1 (free ports), in this process: the
   receiver checks each request's HMAC-SHA256 signature as a real one would
   (`service.cameras.delivery.verify_signature`).
4. The camera service (`CameraService`, as under `patrol watch`) with the default model
   watches the clip as a camera: every analysed frame through the one pipeline, smoke held
   until k of n samples show it growing, then recorded in the ledger, alerted, delivered.
5. It prints what arrived and the alert as `GET /v1/alerts/{id}` shows it, with its clip.

Synthetic: the tower's position and pose (near the demo's invented villages); the smoke is
real. The clip is replayed as fast as it decodes, so the stream's 12 s pass in well under a
minute. Exits 1 when no alert arrives within `--timeout`. Nothing here imports torch.
"""

from __future__ import annotations

import json
import secrets
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import numpy as np
import numpy.typing as npt
import typer

if TYPE_CHECKING:
    from service.runtime import Runtime

SMOKE_PHOTO = "photos/smoke-cctv-newsmoke1-82.jpg"
FRAME_SIDE = 640
CLIP_S, CLIP_FPS = 12, 5


def smoke_clip(photo: Path, path: Path) -> Path:
    """12 s at 5 fps closing in on the plume (its box grows about 1.8x in area), keyframe each second."""
    import cv2  # here, not at import: `patrol --help` must stay light

    from vision.errors import ImageLoadError
    from vision.video import write_video

    pixels = cv2.imread(str(photo))
    if pixels is None:
        raise ImageLoadError(str(photo), "not_found", "the demo's smoke photo is missing or unreadable")
    height, width = pixels.shape[:2]
    frames: list[npt.NDArray[np.uint8]] = []
    count = CLIP_S * CLIP_FPS
    for i in range(count):
        keep = 1.0 - 0.25 * i / (count - 1)  # the crop shrinks to 75 %: the plume fills more of it
        w, h = int(width * keep), int(height * keep)
        x, y = (width - w) * 3 // 4, (height - h) // 2  # towards the plume, right of centre
        view = cv2.resize(
            pixels[y : y + h, x : x + w],
            (FRAME_SIDE, FRAME_SIDE), interpolation=cv2.INTER_AREA,
        )
        frames.append(np.ascontiguousarray(view, dtype=np.uint8))
    write_video(path, frames, fps=CLIP_FPS, keyframe_every=CLIP_FPS)
    return path


def camera_demo_command(
    out: Annotated[Path, typer.Option(help="Output folder; its camera-demo/ is replaced.")] = Path("out"),
    samples: Annotated[Path, typer.Option(help="The bundled samples folder.")] = Path("samples"),
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the alert.", min=5)] = 50.0,
) -> None:
    from service.cameras.clips import ClipPolicy
    from service.cameras.config import (
        AlertRule,
        CameraConfig,
        Loudspeaker,
        PresetWatch,
        RetryPolicy,
        WatchConfig,
        Webhook,
    )
    from service.cameras.delivery import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify_signature
    from service.cameras.receiver import Receiver
    from service.cameras.runner import CameraService
    from service.db.session import make_engine
    from service.migrations import runner
    from service.runtime import Runtime
    from service.settings import Settings
    from vision.errors import ModelError
    from vision.geo.tower import TowerCameraConfig

    started = time.monotonic()
    root = out / "camera-demo"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    clip = smoke_clip(samples / SMOKE_PHOTO, root / "tower.mp4")
    typer.echo(f"camera clip: {clip} ({CLIP_S} s, {CLIP_FPS} fps, the view closing in on real smoke)")
    settings = Settings(database_url=f"sqlite:///{(root / 'ledger.db').resolve()}", data_dir=root / "data")
    engine = make_engine(settings.database_url)
    runner.upgrade(engine)
    engine.dispose()
    secret = secrets.token_urlsafe(24)
    office, speaker = Receiver("office-hook"), Receiver("speaker")
    camera = CameraConfig(
        id="demo-tower",
        name="青山村瞭望塔 (demo)",
        url=str(clip),
        tower=TowerCameraConfig(
            name="demo tower", lon=119.035, lat=31.652, mount_height_m=30, heading_deg=90, tilt_deg=-12,
            image_width=FRAME_SIDE, image_height=FRAME_SIDE, hfov_deg={1.0: 60.0},
        ),
        presets=(PresetWatch(preset="home", every_s=1.0, settle_s=0.0),),
        loudspeakers=("village-speaker",),
    )
    config = WatchConfig(
        cameras=(camera,),
        rules=(
            AlertRule(name="burning-now", classes=("straw_burning",), webhooks=("office",), loudspeaker=True),
        ),
        webhooks=(Webhook(name="office", url=office.url, secret=secret),),
        loudspeakers=(Loudspeaker(name="village-speaker", url=speaker.url),),
        retry=RetryPolicy(first_delay_s=0.5, factor=2.0),
        clips=ClipPolicy(before_s=10.0, after_s=3.0),
    )
    runtime = Runtime.build(settings)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    try:
        runtime.pipeline()  # load the model now: a missing one is said plainly, not per frame
    except ModelError as exc:
        typer.echo(f"no model: {exc}", err=True)
        raise typer.Exit(2) from None
    service = CameraService(runtime, config, open_timeout_s=5, read_timeout_s=5)
    service.start()
    typer.echo(f"watching {camera.id}; webhook {office.url}, loudspeaker {speaker.url}")
    try:
        arrived = office.arrived.wait(timeout)
        speaker.arrived.wait(5 if arrived else 0)
        alert: dict[str, Any] | None = None
        if arrived:
            alert = _alert_with_clip(runtime, deadline=time.monotonic() + 15)
    finally:
        service.stop()
        office.close()
        speaker.close()
        runtime.close()
    if not arrived:
        typer.echo(f"no alert within {timeout:g} s", err=True)
        raise typer.Exit(1)
    headers, body = office.received[0].headers, office.received[0].body
    valid = verify_signature(secret, headers[TIMESTAMP_HEADER], headers[SIGNATURE_HEADER], body)
    typer.echo(f"\nwebhook received: {SIGNATURE_HEADER}: {headers[SIGNATURE_HEADER][:23]}... "
               f"({'signature verified' if valid else 'SIGNATURE INVALID'})")
    typer.echo(json.dumps(json.loads(body), ensure_ascii=False, indent=2))
    for speech in speaker.received:
        typer.echo(f"loudspeaker broadcast: {json.loads(speech.body)['text']}")
    if alert is not None:
        clip_file = f" -> {settings.data_dir / alert['clip_path']}" if alert.get("clip_path") else ""
        deliveries = [(d["target"], d["state"]) for d in alert["deliveries"]]
        typer.echo(f"alert {alert['id']} in the ledger: issue {alert['issue_id']}, deliveries {deliveries}, "
                   f"clip {alert['clip']}{clip_file}")
    typer.echo(f"done in {time.monotonic() - started:.1f} s; ledger {root / 'ledger.db'}")
    if not valid:
        raise typer.Exit(1)


def _alert_with_clip(runtime: Runtime, *, deadline: float) -> dict[str, Any] | None:
    """The first alert as the API shows it, once its clip is written (or at the deadline)."""
    from service.cameras.models import Alert
    from service.cameras.views import alert_view

    while True:
        with runtime.session_factory() as session:
            alert = session.get(Alert, 1)
            if alert is not None and (alert.clip_path is not None or time.monotonic() > deadline):
                shown = alert_view(session, alert)
                shown["clip_path"] = alert.clip_path
                return shown
        if time.monotonic() > deadline:
            return None
        time.sleep(0.2)
