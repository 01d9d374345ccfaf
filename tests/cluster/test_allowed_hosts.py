"""COUNTER_ALLOWED_HOSTS on real nodes: the public API refuses other Host headers; probes and peers are unaffected."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import requests

from tests.cluster.nodes import Node, connect, start_all, wait_until

pytestmark = [pytest.mark.cluster, pytest.mark.xdist_group("cluster")]

ALLOWED = {"COUNTER_ALLOWED_HOSTS": "counter.example, 127.0.0.1"}


def test_a_request_naming_another_host_is_refused_and_changes_nothing(make_node: Callable[..., Node]) -> None:
    nodes = [make_node(0, env=dict(ALLOWED)), make_node(1, env=dict(ALLOWED))]
    connect(nodes)  # peers address each other as 127.0.0.1, which is listed: and the sync port is exempt anyway
    start_all(nodes)
    first, second = nodes
    other = {"Host": "evil.example"}
    refusals = [
        # The plain write the node answers below Django, and the same write as Django's (an NDJSON batch).
        requests.post(first.public_url + "/keywords", data="refused", headers=other, timeout=10),
        requests.post(
            first.public_url + "/keywords",
            data='{"text": "refused"}\n',
            headers={**other, "Content-Type": "application/x-ndjson"},
            timeout=10,
        ),
        requests.get(first.public_url + "/keywords", params={"keywords": "refused"}, headers=other, timeout=10),
        requests.get(first.public_url + "/top", headers=other, timeout=10),
        requests.get(first.public_url + "/", headers={**other, "Accept": "text/html"}, timeout=10),
    ]
    for response in refusals:
        assert response.status_code == 400, (response.request.method, response.request.url, response.text)
        assert response.json()["code"] == "host_not_allowed"
        assert "evil.example" in response.json()["detail"] and "COUNTER_ALLOWED_HOSTS" in response.json()["detail"]
    # Named hosts are served, whatever the port in the header.
    named = requests.post(
        first.public_url + "/keywords", data="allowed allowed", headers={"Host": "counter.example:8080"}, timeout=10
    )
    assert named.status_code == 200 and named.json() == {"tokens": 2, "keywords": 1}
    first.post("allowed")  # Host: 127.0.0.1:<port>
    # Probes and /metrics answer whatever the Host: a kubelet or Prometheus addresses the node by its IP.
    for path in ("/healthz", "/readyz", "/metrics"):
        assert requests.get(first.public_url + path, headers=other, timeout=10).status_code == 200, path
    # Replication still runs, and nothing refused was counted anywhere.
    wait_until(lambda: second.counts(["allowed"]) == {"allowed": 3}, 60, "the second node to learn the writes")
    assert first.counts(["refused"]) == second.counts(["refused"]) == {"refused": 0}
