"""Clips around confirmed events: the seconds before and after the confirming frame, written as an
MP4 under the data dir, pointed at by the alert and served by the API; bounded in frames and size."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from service.cameras.clips import OUTPUT_FPS, ClipPolicy, ClipRecorder
from service.cameras.config import AlertRule, CameraConfig, PresetWatch, WatchConfig
from service.cameras.models import Alert
from service.cameras.watcher import CameraWatcher
from tests.service.cameras.test_watcher import SMOKE, TOWER, WH, _frame
from vision.video import VideoFrame, open_video


def _decoded(path: Path) -> list[VideoFrame]:
    with open_video(path) as reader:
        return list(reader)


def test_an_alerting_event_keeps_a_clip_of_the_seconds_around_it(runtime, client, keys, clock):
    camera = CameraConfig(
        id="east-tower", name="东塔", url="rtsp://tower.test/s", tower=TOWER,
        presets=(PresetWatch(every_s=2.0, settle_s=0.0),),
    )
    config = WatchConfig(
        cameras=(camera,),
        rules=(AlertRule(name="burning-now", classes=("straw_burning",)),),
        clips=ClipPolicy(before_s=6.0, after_s=4.0, max_width=320),
    )
    watcher = CameraWatcher(runtime, config, camera)
    plume = [(300, 200, 330, 260), (296, 190, 336, 260), (290, 178, 342, 260), (284, 166, 348, 260)]
    alert_ids: list[int] = []
    for i in range(9):  # a sample every second; analysed every 2 s; confirmed at 4 s
        clock.advance(seconds=1)
        result = watcher.process(_frame(float(i), [(SMOKE, plume[min(i // 2, 3)])], received_at=1000.0 + i))
        alert_ids += result.alert_ids if result else []
        if i == 4:
            assert alert_ids, "the plume is confirmed at 4 s"
            with runtime.session_factory() as session:  # the after seconds have not come yet
                assert session.get(Alert, alert_ids[0]).clip_path is None
    with runtime.session_factory() as session:
        clip_path = session.get(Alert, alert_ids[0]).clip_path
    assert clip_path is not None and clip_path.startswith("clips/east-tower/")
    path = runtime.settings.data_dir / clip_path
    frames = _decoded(path)
    # 0 s .. 4 s before (within before_s) and 5 s .. 8 s after: 9 samples, each held its second
    assert len(frames) == 9 * OUTPUT_FPS
    assert frames[0].resolution_wh == (320, 180)  # scaled to max_width, aspect kept
    assert path.stat().st_size < 200_000

    view = client.get(f"/v1/alerts/{alert_ids[0]}", headers=keys.headers("reviewer")).json()
    assert view["clip"] == f"/v1/alerts/{alert_ids[0]}/clip"
    served = client.get(view["clip"], headers=keys.headers("worker"))
    assert served.status_code == 200 and served.headers["content-type"] == "video/mp4"
    assert served.content == path.read_bytes()


def _sample(time_s: float, wh: tuple[int, int] = WH) -> VideoFrame:
    return VideoFrame(np.full((wh[1], wh[0], 3), int(time_s * 10) % 255, np.uint8), time_s, 0, True, "x")


@pytest.mark.parametrize(
    ("times", "event_at", "expected_samples"),
    [
        ([0, 1, 2, 3, 4, 5, 6, 7, 8, 9], 5, 5),  # max_frames: 5 however long the window
        ([0, 1, 2, 3, 0.5, 1.5], 3, 4),  # stream time went back: the clip ends with what it had
    ],
)
def test_clips_are_bounded_and_end_when_the_stream_starts_again(
    tmp_path, times, event_at, expected_samples
):
    written: list[tuple[str, list[int]]] = []
    recorder = ClipRecorder(
        ClipPolicy(before_s=30, after_s=30, max_frames=5), tmp_path, "t", lambda p, a: written.append((p, a))
    )
    for t in times:
        recorder.add(_sample(float(t)))
        if t == event_at:
            recorder.event(float(t), [7])
    recorder.close()
    assert len(written) == 1 and written[0][1] == [7]
    frames = _decoded(tmp_path / written[0][0])
    distinct = len({int(f.pixels.mean()) for f in frames})
    assert distinct == expected_samples
    assert len(recorder._recent) <= 5  # the buffer itself never holds more


def test_clips_off_write_nothing(tmp_path):
    written: list[str] = []
    recorder = ClipRecorder(ClipPolicy(enabled=False), tmp_path, "t", lambda p, a: written.append(p))
    for t in range(5):
        recorder.add(_sample(float(t)))
    recorder.event(4.0, [1])
    recorder.close()
    assert written == [] and not (tmp_path / "clips").exists()
