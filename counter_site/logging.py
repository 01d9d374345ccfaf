"""Log records carry the node id, so the lines of a local cluster can be told apart."""

from __future__ import annotations

import logging
import os


class NodeFilter(logging.Filter):
    """Adds ``node_id`` to every record."""

    def __init__(self) -> None:
        super().__init__()
        self.node_id = os.environ.get("COUNTER_NODE_ID", "0").strip() or "0"

    def filter(self, record: logging.LogRecord) -> bool:
        record.node_id = self.node_id
        return True
