"""``GET /metrics``: the node in the Prometheus text format (prometheus_client).

One registry for the worker process: the HTTP metrics the middleware records,
the process collector (memory, CPU, open files), and a collector that reads the
node and runsync's last report at scrape time, so nothing is counted twice and
the figures are those ``/cluster`` shows.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector

from storage_app.node import current_node
from storage_app.public_auth import bearer_matches
from sync_app.sync_state import current_sync

REGISTRY = CollectorRegistry(auto_describe=False)
ProcessCollector(registry=REGISTRY)

HTTP_REQUESTS = Counter(
    "counter_http_requests",
    "HTTP requests answered, by route pattern, method and status.",
    ["route", "method", "status"],
    registry=REGISTRY,
)
HTTP_DURATION = Histogram(
    "counter_http_request_duration_seconds",
    "Time to answer an HTTP request inside the worker, by route pattern and method.",
    ["route", "method"],
    registry=REGISTRY,
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)

# runsync's per-peer figures (PeerStatus), as counters or gauges.
_PEER_COUNTERS = {
    "rounds": ("counter_sync_rounds", "Sync rounds with the peer since runsync started."),
    "bytes_sent": ("counter_sync_bytes_sent", "Sync bytes sent to the peer (bodies and headers)."),
    "bytes_received": ("counter_sync_bytes_received", "Sync bytes received from the peer."),
    "errors": ("counter_sync_failures", "Failed sync requests to the peer."),
}


class NodeCollector(Collector):
    """The node's counts, store, pending increments, log and snapshot, and runsync's peers."""

    def collect(self) -> Iterator[Metric]:
        node = current_node()
        yield CounterMetricFamily(
            "counter_tokens_indexed", "Tokens counted from posted texts.", value=node.tokens_indexed
        )
        yield CounterMetricFamily(
            "counter_texts_indexed", "Texts counted (replayed idempotent retries excluded).", value=node.texts_indexed
        )
        yield GaugeMetricFamily("counter_store_keys", "Keywords in the store.", value=len(node.store))
        yield GaugeMetricFamily("counter_store_slots", "Replica slots in the store.", value=node.store.width)
        yield GaugeMetricFamily(
            "counter_pending_keys",
            "Keywords with pending increments (not yet in this node's slot).",
            value=len(node.pending),
        )
        if node.wal is not None:
            buckets, total, _count = node.wal.fsync_times.snapshot()
            yield HistogramMetricFamily(
                "counter_wal_fsync_seconds",
                "Time of each fsync of the write-ahead log.",
                buckets=[(_bound(bound), count) for bound, count in buckets],
                sum_value=total,
            )
        dump = node.last_dump
        yield GaugeMetricFamily(
            "counter_snapshot_duration_seconds",
            "Time the last snapshot took to write.",
            value=dump.seconds if dump is not None else 0.0,
        )
        yield GaugeMetricFamily(
            "counter_snapshot_bytes", "Size of the last snapshot written.", value=dump.size_bytes if dump else 0
        )
        yield from self._peers()

    def _peers(self) -> Iterator[Metric]:
        peers: list[dict[str, Any]] = current_sync().cluster_status()["peers"]
        peers = [peer for peer in peers if peer.get("node_id") is not None]
        for field, (name, documentation) in _PEER_COUNTERS.items():
            family = CounterMetricFamily(name, documentation, labels=["peer"])
            for peer in peers:
                family.add_metric([str(peer["node_id"])], float(peer.get(field) or 0))
            yield family
        lag = GaugeMetricFamily(
            "counter_sync_lag_changes",
            "This node's changes at the start of the last round that the peer has not acknowledged.",
            labels=["peer"],
        )
        up = GaugeMetricFamily("counter_peer_up", "1 if the peer answered the last sync request.", labels=["peer"])
        for peer in peers:
            if peer.get("lag") is not None:
                lag.add_metric([str(peer["node_id"])], float(peer["lag"]))
            up.add_metric([str(peer["node_id"])], 1.0 if peer.get("reachable") else 0.0)
        yield lag
        yield up


def _bound(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(bound)


REGISTRY.register(NodeCollector())


def metrics_view(request: HttpRequest) -> HttpResponse:
    """The metrics; with COUNTER_PUBLIC_READ_TOKEN set, like every read, only with the token."""
    token = current_node().config.public_read_token
    if token and not bearer_matches(request, token):
        return JsonResponse(
            {
                "detail": "Reading metrics needs 'Authorization: Bearer <COUNTER_PUBLIC_READ_TOKEN>' on this node "
                "(Prometheus: the scrape job's authorization credentials).",
                "code": "public_token_required",
            },
            status=401,
        )
    return HttpResponse(generate_latest(REGISTRY), content_type=CONTENT_TYPE_LATEST)


def record_request(request: HttpRequest, response: HttpResponse, seconds: float) -> None:
    """Count one answered request (the middleware calls this)."""
    match = getattr(request, "resolver_match", None)
    route = match.route if match is not None and match.route else "unmatched"
    method = request.method or ""
    HTTP_REQUESTS.labels(route, method, str(response.status_code)).inc()
    HTTP_DURATION.labels(route, method).observe(seconds)
