"""Guard for the node's internal routes (sync port, under /internal/).

runsync, dumpstate and loadstate are separate processes; the store lives in
the gunicorn worker, so they drive it over HTTP. Those routes accept only
loopback clients that present the node's internal token (made by runnode for
each start, passed to its children, and kept in a 0600 file in the data dir
for commands run by hand).
"""

from __future__ import annotations

import secrets
from typing import Any

from django.conf import settings
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from storage_app.core.config import NodeConfig, is_loopback_host
from storage_app.core.node_client import TOKEN_HEADER, NodeClient
from storage_app.node import current_node


def internal_token(config: NodeConfig) -> str:
    """The token the node of ``config`` was started with: the environment's, else the token file's."""
    if config.internal_token:
        return str(config.internal_token)
    try:
        return config.internal_token_path.read_text().strip()
    except OSError:
        return ""


class IsLocalNodeCommand(BasePermission):
    message = (
        f"Internal routes take only loopback requests carrying the node's internal token in the {TOKEN_HEADER} header."
    )

    def has_permission(self, request: Request, view: Any) -> bool:
        expected = internal_token(current_node().config)
        presented = request.META.get("HTTP_X_COUNTER_INTERNAL_TOKEN", "")
        client = request.META.get("REMOTE_ADDR", "")
        # A node bound to one address is reached by its own commands through that
        # address; no other host can connect from it.
        local = is_loopback_host(client) or client == request.META.get("SERVER_NAME")
        return bool(expected) and local and secrets.compare_digest(presented.encode(), expected.encode())


def node_client_from_settings(timeout: float = 30.0) -> NodeClient:
    """A client of this node's internal routes, for its own commands."""
    return NodeClient(settings.COUNTER, internal_token(settings.COUNTER), timeout=timeout)
