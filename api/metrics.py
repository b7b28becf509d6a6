"""Prometheus metrics: requests, events appended, rejections, projection lag.

Counters live at module level (one set per process). With several uvicorn workers,
``carejourney serve`` points ``PROMETHEUS_MULTIPROC_DIR`` at a fresh folder before the
workers start, and ``/metrics`` sums every worker's counters (prometheus_client's
multiprocess mode), so a scrape that lands on any worker sees the whole server.
Projection lag is not a counter: it is read from the database at scrape time.

Requests are labelled with the route *template* (``/v1/patients/{nhs}/journey``), never
the concrete path, so no NHS number reaches the metrics.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.types import Receive, Scope, Send

from api.asgi import HttpMiddleware, Watched
from api.problems import template_of

REQUESTS = Counter(
    "carejourney_http_requests", "HTTP requests answered.", ["method", "route", "status"]
)
LATENCY = Histogram(
    "carejourney_http_request_duration_seconds",
    "Time to answer an HTTP request.",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0),
)
APPENDED = Counter("carejourney_events_appended", "Events recorded in the ledger via HTTP.")
PUBLISHED = Counter("carejourney_published_items", "Published envelopes by outcome.", ["status"])
REJECTIONS = Counter(
    "carejourney_rejections", "Refused requests and envelopes, by problem kind.", ["kind"]
)

CONTENT_TYPE = CONTENT_TYPE_LATEST


class ProjectionLag(Collector):
    """Each projection's position and lag (ledger head minus position), read at scrape."""

    def __init__(self, status: Callable[[], list[dict[str, Any]]]) -> None:
        self.status = status

    def collect(self) -> Iterator[Metric]:
        lag = GaugeMetricFamily(
            "carejourney_projection_lag_events",
            "Ledger head position minus the projection's position.",
            labels=["projection"],
        )
        position = GaugeMetricFamily(
            "carejourney_projection_position",
            "Last ledger position the projection applied.",
            labels=["projection"],
        )
        for row in self.status():
            lag.add_metric([row["name"]], row["lag"])
            position.add_metric([row["name"]], row["position"])
        yield lag
        yield position


class ConsumerHealth(Collector):
    """Kafka consumers as PostgreSQL knows them (they run in other processes): stopped
    partitions (reading on would skip messages), held retractions, unsent dead letters,
    by source topic."""

    def __init__(self, health: Callable[[], list[dict[str, Any]]]) -> None:
        self.health = health

    def collect(self) -> Iterator[Metric]:
        families = {
            "stopped": GaugeMetricFamily(
                "carejourney_consumer_partitions_stopped",
                "Partitions the consumer stopped until an operator resets them.",
                labels=["topic"],
            ),
            "held": GaugeMetricFamily(
                "carejourney_consumer_held_messages",
                "Retractions held until their target is recorded or the hold ends.",
                labels=["topic"],
            ),
            "unsent": GaugeMetricFamily(
                "carejourney_consumer_dead_letters_unsent",
                "Refused messages kept in PostgreSQL, not yet on the dead-letter topic.",
                labels=["topic"],
            ),
        }
        for row in self.health():
            for name, family in families.items():
                family.add_metric([row["topic"]], row[name])
        yield from families.values()


def exposition(
    status: Callable[[], list[dict[str, Any]]],
    consumers: Callable[[], list[dict[str, Any]]] | None = None,
) -> bytes:
    """The text exposition: this process's (or all workers') counters, then lag and
    the consumers' health."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        counters = generate_latest(registry)
    else:
        counters = generate_latest(REGISTRY)
    lag_registry = CollectorRegistry()
    lag_registry.register(ProjectionLag(status))
    if consumers is not None:
        lag_registry.register(ConsumerHealth(consumers))
    return counters + generate_latest(lag_registry)


class MetricsMiddleware(HttpMiddleware):
    """Counts and times every HTTP request (pure ASGI: no per-request task or copy)."""

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        watched = Watched(send)
        try:
            await self.app(scope, receive, watched)
        finally:
            status = watched.status
            template = template_of(scope) or "unmatched"
            method = scope["method"]
            REQUESTS.labels(method, template, str(status)).inc()
            LATENCY.labels(method, template).observe(time.perf_counter() - started)
            if status in (401, 403, 413, 422):
                REJECTIONS.labels(
                    {401: "unauthenticated", 403: "forbidden", 413: "too-large", 422: "validation"}[
                        status
                    ]
                ).inc()
