"""The node's gunicorn worker: gthread, except that a thread only ever gets a whole request.

gunicorn's gthread worker hands a connection to a thread as soon as its first
byte arrives; the thread then blocks reading the rest of the head and the body.
Twenty clients that send half a head and stop hold twenty threads, and every
other client waits. This worker keeps gthread's thread pool (the store lives in
this one process, and the views are plain synchronous Django), but reads every
connection in its main loop without blocking, with ``RequestFramer``, until the
request's head and body have arrived:

* a connection waits for its next request at most ``COUNTER_KEEPALIVE_TIMEOUT``,
  for its head at most ``COUNTER_HEADER_TIMEOUT`` from its first byte, and for
  its body at most ``COUNTER_BODY_TIMEOUT`` after the head; past a deadline it
  gets ``408`` and is closed;
* at most ``COUNTER_MAX_CONNECTIONS`` are open on the public port and
  ``COUNTER_MAX_SYNC_CONNECTIONS`` on the sync port: past it the port's oldest
  idle one is closed, or, with none idle, the newcomer gets ``503`` and is closed;
* bodies are buffered in memory up to ``COUNTER_MAX_BUFFERED_BYTES`` across all
  connections; a body that would go past it (or past the port's body limit)
  goes to a thread unbuffered, whose socket reads and writes time out after
  ``COUNTER_BODY_TIMEOUT``.

The loop answers those three cases itself, in the JSON shape of the views.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import resource
import selectors
import socket
import time
from dataclasses import dataclass
from functools import partial
from typing import Any

from gunicorn import http, util
from gunicorn.workers.gthread import TConn, ThreadWorker

from counter_site.request_framing import MAX_HEAD_BYTES, Framing, RequestFramer
from storage_app.core.config import NodeConfig, load_config

_RECV_BYTES = 256 * 1024
# An error reply is followed by this long reading what the client still sends;
# at most this many connections linger so at once.
_CLOSE_LINGER = 2.0
_MAX_CLOSING = 1024
# A stopping worker waits this long for a request already on its way.
_STOP_LINGER = 2.0


@dataclass
class Arriving:
    """A connection whose next request is still arriving."""

    conn: TConn
    framer: RequestFramer
    deadline: float
    buffered: int = 0  # body bytes counted against the shared budget
    kept_alive: bool = False  # it has been answered before and waits for its next request


def error_reply(status: int, reason: str, code: str, detail: str, retry_after: int | None = None) -> bytes:
    """A complete HTTP/1.1 reply with the views' JSON error shape; the connection closes after it."""
    body = json.dumps({"detail": detail, "code": code}).encode()
    headers = [
        f"HTTP/1.1 {status} {reason}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        "Connection: close",
    ]
    if retry_after is not None:
        headers.append(f"Retry-After: {retry_after}")
    return ("\r\n".join(headers) + "\r\n\r\n").encode() + body


_PARSER_ERROR_CODES = {
    400: "bad_request",
    403: "forbidden",
    414: "uri_too_long",
    417: "expectation_failed",
    431: "head_too_large",
    500: "server_error",
    501: "unsupported_transfer_coding",
}


def write_json_error(sock: socket.socket, status_int: int, reason: str, mesg: str) -> None:
    """gunicorn's ``util.write_error``, in the views' JSON shape instead of an HTML page.

    gunicorn answers requests its parser refuses (a malformed request line or
    header, a URL over 8190 bytes) with this function.
    """
    detail = f"{mesg or reason}; the request was not read, nothing was counted."
    util.write_nonblock(
        sock, error_reply(status_int, reason, _PARSER_ERROR_CODES.get(status_int, "bad_request"), detail)
    )


class RequestBufferingWorker(ThreadWorker):
    """See the module docstring."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.node_config: NodeConfig = load_config(os.environ)
        self.max_connections = self.node_config.max_connections
        # Each port has its own limit, so that clients filling the public port
        # never keep peers off the sync port.
        self.limits = {
            self.node_config.public_port: (self.node_config.max_connections, "COUNTER_MAX_CONNECTIONS"),
            self.node_config.sync_port: (self.node_config.max_sync_connections, "COUNTER_MAX_SYNC_CONNECTIONS"),
        }
        self.open_by_port: dict[int, int] = dict.fromkeys(self.limits, 0)
        self._accept_paused_until = 0.0
        self._last_fd_warning = 0.0
        # Our own limit applies in accept(), which always stays enabled so that
        # a connection past the limit hears why instead of waiting in the backlog.
        self.worker_connections = 1 << 30
        self.arriving: dict[int, Arriving] = {}
        self.buffered_bytes = 0
        # Connections answered with an error, read until the client closes (see _close_after).
        self.closing: dict[int, tuple[socket.socket, float]] = {}

    def init_process(self) -> None:
        # gunicorn calls util.write_error through the module, at the time of the error.
        util.write_error = write_json_error
        # Every open connection is a file descriptor: make room for the limit.
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        wanted = sum(limit for limit, _setting in self.limits.values()) + 256
        if soft != resource.RLIM_INFINITY and soft < wanted:
            new_soft = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
            resource.setrlimit(resource.RLIMIT_NOFILE, (new_soft, hard))
            if new_soft < wanted:
                self.log.warning(
                    "open files are limited to %d: the connection limits (%d in all) may not be reached",
                    new_soft,
                    wanted - 256,
                )
        super().init_process()

    # -- connections arriving ------------------------------------------------

    def accept(self, listener: socket.socket) -> None:
        try:
            client_sock, client_addr = listener.accept()
        except OSError as error:
            if error.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                self._pause_accepting(error)
            elif error.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return
        port = listener.getsockname()[1]
        limit, setting = self.limits.get(port, (self.max_connections, "COUNTER_MAX_CONNECTIONS"))
        if self.open_by_port.get(port, 0) >= limit and not self._close_oldest_idle(port):
            self._refuse(
                client_sock,
                error_reply(
                    503,
                    "Service Unavailable",
                    "too_many_connections",
                    f"This port has {limit} connections open ({setting}); retry shortly, or reuse a "
                    "kept-alive connection.",
                    retry_after=1,
                ),
            )
            return
        conn = TConn(self.cfg, client_sock, client_addr, listener.getsockname())
        self._count(conn, 1)
        self._await_request(conn, b"", kept_alive=False)

    def _count(self, conn: TConn, change: int) -> None:
        self.nr_conns += change
        port = conn.server[1] if isinstance(conn.server, tuple) else None
        if port in self.open_by_port:
            self.open_by_port[port] += change

    def _pause_accepting(self, error: OSError) -> None:
        """Out of file descriptors: stop accepting for a moment instead of failing (or spinning)."""
        now = time.monotonic()
        if now - self._last_fd_warning >= 10:
            self._last_fd_warning = now
            self.log.warning("cannot accept connections (%s): pausing new connections for a moment", error)
        self._accept_paused_until = now + 0.5
        self.set_accept_enabled(False)

    def set_accept_enabled(self, enabled: bool) -> None:
        if enabled and time.monotonic() < self._accept_paused_until:
            return
        super().set_accept_enabled(enabled)

    def _body_limit(self, conn: TConn) -> int:
        port = conn.server[1] if isinstance(conn.server, tuple) else None
        if port == self.node_config.sync_port:
            return self.node_config.max_sync_body_bytes
        return self.node_config.max_body_bytes

    def _await_request(self, conn: TConn, already: bytes, kept_alive: bool) -> None:
        """Wait in the poller, without a thread, for the connection's next whole request."""
        now = time.monotonic()
        deadline = now + self.node_config.keepalive_timeout
        if not self.alive:
            deadline = min(deadline, now + _STOP_LINGER)
        entry = Arriving(conn, RequestFramer(self._body_limit(conn)), deadline, kept_alive=kept_alive)
        conn.sock.setblocking(False)
        self.arriving[conn.sock.fileno()] = entry
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._on_readable, entry))
        if already:
            self._take(entry, already)

    def _on_readable(self, entry: Arriving, _sock: socket.socket) -> None:
        try:
            data = entry.conn.sock.recv(_RECV_BYTES)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            if entry.framer.head_complete:
                # The client stopped sending mid-body (it may still read): the view
                # finds the body short at once and says so.
                self._hand_to_thread(entry)
            else:
                self._drop(entry)
            return
        self._take(entry, data)

    def _take(self, entry: Arriving, data: bytes) -> None:
        framer = entry.framer
        had_head = framer.head_complete
        if not framer.started:
            entry.deadline = time.monotonic() + self.node_config.header_timeout
        verdict = framer.feed(data)
        if framer.head_complete and not had_head:
            entry.deadline = time.monotonic() + self.node_config.body_timeout
        if verdict is Framing.NEED_MORE and framer.head_complete:
            growth = framer.body_bytes - entry.buffered
            if self.buffered_bytes + growth > self.node_config.max_buffered_bytes:
                verdict = Framing.HAND_OVER  # the budget is spent: a thread reads the rest
            else:
                self.buffered_bytes += growth
                entry.buffered += growth
                if framer.expects_continue:
                    self._send_now(entry.conn.sock, b"HTTP/1.1 100 Continue\r\n\r\n")
                    framer.drop_expect_continue()
        if verdict is Framing.HEAD_TOO_LARGE:
            self._drop(
                entry,
                error_reply(
                    431,
                    "Request Header Fields Too Large",
                    "head_too_large",
                    f"The request's head is over {MAX_HEAD_BYTES} bytes; send a shorter URL or fewer headers.",
                ),
            )
            return
        if verdict is not Framing.NEED_MORE:
            if framer.expects_continue and verdict is Framing.COMPLETE:
                framer.drop_expect_continue()  # the body is here already: nothing to continue
            self._hand_to_thread(entry)

    def _hand_to_thread(self, entry: Arriving) -> None:
        self._forget(entry)
        conn = entry.conn
        conn.parser = http.get_parser(self.cfg, conn.sock, conn.client)
        conn.parser.unreader.unread(bytes(entry.framer.buffer))
        conn.initialized = True  # gthread's own first-byte wait and parser set-up are done
        conn.body_unbuffered = entry.framer.request_end < 0
        self.enqueue_req(conn)

    def _forget(self, entry: Arriving) -> None:
        self.arriving.pop(entry.conn.sock.fileno(), None)
        self.buffered_bytes -= entry.buffered
        entry.buffered = 0
        with contextlib.suppress(KeyError, ValueError, OSError):
            self.poller.unregister(entry.conn.sock)

    def _drop(self, entry: Arriving, reply: bytes = b"") -> None:
        self._forget(entry)
        self._count(entry.conn, -1)
        if reply:
            self._close_after(entry.conn.sock, reply)
        else:
            entry.conn.close()

    def _close_oldest_idle(self, port: int) -> bool:
        """Close the kept-alive connection on ``port`` idle longest, to make room; False if none is idle.

        A new connection whose first bytes the loop has not read yet is not idle,
        nor is a kept-alive one whose next request sits unread in the socket.
        """
        idle = [
            entry
            for entry in self.arriving.values()
            if entry.kept_alive and not entry.framer.started and entry.conn.server[1] == port
        ]
        for entry in sorted(idle, key=lambda entry: entry.deadline):
            try:
                waiting = entry.conn.sock.recv(1, socket.MSG_PEEK)
            except (BlockingIOError, InterruptedError):
                waiting = b""
            except OSError:
                waiting = b""  # broken: closing it is right too
            if not waiting:
                self._drop(entry)
                return True
        return False

    @staticmethod
    def _send_now(sock: socket.socket, reply: bytes) -> None:
        """Best effort: a small reply fits the socket's buffer; a client that cannot take it loses it."""
        with contextlib.suppress(OSError):
            sock.send(reply)

    def _refuse(self, sock: socket.socket, reply: bytes) -> None:
        sock.setblocking(False)
        self._close_after(sock, reply)

    def _close_after(self, sock: socket.socket, reply: bytes) -> None:
        """Send ``reply`` (if any) and close, reading what the client still sends for a moment first.

        Closing a socket with unread bytes makes the kernel answer with a reset,
        which can destroy the reply before the client reads it.
        """
        if reply:
            self._send_now(sock, reply)
        if len(self.closing) >= _MAX_CLOSING:
            sock.close()
            return
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_WR)
        self.closing[sock.fileno()] = (sock, time.monotonic() + _CLOSE_LINGER)
        self.poller.register(sock, selectors.EVENT_READ, self._on_closing_readable)

    def _on_closing_readable(self, sock: socket.socket) -> None:
        try:
            if sock.recv(_RECV_BYTES):
                return
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            pass
        self._finish_closing(sock)

    def _finish_closing(self, sock: socket.socket) -> None:
        self.closing.pop(sock.fileno(), None)
        with contextlib.suppress(KeyError, ValueError, OSError):
            self.poller.unregister(sock)
        sock.close()

    def _cap_keepalive(self, deadline: float) -> None:
        """A stopping worker: connections waiting for a request wait no longer than ``deadline``."""
        super()._cap_keepalive(deadline)
        for entry in self.arriving.values():
            entry.deadline = min(entry.deadline, deadline)

    def murder_pending(self) -> None:
        """Close connections past their deadline: idle ones quietly, half-sent requests with 408."""
        super().murder_pending()
        now = time.monotonic()
        for sock, deadline in list(self.closing.values()):
            if deadline <= now:
                self._finish_closing(sock)
        for entry in [entry for entry in self.arriving.values() if entry.deadline <= now]:
            framer = entry.framer
            if not framer.started:
                self._drop(entry)
            elif not framer.head_complete:
                self._drop(entry, self._timeout_reply("headers", "COUNTER_HEADER_TIMEOUT"))
            else:
                self._drop(entry, self._timeout_reply("body", "COUNTER_BODY_TIMEOUT"))

    def _timeout_reply(self, part: str, setting: str) -> bytes:
        seconds = getattr(self.node_config, setting.removeprefix("COUNTER_").lower())
        return error_reply(
            408,
            "Request Timeout",
            "request_timeout",
            f"The request's {part} did not arrive within {seconds:g} s ({setting}); nothing was counted.",
        )

    # -- after a request -----------------------------------------------------

    def handle_request(self, req: Any, conn: TConn) -> bool:
        if getattr(conn, "body_unbuffered", False):
            # The view reads the rest of this body from the socket: a client that
            # stops sending holds the thread at most this long per read. (Only
            # then: a socket with a timeout polls before every send, which costs.)
            conn.sock.settimeout(self.node_config.body_timeout)
        return bool(super().handle_request(req, conn))

    def finish_request(self, conn: TConn, fs: Any) -> None:
        """Back in the main loop: a kept-alive connection waits for its next request without a thread."""
        try:
            keep = bool(fs.result()) if not fs.cancelled() else False
            if keep:
                # A pipelined next request may already sit in the parser's buffer.
                self._await_request(conn, conn.parser.unreader.take_buffered(), kept_alive=True)
            else:
                self._count(conn, -1)
                # Not gunicorn's close_graceful, which waits up to 2 s for the client
                # to close, in this main loop: every other connection would wait too.
                conn.sock.setblocking(False)
                self._close_after(conn.sock, b"")
        except Exception:
            self.log.exception("closing a connection after a failure")
            self._count(conn, -1)
            conn.close()
