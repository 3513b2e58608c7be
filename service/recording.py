"""The one unit of work that records "this analysis of this source by this actor" in the ledger.

Everything a recording writes lands together or not at all: the frame and its evidence
images, the observations deduplicated into issues (`service.ledger.intake`), their events,
and whatever the caller adds in the same transaction (a job's item and progress). On any
failure the rows roll back and the evidence images written for them are deleted, so the
ledger never points at a missing image and no orphan image is left behind. Photo uploads,
survey jobs and the demo record through here; camera events and review decisions will too.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from service.analysis import PhotoAnalysis
from service.db.session import session_scope
from service.evidence import EvidenceStore
from service.ledger.events import Actor
from service.ledger.intake import IntakeResult, SourceRef, record_analysis
from service.runtime import Runtime


@dataclass
class UnitOfWork:
    """One open transaction and the evidence written in it; see `unit_of_work`."""

    runtime: Runtime
    session: Session
    store: EvidenceStore
    results: list[IntakeResult] = field(default_factory=list)

    def record(
        self, analysis: PhotoAnalysis, *, source: SourceRef, actor: Actor, note: str = ""
    ) -> IntakeResult:
        """Frame, evidence, observations, issues opened or joined, 回头看 passes; the earlier
        result when this image was recorded before under the same model."""
        result = record_analysis(
            self.session,
            self.runtime.intake,
            analysis=analysis,
            source=source,
            store=self.store,
            actor=actor,
            now=self.runtime.clock(),
            note=note,
        )
        self.results.append(result)
        return result


@contextmanager
def unit_of_work(runtime: Runtime) -> Iterator[UnitOfWork]:
    """A transaction for recordings: committed with their images when the block ends, or
    rolled back with them (images deleted) when it raises. Metrics count what was committed."""
    store = runtime.evidence_store()
    try:
        with session_scope(runtime.session_factory) as session:
            work = UnitOfWork(runtime, session, store)
            yield work
    except BaseException:
        store.discard_written()  # the rows are gone; do not leave their images behind
        raise
    store.commit_written()
    _count(runtime, work.results)


def record(
    runtime: Runtime, analysis: PhotoAnalysis, *, source: SourceRef, actor: Actor, note: str = ""
) -> IntakeResult:
    """One analysis in a unit of work of its own (the demo's photos; routes that need the rows
    while the session is open use `unit_of_work` directly)."""
    with unit_of_work(runtime) as work:
        return work.record(analysis, source=source, actor=actor, note=note)


def _count(runtime: Runtime, results: list[IntakeResult]) -> None:
    for result in results:
        for item in result.observations:
            runtime.metrics.observations.labels(item.observation.class_key, item.outcome.value).inc()
        for passed in result.passes:
            if passed.verified:
                runtime.metrics.transitions.labels("verified", "system").inc()
