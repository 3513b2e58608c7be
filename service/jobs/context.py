"""What a job needs to run, whichever runner runs it: database, analyzer, ledger rules, clocks.

The in-process runner builds it from the app's `ServiceState` (sharing the app's analyzer
and so its one inference queue); a Celery worker or `patrol demo` builds it from settings.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from service.analysis import PhotoAnalysis
from service.evidence import EvidenceStore
from service.ledger.dedup import DedupRules
from service.ledger.intake import IntakeContext
from service.ledger.verification import VerificationRules
from service.settings import Settings
from vision.model_card import ModelCard
from vision.taxonomy import Taxonomy

if TYPE_CHECKING:
    from service.api.state import ServiceState
    from vision.pipeline import Pipeline

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


@runtime_checkable
class SurveyAnalyzer(Protocol):
    """A `PhotoAnalyzer` that also exposes its pipeline (tiles of an orthomosaic go through it)."""

    def analyze(
        self, image_bytes: bytes, *, name: str, lon: float | None, lat: float | None
    ) -> PhotoAnalysis: ...

    def pipeline(self) -> Pipeline: ...


def model_version_of(card: ModelCard) -> str:
    """The version string frames and jobs carry; the same as `PipelineAnalyzer.analyze` writes."""
    return f"{card.name}:{card.version}:{card.sha256[:12]}"


@dataclass(frozen=True)
class JobContext:
    settings: Settings
    session_factory: sessionmaker[Session]
    analyzer: SurveyAnalyzer
    intake: IntakeContext
    taxonomy: Taxonomy
    clock: Clock  # ledger time: when observations are recorded
    lease_clock: Clock = field(default=utc_now)  # wall time for leases, whatever the ledger clock says

    def evidence_store(self) -> EvidenceStore:
        return EvidenceStore(self.settings.data_dir)

    def pipeline(self) -> Pipeline:
        return self.analyzer.pipeline()

    def model_version(self) -> str:
        """Raises vision.errors.ModelError when no model can be loaded."""
        return model_version_of(self.pipeline().card)

    @classmethod
    def from_service_state(cls, state: ServiceState) -> JobContext | None:
        """None when the app's analyzer cannot run surveys (e.g. a test double without a pipeline)."""
        if not isinstance(state.analyzer, SurveyAnalyzer):
            return None
        return cls(
            settings=state.settings,
            session_factory=state.session_factory,
            analyzer=state.analyzer,
            intake=state.intake,
            taxonomy=state.taxonomy,
            clock=state.clock,
        )

    @classmethod
    def from_settings(
        cls, settings: Settings, *, analyzer: SurveyAnalyzer | None = None, clock: Clock = utc_now
    ) -> tuple[JobContext, Engine]:
        """A context with its own engine (the caller disposes of it); the production analyzer by default."""
        from service.db.session import make_engine, make_session_factory
        from service.photo_analyzer import PipelineAnalyzer

        taxonomy = Taxonomy.default()
        engine = make_engine(settings.database_url)
        context = cls(
            settings=settings,
            session_factory=make_session_factory(engine),
            analyzer=analyzer or PipelineAnalyzer(settings, taxonomy),
            intake=IntakeContext(
                taxonomy,
                DedupRules.from_settings(settings, taxonomy),
                VerificationRules.from_settings(settings),
            ),
            taxonomy=taxonomy,
            clock=clock,
        )
        return context, engine
