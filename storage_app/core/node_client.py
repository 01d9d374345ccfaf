"""The one client of a node's internal routes, used by its own commands (runsync, dumpstate, loadstate, runnode).

The store lives in the gunicorn worker; the commands beside it reach it over
loopback HTTP on the sync port, with the node's internal token. Every failure
is a ``NodeError`` whose message says what went wrong and what to do.
``sync_app.core.transport.InternalNode`` adds runsync's routes to this client.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import requests

from .config import NodeConfig
from .snapshot import Snapshot, decode_snapshot, encode_snapshot
from .store import StoreChunk

TOKEN_HEADER = "X-Counter-Internal-Token"


class NodeError(Exception):
    """A request to the node's internal routes failed; the message says why and what to do."""


class NodeUnreachable(NodeError):
    """The node's sync port did not answer (not started yet, stopped, or too busy)."""


class NodeNotRunning(NodeUnreachable):
    """Nothing listens on the node's sync port: the node is not running."""


class NodeRefused(NodeError):
    """The node answered with an error status."""

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


class NodeClient:
    """Talks to the node configured by ``config`` over loopback."""

    def __init__(self, config: NodeConfig, token: str, timeout: float = 30.0) -> None:
        self.base_url = config.sync_base_url
        self.node_id = config.node_id
        self.timeout = timeout
        self.session = requests.Session()
        self.session.headers[TOKEN_HEADER] = token

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """One request to an internal route; a ``NodeError`` unless it answered 200."""
        try:
            response = self.session.request(method, self.base_url + path, timeout=self.timeout, **kwargs)
        except requests.ConnectTimeout:
            raise NodeUnreachable(f"node at {self.base_url} did not accept a connection in time") from None
        except requests.ConnectionError as error:
            if is_connection_refused(error):
                raise NodeNotRunning(f"node at {self.base_url} is not running: {error}") from None
            raise NodeUnreachable(f"node at {self.base_url} is not answering: {error}") from None
        except requests.RequestException as error:
            raise NodeUnreachable(f"node at {self.base_url} did not answer within {self.timeout} s: {error}") from None
        if response.status_code != 200:
            raise NodeRefused(path, response)
        return response

    def fetch_state(self) -> Snapshot:
        """The node's whole store (snapshot format, decoded)."""
        return decode_snapshot(self.request("GET", "/internal/state").content)

    def dump(self, force: bool = False) -> dict[str, Any]:
        """Ask the node to write its snapshot file; returns what it did."""
        result: dict[str, Any] = self.request("POST", "/internal/dump", params={"force": "1"} if force else {}).json()
        return result

    def top(self, n: int, prefix: str | None = None) -> list[dict[str, Any]]:
        """The node's answer to ``GET /top?n=...&prefix=...``."""
        params: dict[str, Any] = {"n": n} if prefix is None else {"n": n, "prefix": prefix}
        result: list[dict[str, Any]] = self.request("GET", "/internal/top", params=params).json()
        return result

    def drain(self) -> None:
        """Ask the node to take no more client writes."""
        self.request("POST", "/internal/drain")

    def load(self, chunks: Iterable[StoreChunk]) -> dict[str, Any]:
        """Merge rows (ascending chunks, as ``GCounterStore.export_chunks`` gives) into the node, max per slot.

        Returns how many keys it received, changed and added.
        """
        body = b"".join(encode_snapshot(chunks, node_id=self.node_id))
        result: dict[str, Any] = self.request(
            "POST", "/internal/load", data=body, headers={"Content-Type": "application/octet-stream"}
        ).json()
        return result

    def close(self) -> None:
        self.session.close()


def is_connection_refused(error: BaseException) -> bool:
    """Was the connection refused (nothing listening), as opposed to cut or timed out?"""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, ConnectionRefusedError):
            return True
        seen = seen.__cause__ or seen.__context__
    # requests wraps urllib3's error, which keeps the refusal only in its message.
    return "Connection refused" in str(error)
