"""What one running app holds: settings, database, analyzer, clock, metrics. Built once in create_app."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from service.analysis import PhotoAnalyzer
from service.evidence import EvidenceStore
from service.ledger.intake import IntakeContext
from service.metrics import ServiceMetrics
from service.settings import Settings
from vision.taxonomy import Taxonomy

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class ServiceState:
    settings: Settings
    engine: Engine
    session_factory: sessionmaker[Session]
    analyzer: PhotoAnalyzer
    clock: Clock
    taxonomy: Taxonomy
    intake: IntakeContext
    metrics: ServiceMetrics

    def evidence_store(self) -> EvidenceStore:
        """A fresh store per unit of work: it remembers what it wrote, to undo on rollback."""
        return EvidenceStore(self.settings.data_dir)
