from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from rest_framework.test import APIClient

from storage_app import services
from tests.cluster.nodes import Node


class PortClient(APIClient):
    """A DRF test client whose requests arrive on a given port (the node routes by port)."""

    def __init__(self, port: int, **defaults: Any) -> None:
        super().__init__(**defaults)
        self.port = str(port)

    def generic(self, *args: Any, **extra: Any) -> Any:
        extra.setdefault("SERVER_PORT", self.port)
        return super().generic(*args, **extra)


@pytest.fixture(autouse=True)
def fresh_node(settings: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Every test starts from an empty, recovered store whose data directory is its own."""
    settings.COUNTER = dataclasses.replace(settings.COUNTER, data_dir=tmp_path_factory.mktemp("node-data"))
    services.reset_state()
    services.keywords.cache_clear()
    services.recover()
    yield
    services.reset_state()
    services.keywords.cache_clear()


@pytest.fixture
def public_client(settings: Any) -> PortClient:
    return PortClient(settings.COUNTER_PUBLIC_PORT)


@pytest.fixture
def sync_client(settings: Any) -> PortClient:
    return PortClient(settings.COUNTER_SYNC_PORT)


@pytest.fixture
def make_node(tmp_path: Path) -> Iterator[Callable[..., Node]]:
    """Creates nodes (not started); every node still running at the end is stopped."""
    nodes: list[Node] = []

    def factory(node_id: int, env: dict[str, str] | None = None, workdir: Path | None = None) -> Node:
        node = Node(workdir or tmp_path / f"node{node_id}-{len(nodes)}", node_id, env)
        nodes.append(node)
        return node

    yield factory
    for node in nodes:
        if node.process is not None and node.process.poll() is None:
            node.process.terminate()
    for node in nodes:
        if node.process is not None and node.process.poll() is None:
            try:
                node.process.wait(30)
            except Exception:  # noqa: BLE001 - last resort: the kernel stops its children (parent-death signal)
                node.kill()
