"""Service settings from `PATROL_*` environment variables, with defaults that run on a laptop.

Only URLs change between one machine (SQLite file, in-process jobs) and a cluster
(PostgreSQL, Celery on Redis). Secrets are never defaulted and placeholders are refused.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from vision.rules import RULES
from vision.taxonomy import Taxonomy

# Values people paste from examples; refusing them keeps a demo key out of production.
PLACEHOLDER_SECRETS = frozenset(
    {"changeme", "change-me", "change_me", "secret", "password", "admin", "test", "example", "xxx", "todo"}
)
MIN_SECRET_LENGTH = 32
# Vertices one region may have: real village and grid boundaries have hundreds to thousands; a
# million took 15 s to import and made every later point-in-polygon test slow.
MAX_REGION_VERTICES = 50_000


# Decoding is CPU work that releases the GIL: one slot per core keeps every core busy, and fewer
# left a larger machine's cores idle behind two decodes (2 was the default). The cap bounds the
# memory (a 100 MPx survey photo takes ~300 MB to decode) however many cores there are.
MAX_DEFAULT_DECODE_SLOTS = 4


def default_decode_slots() -> int:
    return max(1, min(MAX_DEFAULT_DECODE_SLOTS, len(os.sched_getaffinity(0))))


@lru_cache(maxsize=1)
def _class_keys() -> tuple[str, ...]:
    # Parsing the taxonomy YAML costs ~40 ms; its keys never change while the process runs.
    return Taxonomy.default().keys


class Settings(BaseSettings):
    # hide_input_in_errors: a ValidationError never repeats a value (a database URL's password,
    # a key); `settings_error_text` says which variable and why, with safe values only.
    model_config = SettingsConfigDict(
        env_prefix="PATROL_", extra="forbid", frozen=True, hide_input_in_errors=True
    )

    database_url: str = Field(
        default="sqlite:///./var/patrol.db",
        description="SQLAlchemy URL: sqlite:///path.db (embedded) or postgresql+psycopg://user@host/db.",
    )
    broker_url: str | None = Field(
        default=None, description="Unset: in-process job runner. Set (redis://...): Celery on Redis."
    )
    data_dir: Path = Field(default=Path("./var/data"), description="Evidence images (frames and crops).")
    model: str = Field(default="default", description="Installed model name, or a path to a model folder.")
    models_dir: Path | None = Field(
        default=None, description="Where installed models live (models/ if unset)."
    )
    device: Literal["cpu", "cuda", "tensorrt"] = Field(
        default="cpu",
        description="Where the model runs (ONNX Runtime's execution provider): cuda and tensorrt need "
        "onnxruntime-gpu with its CUDA/TensorRT libraries; a missing provider is an error naming it.",
    )
    engine: Literal["auto", "onnxruntime", "openvino"] = Field(
        default="auto",
        description="Runtime of the model's ONNX export: openvino (the openvino extra, cpu only), "
        "onnxruntime, or auto: openvino for a float model on cpu when installed and it runs bf16/f16 "
        "on this cpu, else onnxruntime "
        "(vision.detectors.engines; benchmarks/README.md gives the measurements).",
    )
    bootstrap_admin_key: SecretStr | None = Field(
        default=None,
        description=f"When set, an admin API key with this value exists after start "
        f"(at least {MIN_SECRET_LENGTH} characters).",
    )
    max_upload_bytes: int = Field(
        default=50 * 1024 * 1024,
        ge=1024,
        le=1 << 34,
        description="Largest photo request body; larger ones get 413 unread.",
    )
    max_image_pixels: int = Field(default=100_000_000, ge=1, description="Decompression-bomb guard.")
    rules: list[str] = Field(
        default=["blue_roof"],
        description="Rules run beside the model on drone photos and orthomosaics (vision.rules): blue_roof "
        "finds blue steel roofs by colour and shape (models/rules/blue_roof.card.json); [] runs none.",
    )
    max_citizen_photo_pixels: int = Field(
        # 4000 x 3000, a phone's usual photo; the model sees it at its input size (never tiled).
        default=12_000_000,
        ge=65_536,
        description="Most pixels a citizen's photo is decoded to: a larger JPEG is decoded reduced "
        "(1/2, 1/4, 1/8), a larger PNG/TIFF/WEBP/BMP is refused (422) before decoding.",
    )
    max_concurrent_decodes: int = Field(
        default_factory=default_decode_slots,
        ge=1,
        le=64,
        description="Images decoded at once per process (uploads and survey members); the others wait, "
        f"so decoding memory stays bounded however many requests arrive. Default: the cores this "
        f"process may use, at most {MAX_DEFAULT_DECODE_SLOTS}.",
    )
    dedup_radius_m: dict[str, float] = Field(
        default_factory=dict, description="Per-class override of the taxonomy's dedup_radius_m (metres)."
    )
    dedup_window_days: float = Field(
        default=30.0, gt=0, description="An observation joins an open issue last seen within this many days."
    )
    dedup_window_days_by_class: dict[str, float] = Field(
        # A fire is an event: smoke over the same field a week later is a new burning.
        default_factory=lambda: {"straw_burning": 3.0},
        description="Per-class override of dedup_window_days.",
    )
    rebound_window_days: float = Field(
        default=90.0, gt=0, description="A detection at a verified/closed place this soon reopens it (反弹)."
    )
    suppression_rules_file: Path | None = Field(
        default=None,
        description="A YAML of when a sighting at a rejected false alarm's place stays suppressed "
        "(score margin, quiet days, radius per class); unset: service/ledger/suppression.yaml.",
    )
    verification_passes: int = Field(
        default=2, ge=1, le=20, description="Clear passes over a rectified issue that verify it (回头看)."
    )
    verification_min_gap_minutes: float = Field(
        default=60.0, ge=0, description="Clear passes count as separate only when this far apart in time."
    )
    timezone: str = Field(default="Asia/Shanghai", description="Month boundaries of reports.")
    basemap_url: str | None = Field(
        default=None,
        pattern=r"^https?://[^\s\"'<>]+$",
        description="Optional online basemap for the office's page, an XYZ template with {z}, {x} and {y} "
        "(e.g. https://tiles.example.cn/{z}/{x}/{y}.png). Unset: no basemap, and the page requests "
        "nothing outside this server.",
    )
    basemap_crs: Literal["wgs84", "gcj02"] = Field(
        default="wgs84",
        description="gcj02 for basemaps drawn in China's GCJ-02 datum (most Chinese web maps): the page then "
        "shifts the ledger's WGS-84 positions onto it.",
    )
    basemap_attribution: str = Field(default="", max_length=300, description="Credit shown on the map.")
    job_queue: str = Field(
        default="patrol-jobs",
        pattern=r"^[A-Za-z0-9_.:-]{1,100}$",
        description="Celery queue the API sends survey jobs to (with broker_url).",
    )
    job_lease_seconds: float = Field(
        default=60.0,
        ge=0.5,
        le=3600,
        description="A running job whose worker stops renewing its lease this long is taken over.",
    )
    job_max_attempts: int = Field(
        default=3, ge=1, le=100, description="Runs of a job (first + resumed after crashes) before it fails."
    )
    max_survey_bytes: int = Field(
        default=4 * 1024**3, ge=1024, le=1 << 40, description="Largest survey upload (zip or GeoTIFF)."
    )
    max_survey_members: int = Field(
        default=10_000, ge=1, le=1_000_000, description="Most entries in a survey zip (zip-bomb guard)."
    )
    max_survey_uncompressed_bytes: int = Field(
        default=64 * 1024**3,
        ge=1024,
        le=1 << 44,
        description="Most bytes a survey zip may unpack to in all (zip-bomb guard); each photo in it "
        "is also held to max_upload_bytes.",
    )
    max_survey_pixels: int = Field(
        default=10_000_000_000,
        ge=1,
        le=1 << 50,
        description="Most pixels one survey may hold (an orthomosaic's width x height, or the sum its "
        "photos' headers declare), checked before it is queued: a survey's runner time grows with its "
        "pixels. 10 GPx is a 100 000 x 100 000 orthomosaic or about 500 twenty-megapixel drone photos.",
    )
    max_survey_area_km2: float = Field(
        default=100.0,
        gt=0,
        le=1_000_000,
        description="Most ground one orthomosaic may cover (a township is tens of km²), checked before "
        "it is queued.",
    )

    max_region_vertices: int = Field(
        default=MAX_REGION_VERTICES,
        ge=4,
        le=10_000_000,
        description="Most vertices of one imported village or grid polygon (all its rings together).",
    )
    cameras_file: Path | None = Field(
        default=None,
        description="A cameras YAML (service/cameras/config.py: cameras, alert rules, webhooks, "
        "loudspeakers); when set, `patrol serve` watches its cameras in the service process and stops "
        "them at shutdown.",
    )

    @field_validator("database_url")
    @classmethod
    def _psycopg3_driver(cls, value: str) -> str:
        # SQLAlchemy's default PostgreSQL driver is psycopg2, which we do not ship.
        for plain in ("postgresql://", "postgres://"):
            if value.startswith(plain):
                return "postgresql+psycopg://" + value[len(plain) :]
        if not value.startswith(("sqlite://", "postgresql+psycopg://")):
            scheme = value.split("://", 1)[0] if "://" in value else "no scheme"
            raise ValueError(
                f"expected a sqlite:/// or postgresql+psycopg:// URL, got {scheme[:20]}://..."
            )
        return value

    @field_validator("bootstrap_admin_key")
    @classmethod
    def _no_placeholder_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        secret = value.get_secret_value()
        if secret.strip().lower() in PLACEHOLDER_SECRETS or len(secret) < MIN_SECRET_LENGTH:
            raise ValueError(
                f"expected a random key of at least {MIN_SECRET_LENGTH} characters "
                f"(e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`), "
                f"got a {len(secret)}-character placeholder"
            )
        return value

    @field_validator("rules")
    @classmethod
    def _rules_known(cls, value: list[str]) -> list[str]:
        unknown = sorted(set(value) - set(RULES))
        if unknown:
            raise ValueError(f"unknown rules {unknown}; valid rules: {', '.join(sorted(RULES))}")
        return value

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"expected an IANA time zone such as 'Asia/Shanghai', got {value!r}") from exc
        return value

    @field_validator("basemap_url")
    @classmethod
    def _xyz_template(cls, value: str | None) -> str | None:
        if value is not None and not all(part in value for part in ("{z}", "{x}", "{y}")):
            raise ValueError(f"expected an XYZ tile template with {{z}}, {{x}} and {{y}}, got {value!r}")
        return value

    @model_validator(mode="after")
    def _classes_known(self) -> Settings:
        known = _class_keys()
        for name, mapping in (
            ("dedup_radius_m", self.dedup_radius_m),
            ("dedup_window_days_by_class", self.dedup_window_days_by_class),
        ):
            unknown = sorted(set(mapping) - set(known))
            if unknown:
                raise ValueError(f"{name} names unknown classes {unknown}; known: {', '.join(known)}")
            bad = {k: v for k, v in mapping.items() if not v > 0}
            if bad:
                raise ValueError(f"expected positive values in {name}, got {bad}")
        return self

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


# Fields whose values are never shown, whole, in an error; URLs are shown with the password hidden.
SECRET_FIELDS = frozenset({"bootstrap_admin_key"})
URL_FIELDS = frozenset({"database_url", "broker_url"})


def settings_error_text(exc: ValidationError) -> str:
    """One line per invalid setting, `PATROL_NAME: why (got value)`, the value shown only when it
    is no secret (URLs with their password replaced by ***)."""
    lines = []
    for error in exc.errors(include_url=False):
        field = str(error["loc"][0]) if error["loc"] else ""
        name = f"PATROL_{field.upper()}" if field else "settings"
        shown = _safe_value(field, error.get("input"))
        lines.append(f"{name}: {error['msg']}" + (f" (got {shown})" if shown is not None else ""))
    return "\n".join(lines)


def _safe_value(field: str, value: object) -> str | None:
    if field in SECRET_FIELDS or not isinstance(value, (str, int, float)) or isinstance(value, bool):
        return None
    if field in URL_FIELDS:
        return repr(redact_url(str(value)))
    return repr(value)[:120]


def redact_url(url: str) -> str:
    """`url` with any password replaced by *** (and kept whole when it has none)."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        host = parts.netloc.rsplit("@", 1)[1]
        return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))
    except ValueError:  # not parseable as a URL: it may be anything, show nothing
        return "<unparseable URL>"
