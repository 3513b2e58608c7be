"""Cameras watched around the clock in one process: `patrol watch`, or inside `patrol serve`.

Per camera, a `vision.video.StreamSupervisor` decodes in its own thread into a small queue
that drops the oldest frame when analysis falls behind, and a consumer thread hands each
frame to the camera's `CameraWatcher` (so a slow or dead stream never holds up another).
State changes (online / degraded / offline, with the reason) are rows in `camera_states`
and gauges in /metrics; one `Dispatcher` thread sends the alerts; a digest tick queues the
daily digests; a reload tick applies cameras changed through the API. `stop()` ends all of
it: readers notice within their read timeout.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from service.cameras.alerts import queue_digests
from service.cameras.config import CameraConfig, CameraConfigError, WatchConfig
from service.cameras.delivery import Dispatcher
from service.cameras.models import CameraRow, CameraState, CameraStateChange
from service.cameras.watcher import CameraWatcher, FrameResult
from service.db.session import session_scope
from service.runtime import Runtime
from vision.errors import PatrolVisionError
from vision.video import StreamSupervisor

log = logging.getLogger(__name__)

DIGEST_TICK_S = 60.0
RELOAD_S = 5.0  # how soon a camera changed through the API (from any process) is watched as changed
GET_TIMEOUT_S = 1.0  # how often a consumer looks up from an empty queue to check for stop


@dataclass
class _Camera:
    config: CameraConfig
    supervisor: StreamSupervisor
    watcher: CameraWatcher
    stop: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None


def start_cameras(runtime: Runtime) -> CameraService | None:
    """The service for the settings' cameras file, started; None when none is configured.

    The file's cameras and those stored through the API are watched; see `CameraService`."""
    if runtime.settings.cameras_file is None:
        return None
    service = CameraService(runtime, WatchConfig.load(runtime.settings.cameras_file))
    service.start()
    return service


def check_classes(config: WatchConfig, known: tuple[str, ...]) -> None:
    """Every class a camera, preset or rule names is one of the taxonomy's."""
    named = [(f"camera {c.id}", c.classes) for c in config.cameras]
    named += [
        (f"camera {c.id} preset {p.preset}", p.classes or ()) for c in config.cameras for p in c.presets
    ]
    named += [(f"rule {r.name}", r.classes) for r in config.rules]
    for where, classes in named:
        unknown = sorted(set(classes) - set(known))
        if unknown:
            raise CameraConfigError(f"{where}: unknown classes {unknown}; known: {list(known)}")


class CameraService:
    """Watches the cameras file's cameras and those stored through the API (`/v1/cameras`).

    Stored cameras are read again every `reload_s`: one added, changed, disabled or deleted
    through the API is started, restarted or stopped without a restart of the process (and a
    watcher in another process, `patrol watch`, sees the change the same way). Where a stored
    camera has the id of one in the file, the stored one is watched: the API is where
    operators change things while the file is what a deployment starts from, so deleting the
    stored camera brings the file's back. Rules, webhooks and loudspeakers come from the file
    only (they hold secrets); a stored camera naming a loudspeaker or class the file or the
    taxonomy does not know is not watched, and its state row says why. `only`: watch just
    these camera ids (one `patrol watch` process per group of cameras).
    """

    def __init__(
        self,
        runtime: Runtime,
        config: WatchConfig,
        *,
        on_result: Callable[[FrameResult], None] | None = None,
        open_timeout_s: float = 10.0,
        read_timeout_s: float = 10.0,
        only: frozenset[str] | None = None,
        reload_s: float = RELOAD_S,
    ) -> None:
        check_classes(config, runtime.taxonomy.keys)
        self.runtime = runtime
        self.file_config = config
        self.config = config  # the file's, with the cameras being watched now
        self.on_result = on_result
        self.only = only
        self.reload_s = reload_s
        self._timeouts = (open_timeout_s, read_timeout_s)
        self.dispatcher = Dispatcher(runtime.session_factory, config, clock=runtime.lease_clock)
        self._stop = threading.Event()
        self._lock = threading.Lock()  # the running cameras, between reloads and readers of them
        self._cameras: dict[str, _Camera] = {}
        self._refused: dict[str, str] = {}  # stored cameras not watched, and why
        self._collector = CameraCollector(self)
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        self.runtime.metrics.registry.register(self._collector)
        self.dispatcher.start()
        self.reload()
        for target, name in ((self._digest_loop, "alert-digests"), (self._reload_loop, "camera-reload")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(10)
        with self._lock:
            cameras = list(self._cameras.values())
            self._cameras.clear()
        for camera in cameras:  # all readers asked first, so they wind down together
            camera.stop.set()
            camera.supervisor.stop(timeout_s=0)
        for camera in cameras:
            self._join(camera)
        self.dispatcher.stop()
        with contextlib.suppress(KeyError):  # never started
            self.runtime.metrics.registry.unregister(self._collector)

    def cameras(self) -> list[_Camera]:
        with self._lock:
            return list(self._cameras.values())

    # -- which cameras run

    def reload(self) -> bool:
        """Start, restart or stop cameras so the running ones are the file's and the stored ones
        as they are now; True when anything changed. A database that cannot be read leaves the
        running cameras as they are."""
        wanted = self._wanted()
        if wanted is None:
            return False
        with self._lock:
            running = dict(self._cameras)
        retire = [c for key, c in running.items() if wanted.get(key) != c.config]
        begin = [c for key, c in wanted.items() if key not in running or running[key].config != c]
        for camera in retire:
            camera.stop.set()
            self._join(camera)
            if camera.config.id not in wanted:
                self._record_state(camera.config.id, CameraState.offline, "no longer configured or disabled")
            with self._lock:  # listed (and in /metrics) until its reader has ended
                self._cameras.pop(camera.config.id, None)
        self.config = self.file_config.model_copy(update={"cameras": tuple(wanted.values())})
        for config in begin:
            self._start_camera(config)
        return bool(retire or begin)

    def _wanted(self) -> dict[str, CameraConfig] | None:
        cameras = {c.id: c for c in self.file_config.cameras}
        try:
            with self.runtime.session_factory() as session:
                rows = session.execute(select(CameraRow.id, CameraRow.config).order_by(CameraRow.id)).all()
        except SQLAlchemyError:
            log.exception("cameras: the stored cameras could not be read; the running ones carry on")
            return None
        refused: dict[str, str] = {}
        for camera_id, text in rows:
            try:
                camera = CameraConfig.model_validate_json(text)
                check_classes(
                    WatchConfig(cameras=(camera,), loudspeakers=self.file_config.loudspeakers),
                    self.runtime.taxonomy.keys,
                )
            except (ValidationError, CameraConfigError) as exc:
                refused[camera_id] = f"not watched: the stored configuration is invalid here: {exc}"
                continue
            cameras[camera.id] = camera
        for camera_id, why in refused.items():
            if self._refused.get(camera_id) != why:
                log.warning("camera %s: %s", camera_id, why)
                self._record_state(camera_id, CameraState.offline, why)
        self._refused = refused
        return {
            key: c
            for key, c in cameras.items()
            if c.enabled and key not in refused and (self.only is None or key in self.only)
        }

    def _start_camera(self, config: CameraConfig) -> None:
        if self._stop.is_set():  # a reload that overlapped stop() starts nothing new
            return
        watcher = CameraWatcher(self.runtime, self.config, config)
        watcher.on_alerts.append(lambda _ids: self.dispatcher.wake())
        open_timeout_s, read_timeout_s = self._timeouts
        supervisor = StreamSupervisor(
            config.url,
            every_s=min(p.every_s for p in config.presets),
            keyframes_only=config.keyframes_only,
            queue_size=self.config.queue_size,
            on_state=self._state_recorder(config.id),
            open_timeout_s=open_timeout_s,
            read_timeout_s=read_timeout_s,
            name=config.id,
        )
        camera = _Camera(config, supervisor, watcher)
        self._record_state(config.id, CameraState.offline, "starting")
        supervisor.start()
        camera.thread = threading.Thread(
            target=self._consume, args=(camera,), name=f"watch[{config.id}]", daemon=True
        )
        camera.thread.start()
        with self._lock:
            self._cameras[config.id] = camera

    def _join(self, camera: _Camera) -> None:
        camera.supervisor.stop()  # waits for the reader: at most its read timeout
        if camera.thread is not None:
            camera.thread.join(GET_TIMEOUT_S + 30)
        camera.watcher.close()  # clips still waiting for their last seconds are written now

    def _reload_loop(self) -> None:
        while not self._stop.wait(self.reload_s):
            try:
                self.reload()
            except Exception:  # a bad reload must not end the watch; the next tries again
                log.exception("cameras: reload failed")

    # -- each camera's frames

    def _consume(self, camera: _Camera) -> None:
        while not (self._stop.is_set() or camera.stop.is_set()):
            frame = camera.supervisor.get(timeout=GET_TIMEOUT_S)
            if frame is None:
                continue
            try:
                result = camera.watcher.process(frame)
            except (PatrolVisionError, SQLAlchemyError, OSError):
                # one bad frame (a database hiccup, no model yet) must not end the watch
                log.exception("camera %s: frame at %.1f s not analysed", camera.config.id, frame.time_s)
                continue
            if result is not None and self.on_result is not None:
                self.on_result(result)

    def _digest_loop(self) -> None:
        while not self._stop.is_set():
            self.run_digests()
            self._stop.wait(DIGEST_TICK_S)

    def run_digests(self) -> int:
        try:
            with session_scope(self.runtime.session_factory) as session:
                queued = queue_digests(
                    session,
                    self.config,
                    self.runtime.taxonomy,
                    self.runtime.clock(),
                    self.runtime.settings.timezone,
                    due=self.runtime.lease_clock(),
                )
        except SQLAlchemyError:
            log.exception("alert digests: queueing failed; next tick tries again")
            return 0
        if queued:
            self.dispatcher.wake()
        return queued

    def _state_recorder(self, camera_id: str) -> Callable[[str, str], None]:
        def changed(state: str, reason: str) -> None:
            self._record_state(camera_id, CameraState(state), reason)

        return changed

    def _record_state(self, camera_id: str, state: CameraState, reason: str) -> None:
        try:
            with session_scope(self.runtime.session_factory) as session:
                session.add(
                    CameraStateChange(
                        camera_id=camera_id, state=state, reason=reason[:2000], at=self.runtime.lease_clock()
                    )
                )
        except SQLAlchemyError:
            log.exception("camera %s: state %s not recorded", camera_id, state)


class CameraCollector(Collector):
    """The running supervisors' states and counters; labels are camera ids from the config."""

    def __init__(self, service: CameraService) -> None:
        self._service = service

    def collect(self) -> Iterator[Metric]:
        state = GaugeMetricFamily(
            "patrol_camera_state", "1 for the camera's current state.", labels=["camera", "state"]
        )
        since = GaugeMetricFamily(
            "patrol_camera_state_since_seconds",
            "Unix time the camera entered its current state.",
            labels=["camera"],
        )
        age = GaugeMetricFamily(
            "patrol_camera_last_frame_age_seconds",
            "Seconds since the camera's last decoded frame.",
            labels=["camera"],
        )
        counters = {
            name: CounterMetricFamily(f"patrol_camera_{name}", help_text, labels=["camera"])
            for name, help_text in (
                ("frames", "Frames decoded and queued."),
                ("dropped_frames", "Frames dropped because analysis fell behind (oldest first)."),
                ("reconnects", "Times the stream was lost and reopened."),
                ("decode_errors", "Packets the decoder refused."),
            )
        }
        now = time.time()
        for camera in self._service.cameras():
            stats = camera.supervisor.stats()
            label = camera.config.id
            for value in CameraState:
                state.add_metric([label, value.value], 1.0 if stats.state == value.value else 0.0)
            since.add_metric([label], stats.state_since)
            if stats.last_frame_at is not None:
                age.add_metric([label], max(0.0, now - stats.last_frame_at))
            counters["frames"].add_metric([label], stats.frames)
            counters["dropped_frames"].add_metric([label], stats.dropped)
            counters["reconnects"].add_metric([label], stats.reconnects)
            counters["decode_errors"].add_metric([label], stats.decode_errors)
        yield from (state, since, age, *counters.values())
