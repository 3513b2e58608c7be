"""Cameras stored through the API are watched without a restart: the camera service's reload tick
starts, restarts and stops supervisors as /v1/cameras changes, a stored camera overrides the file's
of the same id, and a stored camera the file cannot serve is refused with its reason."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from sqlalchemy import select

from service.cameras.config import CameraConfig, PresetWatch, WatchConfig
from service.cameras.models import CameraStateChange
from service.cameras.runner import CameraService
from service.runtime import Runtime
from tests.service.cameras.test_watcher import TOWER, WH
from vision.video import write_video

RELOAD_S = 0.2


def _blank_clip(path: Path, seconds: int = 4, fps: int = 5) -> str:
    write_video(path, [np.zeros((WH[1], WH[0], 3), np.uint8)] * (seconds * fps), fps=fps, keyframe_every=fps)
    return str(path)


def _until(check: Callable[[], bool], what: str, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"not within {timeout_s} s: {what}")


def _running(service: CameraService) -> dict[str, str]:
    return {c.config.id: c.config.name for c in service.cameras()}


def _states(runtime: Runtime, camera_id: str) -> list[tuple[str, str]]:
    with runtime.session_factory() as session:
        rows = session.execute(
            select(CameraStateChange.state, CameraStateChange.reason)
            .where(CameraStateChange.camera_id == camera_id)
            .order_by(CameraStateChange.id)
        ).all()
    return [(state, reason) for state, reason in rows]


def test_cameras_put_and_deleted_through_the_api_are_watched_without_a_restart(
    runtime, client, keys, tmp_path
):
    clip = _blank_clip(tmp_path / "tower.mp4")
    in_file = CameraConfig(
        id="file-tower", name="from the file", url=clip, tower=TOWER, presets=(PresetWatch(settle_s=0.0),)
    )
    service = CameraService(
        runtime, WatchConfig(cameras=(in_file,)), reload_s=RELOAD_S, open_timeout_s=5, read_timeout_s=5
    )
    admin = keys.headers("admin")
    stored = in_file.model_dump(mode="json", exclude={"id"})
    service.start()
    try:
        assert _running(service) == {"file-tower": "from the file"}

        answer = client.put("/v1/cameras/api-tower", headers=admin, json={**stored, "name": "added"})
        assert answer.status_code == 200, answer.text
        _until(lambda: _running(service).get("api-tower") == "added", "the added camera runs")
        _until(lambda: ("online", "frames arriving") in _states(runtime, "api-tower"), "it goes online")
        first = next(c for c in service.cameras() if c.config.id == "api-tower")

        # a stored camera with the file's id is the one watched; deleting it brings the file's back
        client.put("/v1/cameras/file-tower", headers=admin, json={**stored, "name": "overridden"})
        _until(lambda: _running(service).get("file-tower") == "overridden", "the stored one overrides")
        assert client.delete("/v1/cameras/file-tower", headers=admin).status_code == 204
        _until(lambda: _running(service).get("file-tower") == "from the file", "the file's is back")

        # changed: restarted with a new supervisor; disabled: stopped, and the state row says so
        client.put("/v1/cameras/api-tower", headers=admin, json={**stored, "name": "renamed"})
        _until(lambda: _running(service).get("api-tower") == "renamed", "the changed camera restarts")
        again = next(c for c in service.cameras() if c.config.id == "api-tower")
        assert again.supervisor is not first.supervisor and not first.supervisor.stats().running
        off = {**stored, "name": "renamed", "enabled": False}
        assert client.put("/v1/cameras/api-tower", headers=admin, json=off).status_code == 200
        _until(lambda: "api-tower" not in _running(service), "the disabled camera stops")
        assert _states(runtime, "api-tower")[-1] == ("offline", "no longer configured or disabled")
        assert not again.supervisor.stats().running and again.thread is not None
        assert not again.thread.is_alive()
    finally:
        service.stop()
    assert service.cameras() == []


def test_a_stored_camera_the_file_cannot_serve_is_refused_with_its_reason(runtime, client, keys, tmp_path):
    service = CameraService(runtime, WatchConfig(), reload_s=3600)
    stored = CameraConfig(id="x", name="speaker tower", url=_blank_clip(tmp_path / "t.mp4"), tower=TOWER)
    body = {**stored.model_dump(mode="json", exclude={"id"}), "loudspeakers": ["nowhere"]}
    answer = client.put("/v1/cameras/speaker-tower", headers=keys.headers("admin"), json=body)
    assert answer.status_code == 200, answer.text
    service.start()
    try:
        assert service.cameras() == []
        state, reason = _states(runtime, "speaker-tower")[-1]
        assert state == "offline" and "unknown loudspeakers ['nowhere']" in reason
        assert service.reload() is False  # nothing changed; the refusal is not recorded twice
        assert len(_states(runtime, "speaker-tower")) == 1
    finally:
        service.stop()


def test_only_watches_its_own_group_of_cameras(runtime, tmp_path):
    clip = _blank_clip(tmp_path / "t.mp4")
    towers = tuple(CameraConfig(id=f"t{i}", name=f"tower {i}", url=clip, tower=TOWER) for i in range(3))
    service = CameraService(runtime, WatchConfig(cameras=towers), only=frozenset({"t0", "t2"}), reload_s=3600)
    service.start()
    try:
        assert set(_running(service)) == {"t0", "t2"}
    finally:
        service.stop()
