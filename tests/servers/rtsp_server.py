"""An RTSP server for the video `server` tests: the configured one, or a throwaway the test controls.

The throwaway is GStreamer's RTSP server (Debian: gir1.2-gst-rtsp-server-1.0 and the GStreamer
plugins, run by the system's python3-gi; tests/servers/rtsp_gst.py) on a free loopback port,
streaming a generated H.264 clip (tests/vision/clips.py, a minute at 320x240, a keyframe
every second, written once per session) from its start to each client. Unlike PostgreSQL and
Redis it is started per test, because the tests kill it, stall it (SIGSTOP: the connection
stays open and silent) and bring it back on the same port (`RtspThrowaway`). FFmpeg alone
cannot serve: its RTSP muxer publishes to a server and does not listen for players.

PATROL_TEST_RTSP_URL names a stream to read instead; the tests that kill or stall the server
skip then, since they cannot do that to somebody else's server. PATROL_TEST_RTSP_PYTHON names
the Python that has python3-gi (default: /usr/bin/python3, then python3 on PATH).
"""

from __future__ import annotations

import functools
import os
import shutil
import signal
import subprocess
from pathlib import Path

from tests.servers.core import (
    Provided,
    Registry,
    StartFailed,
    Throwaway,
    Unavailable,
    answers,
    declared_in,
    start_with_free_port,
)

URL_ENV = "PATROL_TEST_RTSP_URL"
DEFAULT_URL = None  # nothing to find: RTSP servers are not part of a developer's machine
PYTHON_ENV = "PATROL_TEST_RTSP_PYTHON"
INSTALL = ("apt-get install -y gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base "
           "gstreamer1.0-plugins-good gstreamer1.0-plugins-bad python3-gi")
START_TIMEOUT_S = 20.0
MOUNT = "/live"
SCRIPT = Path(__file__).with_name("rtsp_gst.py")
# What the script needs: GStreamer's RTSP server typelib and the elements of its pipeline.
_CHECK = ("import gi; gi.require_version('Gst', '1.0'); gi.require_version('GstRtspServer', '1.0'); "
          "from gi.repository import Gst, GstRtspServer; Gst.init(None); "
          "missing = [e for e in ('filesrc', 'qtdemux', 'h264parse', 'rtph264pay') "
          "if Gst.ElementFactory.find(e) is None]; "
          "assert not missing, 'missing GStreamer elements: ' + ', '.join(missing)")


def probe(url: str, timeout_s: float) -> None:
    from vision.video import open_video

    with open_video(url, open_timeout_s=max(timeout_s, 5), read_timeout_s=max(timeout_s, 5)) as reader:
        next(reader)


def python_candidates() -> tuple[str, ...]:
    """The Pythons to try, in order: PATROL_TEST_RTSP_PYTHON alone when set, else the system's."""
    configured = os.environ.get(PYTHON_ENV, "").strip()
    if configured:
        return (configured,)
    return tuple(c for c in ("/usr/bin/python3", shutil.which("python3")) if c)


@functools.cache
def find_python(candidates: tuple[str, ...]) -> str:
    """The first of `candidates` with python3-gi and GStreamer's RTSP server; Unavailable otherwise."""
    last = "no python3 on this machine"
    for candidate in candidates:
        if not candidate or not os.path.exists(candidate):
            continue
        check = subprocess.run([candidate, "-c", _CHECK], capture_output=True, text=True, timeout=30)
        if check.returncode == 0:
            return candidate
        last = (check.stderr.strip().splitlines() or ["?"])[-1]
    raise Unavailable(f"no Python with GStreamer's RTSP server (python3-gi, gst-rtsp-server): {last}")


class RtspThrowaway(Throwaway):
    """A GStreamer RTSP server the test can kill, stall and bring back on the same port."""

    def __init__(self, registry: Registry, python: str, clip: Path) -> None:
        super().__init__(registry, "rtsp")
        self.python = python
        self.clip = clip
        self.port = 0

    def launch(self, port: int):  # type: ignore[no-untyped-def]
        self.port = port
        self.spawn([self.python, str(SCRIPT), str(port), MOUNT, str(self.clip)],
                   stop_signal=signal.SIGTERM, death_signal=signal.SIGKILL)
        return lambda: answers("127.0.0.1", port, 0.5)

    @property
    def rtsp_url(self) -> str:
        return f"rtsp://127.0.0.1:{self.port}{MOUNT}"

    def kill(self) -> None:
        """SIGKILL: connections reset, nothing said to the clients."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def restart(self, clip: Path | None = None) -> None:
        """Killed if running, then up again on the same port (optionally with another clip)."""
        self.kill()
        self.clip = clip or self.clip
        ready = self.launch(self.port)
        self.wait_ready(ready, START_TIMEOUT_S)

    def stall(self) -> None:
        """SIGSTOP: the connection stays open and nothing more is sent, like a hung camera."""
        if self.process is not None:
            self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGCONT)

    def stop(self, timeout_s: float = 15.0) -> None:
        self.resume()  # a stopped process would not act on SIGTERM
        super().stop(timeout_s)


_CLIPS: dict[str, Path] = {}  # per session (registry token): written once, removed with the session's folders


def session_clip(registry: Registry) -> Path:
    """The clip every server of this session streams (60 s, 320x240, 10 fps, a keyframe a second)."""
    from tests.vision.clips import write_clip

    if registry.token not in _CLIPS:
        try:
            _CLIPS[registry.token] = write_clip(registry.make_folder("rtsp-clip") / "clip.mp4", seconds=60,
                                                fps=10, keyframe_every=10)
        except Exception as exc:  # PyAV missing or broken: the same message as any failed start
            raise StartFailed(f"could not write the clip to serve: {exc}") from exc
    return _CLIPS[registry.token]


def start(registry: Registry, timeout_s: float) -> Provided:
    python = find_python(python_candidates())
    throwaway = RtspThrowaway(registry, python, session_clip(registry))
    start_with_free_port(throwaway, throwaway.launch, timeout_s)
    return Provided(COMPONENT, throwaway.rtsp_url, throwaway, origin=f"gst-rtsp-server via {python}")


COMPONENT = declared_in(__name__, "RTSP server")
