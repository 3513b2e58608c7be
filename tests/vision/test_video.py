"""vision.video on generated clips: sampling, keyframes, bad input, the supervisor's queue and states.

The supervisor against a real RTSP server (killed, stalled, brought back) is in test_video_streams.py.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

from tests.vision.clips import moving_box_frames, write_clip
from vision.errors import StreamError, VideoError
from vision.video import Backoff, StreamSupervisor, is_video_source, open_video, write_video


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4 s at 10 fps, a keyframe every second."""
    return write_clip(tmp_path_factory.mktemp("clips") / "clip.mp4", seconds=4, fps=10, keyframe_every=10)


@pytest.mark.parametrize(("every_s", "keyframes_only", "expected_times"), [
    (None, False, [i / 10 for i in range(40)]),
    (1.0, False, [0.0, 1.0, 2.0, 3.0]),
    (0.5, False, [0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5]),
    (None, True, [0.0, 1.0, 2.0, 3.0]),
    (2.0, True, [0.0, 2.0]),
    (1.5, True, [0.0, 2.0, 3.0]),  # keyframes only: the first keyframe at or after each due time
])
def test_frames_are_sampled_by_stream_time(clip: Path, every_s: float | None, keyframes_only: bool,
                                           expected_times: list[float]) -> None:
    with open_video(clip, every_s=every_s, keyframes_only=keyframes_only) as reader:
        frames = list(reader)
    assert [round(f.time_s, 3) for f in frames] == pytest.approx(expected_times)
    assert [f.index for f in frames] == [round(t * 10) for t in expected_times]
    assert [f.keyframe for f in frames] == [f.index % 10 == 0 for f in frames]
    first = frames[0]
    assert first.pixels.dtype == np.uint8 and first.pixels.shape == (240, 320, 3)
    assert first.pixels.flags.c_contiguous and first.resolution_wh == (320, 240)
    assert first.source == str(clip) and first.received_at > 0


def test_decoded_pixels_are_the_encoded_frames_in_bgr(tmp_path: Path) -> None:
    red = np.zeros((64, 96, 3), np.uint8)
    red[..., 2] = 220  # BGR: red
    write_video(tmp_path / "red.mp4", [red] * 5, fps=5)
    frames = list(open_video(tmp_path / "red.mp4"))
    assert len(frames) == 5
    mean_bgr = frames[0].pixels.reshape(-1, 3).mean(axis=0)
    assert mean_bgr[2] > 200 and mean_bgr[0] < 20 and mean_bgr[1] < 20


@pytest.mark.parametrize(("name", "content", "reason"), [
    ("missing.mp4", None, "not_found"),
    ("empty.mp4", b"", "corrupt"),
    ("text.mp4", b"this is not a video at all " * 40, "unsupported_format"),
])
def test_bad_files_raise_a_video_error_with_a_reason(tmp_path: Path, name: str, content: bytes | None,
                                                     reason: str) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(VideoError) as caught:
        open_video(path)
    assert caught.value.reason == reason and not caught.value.retryable
    assert str(path) in str(caught.value)


def test_corrupt_packets_cost_their_frames_not_the_clip(clip: Path, tmp_path: Path) -> None:
    data = bytearray(clip.read_bytes())
    rng = np.random.default_rng(1)
    for i in rng.integers(2000, len(data) - 2000, 400):  # past the header, before the index
        data[i] ^= 0xFF
    damaged = tmp_path / "damaged.mp4"
    damaged.write_bytes(bytes(data))
    with open_video(damaged) as reader:
        frames = list(reader)
    assert reader.decode_errors > 0
    assert 10 <= len(frames) < 40  # most frames survive; the refused packets' frames are gone


def test_concealed_frames_are_marked_and_never_taken_as_samples(tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "clip.mp4", seconds=8, fps=10, keyframe_every=10)
    data = bytearray(clip.read_bytes())
    rng = np.random.default_rng(3)
    for i in rng.integers(4000, len(data) * 3 // 4, 300):  # inside the media data, not the index
        data[i] ^= 0xFF
    damaged = tmp_path / "damaged.mp4"
    damaged.write_bytes(bytes(data))
    with open_video(damaged) as every_frame:
        frames = list(every_frame)
    concealed = sum(frame.concealed for frame in frames)
    assert concealed > 0 and every_frame.decode_errors >= concealed  # counted as errors, still delivered
    with open_video(damaged, every_s=0.5) as sampled:
        samples = list(sampled)
    assert samples and not any(frame.concealed for frame in samples)
    with open_video(clip) as clean:
        assert not any(frame.concealed for frame in clean) and clean.decode_errors == 0


def test_an_unreachable_stream_is_a_retryable_stream_error() -> None:
    from tests.servers.core import free_port

    started = time.monotonic()
    with pytest.raises(StreamError) as caught:
        open_video(f"rtsp://127.0.0.1:{free_port()}/nothing", open_timeout_s=2, read_timeout_s=2)
    assert caught.value.retryable and caught.value.reason in ("disconnected", "open_timeout")
    assert time.monotonic() - started < 5


@pytest.mark.parametrize(("source", "expected"), [
    ("clip.mp4", True), ("CLIP.MKV", True), ("rtsp://cam/1", True), ("https://x/live.m3u8", True),
    ("photo.jpg", False), ("ortho.tif", False), ("folder", False),
])
def test_video_sources_are_told_from_images(source: str, expected: bool) -> None:
    assert is_video_source(source) is expected


def test_write_video_sets_the_keyframe_interval(tmp_path: Path) -> None:
    write_video(tmp_path / "g5.mp4", moving_box_frames(20, (64, 48)), fps=10, keyframe_every=5)
    keyframes = [f.index for f in open_video(tmp_path / "g5.mp4", keyframes_only=True)]
    assert keyframes == [0, 5, 10, 15]


# -- the supervisor on a file (replayed as a camera) ------------------------------------------------


def test_a_slow_consumer_gets_the_newest_frames_and_drops_are_counted(clip: Path) -> None:
    states: list[tuple[str, str]] = []
    supervisor = StreamSupervisor(str(clip), queue_size=2, on_state=lambda s, r: states.append((s, r)))
    with supervisor:
        deadline = time.monotonic() + 20
        while supervisor.stats().frames < 30 and time.monotonic() < deadline:
            time.sleep(0.05)
        stats = supervisor.stats()
        first = supervisor.get(timeout=1)
        second = supervisor.get(timeout=1)
    assert stats.frames >= 30 and stats.dropped >= stats.frames - 2 - 2  # at most the queue kept, plus races
    assert first is not None and second is not None and second.received_at >= first.received_at
    assert states and states[0][0] == "online"
    assert not supervisor.stats().running


def test_a_file_is_replayed_when_it_ends(clip: Path) -> None:
    supervisor = StreamSupervisor(str(clip), keyframes_only=True, queue_size=16)
    times: list[float] = []
    with supervisor:
        while len(times) < 6:
            frame = supervisor.get(timeout=5)
            assert frame is not None
            times.append(frame.time_s)
    assert times == pytest.approx([0.0, 1.0, 2.0, 3.0, 0.0, 1.0])
    assert supervisor.stats().reconnects == 0  # a replay is not a lost connection


def test_a_missing_source_stays_offline_and_the_caller_never_waits_longer_than_asked(tmp_path: Path) -> None:
    states: list[str] = []
    supervisor = StreamSupervisor(str(tmp_path / "gone.mp4"), on_state=lambda s, r: states.append(s),
                                  backoff=Backoff(initial_s=0.05, max_s=0.1), max_restarts=3)
    with supervisor:
        started = time.monotonic()
        assert supervisor.get(timeout=0.3) is None
        assert time.monotonic() - started < 1.0
        deadline = time.monotonic() + 5
        while supervisor.stats().running and time.monotonic() < deadline:
            time.sleep(0.05)
    stats = supervisor.stats()
    assert stats.state == "offline" and "gave up after 4" in stats.reason and not stats.running
    assert states == []  # offline from the start: never a change to report


def test_stop_ends_the_reader_thread(clip: Path) -> None:
    before = threading.active_count()
    supervisor = StreamSupervisor(str(clip))
    supervisor.start()
    assert supervisor.get(timeout=5) is not None
    assert supervisor.stop(timeout_s=5)
    assert threading.active_count() == before
    started = time.monotonic()
    while supervisor.get(timeout=2) is not None:  # what was queued is still handed out, then None at once
        pass
    assert time.monotonic() - started < 1


def test_a_failing_state_callback_does_not_stop_the_reader(clip: Path) -> None:
    def broken(state: str, reason: str) -> None:
        raise RuntimeError("callback bug")

    with StreamSupervisor(str(clip), on_state=broken) as supervisor:
        assert supervisor.get(timeout=5) is not None
        assert supervisor.get(timeout=5) is not None
    assert supervisor.stats().frames >= 2
