"""HTTP ends of replication, used by runsync: a peer's sync port and the node's own internal routes."""

from __future__ import annotations

from typing import Any

import numpy as np
import requests

from storage_app.core.idempotency import Remembered
from storage_app.core.node_client import NodeClient, NodeError
from sync_app.core.protocol import CONTENT_TYPE, Cursor, Hello, Kind, Message, Page, Rows, decode, encode

CONNECT_TIMEOUT = 2.0


class PeerHttpError(Exception):
    """A peer answered with an error status; ``status`` and the JSON ``detail`` and ``code`` say which."""

    def __init__(self, url: str, status: int, detail: str, code: str = "", body: dict[str, Any] | None = None):
        super().__init__(f"{url} answered {status}: {detail}")
        self.status = status
        self.detail = detail
        self.code = code
        self.body = body or {}


def _error(url: str, response: requests.Response) -> PeerHttpError:
    try:
        body = response.json()
    except ValueError:
        return PeerHttpError(url, response.status_code, response.text[:200])
    if not isinstance(body, dict):
        return PeerHttpError(url, response.status_code, str(body)[:200])
    return PeerHttpError(url, response.status_code, str(body.get("detail", body)), str(body.get("code", "")), body)


class HttpPeer:
    """A peer's native sync route (``POST <seed>/v1/sync``)."""

    def __init__(self, url: str, token_header: dict[str, str], timeout: float) -> None:
        self.url = url
        self.timeout = timeout
        self.session = requests.Session()
        self.session.headers.update({"Content-Type": CONTENT_TYPE, **token_header})
        self.bytes_sent = 0
        self.bytes_received = 0

    def send(self, message: Message) -> Message:
        body = encode(message)
        response = self.session.post(self.url + "/v1/sync", data=body, timeout=(CONNECT_TIMEOUT, self.timeout))
        self.bytes_sent += len(body)
        self.bytes_received += len(response.content)
        if response.status_code != 200:
            raise _error(self.url, response)
        return decode(response.content)

    def push_legacy(self, body: bytes) -> None:
        """counter-app's full-state push (``POST <seed>/sync``, JSON)."""
        response = self.session.post(
            self.url + "/sync",
            data=body,
            headers={"Content-Type": "application/json"},
            timeout=(CONNECT_TIMEOUT, self.timeout),
        )
        self.bytes_sent += len(body)
        if response.status_code != 200:
            raise _error(self.url, response)

    def close(self) -> None:
        self.session.close()


class InternalNode(NodeClient):
    """The node's own store through its internal routes: a ``LocalNode`` for ``PeerSession``, runsync's client."""

    def _binary(self, method: str, path: str, body: bytes | None = None, **params: Any) -> Message:
        headers = {"Content-Type": CONTENT_TYPE} if body is not None else {}
        return decode(self.request(method, path, params=params, data=body, headers=headers).content)

    def hello(self) -> Hello:
        return self._binary("GET", "/internal/sync/hello").hello

    def changes(self, cursor: Cursor | None, max_keys: int, exclude_origin: int | None) -> tuple[Cursor, Rows]:
        if cursor is None:
            cursor = Cursor(0, 0)
        params: dict[str, Any] = {"incarnation": cursor.incarnation, "sequence": cursor.sequence, "max": max_keys}
        if exclude_origin is not None:
            params["exclude"] = exclude_origin
        message = self._binary("GET", "/internal/sync/changes", **params)
        if message.cursor is None:
            raise NodeError("the node answered a change request without a cursor")
        return message.cursor, message.rows or Rows.empty()

    def merge(self, rows: Rows | None, origin: int) -> int:
        if rows is None or len(rows.keys) == 0:
            return 0
        carrier = Hello(node_id=origin, incarnation=0, sequence=0, width=rows.slots.shape[1], tokenizer="words")
        body = encode(Message(Kind.EXCHANGE_REQUEST, carrier, rows=rows))
        response = self.request("POST", "/internal/sync/merge", data=body, headers={"Content-Type": CONTENT_TYPE})
        return int(response.json()["changed"])

    def keys_since(self, cursor: Cursor | None) -> tuple[Cursor, tuple[Remembered, ...]]:
        cursor = cursor or Cursor(0, 0)
        message = self._binary("GET", "/internal/sync/keys", incarnation=cursor.incarnation, sequence=cursor.sequence)
        if message.keys_cursor is None:
            raise NodeError("the node answered a key request without a cursor")
        return message.keys_cursor, message.keys or ()

    def remember_keys(self, entries: tuple[Remembered, ...] | None) -> None:
        if not entries:
            return
        carrier = Hello(node_id=0, incarnation=0, sequence=0, width=0, tokenizer="words")
        body = encode(Message(Kind.EXCHANGE_REQUEST, carrier, keys=entries))
        self.request("POST", "/internal/sync/keys", data=body, headers={"Content-Type": CONTENT_TYPE})

    def digests(self, bits: int) -> tuple[int, np.ndarray]:
        message = self._binary("GET", "/internal/sync/digests", bits=bits)
        if message.cursor is None or message.digests is None:
            raise NodeError("the node answered a digest request without digests")
        return message.cursor.sequence, message.digests

    def bucket_rows(self, buckets: np.ndarray, bits: int, page: Page) -> tuple[Rows, Page]:
        carrier = Hello(node_id=0, incarnation=0, sequence=0, width=0, tokenizer="words")
        request = Message(Kind.BUCKETS_REQUEST, carrier, bucket_ids=buckets, bucket_bits=bits, page=page)
        message = self._binary("POST", "/internal/sync/buckets", encode(request))
        if message.page is None:
            raise NodeError("the node answered a bucket request without a page")
        return message.rows or Rows.empty(), message.page

    def wait_for_change(self, since: int, timeout: float) -> int:
        response = self.request(
            "GET", "/internal/sync/wait", params={"since": since, "timeout_ms": int(timeout * 1000)}
        )
        return int(response.json()["sequence"])

    def leave(self) -> None:
        """Make the node leave the cluster: no more client writes, its members told so from now on."""
        self.request("POST", "/internal/sync/leave")

    def forget(self, node_id: int, force: bool = False) -> dict[str, Any]:
        """Drop member ``node_id`` for good; the answer says what it was (``was``)."""
        params = {"node": node_id, **({"force": "1"} if force else {})}
        answer: dict[str, Any] = self.request("POST", "/internal/sync/forget", params=params).json()
        return answer

    def status(self) -> dict[str, Any]:
        """The node and its peers, as GET /cluster shows them, with runsync's ``leaving_since``."""
        answer: dict[str, Any] = self.request("GET", "/internal/sync/status").json()
        return answer

    def report_peers(self, report: dict[str, Any]) -> dict[str, Any]:
        """Send runsync's report; the answer says whether the node folded its pending increments
        (``folded``) and which members it knows (``members``: [node id, url, state], itself first)."""
        answer: dict[str, Any] = self.request("POST", "/internal/sync/peers", json=report).json()
        return answer
