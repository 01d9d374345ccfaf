"""Client of a node's internal routes, used by its own commands (runsync, dumpstate, loadstate, runnode)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import requests

from counter_site.config import NodeConfig
from counter_site.internal_auth import TOKEN_HEADER
from storage_app.core.snapshot import Snapshot, decode_snapshot, encode_snapshot
from storage_app.core.store import StoreChunk


class NodeCommandFailed(Exception):
    """A request of the node's own commands to the node failed; the message says why and what to do."""


class NodeUnreachable(NodeCommandFailed):
    """The node's sync port did not answer (not started yet, or stopped)."""


class NodeNotRunning(NodeUnreachable):
    """Nothing listens on the node's sync port: the node is not running."""


class NodeClient:
    """Talks to the node configured by ``config`` over loopback."""

    def __init__(self, config: NodeConfig, token: str, timeout: float = 30.0) -> None:
        self.base_url = config.sync_base_url
        self.node_id = config.node_id
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
            raise NodeRefused(path, response)
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

    def load(self, chunks: Iterable[StoreChunk]) -> dict[str, Any]:
        """Merge rows (ascending chunks, as ``GCounterStore.export_chunks`` gives) into the node, max per slot.

        Returns how many keys it received, changed and added.
        """
        body = b"".join(encode_snapshot(chunks, node_id=self.node_id))
        result: dict[str, Any] = self._request(
            "POST", "/internal/load", data=body, headers={"Content-Type": "application/octet-stream"}
        ).json()
        return result

    def close(self) -> None:
        self.session.close()


class NodeRefused(NodeCommandFailed):
    """The node answered an internal route with an error."""

    def __init__(self, path: str, response: requests.Response) -> None:
        try:
            body = response.json()
            detail = str(body.get("detail", body)) if isinstance(body, dict) else str(body)
        except ValueError:
            detail = response.text[:300]
        if response.status_code in (401, 403):
            detail += (
                " (the internal token is made by runnode at each start and kept in COUNTER_DATA_DIR:"
                " run this command with the node's own environment, on its machine)"
            )
        super().__init__(f"node answered {path} with {response.status_code}: {detail}")
        self.status = response.status_code


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
