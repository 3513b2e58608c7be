"""A budgeted push: the ledger's pending frames chosen by the active-learning ranking, within what
today's budget leaves, without near-duplicates of frames already sent (real database, real uploads)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from service.db.models import Frame
from service.db.session import make_engine, make_session_factory
from service.evidence import EvidenceStore
from service.review.models import ReviewTask
from service.review.selection import budgeted_frames, evidence_images
from tests.service.helpers import upload_ok
from tests.service.images import BASE_LAT, BASE_LON, offset, painted, png
from vision.taxonomy import Taxonomy

PROJECT = 7


def test_budgeted_frames_rank_within_the_days_budget(client, keys, clock, settings):  # type: ignore[no-untyped-def]
    def photo(objects, shade: int, east_m: float) -> None:  # type: ignore[no-untyped-def]
        lon, lat = offset(BASE_LON, BASE_LAT, east_m=east_m)
        upload_ok(client, keys, png(painted(objects, shade=shade)), lon=lon, lat=lat)

    # dHash distances between these pictures: 15 to 24 bits, beyond the 6 of a near-duplicate.
    photo([("garbage", (100, 80, 180, 160), 0.5)], 1, 0)  # sent to reviewers this morning
    photo([("garbage", (100, 80, 180, 160), 0.5)], 2, 400)  # the same picture, a shade brighter
    photo([("garbage", (20, 30, 120, 200), 0.95)], 3, 800)  # sure: little to learn
    photo([("garbage", (160, 20, 310, 230), 0.5)], 4, 1600)  # near garbage_pile's threshold
    photo([("smoke", (200, 60, 260, 200), 0.8)], 5, 2400)  # a class nobody has reviewed yet
    engine = make_engine(settings.database_url)
    try:
        factory = make_session_factory(engine)
        with factory() as session:
            ids = list(session.scalars(select(Frame.id).order_by(Frame.id)))
            assert len(ids) == 5
            sent, twin, sure, near, smoke = ids
            session.add(ReviewTask(frame_id=sent, project_id=PROJECT, task_id=1, pushed_at=clock()))
            session.commit()

            def pick(budget: int, days: int = 0) -> list[int]:
                frames = budgeted_frames(
                    session, 10, project_id=PROJECT, daily_budget=budget,
                    now=clock() + timedelta(days=days),
                    taxonomy=Taxonomy.default(), image_of=evidence_images(EvidenceStore(settings.data_dir)))
                return [f.id for f in frames]

            # One task already today: a budget of 3 leaves 2; the twin of the sent frame is skipped.
            assert pick(3) == [near, smoke]
            assert pick(1) == []
            assert pick(1, days=1) == [near]
            assert pick(10) == [near, smoke, sure]
            assert twin not in pick(10)
    finally:
        engine.dispose()
