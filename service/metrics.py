"""Prometheus metrics, one registry per app (no process-global state, so tests can run many apps).

Request metrics are labelled by route template (`/v1/issues/{issue_id}`), never by the raw
path, which would create a series per issue id; every label takes values from a known set
(`method_label`, `UNMATCHED_ROUTE`), so no client can grow /metrics by inventing methods or
paths (5,000 made-up methods once grew it from 13 KB to 8.8 MB). Ledger gauges are read from the database
at scrape time, so they are right whichever process or worker changed the ledger.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from service.db.models import Issue

# The methods HTTP defines (RFC 9110 and PATCH); anything else a client sends is counted as "other".
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"})
UNMATCHED_ROUTE = "<unmatched>"  # every path no route matched, whatever it was


def method_label(method: str) -> str:
    return method if method in HTTP_METHODS else "other"


class LedgerCollector(Collector):
    def __init__(self, session_factory: sessionmaker[Session]) -> None:
        self._session_factory = session_factory

    def collect(self) -> Iterator[GaugeMetricFamily]:
        gauge = GaugeMetricFamily(
            "patrol_issues", "Issues in the ledger by class and state.", labels=["class_key", "state"]
        )
        try:
            with self._session_factory() as session:
                rows = session.execute(
                    select(Issue.class_key, Issue.state, func.count()).group_by(Issue.class_key, Issue.state)
                ).all()
        except SQLAlchemyError:
            rows = []  # /metrics must answer even when the database does not; /health reports that
        for class_key, state, count in rows:
            gauge.add_metric([class_key, state], count)
        yield gauge


@dataclass
class ServiceMetrics:
    registry: CollectorRegistry = field(default_factory=lambda: CollectorRegistry(auto_describe=True))

    def __post_init__(self) -> None:
        self.requests = self._counter(
            "patrol_http_requests", "HTTP requests by method, route and status.", "method", "route", "status"
        )
        self.latency = Histogram(
            "patrol_http_request_seconds",
            "HTTP request latency by route.",
            ["method", "route"],
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        self.observations = self._counter(
            "patrol_observations", "Observations recorded, by class and outcome.", "class_key", "outcome"
        )
        self.transitions = self._counter(
            "patrol_transitions", "Issue state changes, by target state and actor kind.", "to_state", "actor"
        )
        self.rejected_uploads = self._counter(
            "patrol_rejected_uploads", "Uploads refused, by reason.", "reason"
        )

    def _counter(self, name: str, documentation: str, *labels: str) -> Counter:
        """A counter in this app's registry: never the process-global default one (see the module doc)."""
        return Counter(name, documentation, labels, registry=self.registry)

    def watch_ledger(self, session_factory: sessionmaker[Session]) -> None:
        self.registry.register(LedgerCollector(session_factory))
