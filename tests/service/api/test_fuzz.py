"""Every route of the OpenAPI schema, fuzzed by schemathesis with an admin key: never a 500.

Runs the app in-process (ASGI) on both backends, with a bounded number of examples per
operation so that the whole pass takes a few minutes. Only the server-error check runs: a
4xx for data the schema allows is an honest answer (e.g. an unknown id), a 500 never is.
The operations are driven through hypothesis directly: schemathesis' pytest plugin
(`from_fixture`) does not run under pytest 9.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.python import asgi

EXAMPLES_PER_OPERATION = 25


@pytest.fixture
def api_schema(app) -> Iterator[schemathesis.BaseSchema]:  # type: ignore[no-untyped-def]
    """The app's own schema. schemathesis starts the app's lifespan itself on the first call (a
    TestClient's as well would start the job runner twice) and keeps it: stopped here."""
    yield schemathesis.openapi.from_asgi("/openapi.json", app)
    asgi.shutdown_lifespans()


@pytest.mark.slow
def test_no_route_answers_500(api_schema, keys_factory):  # type: ignore[no-untyped-def]
    headers = keys_factory().headers("admin")  # the test database is migrated already
    failures = []
    for result in api_schema.get_all_operations():
        operation = result.ok()

        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,  # the same examples every run: a failure is reproducible
            database=None,
        )
        @given(case=operation.as_strategy())
        def call(case: schemathesis.Case) -> None:
            case.call_and_validate(headers=headers, checks=[not_a_server_error])

        try:
            call()
        except Exception as exc:  # one line per failing route, then all of them at once
            failures.append(f"{operation.label}: {type(exc).__name__}: {str(exc)[:2000]}")
    assert not failures, "\n\n".join(failures)
