"""One scrape: the request figures (every process's in multiprocess mode, else this process's) and the database's."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from relais.observability.collectors import DatabaseCollector
from relais.observability.request_metrics import multiprocess_dir


class _Forward(Collector):
    """The default registry's figures (this process's requests, process CPU and memory) inside a scrape's registry."""

    def __init__(self, source: CollectorRegistry) -> None:
        self.source = source

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterable[Metric]:
        return self.source.collect()


def scrape_registry() -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    directory = multiprocess_dir()
    if directory:
        MultiProcessCollector(registry, path=directory)
    else:
        registry.register(_Forward(REGISTRY))
    registry.register(DatabaseCollector())
    return registry


def exposition() -> bytes:
    """The Prometheus text format (0.0.4)."""
    return generate_latest(scrape_registry())
