"""The camera tests' runtime: the service's one per-process object over the test database."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from service.runtime import Runtime


@pytest.fixture
def runtime(settings, analyzer, clock) -> Iterator[Runtime]:  # type: ignore[no-untyped-def]
    built = Runtime.build(settings, analyzer=analyzer, clock=clock)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    yield built
    built.engine.dispose()
