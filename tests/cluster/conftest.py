from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.cluster.nodes import Node


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


def connect(nodes: list[Node]) -> None:
    """Make every node a seed of every other one (before they start)."""
    for node in nodes:
        node.env["COUNTER_SEEDS"] = ",".join(other.sync_url for other in nodes if other is not node)
