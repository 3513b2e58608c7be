"""Synthesised H.264 clips for the video tests and the RTSP test server (nothing binary committed).

A bright box moves across a gradient with a little noise, so consecutive frames differ and the
encoder makes real inter frames; `keyframe_every` fixes the GOP, which the keyframe tests count on.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from vision.video import write_video


def moving_box_frames(count: int, size_wh: tuple[int, int] = (320, 240),
                      seed: int = 0) -> Iterator[np.ndarray]:
    width, height = size_wh
    rng = np.random.default_rng(seed)
    ramp = np.linspace(40, 200, width, dtype=np.float32)[None, :, None]
    base = np.broadcast_to(ramp, (height, width, 3)).astype(np.uint8)
    for i in range(count):
        frame = base.copy()
        x = (i * 7) % max(1, width - 40)
        frame[height // 4: height // 4 + 40, x: x + 40] = (255, 255, 255)
        frame += rng.integers(0, 8, frame.shape, dtype=np.uint8)
        yield frame


def write_clip(path: Path, *, seconds: float = 4.0, fps: float = 10.0, size_wh: tuple[int, int] = (320, 240),
               keyframe_every: int = 10) -> Path:
    """An MP4 of `seconds` at `fps` with a keyframe every `keyframe_every` frames."""
    frames = moving_box_frames(round(seconds * fps), size_wh)
    write_video(path, frames, fps=fps, keyframe_every=keyframe_every)
    return path
