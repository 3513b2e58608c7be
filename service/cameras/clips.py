"""Short clips around confirmed camera events, kept as evidence beside the frame and its crops.

The watcher sees only the frames the stream supervisor samples (one per `every_s`, keyframes
only): decoding every frame to keep a full-rate clip would cost the ~4x that keyframe-only
decoding saves (vision/video.py). So a clip is those frames, each shown as long as it stood
in the stream, at OUTPUT_FPS: a time-lapse of the `before_s` seconds up to the frame that
confirmed the event and the `after_s` after it (the smoke growing, the truck leaving).

Bounded per camera: frames scaled to at most `max_width` pixels wide and at most
`max_frames` of them buffered (640 x 360 x 3 bytes x 40 frames: under 28 MB, and only the
last `before_s` seconds' worth is kept); a written clip of duplicated frames is a few
hundred kB. Stream time going back (a reconnect, a replayed file's start) ends the clips
waiting for their last seconds and empties the buffer. A clip is written when its last
second has arrived or the camera stops, under the data dir's `clips/`, and `on_written`
hands its path to whoever points at it (the alerts the event raised: `alerts.clip_path`).
"""

from __future__ import annotations

import logging
import os
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

from vision.errors import VideoError
from vision.video import VideoFrame, write_video

log = logging.getLogger(__name__)

OUTPUT_FPS = 4  # each sampled frame repeated for its real duration; H.264 stores a repeat in bytes
MAX_HOLD_S = 10.0  # a longer gap between samples (the head was away) is shown this long


class ClipPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(default=True, description="Keep a clip of each event that raised an alert.")
    before_s: float = Field(default=10.0, ge=0, le=120, description="Seconds before the confirming frame.")
    after_s: float = Field(default=4.0, ge=0, le=60, description="Seconds after it.")
    max_width: int = Field(default=640, ge=64, le=1920, description="Frames are scaled down to this width.")
    max_frames: int = Field(default=40, ge=1, le=300, description="Most sampled frames in one clip.")


Sample = tuple[float, npt.NDArray[np.uint8]]  # stream time, scaled BGR pixels


@dataclass
class _Pending:
    frames: list[Sample]
    until_s: float
    alert_ids: list[int]


@dataclass
class ClipRecorder:
    """One camera's recent frames and the clips waiting for their last seconds."""

    policy: ClipPolicy
    root: Path
    camera_id: str
    on_written: Callable[[str, list[int]], None]
    _recent: deque[Sample] = field(default_factory=deque)
    _pending: list[_Pending] = field(default_factory=list)

    def add(self, frame: VideoFrame) -> None:
        """Every frame the camera delivers, analysed or not, in stream order."""
        if not self.policy.enabled:
            return
        sample = (frame.time_s, self._scaled(frame.pixels))
        last = self._recent[-1] if self._recent else None
        if last is not None and (frame.time_s < last[0] or last[1].shape != sample[1].shape):
            self.close()  # the stream started again (or changed size): what came before is another take
            self._recent.clear()
        self._recent.append(sample)
        while len(self._recent) > self.policy.max_frames or (
            self._recent[0][0] < frame.time_s - self.policy.before_s
        ):
            self._recent.popleft()
        for clip in self._pending:
            if len(clip.frames) < self.policy.max_frames:
                clip.frames.append(sample)
        self._write_due(frame.time_s)

    def event(self, time_s: float, alert_ids: list[int]) -> None:
        """The frame at `time_s` (already `add`ed) confirmed an event that raised these alerts."""
        if not self.policy.enabled or not alert_ids:
            return
        frames = [s for s in self._recent if time_s - self.policy.before_s <= s[0] <= time_s]
        if frames:
            self._pending.append(_Pending(frames, time_s + self.policy.after_s, list(alert_ids)))
            self._write_due(time_s)

    def close(self) -> None:
        """Write every waiting clip with the frames it has (the camera stops or restarted)."""
        pending, self._pending = self._pending, []
        for clip in pending:
            self._write(clip)

    def _write_due(self, now_s: float) -> None:
        due = [c for c in self._pending if now_s >= c.until_s or len(c.frames) >= self.policy.max_frames]
        self._pending = [c for c in self._pending if c not in due]
        for clip in due:
            self._write(clip)

    def _scaled(self, pixels: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
        height, width = pixels.shape[:2]
        scale = min(1.0, self.policy.max_width / width)
        # H.264 in yuv420p needs even sides
        size = (max(2, int(width * scale) // 2 * 2), max(2, int(height * scale) // 2 * 2))
        return np.asarray(cv2.resize(pixels, size, interpolation=cv2.INTER_AREA), dtype=np.uint8)

    def _write(self, clip: _Pending) -> None:
        relative = f"clips/{self.camera_id}/{uuid.uuid4().hex}.mp4"
        path = self.root / relative
        part = path.with_name(f".{path.stem}.part.mp4")  # the suffix tells the muxer the container
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_video(part, _timed(clip.frames), fps=OUTPUT_FPS, keyframe_every=OUTPUT_FPS * 4)
            os.replace(part, path)  # readers never see half a clip
        except (VideoError, OSError, ValueError):
            log.exception("camera %s: clip for alerts %s not written", self.camera_id, clip.alert_ids)
            part.unlink(missing_ok=True)
            return
        self.on_written(relative, clip.alert_ids)


def _timed(frames: list[Sample]) -> list[npt.NDArray[np.uint8]]:
    """Each frame repeated for as long as it stood in the stream (the last one for a second)."""
    out = []
    for i, (time_s, pixels) in enumerate(frames):
        hold_s = frames[i + 1][0] - time_s if i + 1 < len(frames) else 1.0
        out += [pixels] * max(1, round(min(hold_s, MAX_HOLD_S) * OUTPUT_FPS))
    return out
