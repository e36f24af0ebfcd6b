"""``--metrics-port``: the live counters in Prometheus text format (official ``prometheus-client``).

A custom collector reads ``Metrics`` at scrape time, so nothing is updated
twice on the hot path. The endpoint listens on 127.0.0.1 unless told otherwise.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from .._metrics import Metrics

__all__ = ["MetricsCollector", "serve_metrics"]


class MetricsCollector(Collector):
    """Exposes one run's ``Metrics`` as ``llmbatch_*`` series."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Any]:
        m = self.metrics
        yield CounterMetricFamily("llmbatch_requests", "Requests sent", value=m.requests)
        failed = CounterMetricFamily("llmbatch_requests_failed", "Failed requests by kind", labels=["kind"])
        for kind, count in m.requests_failed.items():
            failed.add_metric([kind], count)
        yield failed
        yield CounterMetricFamily("llmbatch_items_ok", "Records answered", value=m.items_ok)
        items_failed = CounterMetricFamily("llmbatch_items_failed", "Failed records by kind", labels=["kind"])
        for kind, count in m.items_failed.items():
            items_failed.add_metric([kind], count)
        yield items_failed
        yield GaugeMetricFamily("llmbatch_items_total", "Records in the job", value=m.items_total)
        yield CounterMetricFamily("llmbatch_retries", "Records re-sent", value=m.retries)
        yield CounterMetricFamily("llmbatch_splits", "Packs split", value=m.splits)
        yield CounterMetricFamily("llmbatch_rate_limited", "429 answers", value=m.rate_limited)
        tokens = CounterMetricFamily("llmbatch_tokens", "Tokens by kind", labels=["kind"])
        tokens.add_metric(["prompt"], m.prompt_tokens)
        tokens.add_metric(["completion"], m.completion_tokens)
        tokens.add_metric(["cached"], m.cached_tokens)
        tokens.add_metric(["cache_write"], m.cache_write_tokens)
        yield tokens
        yield CounterMetricFamily("llmbatch_cost_usd", "Spend so far (priced requests)", value=m.cost)
        yield GaugeMetricFamily("llmbatch_pack_size", "Pack size in use", value=m.pack_size)
        yield GaugeMetricFamily("llmbatch_concurrency", "Concurrency limit in use", value=m.concurrency)


def serve_metrics(metrics: Metrics, port: int, host: str = "127.0.0.1") -> Any:
    """Start the endpoint in a daemon thread; returns the server (call ``shutdown()``)."""
    registry = CollectorRegistry()
    registry.register(MetricsCollector(metrics))
    server, _thread = start_http_server(port, addr=host, registry=registry)
    return server
