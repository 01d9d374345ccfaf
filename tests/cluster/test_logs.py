"""COUNTER_LOG_FORMAT=json: every line a node writes is one JSON object; a dead peer is logged down and back."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from tests.cluster.nodes import Node, wait_until

pytestmark = [pytest.mark.cluster, pytest.mark.xdist_group("logs")]


def json_lines(node: Node) -> list[dict[str, Any]]:
    """The node's log as JSON objects (the test harness's own '--- start N ---' lines left out)."""
    lines = [line for line in node.log().splitlines() if line.strip() and not line.startswith("--- start ")]
    return [json.loads(line) for line in lines]  # a line that is not JSON fails here


def test_json_logs_with_a_peer_going_down_and_coming_back(make_node: Callable[..., Node]) -> None:
    peer = make_node(1, env={"COUNTER_LOG_FORMAT": "json"})
    node = make_node(0, env={"COUNTER_LOG_FORMAT": "json", "COUNTER_SEEDS": peer.sync_url})
    node.start(settled=False)  # its only seed is not running yet

    def has(event: str) -> bool:
        return any(event in line["event"] for line in json_lines(node))

    wait_until(lambda: has("is unreachable"), 30, "the down peer to be logged")
    down = next(line for line in json_lines(node) if "is unreachable" in line["event"])
    assert down["level"] == "warning" and down["node"] == 0 and down["fields"]["state"] == "down"
    assert down["fields"]["peer"] == peer.sync_url and down["fields"]["error"]
    assert {"time", "level", "node", "logger", "event", "fields"} <= set(down)
    peer.start()
    wait_until(lambda: has("is reachable again"), 60, "the peer's return to be logged")
    back = next(line for line in json_lines(node) if "is reachable again" in line["event"])
    assert back["fields"]["state"] == "up" and back["fields"]["peer_id"] == 1
    node.post("logged as json")
    assert node.stop() == 0 and peer.stop() == 0
    # Everything either node wrote, gunicorn's and runnode's lines included, parsed as JSON.
    assert len(json_lines(node)) > 5 and len(json_lines(peer)) > 5
