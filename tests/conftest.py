from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from rest_framework.test import APIClient

from storage_app.core.config import NodeConfig
from storage_app.node import Node, current_node, replace_node
from tests.cluster.nodes import Node as NodeProcess
from tests.cluster.proxy import FaultProxy


class PortClient(APIClient):
    """A DRF test client whose requests arrive on a given port (the node routes by port)."""

    def __init__(self, port: int, **defaults: Any) -> None:
        super().__init__(**defaults)
        self.port = str(port)

    def generic(self, *args: Any, **extra: Any) -> Any:
        extra.setdefault("SERVER_PORT", self.port)
        return super().generic(*args, **extra)


def start_node(config: NodeConfig) -> Node:
    """A node recovered from ``config``'s data directory, made the process's node (what a worker does)."""
    node = Node(config)
    node.recover()
    replace_node(node)
    return node


def restart_node(**changes: Any) -> Node:
    """Drop the process's node without any shutdown step (a crash), start a new one on the same disk.

    ``changes`` replace fields of its configuration.
    """
    config = dataclasses.replace(current_node().config, **changes)
    return start_node(config)


@pytest.fixture
def node(settings: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    """An empty, recovered node whose data directory is its own."""
    yield start_node(dataclasses.replace(settings.COUNTER, data_dir=tmp_path_factory.mktemp("node-data")))
    current_node().stop_tokenizer_processes()
    replace_node(None)


@pytest.fixture
def public_client(node: Node) -> PortClient:
    return PortClient(node.config.public_port)


@pytest.fixture
def sync_client(node: Node) -> PortClient:
    return PortClient(node.config.sync_port)


@pytest.fixture
def make_node(tmp_path: Path) -> Iterator[Callable[..., NodeProcess]]:
    """Creates nodes (not started); every node still running at the end is stopped."""
    nodes: list[NodeProcess] = []

    def factory(node_id: int, env: dict[str, str] | None = None, workdir: Path | None = None) -> NodeProcess:
        node = NodeProcess(workdir or tmp_path / f"node{node_id}-{len(nodes)}", node_id, env)
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


@pytest.fixture
def proxies() -> Iterator[list[FaultProxy]]:
    """Fault proxies a test creates (append them); every one is stopped at the end."""
    created: list[FaultProxy] = []
    yield created
    for proxy in created:
        proxy.stop()
