"""The process-wide cache of parsed, prepared region polygons (service.ledger.regions.REGION_SHAPES).

It must answer what the database holds now: a region rolled back and another stored under
the same id (SQLite reuses it) is another polygon, not the cached one.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, select

from service.db.models import Region
from service.db.session import make_engine, make_session_factory
from service.ledger.regions import (
    REGION_SHAPES,
    RegionShapes,
    import_regions,
    parse_feature_collection,
    smallest_region_containing,
)

NOW = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def square(name: str, west: float, south: float, size: float = 0.01) -> dict:  # type: ignore[type-arg]
    east, north = west + size, south + size
    ring = [[west, south], [east, south], [east, north], [west, north], [west, south]]
    return {
        "type": "Feature",
        "properties": {"name": name, "kind": "village"},
        "geometry": {"type": "Polygon", "coordinates": [ring]},
    }


def drafts(*features: dict):  # type: ignore[no-untyped-def,type-arg]
    return parse_feature_collection({"type": "FeatureCollection", "features": list(features)})


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


def test_a_rolled_back_region_is_not_answered_for_its_successor(engine):
    sessions = make_session_factory(engine)
    with sessions() as session:
        import_regions(session, drafts(square("东村", 117.0, 31.0)), NOW)
        assert smallest_region_containing(session, 117.005, 31.005).name == "东村"  # cached now
        session.rollback()
    with sessions() as session:
        import_regions(session, drafts(square("西村", 116.0, 31.0)), NOW)
        session.commit()
        stored = session.scalars(select(Region)).one()
        assert smallest_region_containing(session, 117.005, 31.005) is None
        found = smallest_region_containing(session, 116.005, 31.005)
        assert found is not None and found.id == stored.id and found.name == "西村"


def test_each_polygon_is_parsed_once(engine):
    sessions = make_session_factory(engine)
    with sessions() as session:
        import_regions(session, drafts(square("东村", 117.0, 31.0)), NOW)
        session.commit()
    with sessions() as session:
        region = session.scalars(select(Region)).one()
        assert REGION_SHAPES.get(session, region) is REGION_SHAPES.get(session, region)


def test_the_cache_holds_a_bounded_number_of_vertices(engine):
    cache = RegionShapes(max_vertices=12)  # two 5-position squares fit, three do not
    sessions = make_session_factory(engine)
    with sessions() as session:
        import_regions(
            session,
            drafts(square("a", 117.0, 31.0), square("b", 117.1, 31.0), square("c", 117.2, 31.0)),
            NOW,
        )
        regions = list(session.scalars(select(Region).order_by(Region.id)))
        shapes = [cache.get(session, r) for r in regions]
        assert len(cache) == 2
        assert cache.get(session, regions[2]) is shapes[2]  # the latest stay
        assert cache.get(session, regions[0]) is not shapes[0]  # the oldest went, and is parsed again
        assert cache.get(session, regions[0]).equals(shapes[0])
