"""One camera's frames to ledger findings and alerts.

For each frame the stream supervisor hands over (`vision.video.VideoFrame`):
1. where the tour is (the preset, from the dwell times; frames while the head settles skip);
2. whether this preset is due (its `every_s`) and what its schedule asks for now;
3. full-frame detection through the runtime's one pipeline (source kind "camera"), whether
   or not anything moved: garbage piles and sheds never move;
4. masks, the classes that apply, the smoke persistence rule (`persistence`), and what this
   preset has recorded before (`memory`: known issues, rejected false alarms);
5. what is left is recorded through `service.recording` as a camera finding, geotagged with
   the tower's preset pose, frame and crops as evidence, and the alert rules (`alerts`) run
   in the same transaction;
6. an event that raised alerts keeps a short clip of the seconds around it (`clips`), which
   the alerts point at once it is written.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

import cv2
import numpy as np
from sqlalchemy import update

from service.analysis import PhotoAnalysis, model_version_of, observation_drafts
from service.cameras.alerts import raise_alerts
from service.cameras.clips import ClipRecorder
from service.cameras.config import CameraConfig, PresetWatch, WatchConfig
from service.cameras.memory import ViewMemory
from service.cameras.models import Alert
from service.cameras.persistence import PersistenceTracker
from service.db.session import session_scope
from service.ledger.events import Actor
from service.ledger.intake import SourceRef
from service.photo_analyzer import QUEUE_WAIT_S, camera_point, coverage
from service.recording import unit_of_work
from service.runtime import Runtime
from vision.detections import Detections
from vision.errors import QueueFullError
from vision.geo.frame_projector import FrameProjector
from vision.geo.geotagging import class_keys_of, geotag_detections
from vision.geo.homography import HomographyProjector
from vision.geo.tower import build_tower_projector
from vision.video import VideoFrame

log = logging.getLogger(__name__)

MEMORY_RELOAD_S = 30.0  # a reviewer's rejection silences a false alarm within this long


@dataclass
class FrameResult:
    """What one analysed frame became."""

    camera_id: str
    preset: str
    frame_time_s: float
    found: int = 0  # detections of the classes that apply now
    masked: int = 0
    held: int = 0  # waiting for the persistence rule
    suppressed: dict[str, int] = field(default_factory=dict)  # known / false_alarm
    recorded: list[tuple[str, str, int]] = field(default_factory=list)  # class, outcome, issue id
    alert_ids: list[int] = field(default_factory=list)


@dataclass
class _PresetState:
    plan: PresetWatch
    last_analysed_s: float | None = None
    trackers: dict[str, PersistenceTracker] = field(default_factory=dict)
    memory: ViewMemory | None = None
    memory_loaded_at: float = float("-inf")
    projector: FrameProjector | HomographyProjector | None = None
    masks: dict[tuple[int, int], np.ndarray] = field(default_factory=dict)


class CameraWatcher:
    def __init__(self, runtime: Runtime, config: WatchConfig, camera: CameraConfig) -> None:
        self.runtime = runtime
        self.config = config
        self.camera = camera
        self._presets = {plan.preset: _PresetState(plan) for plan in camera.presets}
        self._zone = ZoneInfo(runtime.settings.timezone)
        # Called with the new alert ids after a commit that raised some (the dispatcher's wake).
        self.on_alerts: list[Callable[[list[int]], None]] = []
        self.clips = ClipRecorder(config.clips, runtime.settings.data_dir, camera.id, self._clip_written)

    def process(self, frame: VideoFrame) -> FrameResult | None:
        """None when the frame is not analysed (head moving, preset not due, schedule off)."""
        self.clips.add(frame)
        plan, into_s = self.camera.preset_at(frame.time_s)
        if into_s < plan.settle_s:
            return None
        if frame.concealed:
            return None  # smeared blocks could pass for smoke: the next clean frame is analysed instead
        state = self._presets[plan.preset]
        if (
            state.last_analysed_s is not None
            and 0 <= frame.time_s - state.last_analysed_s < plan.every_s * 0.95
        ):
            return None
        now = self.runtime.clock()
        classes = self.camera.schedule_for(plan).classes_at(
            now.astimezone(self._zone), self.camera.classes_for(plan)
        )
        if not classes:
            return None
        state.last_analysed_s = frame.time_s
        pipeline = self.runtime.pipeline()
        try:
            detections = pipeline.detect(frame.pixels, source="camera", timeout=QUEUE_WAIT_S)
        except QueueFullError:
            log.warning(
                "camera %s: inference queue full, frame at %.1f s skipped", self.camera.id, frame.time_s
            )
            return None
        result = FrameResult(self.camera.id, plan.preset, frame.time_s)
        kept = self._select(detections, classes, state, frame, result, now)
        if len(kept):
            self._record(kept, frame, state, result, now, model_version_of(pipeline.card))
        return result

    # -- choosing what to record

    def _select(
        self,
        detections: Detections,
        classes: frozenset[str],
        state: _PresetState,
        frame: VideoFrame,
        result: FrameResult,
        now: datetime,
    ) -> Detections:
        all_keys = class_keys_of(detections)
        applies = np.array([k is not None and k in classes for k in all_keys], dtype=bool)
        detections = detections[applies]
        keys = [k for k in all_keys if k is not None and k in classes]
        result.found = len(detections)
        unmasked = ~self._masked(detections, state, frame)
        result.masked = int((~unmasked).sum())
        keep = unmasked.copy()
        for key in set(keys) & set(self.config.persistence.classes):
            of_class = np.flatnonzero(unmasked & (np.array(keys) == key))
            tracker = state.trackers.setdefault(key, PersistenceTracker(self.config.persistence))
            confirmed = {of_class[c.index] for c in tracker.update(frame.time_s, detections.xyxy[of_class])}
            for i in of_class:
                keep[i] = i in confirmed
            result.held += len(of_class) - len(confirmed)
        memory = self._memory(state, frame)
        for i in np.flatnonzero(keep):
            verdict = memory.verdict(keys[i], detections.xyxy[i], now)
            if verdict is not None:
                keep[i] = False
                result.suppressed[verdict] = result.suppressed.get(verdict, 0) + 1
        return detections[keep]

    def _masked(self, detections: Detections, state: _PresetState, frame: VideoFrame) -> np.ndarray:
        if not state.plan.masks or not len(detections):
            return np.zeros(len(detections), dtype=bool)
        width, height = frame.resolution_wh
        mask = state.masks.get((width, height))
        if mask is None:
            mask = np.zeros((height, width), np.uint8)
            sx, sy = width / self.camera.tower.image_width, height / self.camera.tower.image_height
            for polygon in state.plan.masks:
                points = np.round(np.array(polygon.points) * [sx, sy]).astype(np.int32)
                cv2.fillPoly(mask, [points], 1)
            state.masks[(width, height)] = mask
        integral = cv2.integral(mask)
        out = np.zeros(len(detections), dtype=bool)
        for i, (x1, y1, x2, y2) in enumerate(np.round(detections.xyxy).astype(int).tolist()):
            x1, x2 = max(0, min(x1, width)), max(0, min(x2, width))
            y1, y2 = max(0, min(y1, height)), max(0, min(y2, height))
            area = (x2 - x1) * (y2 - y1)
            inside = integral[y2, x2] - integral[y1, x2] - integral[y2, x1] + integral[y1, x1]
            out[i] = area > 0 and inside / area >= state.plan.mask_cover
        return out

    def _memory(self, state: _PresetState, frame: VideoFrame) -> ViewMemory:
        if state.memory is None:
            state.memory = ViewMemory(self.camera.id, state.plan.preset)
        if frame.received_at - state.memory_loaded_at >= MEMORY_RELOAD_S or frame.received_at == 0.0:
            with self.runtime.session_factory() as session:
                state.memory.reload(session)
            state.memory_loaded_at = frame.received_at
        return state.memory

    # -- recording

    def _projector(self, state: _PresetState) -> FrameProjector | HomographyProjector:
        if state.projector is None:
            known = {p.id for p in self.camera.tower.presets}
            preset = state.plan.preset if state.plan.preset in known else None
            state.projector = build_tower_projector(self.camera.tower, preset)
        return state.projector

    def _record(
        self,
        found: Detections,
        frame: VideoFrame,
        state: _PresetState,
        result: FrameResult,
        now: datetime,
        model_version: str,
    ) -> None:
        projector = self._projector(state)
        width, height = frame.resolution_wh
        tower = self.camera.tower
        scale = np.array([tower.image_width / width, tower.image_height / height] * 2, np.float32)
        in_tower_pixels = Detections(found.xyxy * scale, found.confidence, found.class_id, data=found.data)
        tags = geotag_detections(in_tower_pixels, projector, taxonomy=self.runtime.taxonomy)
        drafts = observation_drafts(found, tags, "no ground under this pixel", self.runtime.taxonomy)
        digest = hashlib.sha256(
            f"{self.camera.id}|{state.plan.preset}|{now.isoformat()}|{frame.index}|".encode()
        )
        digest.update(frame.pixels.tobytes())
        analysis = PhotoAnalysis(
            content_hash=digest.hexdigest(),
            model_version=model_version,
            pixels=frame.pixels,
            observations=tuple(drafts),
            captured_at=now,
            camera_point=camera_point(projector),
            coverage=coverage(projector, tower.image_width, tower.image_height),
        )
        source = SourceRef(kind="camera", name=self.camera.id, preset=state.plan.preset)
        note = f"{self.camera.name}, preset {state.plan.preset}, {frame.time_s:.1f} s into the stream"
        with unit_of_work(self.runtime) as work:
            recorded = work.record(analysis, source=source, actor=Actor.system(), note=note)
            alerts = raise_alerts(
                work.session,
                self.config,
                self.runtime.taxonomy,
                camera=self.camera,
                preset=state.plan.preset,
                outcomes=recorded.observations,
                frame_time_s=frame.time_s,
                now=now,
                due=self.runtime.lease_clock(),
            )
            result.recorded = [
                (o.observation.class_key, o.outcome.value, o.issue.id) for o in recorded.observations
            ]
            result.alert_ids = [a.id for a in alerts]
            states = [o.issue.state for o in recorded.observations]
        memory = state.memory
        if memory is not None:
            for i, issue_state in enumerate(states):
                memory.remember(drafts[i].class_key, found.xyxy[i], issue_state, now)
        if result.alert_ids:
            for callback in self.on_alerts:
                callback(result.alert_ids)
            self.clips.event(frame.time_s, result.alert_ids)

    def close(self) -> None:
        """The camera stops: clips still waiting for their last seconds are written with what they have."""
        self.clips.close()

    def _clip_written(self, relative: str, alert_ids: list[int]) -> None:
        with session_scope(self.runtime.session_factory) as session:
            session.execute(
                update(Alert)
                .where(Alert.id.in_(alert_ids))
                .values(clip_path=relative)
                .execution_options(synchronize_session=False)
            )
