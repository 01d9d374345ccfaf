"""GET /metrics after known traffic gives the exact numbers, in the Prometheus text format."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from storage_app.node import Node
from tests.conftest import PortClient, restart_node


def scrape(client: PortClient, **headers: str) -> dict[str, float]:
    response = client.get("/metrics", **headers)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=")
    samples: dict[str, float] = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            labels = ",".join(f"{key}={value}" for key, value in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return samples


def test_metrics_after_known_traffic(node: Node) -> None:
    restarted = restart_node(fsync="always")
    client = PortClient(restarted.config.public_port)
    # The HTTP metrics belong to the process, which other tests share: compare with before.
    before = scrape(client)
    for text in ("one two three", "two three", "three"):
        assert client.post("/keywords", text, content_type="text/plain").status_code == 200
    keyed = {"HTTP_IDEMPOTENCY_KEY": "metrics-key"}
    client.post("/keywords", "four words are here", content_type="text/plain", **keyed)
    client.post("/keywords", "four words are here", content_type="text/plain", **keyed)  # replayed: not counted
    assert client.get("/keywords?keywords=three").status_code == 200
    assert client.get("/keywords/nowhere").status_code == 200
    assert restarted.dump(force=True).written

    samples = scrape(client)
    assert samples["counter_tokens_indexed_total"] == 6 + 4
    assert samples["counter_texts_indexed_total"] == 4
    assert samples["counter_store_keys"] == 7
    assert samples["counter_store_slots"] == restarted.store.width
    assert samples["counter_pending_keys"] == 0
    assert (
        samples["counter_http_requests_total{method=POST,route=keywords,status=200}"]
        - before.get("counter_http_requests_total{method=POST,route=keywords,status=200}", 0)
        == 5
    )
    assert (
        samples["counter_http_requests_total{method=GET,route=^keywords/(?P<keyword>.+)$,status=200}"]
        - before.get("counter_http_requests_total{method=GET,route=^keywords/(?P<keyword>.+)$,status=200}", 0)
        == 1
    )
    assert (
        samples["counter_http_request_duration_seconds_count{method=GET,route=keywords}"]
        - before.get("counter_http_request_duration_seconds_count{method=GET,route=keywords}", 0)
        == 1
    )
    assert samples["counter_wal_fsync_seconds_count"] >= 4  # fsync=always: one per write at least
    assert samples["counter_snapshot_bytes"] > 0
    assert samples["process_resident_memory_bytes"] > 0


def test_metrics_need_the_read_token_when_reads_do(node: Node) -> None:
    client = PortClient(restart_node(public_read_token="r-token").config.public_port)
    refused = client.get("/metrics")
    assert refused.status_code == 401 and refused.json()["code"] == "public_token_required"
    assert "counter_store_keys" in scrape(client, HTTP_AUTHORIZATION="Bearer r-token")
