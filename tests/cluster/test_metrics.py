"""/metrics of a live two-node cluster, read directly and by Debian's Prometheus scraping it."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.cluster.nodes import Node, free_port, start_cluster, wait_until

pytestmark = [pytest.mark.cluster, pytest.mark.xdist_group("metrics")]

TEXTS = ["alpha beta gamma", "beta gamma", "gamma"]


def samples(node: Node) -> dict[str, float]:
    response = requests.get(node.public_url + "/metrics", timeout=10)
    response.raise_for_status()
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            peer = sample.labels.get("peer")
            found[f"{sample.name}{{peer={peer}}}" if peer is not None else sample.name] = sample.value
    return found


def test_metrics_of_a_live_cluster_and_prometheus_scraping_them(make_node: Callable[..., Node], tmp_path: Path) -> None:
    a, b = start_cluster(make_node, 2)
    for text in TEXTS:
        a.post(text)
    wait_until(lambda: b.counts(["gamma"]) == {"gamma": 3}, 30, "b to have a's counts")
    wait_until(lambda: samples(a).get("counter_sync_bytes_received_total{peer=1}", 0) > 0, 30, "a's peer figures")
    figures = samples(a)
    assert figures["counter_tokens_indexed_total"] == 6
    assert figures["counter_texts_indexed_total"] == 3
    assert figures["counter_store_keys"] == 3
    assert figures["counter_sync_bytes_sent_total{peer=1}"] > 0
    assert figures["counter_sync_rounds_total{peer=1}"] > 0
    assert figures["counter_peer_up{peer=1}"] == 1
    assert samples(b)["counter_texts_indexed_total"] == 0  # b counted nothing itself

    prometheus = shutil.which("prometheus")
    assert prometheus is not None, "Debian's prometheus is installed by deploy/install-system-deps.sh"
    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n"
        "scrape_configs:\n  - job_name: counter\n    static_configs:\n"
        f"      - targets: ['127.0.0.1:{a.public_port}', '127.0.0.1:{b.public_port}']\n"
    )
    server = subprocess.Popen(
        [
            prometheus,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "prometheus.log").open("wb"),
    )
    try:

        def answer(query: str) -> float | None:
            reply = requests.get(f"http://127.0.0.1:{port}/api/v1/query", params={"query": query}, timeout=5)
            result = reply.json()["data"]["result"] if reply.ok else []
            return float(result[0]["value"][1]) if result else None

        # Both targets scraped (each on its own 1 s schedule), then the figures as the nodes give them.
        wait_until(lambda: answer("count(up == 1)") == 2, 60, "Prometheus to scrape both nodes")
        wait_until(lambda: answer("sum(counter_texts_indexed_total)") == 3, 30, "Prometheus to count 3 texts")
        assert answer("sum(counter_tokens_indexed_total)") == 6
        wait_until(lambda: answer("count(counter_peer_up == 1)") == 2, 30, "each node's peer up in Prometheus")
    finally:
        server.terminate()
        server.wait(30)
