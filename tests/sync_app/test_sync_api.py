from __future__ import annotations

import json
from typing import Any

import pytest

from storage_app.core.keywords import keyword_key
from storage_app.node import Node
from tests.conftest import PortClient, restart_node

FOX = keyword_key("fox")


def push(client: PortClient, body: bytes | str) -> Any:
    return client.generic("POST", "/sync", body, "application/json")


def test_sync_merges_by_max_per_slot(sync_client: PortClient, public_client: PortClient, node: Node) -> None:
    public_client.generic("POST", "/keywords", "fox fox", "text/plain")  # node 0's slot: 2
    response = push(sync_client, json.dumps([{"hash_keyword": FOX, "totals": [1, 5, 3]}]))
    assert response.status_code == 200
    assert response.json() == {"received": 1, "changed": 1, "added": 0}
    assert node.store.slots_of(FOX) == [2, 5, 3]
    assert public_client.get("/keywords/fox").json()["count"] == 10
    # The same push again changes nothing.
    assert push(sync_client, json.dumps([{"hash_keyword": FOX, "totals": [1, 5, 3]}])).json()["changed"] == 0


@pytest.mark.parametrize(
    "body",
    [
        b"garbage",
        b'[{"hash_keyword": 1, "totals": [1]}, {"hash_keyword": -5, "totals": [1]}]',
        b'[{"hash_keyword": 1, "totals": [1]}, {"hash_keyword": 2, "totals": [18446744073709551616]}]',
        b'{"hash_keyword": 1}',
    ],
)
def test_malformed_sync_body_is_a_400_and_changes_nothing(sync_client: PortClient, node: Node, body: bytes) -> None:
    response = push(sync_client, body)
    assert response.status_code == 400
    assert response.json()["code"] == "bad_sync_payload"
    assert len(node.store) == 0


def test_a_slot_past_the_limit_is_a_400(sync_client: PortClient, node: Node) -> None:
    response = push(sync_client, json.dumps([{"hash_keyword": 1, "totals": [0] * 300 + [1]}]))
    assert response.status_code == 400
    assert len(node.store) == 0


def test_a_slot_past_the_clusters_node_count_is_a_400(sync_client: PortClient, node: Node) -> None:
    assert node.config.max_slots == 16
    response = push(sync_client, json.dumps([{"hash_keyword": 1, "totals": [0] * 16 + [1]}]))
    assert response.status_code == 400 and "limit of 16" in response.json()["detail"]
    assert len(node.store) == 0


def test_oversize_sync_body_is_a_413(sync_client: PortClient) -> None:
    node = restart_node(max_sync_body_bytes=10)
    assert push(sync_client, json.dumps([{"hash_keyword": 1, "totals": [1]}])).status_code == 413
    assert len(node.store) == 0


def test_the_sync_port_serves_no_public_route(sync_client: PortClient) -> None:
    for path in ("/keywords", "/cluster", "/swagger/ui", "/", "/static/rest_framework/css/bootstrap.min.css"):
        assert sync_client.get(path).status_code == 404, path


def test_the_sync_port_documents_its_peer_routes(sync_client: PortClient) -> None:
    schema = sync_client.get("/swagger").json()
    assert set(schema["paths"]) == {"/sync", "/v1/sync"}
    native = schema["paths"]["/v1/sync"]["post"]
    assert "application/x-counter-sync" in native["requestBody"]["content"]
    assert {"200", "400", "401", "409", "413"} <= set(native["responses"])


def test_internal_routes_need_the_token(sync_client: PortClient) -> None:
    node = restart_node(internal_token="secret")
    assert sync_client.post("/internal/dump").status_code == 403
    assert sync_client.post("/internal/dump", HTTP_X_COUNTER_INTERNAL_TOKEN="wrong").status_code == 403
    assert (
        sync_client.post("/internal/dump", HTTP_X_COUNTER_INTERNAL_TOKEN="secret", REMOTE_ADDR="10.1.2.3").status_code
        == 403
    )
    response = sync_client.post("/internal/dump?force=1", HTTP_X_COUNTER_INTERNAL_TOKEN="secret")
    assert response.status_code == 200
    assert response.json()["written"] is True
    assert node.config.snapshot_path.exists()
