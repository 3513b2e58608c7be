"""Video files and live streams (RTSP, HTTP, a file replayed as a camera) as frames.

Two pieces:
- `open_video(url_or_path, ...)`: a `VideoReader`, an iterator of `VideoFrame`s decoded in
  the caller's thread, sampled every `every_s` seconds of stream time and optionally from
  keyframes only. Open and read are bounded by timeouts: a dead or stalled stream raises a
  `StreamError` (retryable) instead of blocking; a bad file a `VideoError`.
- `StreamSupervisor`: one stream watched around the clock. A thread of its own decodes into a
  bounded queue that drops the oldest frame (and counts it) when the consumer falls behind,
  reconnects with backoff, and reports the camera's state (online / degraded / offline) with
  a reason through `on_state`. The caller only ever waits as long as it asks to (`get`).

Why PyAV and not OpenCV's FFmpeg backend (both decode through FFmpeg): measured on this
project's 2-core machine (../shared/notes/video.md and benchmarks/streams.py), decoding every
frame of a 1080p H.264 stream costs about the same in both (OpenCV ~10 % faster), but only
PyAV can ask the decoder to skip everything but keyframes (`codec_context.skip_frame =
"NONKEY"`). At one analysed frame per stream every 2 s with a keyframe every 1-2 s, that
decodes a 25th to a 50th of the frames and cost ~4x less per stream-second, which is what
decides how many cameras one core can watch. PyAV also bounds open and read with timeouts
(an interrupt callback inside FFmpeg), where VideoCapture's read on a stalled RTSP stream
blocks for FFmpeg's own 30 s default, and it gives each frame its timestamp and keyframe
flag. `write_video` (PyAV's bundled libx264) writes the clips kept as evidence and the
clips tests and benchmarks stream.

Times: `VideoFrame.time_s` is stream time (seconds since the stream's first timestamp, as
the container says), which is what `--every` counts; `received_at` is the wall clock when
the frame was decoded, which is what liveness, persistence rules and latency use. After a
reconnect a live stream's `time_s` starts again near 0.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt

from vision.errors import StreamError, VideoError

if TYPE_CHECKING:
    import av.container
    import av.video.stream

log = logging.getLogger(__name__)

CameraState = Literal["online", "degraded", "offline"]
StateCallback = Callable[[CameraState, str], None]

VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".mkv", ".avi", ".ts", ".mts", ".flv", ".webm", ".h264", ".264")
STREAM_SCHEMES = ("rtsp", "rtsps", "rtmp", "http", "https", "udp", "tcp", "srt")
# Consecutive packets the decoder refuses before the input is declared corrupt; a few bad
# packets in a live stream (a lost UDP datagram, a flipped byte) only cost their frames.
MAX_CONSECUTIVE_DECODE_ERRORS = 50


def is_stream_url(source: str) -> bool:
    """rtsp://, http://, ... (a network stream), as opposed to a file path."""
    scheme, sep, _ = source.partition("://")
    return bool(sep) and scheme.lower() in STREAM_SCHEMES


def is_video_source(source: str | Path) -> bool:
    """A stream URL, or a path whose suffix says video (the image reader takes the rest)."""
    text = str(source)
    return is_stream_url(text) or Path(text).suffix.lower() in VIDEO_SUFFIXES


@dataclass(frozen=True)
class VideoFrame:
    """One decoded frame.

    - `pixels`: (H, W, 3) BGR uint8, C-contiguous, like `vision.image_io.LoadedImage.pixels`.
    - `time_s`: stream time, seconds since the stream's first timestamp.
    - `index`: the frame's number in the stream (time x frame rate where the rate is known,
      else the count of frames decoded before it), so keyframe-only reading keeps real numbers.
    - `keyframe`: whether the frame is an intra frame (decodable on its own).
    - `source`: the file or URL it came from.
    - `received_at`: wall-clock seconds (time.time()) when it was decoded.
    - `concealed`: the decoder could only conceal damage in it (FFmpeg's `is_corrupt`: smeared
      blocks after a lost or damaged packet, until the next keyframe); shown to a person it is
      mostly fine, but a detector should wait for a clean frame. Sampled reading (`every_s`)
      never delivers one: the next clean frame takes its turn.
    """

    pixels: npt.NDArray[np.uint8]
    time_s: float
    index: int
    keyframe: bool
    source: str
    received_at: float = 0.0
    concealed: bool = False

    @property
    def resolution_wh(self) -> tuple[int, int]:
        return int(self.pixels.shape[1]), int(self.pixels.shape[0])


def _import_av() -> Any:
    try:
        import av
    except ImportError as exc:  # a serving install without the dependency
        raise VideoError("<video>", "unsupported_format",
                         "PyAV is not installed (make install-serve installs it)") from exc
    return av


class _Sampler:
    """Which frames to keep: one per `every_s` of stream time (all when None)."""

    def __init__(self, every_s: float | None, frame_period_s: float) -> None:
        self.every_s = every_s
        # Timestamps jitter by a fraction of a frame; a frame due "at 2.0 s" that says 1.9999
        # is the one meant.
        self.tolerance_s = max(1e-3, frame_period_s / 2)
        self.next_due: float | None = None

    def take(self, time_s: float) -> bool:
        if self.every_s is None:
            return True
        if self.next_due is None:
            self.next_due = time_s
        if time_s + self.tolerance_s < self.next_due:
            return False
        while self.next_due <= time_s + self.tolerance_s:  # never a backlog after a gap
            self.next_due += self.every_s
        return True


class VideoReader(Iterator[VideoFrame]):
    """Frames of one opened video, decoded in the calling thread; see `open_video`.

    Close it (or use it as a context manager) to release the connection and the decoder.
    `decode_errors` counts the packets the decoder refused (their frames are skipped) and the
    frames it could only conceal (delivered with `concealed` set) so far. Over RTSP, FFmpeg's
    H.264 decoder rarely refuses a damaged packet: it conceals the damage and marks the frame.
    """

    def __init__(self, container: av.container.InputContainer, stream: av.video.stream.VideoStream,
                 source: str, *, every_s: float | None, keyframes_only: bool,
                 clock: Callable[[], float] = time.time) -> None:
        self.source = source
        self.keyframes_only = keyframes_only
        self.decode_errors = 0
        self.frames_decoded = 0
        self._container = container
        self._stream = stream
        self._clock = clock
        rate = stream.average_rate or stream.guessed_rate
        self.fps: float | None = float(rate) if rate else None
        self._sampler = _Sampler(every_s, 1 / self.fps if self.fps else 0.0)
        self._start_s = (float(stream.start_time * stream.time_base)
                         if stream.start_time is not None and stream.time_base is not None else None)
        self._opened_at = time.monotonic()
        self._frames = self._decode()

    @property
    def resolution_wh(self) -> tuple[int, int]:
        return int(self._stream.codec_context.width), int(self._stream.codec_context.height)

    def __next__(self) -> VideoFrame:
        return next(self._frames)

    def _decode(self) -> Generator[VideoFrame, None, None]:
        av = _import_av()
        consecutive_errors = 0
        for packet in self._demux(av):
            try:
                frames = packet.decode()
            except av.error.FFmpegError as exc:  # a corrupt packet: its frame is lost, not the stream
                self.decode_errors += 1
                consecutive_errors += 1
                if consecutive_errors >= MAX_CONSECUTIVE_DECODE_ERRORS:
                    detail = f"{consecutive_errors} packets in a row could not be decoded: {exc}"
                    raise VideoError(self.source, "corrupt", detail) from exc
                continue
            consecutive_errors = 0
            for frame in frames:
                self.frames_decoded += 1
                concealed = bool(frame.is_corrupt)
                self.decode_errors += concealed
                if concealed and self._sampler.every_s is not None:
                    continue  # a sample is a clean frame: the next one takes this one's turn
                time_s = self._time_of(frame)
                if not self._sampler.take(time_s):
                    continue  # not converted: the BGR conversion costs as much as a third of the decode
                yield VideoFrame(
                    pixels=np.ascontiguousarray(frame.to_ndarray(format="bgr24")),
                    time_s=time_s,
                    index=round(time_s * self.fps) if self.fps else self.frames_decoded - 1,
                    keyframe=bool(frame.key_frame),
                    source=self.source,
                    received_at=self._clock(),
                    concealed=concealed,
                )

    def _demux(self, av: Any) -> Iterator[Any]:
        """Packets of the video stream; FFmpeg's errors as VideoError/StreamError with a reason."""
        demuxer = self._container.demux(self._stream)
        while True:
            try:
                packet = next(demuxer)
            except StopIteration:
                return
            except av.error.ExitError as exc:  # the interrupt callback: the read timeout passed
                raise StreamError(self.source, "read_timeout",
                                  f"no data within the read timeout ({exc})") from exc
            except (av.error.FFmpegError, OSError) as exc:
                reason = "disconnected" if is_stream_url(self.source) else "corrupt"
                error = StreamError if reason == "disconnected" else VideoError
                raise error(self.source, reason, str(exc)) from exc
            yield packet  # the last, empty one flushes the decoder's buffered frames

    def _time_of(self, frame: Any) -> float:
        if frame.time is None:  # no timestamp at all: wall time since opening
            return time.monotonic() - self._opened_at
        if self._start_s is None:
            self._start_s = float(frame.time)
        return max(0.0, float(frame.time) - self._start_s)

    def close(self) -> None:
        self._frames.close()
        self._container.close()

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def open_video(url_or_path: str | Path, *, every_s: float | None = None, keyframes_only: bool = False,
               open_timeout_s: float = 10, read_timeout_s: float = 10, decode_threads: int = 1,
               clock: Callable[[], float] = time.time) -> VideoReader:
    """Open a video file or stream URL for reading frames (the connection is made here).

    - `every_s`: keep one frame per `every_s` seconds of stream time (None: every frame).
      Every frame is still decoded (inter frames depend on their predecessors) unless
      `keyframes_only`, which skips the non-key frames in the decoder: cheaper by the GOP
      length, with frames only as often as the stream has keyframes.
    - `open_timeout_s`, `read_timeout_s`: bounds on connecting and on each read; past them
      a `StreamError` (reason open_timeout / read_timeout) is raised, never a blocked caller.
    - `decode_threads`: FFmpeg threads for this stream's decoder; 1 keeps one stream on one
      core, which is what scales to many streams (0: FFmpeg picks, fastest for one file).

    Raises VideoError (not_found, unsupported_format, no_video, corrupt) or StreamError
    (open_timeout, disconnected).
    """
    if every_s is not None and not every_s > 0:
        raise ValueError(f"expected every_s > 0 or None, got {every_s}")
    if open_timeout_s <= 0 or read_timeout_s <= 0:
        raise ValueError(f"expected positive timeouts, got open {open_timeout_s}, read {read_timeout_s}")
    av = _import_av()
    source = str(url_or_path)
    stream_url = is_stream_url(source)
    if not stream_url:
        path = Path(source)
        if not path.is_file():
            raise VideoError(source, "not_found", "is a directory" if path.is_dir() else "no such file")
        if path.stat().st_size == 0:
            raise VideoError(source, "corrupt", "0 bytes")
    options = {"rtsp_transport": "tcp"} if source.lower().startswith("rtsp") else {}
    started = time.monotonic()
    try:
        container = av.open(source, mode="r", options=options, timeout=(open_timeout_s, read_timeout_s))
    except av.error.ExitError as exc:
        raise StreamError(source, "open_timeout",
                          f"no answer within {open_timeout_s:g} s ({exc})") from exc
    except (av.error.FFmpegError, OSError) as exc:
        if stream_url:
            slow = time.monotonic() - started >= open_timeout_s
            raise StreamError(source, "open_timeout" if slow else "disconnected", str(exc)) from exc
        reason = "unsupported_format" if isinstance(exc, av.error.InvalidDataError) else "corrupt"
        raise VideoError(source, reason, f"cannot open as a video: {exc}") from exc
    try:
        if not container.streams.video:
            raise VideoError(source, "no_video", "the container has no video stream")
        stream = container.streams.video[0]
        stream.codec_context.thread_count = decode_threads
        if decode_threads != 1:
            stream.thread_type = "AUTO"
        if keyframes_only:
            stream.codec_context.skip_frame = "NONKEY"
        return VideoReader(container, stream, source, every_s=every_s, keyframes_only=keyframes_only,
                           clock=clock)
    except BaseException:
        container.close()
        raise


def write_video(path: str | Path, frames: Iterable[npt.NDArray[np.uint8]], *, fps: float = 25.0,
                keyframe_every: int | None = None, crf: int = 23, preset: str = "veryfast") -> int:
    """Encode BGR uint8 frames (all the same size, even sides) as H.264 in an MP4; returns the count.

    `keyframe_every` frames a keyframe (the GOP length; None: the encoder's default, 250).
    Used for evidence clips and for the clips tests and benchmarks stream.
    """
    av = _import_av()
    count = 0
    rate = Fraction(fps).limit_denominator(1001)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=rate)
        stream.pix_fmt = "yuv420p"
        options = {"crf": str(crf), "preset": preset}
        if keyframe_every is not None:
            options.update({"g": str(keyframe_every), "keyint_min": str(keyframe_every), "sc_threshold": "0"})
        stream.codec_context.options = options
        for pixels in frames:
            if count == 0:
                stream.height, stream.width = int(pixels.shape[0]), int(pixels.shape[1])
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(pixels), format="bgr24")
            container.mux(stream.encode(frame))
            count += 1
        container.mux(stream.encode(None))
    return count


# -- the supervisor ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Backoff:
    """Waits between reconnects: initial_s, times factor after each failure, at most max_s, +-jitter."""

    initial_s: float = 1.0
    factor: float = 2.0
    max_s: float = 30.0
    jitter: float = 0.1  # a fraction of the wait, so cameras that dropped together do not retry together

    def __post_init__(self) -> None:
        if not (0 < self.initial_s <= self.max_s and self.factor >= 1 and 0 <= self.jitter < 1):
            raise ValueError(f"expected 0 < initial_s <= max_s, factor >= 1, 0 <= jitter < 1, got {self}")

    def wait_s(self, failures: int) -> float:
        base = min(self.max_s, self.initial_s * self.factor ** max(0, failures - 1))
        return base * (1 + random.uniform(-self.jitter, self.jitter))


@dataclass(frozen=True)
class StreamStats:
    """A supervisor's counters; times are wall-clock seconds (time.time())."""

    state: CameraState
    state_since: float
    reason: str
    frames: int
    dropped: int
    reconnects: int
    decode_errors: int
    last_frame_at: float | None
    running: bool


@dataclass
class _Counters:
    frames: int = 0
    dropped: int = 0
    reconnects: int = 0
    decode_errors: int = 0
    last_frame_at: float | None = None
    last_error_at: float = field(default=float("-inf"))


class StreamSupervisor:
    """One stream decoded in a thread of its own into a bounded queue, reconnecting on failure.

    States (`on_state(state, reason)` on each change, from the reader thread; keep it quick):
    - online: frames arrive;
    - degraded: frames arrive but the decoder refused packets within the last `degraded_hold_s`,
      or the connection was just lost and a reconnect is under way;
    - offline: not connected (before the first frame, and while reconnects fail).
    A read that stalls ends after `read_timeout_s` (then degraded, reconnecting), so a dead
    stream is offline after about read_timeout_s + open_timeout_s at worst.

    A file is replayed from the start when it ends (a file stands in for a camera).
    `max_restarts`: consecutive failed connection attempts before giving up (None: never).
    """

    def __init__(self, url: str, *, every_s: float | None = None, keyframes_only: bool = False,
                 queue_size: int = 2, on_state: StateCallback | None = None, backoff: Backoff = Backoff(),
                 open_timeout_s: float = 10, read_timeout_s: float = 10, max_restarts: int | None = None,
                 degraded_hold_s: float = 10.0, name: str | None = None) -> None:
        if queue_size < 1:
            raise ValueError(f"expected queue_size >= 1, got {queue_size}")
        self.url = url
        self.every_s = every_s
        self.keyframes_only = keyframes_only
        self.backoff = backoff
        self.open_timeout_s = open_timeout_s
        self.read_timeout_s = read_timeout_s
        self.max_restarts = max_restarts
        self.degraded_hold_s = degraded_hold_s
        self.name = name or url
        self._on_state = on_state
        self._queue: deque[VideoFrame] = deque(maxlen=queue_size)
        self._ready = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._counters = _Counters()
        self._state: CameraState = "offline"
        self._state_since = time.time()
        self._reason = "not started"

    # -- the caller's side

    def start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            raise RuntimeError(f"stream supervisor for {self.name} is already running")
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"stream[{self.name}]", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float | None = None) -> bool:
        """Asks the reader to stop and waits for it; True when it has ended.

        A reader blocked inside FFmpeg notices at its read timeout, so the default wait is
        read_timeout_s plus a second.
        """
        self._stop.set()
        with self._ready:
            self._ready.notify_all()
        thread = self._thread
        if thread is None:
            return True
        thread.join(self.read_timeout_s + 1 if timeout_s is None else timeout_s)
        return not thread.is_alive()

    def get(self, timeout: float | None = None) -> VideoFrame | None:
        """The oldest frame in the queue, waiting at most `timeout` s for one; None if none came."""
        with self._ready:
            if not self._queue:
                self._ready.wait_for(lambda: bool(self._queue) or self._stop.is_set(), timeout)
            return self._queue.popleft() if self._queue else None

    def stats(self) -> StreamStats:
        c = self._counters
        with self._ready:
            return StreamStats(self._state, self._state_since, self._reason, c.frames, c.dropped,
                               c.reconnects, c.decode_errors, c.last_frame_at,
                               self._thread is not None and self._thread.is_alive())

    @property
    def state(self) -> CameraState:
        return self._state

    def __enter__(self) -> StreamSupervisor:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # -- the reader thread

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                reader = open_video(self.url, every_s=self.every_s, keyframes_only=self.keyframes_only,
                                    open_timeout_s=self.open_timeout_s, read_timeout_s=self.read_timeout_s)
            except VideoError as exc:
                failures += 1
                self._set_state("offline", f"cannot connect ({exc.reason}: {exc.detail})")
                if self.max_restarts is not None and failures > self.max_restarts:
                    self._set_state("offline", f"gave up after {failures} failed connection attempts: "
                                               f"{exc.reason}")
                    return
                self._stop.wait(self.backoff.wait_s(failures))
                continue
            lost = self._read(reader)
            if self._stop.is_set():
                return
            if lost is None and not is_stream_url(self.url):  # a file ended: replay it at once
                failures = 0
                continue
            if lost is None:  # a live stream has no end: the server closed it
                lost = StreamError(self.url, "disconnected", "the server ended the stream")
            self._counters.reconnects += 1
            failures += 1
            self._set_state("degraded", f"stream lost, reconnecting ({lost.reason}: {lost.detail})")
            self._stop.wait(self.backoff.wait_s(failures) if failures > 1 else 0.0)

    def _read(self, reader: VideoReader) -> VideoError | None:
        """Queues frames until the stream ends (None) or fails (the error)."""
        seen_errors = 0
        try:
            with reader:
                for frame in reader:
                    if self._stop.is_set():
                        return None
                    now = time.time()
                    if reader.decode_errors > seen_errors:
                        self._counters.decode_errors += reader.decode_errors - seen_errors
                        seen_errors = reader.decode_errors
                        self._counters.last_error_at = now
                    self._push(frame, now)
                    if now - self._counters.last_error_at < self.degraded_hold_s:
                        self._set_state("degraded", f"{self._counters.decode_errors} corrupt packets so far; "
                                                    f"frames still arrive")
                    else:
                        self._set_state("online", "frames arriving")
        except VideoError as exc:
            return exc
        return None

    def _push(self, frame: VideoFrame, now: float) -> None:
        with self._ready:
            if len(self._queue) == self._queue.maxlen:
                self._counters.dropped += 1  # the deque drops the oldest on append
            self._queue.append(frame)
            self._counters.frames += 1
            self._counters.last_frame_at = now
            self._ready.notify()

    def _set_state(self, state: CameraState, reason: str) -> None:
        with self._ready:
            changed = state != self._state
            if changed:
                self._state, self._state_since = state, time.time()
            self._reason = reason
        if changed and self._on_state is not None:
            try:
                self._on_state(state, reason)
            except Exception:  # a broken callback must not kill the reader
                log.exception("on_state callback for %s failed", self.name)
