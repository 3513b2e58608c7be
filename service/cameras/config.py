"""Cameras, alert rules, webhooks and loudspeakers as configuration (a YAML file, the API).

A camera is its stream, its surveyed geometry (`vision.geo.tower.TowerCameraConfig`: mount
position and height, heading, field of view per zoom, PTZ presets with pose and ground
control points, which the tower geotagging already reads) and how each preset is watched:
how long the camera dwells there on its tour, how often a frame is analysed, pixel masks of
areas to ignore (sky, a road outside the jurisdiction, a chimney that always smokes), which
classes apply (no blue roofs from a tower) and when (`service.cameras.schedule`).

`patrol watch cameras.yaml` and `patrol serve` with PATROL_CAMERAS_FILE read one
`WatchConfig`; every model refuses unknown keys, so a typo is an error, not a silent default.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from service.cameras.clips import ClipPolicy
from service.cameras.persistence import PersistenceRule
from service.cameras.schedule import Schedule
from service.errors import InvalidInputError
from vision.config_files import load_config_file
from vision.geo.tower import TowerCameraConfig

CAMERA_ID = r"^[a-z0-9][a-z0-9_-]{0,39}$"
NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,59}$"
# Classes a tower's oblique view can judge; blue roofs are only seen from above.
TOWER_CLASSES = ("garbage_pile", "straw_burning", "roadside_clutter", "illegal_structure")


class CameraConfigError(InvalidInputError):
    """A cameras file or a camera sent to the API is unreadable or invalid (422)."""


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Mask(_Config):
    """A polygon in the preset's image pixels whose detections are ignored."""

    points: tuple[tuple[float, float], ...] = Field(min_length=3, description="Pixel x, y vertices.")
    note: str = Field(default="", max_length=200, description="Why: sky, road outside the township, chimney.")


class PresetWatch(_Config):
    """How one PTZ preset (or a fixed camera's only view, "home") is watched."""

    preset: str = Field(default="home", min_length=1, max_length=100, description="A preset id of the tower.")
    dwell_s: float = Field(default=60.0, gt=0, le=86_400, description="Time the camera stays here per tour.")
    settle_s: float = Field(
        default=3.0,
        ge=0,
        le=60,
        description="Frames this soon after arriving are skipped: the head still moves.",
    )
    every_s: float = Field(
        default=2.0, ge=0.1, le=3600, description="One analysed frame per this many seconds."
    )
    masks: tuple[Mask, ...] = ()
    classes: tuple[str, ...] | None = Field(default=None, description="Overrides the camera's classes here.")
    schedule: Schedule | None = Field(default=None, description="Overrides the camera's schedule here.")
    mask_cover: float = Field(
        default=0.5, gt=0, le=1, description="A detection whose box lies this much inside a mask is ignored."
    )


class CameraConfig(_Config):
    id: str = Field(pattern=CAMERA_ID, description="Short stable id (metrics label, ledger source name).")
    name: str = Field(min_length=1, max_length=200)
    url: str = Field(
        min_length=1, max_length=2000, description="rtsp://, http(s):// or a video file to replay."
    )
    tower: TowerCameraConfig = Field(description="Surveyed geometry and PTZ presets (vision.geo.tower).")
    presets: tuple[PresetWatch, ...] = Field(default=(PresetWatch(),), min_length=1, description="The tour.")
    classes: tuple[str, ...] = TOWER_CLASSES
    schedule: Schedule = Schedule()
    keyframes_only: bool = Field(default=True, description="Decode keyframes only (about 4x cheaper).")
    loudspeakers: tuple[str, ...] = Field(default=(), description="Speakers near this camera, by name.")
    enabled: bool = True

    @model_validator(mode="after")
    def _presets_known(self) -> CameraConfig:
        known = {p.id for p in self.tower.presets} | {"home"}
        ids = [p.preset for p in self.presets]
        unknown = sorted(set(ids) - known)
        if unknown:
            raise ValueError(f"camera {self.id}: presets {unknown} are not in tower.presets {sorted(known)}")
        if len(ids) != len(set(ids)):
            raise ValueError(f"camera {self.id}: each preset once per tour, got {ids}")
        return self

    def watch(self, preset: str) -> PresetWatch:
        for plan in self.presets:
            if plan.preset == preset:
                return plan
        raise CameraConfigError(f"camera {self.id} has no preset {preset!r}")

    def preset_at(self, elapsed_s: float) -> tuple[PresetWatch, float]:
        """Where the tour is `elapsed_s` after the stream started, and how long it has been there."""
        tour = sum(p.dwell_s for p in self.presets)
        into = elapsed_s % tour if elapsed_s >= 0 else 0.0
        for plan in self.presets:
            if into < plan.dwell_s:
                return plan, into
            into -= plan.dwell_s
        return self.presets[-1], into  # float rounding at the tour's end

    def classes_for(self, plan: PresetWatch) -> frozenset[str]:
        return frozenset(plan.classes if plan.classes is not None else self.classes)

    def schedule_for(self, plan: PresetWatch) -> Schedule:
        return plan.schedule or self.schedule


class RetryPolicy(_Config):
    max_attempts: int = Field(default=6, ge=1, le=50, description="Then the delivery is dead-lettered.")
    first_delay_s: float = Field(default=2.0, gt=0, le=3600)
    factor: float = Field(default=3.0, ge=1.0, le=10.0)
    max_delay_s: float = Field(default=900.0, gt=0, le=86_400)

    def delay_after(self, attempts: int) -> float:
        """Seconds to wait after `attempts` failed attempts."""
        return min(self.max_delay_s, self.first_delay_s * self.factor ** max(0, attempts - 1))


class Webhook(_Config):
    name: str = Field(pattern=NAME)
    url: str = Field(pattern=r"^https?://\S+$", max_length=2000)
    secret: SecretStr = Field(description="HMAC-SHA256 key; the receiver checks X-Patrol-Signature with it.")
    timeout_s: float = Field(default=5.0, gt=0, le=60)

    @field_validator("secret")
    @classmethod
    def _strong(cls, value: SecretStr) -> SecretStr:
        if len(value.get_secret_value()) < 16:
            raise ValueError("expected a webhook secret of at least 16 characters")
        return value


class Loudspeaker(_Config):
    """A broadcast endpoint (点对点智能广播): the message is POSTed as JSON {"speaker", "text", ...}."""

    name: str = Field(pattern=NAME)
    url: str = Field(pattern=r"^https?://\S+$", max_length=2000)
    min_interval_s: float = Field(
        default=300.0,
        ge=0,
        le=86_400,
        description="At most one broadcast per this long; later ones are skipped.",
    )
    timeout_s: float = Field(default=5.0, gt=0, le=60)


class AlertRule(_Config):
    """Which new findings alert whom, and how soon."""

    name: str = Field(pattern=NAME)
    classes: tuple[str, ...] = Field(min_length=1)
    regions: tuple[str, ...] = Field(default=(), description="Village/grid names; none: anywhere.")
    cameras: tuple[str, ...] = Field(default=(), description="Camera ids; none: every camera.")
    delivery: Literal["immediate", "digest"] = "immediate"
    digest_hour: int = Field(default=8, ge=0, le=23, description="Local hour the daily digest is sent.")
    webhooks: tuple[str, ...] = ()
    loudspeaker: bool = Field(default=False, description="Broadcast on the camera's loudspeakers.")
    message: str = Field(
        default="请勿焚烧秸秆",
        min_length=1,
        max_length=500,
        description="Broadcast text; {camera} and {class_zh} are filled in.",
    )


class WatchConfig(_Config):
    cameras: tuple[CameraConfig, ...] = ()
    rules: tuple[AlertRule, ...] = ()
    webhooks: tuple[Webhook, ...] = ()
    loudspeakers: tuple[Loudspeaker, ...] = ()
    persistence: PersistenceRule = PersistenceRule()
    retry: RetryPolicy = RetryPolicy()
    clips: ClipPolicy = Field(default=ClipPolicy(), description="Clips kept around events that alert.")
    queue_size: int = Field(
        default=4, ge=1, le=100, description="Frames buffered per stream (oldest dropped)."
    )

    @model_validator(mode="after")
    def _references(self) -> WatchConfig:
        for what, items in (
            ("camera", self.cameras),
            ("rule", self.rules),
            ("webhook", self.webhooks),
            ("loudspeaker", self.loudspeakers),
        ):
            names = [getattr(item, "id", None) or item.name for item in items]
            if len(names) != len(set(names)):
                raise ValueError(f"expected unique {what} names, got {names}")
        hooks = {w.name for w in self.webhooks}
        speakers = {s.name for s in self.loudspeakers}
        for rule in self.rules:
            if set(rule.webhooks) - hooks:
                raise ValueError(f"rule {rule.name}: unknown webhooks {sorted(set(rule.webhooks) - hooks)}")
        for camera in self.cameras:
            if set(camera.loudspeakers) - speakers:
                raise ValueError(
                    f"camera {camera.id}: unknown loudspeakers {sorted(set(camera.loudspeakers) - speakers)}"
                )
        return self

    @classmethod
    def load(cls, path: str | Path) -> WatchConfig:
        return load_config_file(cls, Path(path), "cameras file", CameraConfigError)

    def webhook(self, name: str) -> Webhook:
        return next(w for w in self.webhooks if w.name == name)

    def loudspeaker(self, name: str) -> Loudspeaker:
        return next(s for s in self.loudspeakers if s.name == name)
