"""Cameras watched around the clock in one process: `patrol watch`, or inside `patrol serve`.

Per camera, a `vision.video.StreamSupervisor` decodes in its own thread into a small queue
that drops the oldest frame when analysis falls behind, and a consumer thread hands each
frame to the camera's `CameraWatcher` (so a slow or dead stream never holds up another).
State changes (online / degraded / offline, with the reason) are rows in `camera_states`
and gauges in /metrics; one `Dispatcher` thread sends the alerts; a digest tick queues the
daily digests. `stop()` ends all of it: readers notice within their read timeout.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy.exc import SQLAlchemyError

from service.cameras.alerts import queue_digests
from service.cameras.config import CameraConfig, CameraConfigError, WatchConfig
from service.cameras.delivery import Dispatcher
from service.cameras.models import CameraState, CameraStateChange
from service.cameras.watcher import CameraWatcher, FrameResult
from service.db.session import session_scope
from service.runtime import Runtime
from vision.errors import PatrolVisionError
from vision.video import StreamSupervisor

log = logging.getLogger(__name__)

DIGEST_TICK_S = 60.0
GET_TIMEOUT_S = 1.0  # how often a consumer looks up from an empty queue to check for stop


@dataclass
class _Camera:
    config: CameraConfig
    supervisor: StreamSupervisor
    watcher: CameraWatcher
    thread: threading.Thread | None = None


def start_cameras(runtime: Runtime) -> CameraService | None:
    """The service for the settings' cameras file, started; None when none is configured."""
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
    def __init__(
        self,
        runtime: Runtime,
        config: WatchConfig,
        *,
        on_result: Callable[[FrameResult], None] | None = None,
        open_timeout_s: float = 10.0,
        read_timeout_s: float = 10.0,
    ) -> None:
        check_classes(config, runtime.taxonomy.keys)
        self.runtime = runtime
        self.config = config
        self.on_result = on_result
        self.dispatcher = Dispatcher(runtime.session_factory, config, clock=runtime.lease_clock)
        self._stop = threading.Event()
        self._cameras: dict[str, _Camera] = {}
        for camera in config.cameras:
            if not camera.enabled:
                continue
            watcher = CameraWatcher(runtime, config, camera)
            watcher.on_alerts.append(lambda _ids: self.dispatcher.wake())
            supervisor = StreamSupervisor(
                camera.url,
                every_s=min(p.every_s for p in camera.presets),
                keyframes_only=camera.keyframes_only,
                queue_size=config.queue_size,
                on_state=self._state_recorder(camera.id),
                open_timeout_s=open_timeout_s,
                read_timeout_s=read_timeout_s,
                name=camera.id,
            )
            self._cameras[camera.id] = _Camera(camera, supervisor, watcher)
        self._collector = CameraCollector(self)
        self._digests: threading.Thread | None = None

    def start(self) -> None:
        self.runtime.metrics.registry.register(self._collector)
        self.dispatcher.start()
        for camera in self._cameras.values():
            self._record_state(camera.config.id, CameraState.offline, "starting")
            camera.supervisor.start()
            camera.thread = threading.Thread(
                target=self._consume, args=(camera,), name=f"watch[{camera.config.id}]", daemon=True
            )
            camera.thread.start()
        self._digests = threading.Thread(target=self._digest_loop, name="alert-digests", daemon=True)
        self._digests.start()

    def stop(self) -> None:
        self._stop.set()
        for camera in self._cameras.values():
            camera.supervisor.stop()
        for camera in self._cameras.values():
            if camera.thread is not None:
                camera.thread.join(GET_TIMEOUT_S + 30)
        if self._digests is not None:
            self._digests.join(5)
        self.dispatcher.stop()
        with contextlib.suppress(KeyError):  # never started
            self.runtime.metrics.registry.unregister(self._collector)

    def cameras(self) -> list[_Camera]:
        return list(self._cameras.values())

    def _consume(self, camera: _Camera) -> None:
        while not self._stop.is_set():
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
