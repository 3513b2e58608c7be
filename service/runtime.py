"""The one world a running service works in: settings, database, analyzer, ledger rules, clocks, metrics.

Built once per process (`Runtime.build`): by `create_app` for the API and its in-process
job runner, by a Celery worker, by `patrol demo`. The API's routes, the job runner and the
recording unit of work (`service.recording`) all take this object, so there is one clock,
one `IntakeContext` and one analyzer (and so one inference queue) per process.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from service.analysis import PhotoAnalysis, PhotoAnalyzer, model_version_of
from service.evidence import EvidenceStore
from service.ledger.dedup import DedupRules
from service.ledger.intake import IntakeContext
from service.ledger.suppression import SuppressionRules
from service.ledger.verification import VerificationRules
from service.metrics import ServiceMetrics
from service.settings import Settings
from vision.errors import ModelError
from vision.image_io import LoadedImage, load_image
from vision.sources import SourceKind
from vision.taxonomy import Taxonomy

if TYPE_CHECKING:
    from vision.pipeline import Pipeline

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


@runtime_checkable
class SurveyAnalyzer(Protocol):
    """A `PhotoAnalyzer` that also exposes its pipeline (windows of an orthomosaic go through it)."""

    def analyze(self, image: LoadedImage, *, lon: float | None, lat: float | None) -> PhotoAnalysis: ...

    def pipeline(self) -> Pipeline: ...


@dataclass(frozen=True)
class Runtime:
    settings: Settings
    engine: Engine
    session_factory: sessionmaker[Session]
    analyzer: PhotoAnalyzer
    intake: IntakeContext
    taxonomy: Taxonomy
    clock: Clock  # ledger time: when observations are recorded
    metrics: ServiceMetrics
    lease_clock: Clock = field(default=utc_now)  # wall time for leases, whatever the ledger clock says
    owns_analyzer: bool = False  # built here, so closed here
    # Decodes at once in this process: each can take a few hundred MB (a 100 MPx drone photo),
    # so more concurrent requests wait here instead of multiplying the memory.
    decode_slots: threading.BoundedSemaphore = field(init=False, repr=False, compare=False)
    # The analyzer as a SurveyAnalyzer, or None: a runtime-checkable Protocol's isinstance costs
    # ~20 us, and each photo upload asked it four times.
    survey_analyzer: SurveyAnalyzer | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        slots = threading.BoundedSemaphore(self.settings.max_concurrent_decodes)
        object.__setattr__(self, "decode_slots", slots)  # frozen: set once, here
        surveys = self.analyzer if isinstance(self.analyzer, SurveyAnalyzer) else None
        object.__setattr__(self, "survey_analyzer", surveys)

    @classmethod
    def build(
        cls,
        settings: Settings,
        *,
        analyzer: PhotoAnalyzer | None = None,
        clock: Clock | None = None,
        taxonomy: Taxonomy | None = None,
    ) -> Runtime:
        """A runtime with its own engine; the production analyzer (model loaded on first use) by
        default. `close()` releases what it built."""
        from service.db.session import make_engine, make_session_factory

        taxonomy = taxonomy or Taxonomy.default()
        owns_analyzer = analyzer is None
        if analyzer is None:
            from service.photo_analyzer import PipelineAnalyzer  # torch-free; loads the model on first use

            analyzer = PipelineAnalyzer(settings, taxonomy)
        engine = make_engine(settings.database_url)
        session_factory = make_session_factory(engine)
        metrics = ServiceMetrics()
        metrics.watch_ledger(session_factory)
        return cls(
            settings=settings,
            engine=engine,
            session_factory=session_factory,
            analyzer=analyzer,
            intake=IntakeContext(
                taxonomy,
                DedupRules.from_settings(settings, taxonomy),
                VerificationRules.from_settings(settings),
                SuppressionRules.from_settings(settings, taxonomy),
            ),
            taxonomy=taxonomy,
            clock=clock or utc_now,
            metrics=metrics,
            owns_analyzer=owns_analyzer,
        )

    def close(self) -> None:
        """The analyzer's pipeline (its batcher thread) when built here, and the engine's pool."""
        close = getattr(self.analyzer, "close", None)
        if self.owns_analyzer and close is not None:
            close()
        self.engine.dispose()

    def read_image(
        self, data: bytes, *, name: str, default_kind: SourceKind, content_hash: str | None = None
    ) -> LoadedImage:
        """Uploaded bytes through the source reader under this service's limits (pixels, bytes, a
        citizen photo's decode cap), one of `max_concurrent_decodes` at a time; ImageLoadError
        with a reason for anything unusable. `content_hash`: the bytes' sha256 when the caller
        took it already (load_image then takes it as theirs)."""
        sizes = self.decode_sizes()
        with self.decode_slots:
            return load_image(
                data,
                name=name,
                default_kind=default_kind,
                max_pixels=self.settings.max_image_pixels,
                max_bytes=self.settings.max_upload_bytes,
                decode_caps={"citizen": self.settings.max_citizen_photo_pixels},
                decode_sizes=sizes,
                content_hash=content_hash,
            )

    def decode_sizes(self) -> dict[SourceKind, int]:
        """The long side the model needs images of each kind at (Pipeline.decode_sizes: a
        citizen's photo at the model input), so a JPEG is decoded no larger; none without a
        pipeline or a model (the analysis then answers, 503 naming the missing model)."""
        if self.survey_analyzer is None:
            return {}
        try:
            return self.survey_analyzer.pipeline().decode_sizes()
        except ModelError:
            return {}

    def evidence_store(self) -> EvidenceStore:
        """A fresh store per unit of work: it remembers what it wrote, to undo on rollback."""
        return EvidenceStore(self.settings.data_dir)

    @property
    def runs_surveys(self) -> bool:
        """Whether the analyzer exposes a pipeline (a test double may not): surveys need one."""
        return self.survey_analyzer is not None

    def pipeline(self) -> Pipeline:
        """The analyzer's pipeline; ModelError when no model can be loaded or there is none."""
        if self.survey_analyzer is None:
            raise ModelError("this service's analyzer has no detection pipeline; surveys need one")
        return self.survey_analyzer.pipeline()

    def model_version(self) -> str:
        """Raises vision.errors.ModelError when no model can be loaded."""
        return model_version_of(self.pipeline().card)
