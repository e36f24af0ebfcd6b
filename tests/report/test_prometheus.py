"""--metrics-port: live counters in Prometheus text format on 127.0.0.1."""

from __future__ import annotations

import urllib.request

from llmbatch._metrics import Metrics
from llmbatch.report.prometheus import serve_metrics


def test_the_endpoint_serves_the_live_counters() -> None:
    metrics = Metrics()
    metrics.items_total, metrics.items_ok, metrics.rate_limited, metrics.pack_size = 100, 40, 3, 20
    metrics.requests_failed["timeout"] = 2
    server = serve_metrics(metrics, 0)
    try:
        port = server.server_address[1]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            text = response.read().decode()
        assert "llmbatch_items_ok_total 40.0" in text
        assert "llmbatch_rate_limited_total 3.0" in text
        assert 'llmbatch_requests_failed_total{kind="timeout"} 2.0' in text
        assert "llmbatch_pack_size 20.0" in text
        metrics.items_ok = 41  # read at scrape time: nothing to update on the hot path
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            assert "llmbatch_items_ok_total 41.0" in response.read().decode()
    finally:
        server.shutdown()
        server.server_close()
