"""Concurrent writers: the ledger lock keeps dedup decisions race-free on both backends."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import numpy as np
from sqlalchemy import func, select

from service.analysis import GroundPoint, ObservationDraft, PhotoAnalysis, content_hash
from service.db.models import Issue, Observation
from service.db.session import make_engine, make_session_factory, session_scope
from service.evidence import EvidenceStore
from service.ledger.dedup import DedupRules
from service.ledger.events import Actor
from service.ledger.intake import IntakeContext, SourceRef, record_analysis
from service.ledger.verification import VerificationRules
from tests.service.images import BASE_LAT, BASE_LON, offset
from vision.taxonomy import Taxonomy

WRITERS = 8


def _analysis(i: int) -> PhotoAnalysis:
    pixels = np.full((64, 64, 3), i, np.uint8)
    lon, lat = offset(BASE_LON, BASE_LAT, east_m=float(i))  # all within 8 m of each other
    return PhotoAnalysis(
        content_hash=content_hash(pixels.tobytes()),
        model_version="m:1",
        pixels=pixels,
        observations=(ObservationDraft("garbage_pile", 0.9, (8, 8, 40, 40), GroundPoint(lon, lat, 5.0)),),
    )


def test_simultaneous_sightings_of_one_pile_make_one_issue(settings):
    taxonomy = Taxonomy.default()
    ctx = IntakeContext(
        taxonomy, DedupRules.from_settings(settings, taxonomy), VerificationRules.from_settings(settings)
    )
    engine = make_engine(settings.database_url)
    factory = make_session_factory(engine)
    now = datetime(2026, 11, 2, tzinfo=UTC)

    def write(i: int) -> str:
        with session_scope(factory) as session:
            result = record_analysis(
                session,
                ctx,
                analysis=_analysis(i),
                source=SourceRef("citizen", f"phone {i}"),
                store=EvidenceStore(settings.data_dir),
                actor=Actor.system(),
                now=now,
            )
            return result.observations[0].outcome.value

    with ThreadPoolExecutor(WRITERS) as pool:
        outcomes = sorted(pool.map(write, range(WRITERS)))
    with factory() as session:
        issues = session.scalar(select(func.count()).select_from(Issue))
        observations = session.scalar(select(func.count()).select_from(Observation))
    engine.dispose()
    assert outcomes == ["joined"] * (WRITERS - 1) + ["opened"]
    assert (issues, observations) == (1, WRITERS)
