"""`patrol alerts list|resend`, `patrol watch` as a process of its own on the shared database (readers
on separate workers), and `patrol demo-camera`: the real commands, the real default model."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from patrol_cli.main import app as patrol
from service.cameras.config import AlertRule, CameraConfig, PresetWatch, RetryPolicy, WatchConfig, Webhook
from service.cameras.delivery import SIGNATURE_HEADER, TIMESTAMP_HEADER, Dispatcher, verify_signature
from service.cameras.demo import FRAME_SIDE, SMOKE_PHOTO, smoke_clip
from service.cameras.receiver import Receiver
from service.cameras.watcher import CameraWatcher
from service.runtime import utc_now
from tests.servers.core import free_port
from tests.service.cameras.test_watcher import SECRET, SMOKE, TOWER, _frame
from vision.geo.tower import TowerCameraConfig

ROOT = Path(__file__).resolve().parents[3]
runner = CliRunner()


def _dead_alert(runtime, clock) -> int:  # type: ignore[no-untyped-def]
    """A confirmed plume whose webhook is down: its one delivery dead-lettered after one attempt."""
    camera = CameraConfig(
        id="east-tower", name="东塔", url="rtsp://tower.test/s", tower=TOWER,
        presets=(PresetWatch(every_s=2.0, settle_s=0.0),),
    )
    config = WatchConfig(
        cameras=(camera,),
        rules=(AlertRule(name="burning-now", classes=("straw_burning",), webhooks=("office",)),),
        webhooks=(Webhook(name="office", url=f"http://127.0.0.1:{free_port()}/hook", secret=SECRET),),
        retry=RetryPolicy(max_attempts=1),
    )
    watcher = CameraWatcher(runtime, config, camera)
    plume = [(300, 200, 330, 260), (296, 190, 336, 260), (290, 178, 342, 260)]
    alert_ids: list[int] = []
    for i, box in enumerate(plume):
        clock.advance(seconds=2)
        result = watcher.process(_frame(2.0 * i, [(SMOKE, box)], received_at=1000.0 + 2 * i))
        alert_ids += result.alert_ids if result else []
    Dispatcher(runtime.session_factory, config, clock=utc_now).run_due()
    (alert_id,) = alert_ids
    return alert_id


def _alerts(database_url: str) -> list[dict]:  # type: ignore[type-arg]
    result = runner.invoke(patrol, ["alerts", "list", "--json", "--database-url", database_url])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def test_alerts_list_and_resend_a_dead_letter(runtime, clock):
    url = runtime.settings.database_url
    alert_id = _dead_alert(runtime, clock)
    (listed,) = _alerts(url)
    assert (listed["id"], listed["rule"], listed["class_key"]) == (alert_id, "burning-now", "straw_burning")
    assert [(d["target"], d["state"], d["attempts"]) for d in listed["deliveries"]] == [("office", "dead", 1)]

    table = runner.invoke(patrol, ["alerts", "list", "--database-url", url], env={"COLUMNS": "200"})
    assert table.exit_code == 0 and "east-tower/home" in table.stdout and "office: dead" in table.stdout

    resent = runner.invoke(patrol, ["alerts", "resend", str(alert_id), "--database-url", url])
    assert resent.exit_code == 0, resent.output
    assert f"alert {alert_id}: 1 deliveries queued again" in resent.output
    (again,) = _alerts(url)
    assert [(d["state"], d["attempts"]) for d in again["deliveries"]] == [("pending", 0)]
    nothing = runner.invoke(patrol, ["alerts", "resend", str(alert_id), "--database-url", url])
    assert "0 deliveries queued again" in nothing.output  # pending ones are left as they are

    missing = runner.invoke(patrol, ["alerts", "resend", "999", "--database-url", url])
    assert missing.exit_code == 1 and "no alert 999" in missing.output


def test_watch_refuses_a_bad_cameras_file(tmp_path):
    path = tmp_path / "cameras.yaml"
    path.write_text("cameras:\n  - id: x\n    nmae: typo\n", encoding="utf-8")
    result = runner.invoke(patrol, ["watch", str(path), "--database-url", f"sqlite:///{tmp_path / 'l.db'}"])
    assert result.exit_code == 2 and "nmae" in result.output


@pytest.mark.slow  # a fresh interpreter with the ONNX model watching a clip: ~15-30 s on 2 cores
def test_patrol_watch_in_a_process_of_its_own_watches_a_camera_stored_through_the_api(
    settings, client, keys, tmp_path
):
    """The simplest honest version of readers on separate workers: the API process stores the camera,
    a `patrol watch` process (another machine, in production) on the same database watches it, and
    its finding and alert are in the ledger the API reads."""
    hook = Receiver()
    clip = smoke_clip(ROOT / "samples" / SMOKE_PHOTO, tmp_path / "tower.mp4")
    rules = {
        "rules": [{"name": "burning-now", "classes": ["straw_burning"], "webhooks": ["office"]}],
        "webhooks": [{"name": "office", "url": hook.url, "secret": SECRET}],
    }
    cameras_file = tmp_path / "cameras.yaml"
    cameras_file.write_text(yaml.safe_dump(rules), encoding="utf-8")
    tower = TowerCameraConfig(
        name="t", lon=119.035, lat=31.652, mount_height_m=30, heading_deg=90, tilt_deg=-12,
        image_width=FRAME_SIDE, image_height=FRAME_SIDE, hfov_deg={1.0: 60.0},
    )
    camera = {"name": "西塔", "url": str(clip), "tower": tower.model_dump(mode="json"),
              "presets": [{"preset": "home", "every_s": 1.0, "settle_s": 0.0}]}
    for camera_id in ("west-tower", "other-group"):
        answer = client.put(f"/v1/cameras/{camera_id}", headers=keys.headers("admin"), json=camera)
        assert answer.status_code == 200, answer.text
    env = {"PATH": os.environ["PATH"], "PATROL_DATA_DIR": str(tmp_path / "watcher-data")}
    watcher = subprocess.Popen(
        [str(Path(sys.executable).with_name("patrol")), "watch", str(cameras_file), "--only", "west-tower",
         "--database-url", settings.database_url, "--for-seconds", "90"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        arrived = hook.arrived.wait(90)
    finally:
        watcher.terminate()
        # patrol watch bounds its own stop (WATCH_STOP_GRACE_S, 45 s): past it, every thread's
        # stack on stderr and exit 1, which the returncode assertion below shows
        try:
            out, err = watcher.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            watcher.send_signal(signal.SIGUSR1)  # every thread's stack to stderr (faulthandler)
            time.sleep(1)
            watcher.kill()
            out, err = watcher.communicate(timeout=10)
            pytest.fail(f"patrol watch did not stop within 60 s of SIGTERM:\n{err[-6000:]}")
        finally:
            hook.close()
    assert arrived, f"no alert from the watcher process\n{err[-3000:]}"
    assert watcher.returncode == 0, err[-3000:]
    assert "watching 1 cameras" in err
    got = hook.delivered()[0]
    assert verify_signature(SECRET, got.headers[TIMESTAMP_HEADER], got.headers[SIGNATURE_HEADER], got.body)
    lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert any(r["camera"] == "west-tower" and r["alerts"] for r in lines)

    alerts = client.get("/v1/alerts", headers=keys.headers("reviewer")).json()["alerts"]
    assert [(a["camera_id"], a["class_key"]) for a in alerts] == [("west-tower", "straw_burning")]
    states = client.get("/v1/cameras", headers=keys.headers("reviewer")).json()["states"]
    assert "west-tower" in states and "other-group" not in states  # --only: the other group's process


PROGRAM = """
import json, sys
from patrol_cli.main import app
try:
    app(["demo-camera", "--out", sys.argv[1], "--samples", sys.argv[2]], standalone_mode=False)
finally:
    heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "ultralytics", "torchvision"))
    print("HEAVY", json.dumps(heavy))
"""


@pytest.mark.slow  # a fresh interpreter, the shipped model on a 12 s clip: ~15-30 s on 2 cores
def test_the_camera_demo_shows_a_signed_alert_and_a_broadcast_without_torch(tmp_path):
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-c", PROGRAM, str(tmp_path), str(ROOT / "samples")],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={"PATH": "/usr/bin:/bin", "COLUMNS": "200"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "HEAVY []" in result.stdout
    assert "(signature verified)" in result.stdout and '"class_key": "straw_burning"' in result.stdout
    assert "loudspeaker broadcast: 请勿焚烧秸秆" in result.stdout
    clips = list((tmp_path / "camera-demo" / "data" / "clips" / "demo-tower").glob("*.mp4"))
    assert len(clips) == 1 and str(clips[0].relative_to(tmp_path)) in result.stdout
    assert time.monotonic() - started < 60


STUCK_STOP = """
import sys, threading
import service.cli as cli
from service.cameras.runner import CameraService
cli.WATCH_STOP_GRACE_S = 1.0
CameraService.stop = lambda self: threading.Event().wait()  # a stop that never ends
from patrol_cli.main import app
app(["watch", sys.argv[1], "--database-url", sys.argv[2], "--for-seconds", "0.2"], standalone_mode=False)
"""


def test_a_watch_whose_stop_hangs_exits_1_with_every_threads_stack(tmp_path):
    cameras_file = tmp_path / "cameras.yaml"
    cameras_file.write_text("{}\n", encoding="utf-8")
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-c", STUCK_STOP, str(cameras_file), f"sqlite:///{tmp_path / 'ledger.db'}"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
        env={"PATH": os.environ["PATH"], "PATROL_DATA_DIR": str(tmp_path / "data")},
    )
    assert result.returncode == 1, result.stderr[-3000:]
    assert "Timeout (0:00:01)!" in result.stderr and 'in <lambda>' in result.stderr  # the stuck stop's stack
    assert time.monotonic() - started < 30


def _tgkill(pid: int, tid: int, signum: int) -> None:
    """A signal to one thread of another process (Linux tgkill): as the kernel may pick any thread."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.syscall(234, pid, tid, signum) != 0:  # 234: tgkill on x86_64
        raise OSError(ctypes.get_errno(), f"tgkill({pid}, {tid}) failed")


@pytest.mark.skipif(not sys.platform.startswith("linux") or os.uname().machine != "x86_64",
                    reason="tgkill by its x86_64 syscall number")
def test_a_sigterm_taken_by_any_thread_stops_the_watch_at_once(tmp_path):
    cameras_file = tmp_path / "cameras.yaml"
    cameras_file.write_text("{}\n", encoding="utf-8")
    watcher = subprocess.Popen(
        [str(Path(sys.executable).with_name("patrol")), "watch", str(cameras_file),
         "--database-url", f"sqlite:///{tmp_path / 'ledger.db'}", "--for-seconds", "90"],
        cwd=ROOT, env={"PATH": os.environ["PATH"], "PATROL_DATA_DIR": str(tmp_path / "data")},
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert watcher.stderr is not None
        for line in watcher.stderr:  # started: its threads (dispatcher, digests, reload) run
            if line.startswith("watching"):
                break
        others = [int(t) for t in os.listdir(f"/proc/{watcher.pid}/task") if int(t) != watcher.pid]
        assert others, "no thread but the main one"
        asked = time.monotonic()
        _tgkill(watcher.pid, others[-1], signal.SIGTERM)
        assert watcher.wait(timeout=30) == 0
        assert time.monotonic() - asked < 10  # not the --for-seconds 90 the main thread was waiting out
    finally:
        watcher.kill()
        watcher.communicate()
