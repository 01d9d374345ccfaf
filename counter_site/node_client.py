"""Client of a node's internal routes, used by its own commands (runsync, dumpstate, loadstate, runnode)."""

from __future__ import annotations

from typing import Any

import requests

from counter_site.config import NodeConfig
from counter_site.internal_auth import TOKEN_HEADER
from storage_app.core.snapshot import Snapshot, decode_snapshot


class NodeUnreachable(Exception):
    """The node's sync port did not answer (not started yet, or stopped)."""


class NodeNotRunning(NodeUnreachable):
    """Nothing listens on the node's sync port: the node is not running."""


class NodeClient:
    """Talks to the node configured by ``config`` over loopback."""

    def __init__(self, config: NodeConfig, token: str, timeout: float = 30.0) -> None:
        self.base_url = config.sync_base_url
        self.timeout = timeout
        self.session = requests.Session()
        self.session.headers[TOKEN_HEADER] = token

    def _request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        try:
            response = self.session.request(method, self.base_url + path, timeout=self.timeout, **kwargs)
        except requests.ConnectTimeout:
            raise NodeUnreachable(f"node at {self.base_url} did not accept a connection in time") from None
        except requests.ConnectionError as error:
            if _refused(error):
                raise NodeNotRunning(f"node at {self.base_url} is not running: {error}") from None
            raise NodeUnreachable(f"node at {self.base_url} is not answering: {error}") from None
        except requests.Timeout:
            raise NodeUnreachable(f"node at {self.base_url} did not answer within {self.timeout} s") from None
        if response.status_code != 200:
            raise RuntimeError(f"{method} {path} answered {response.status_code}: {response.text[:300]}")
        return response

    def fetch_state(self) -> Snapshot:
        """The node's whole store (snapshot format, decoded)."""
        return decode_snapshot(self._request("GET", "/internal/state").content)

    def dump(self, force: bool = False) -> dict[str, Any]:
        """Ask the node to write its snapshot file; returns what it did."""
        result: dict[str, Any] = self._request("POST", "/internal/dump", params={"force": "1"} if force else {}).json()
        return result

    def drain(self) -> None:
        """Ask the node to take no more client writes."""
        self._request("POST", "/internal/drain")

    def push_legacy(self, body: bytes) -> dict[str, Any]:
        """Merge a counter-app format body into the node."""
        result: dict[str, Any] = self._request(
            "POST", "/sync", data=body, headers={"Content-Type": "application/json"}
        ).json()
        return result

    def close(self) -> None:
        self.session.close()


def node_client_from_settings(timeout: float = 30.0) -> NodeClient:
    from django.conf import settings

    from counter_site.internal_auth import current_internal_token

    return NodeClient(settings.COUNTER, current_internal_token(), timeout=timeout)


def _refused(error: BaseException) -> bool:
    """Was the connection refused (nothing listening), as opposed to cut or timed out?"""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, ConnectionRefusedError):
            return True
        seen = seen.__cause__ or seen.__context__
    # requests wraps urllib3's error, which keeps the refusal only in its message.
    return "Connection refused" in str(error)
