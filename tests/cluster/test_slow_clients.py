"""Slow and idle clients cannot starve a node: real sockets against a real node process.

The worker reads every request in its main loop until it has fully arrived
(counter_site/worker.py), so connections that stall mid-head or trickle a
body hold no thread.
"""

from __future__ import annotations

import json
import socket
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress

import pytest
import requests

from tests.cluster.nodes import Node, wait_until

pytestmark = pytest.mark.cluster

STALLED_HEADS = 200
TRICKLING_BODIES = 50


def open_socket(node: Node, first_bytes: bytes) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", node.public_port), timeout=10)
    sock.sendall(first_bytes)
    return sock


def still_open(sock: socket.socket) -> bool:
    """The server has neither closed nor answered this connection."""
    sock.setblocking(False)
    try:
        return not sock.recv(1, socket.MSG_PEEK)  # b"" would mean closed; data would mean answered
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        sock.setblocking(True)


@contextmanager
def attack(node: Node) -> Iterator[list[socket.socket]]:
    """200 connections stalled mid-head and 50 trickling a body one byte a second, held open."""
    stalled = [open_socket(node, b"GET /keywords?keywords=a HTTP/1.1\r\nHost: x\r\n") for _ in range(STALLED_HEADS)]
    trickling = [
        open_socket(node, b"POST /keywords HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n")
        for _ in range(TRICKLING_BODIES)
    ]
    stop = threading.Event()

    def trickle() -> None:
        while not stop.wait(1.0):
            for sock in trickling:
                with suppress(OSError):
                    sock.send(b"x")

    trickler = threading.Thread(target=trickle, daemon=True)
    trickler.start()
    try:
        yield stalled + trickling
    finally:
        stop.set()
        trickler.join()
        for sock in stalled + trickling:
            sock.close()


def client_requests(node: Node, rounds: int) -> list[float]:
    """Latencies of ``rounds`` GETs and ``rounds`` POSTs, each on a new connection; each must succeed."""
    latencies = []
    for index in range(rounds):
        started = time.perf_counter()
        response = requests.get(node.public_url + "/keywords", params={"keywords": ["slow", "fast"]}, timeout=10)
        latencies.append(time.perf_counter() - started)
        assert response.status_code == 200, response.text
        started = time.perf_counter()
        response = requests.post(node.public_url + "/keywords", data=f"fast client {index}", timeout=10)
        latencies.append(time.perf_counter() - started)
        assert response.status_code == 200, response.text
    return latencies


def test_stalled_and_trickling_connections_do_not_slow_other_clients(make_node: Callable[..., Node]) -> None:
    # Deadlines longer than the test, so every attacking connection stays open throughout.
    node = make_node(0, {"COUNTER_HEADER_TIMEOUT": "120", "COUNTER_BODY_TIMEOUT": "120"}).start()
    client_requests(node, 10)  # warm-up: imports, first tokenizer round trips
    # Idle and attacked rounds alternate, so that a change in the machine's load
    # (other tests run beside this one) weighs on both sides alike.
    idle: list[float] = []
    attacked: list[float] = []
    for _round in range(3):
        idle += client_requests(node, 20)
        with attack(node) as sockets:
            wait_until(lambda: all(still_open(sock) for sock in sockets), 10, "the attack connections to be open")
            attacked += client_requests(node, 20)
            open_during = sum(still_open(sock) for sock in sockets)
        assert open_during == STALLED_HEADS + TRICKLING_BODIES, "the attack was not held throughout"
    idle_median, attacked_median = statistics.median(idle), statistics.median(attacked)
    print(
        f"median latency idle {idle_median * 1000:.2f} ms, under {STALLED_HEADS} stalled heads and "
        f"{TRICKLING_BODIES} trickling bodies {attacked_median * 1000:.2f} ms "
        f"({attacked_median / idle_median:.2f}x); slowest under attack {max(attacked) * 1000:.1f} ms"
    )
    assert attacked_median <= 3 * idle_median
    # Still serving afterwards, and every fast client's text was counted once.
    assert node.counts(["fast", "client"]) == {"fast": 130, "client": 130}


class ReplyReader:
    """Reads HTTP/1.1 replies one after another from one socket (Content-Length or chunked bodies)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.data = b""

    def _until(self, marker: bytes) -> bytes:
        while marker not in self.data:
            chunk = self.sock.recv(65536)
            assert chunk, f"closed before {marker!r}: {self.data!r}"
            self.data += chunk
        part, _, self.data = self.data.partition(marker)
        return part

    def reply(self) -> tuple[bytes, bytes]:
        head = self._until(b"\r\n\r\n")
        if head.startswith(b"HTTP/1.1 1"):  # an interim reply has no body
            return head, b""
        if b"transfer-encoding: chunked" in head.lower():
            body = b""
            while size := int(self._until(b"\r\n"), 16):
                body += self._exactly(size)
                self._until(b"\r\n")
            self._until(b"\r\n")
            return head, body
        return head, self._exactly(int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0]))

    def _exactly(self, length: int) -> bytes:
        while len(self.data) < length:
            chunk = self.sock.recv(65536)
            assert chunk, f"closed before {length} bytes: {self.data!r}"
            self.data += chunk
        part, self.data = self.data[:length], self.data[length:]
        return part


def read_reply(sock: socket.socket) -> tuple[int, dict[str, object], str]:
    """Status, JSON body and raw head of the one reply on ``sock``, which the server then closes."""
    sock.settimeout(20)
    reader = ReplyReader(sock)
    head, body = reader.reply()
    assert not sock.recv(65536) and not reader.data
    return int(head.split()[1]), json.loads(body), head.decode()


def test_a_stalled_head_or_body_gets_408_and_is_closed(make_node: Callable[..., Node]) -> None:
    node = make_node(0, {"COUNTER_HEADER_TIMEOUT": "1", "COUNTER_BODY_TIMEOUT": "1"}).start()
    head = open_socket(node, b"GET /keywords?keywords=a HTTP/1.1\r\nHost: x\r\n")
    body = open_socket(node, b"POST /keywords HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nhalf")
    status, reply, _ = read_reply(head)
    assert (status, reply["code"]) == (408, "request_timeout")
    assert "COUNTER_HEADER_TIMEOUT" in str(reply["detail"])
    status, reply, _ = read_reply(body)
    assert (status, reply["code"]) == (408, "request_timeout")
    assert "COUNTER_BODY_TIMEOUT" in str(reply["detail"])
    assert node.counts(["half"]) == {"half": 0}


def test_an_idle_kept_alive_connection_is_closed_after_the_keepalive_timeout(
    make_node: Callable[..., Node],
) -> None:
    node = make_node(0, {"COUNTER_KEEPALIVE_TIMEOUT": "1"}).start()
    sock = open_socket(node, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    sock.settimeout(20)
    started = time.monotonic()
    data = b""
    while chunk := sock.recv(65536):  # the reply, then the close
        data += chunk
    assert data.startswith(b"HTTP/1.1 200")
    assert 0.5 < time.monotonic() - started < 15


def test_past_the_connection_limit_idle_connections_make_room_and_busy_ones_get_503(
    make_node: Callable[..., Node],
) -> None:
    node = make_node(0, {"COUNTER_MAX_CONNECTIONS": "20", "COUNTER_HEADER_TIMEOUT": "120"}).start()
    # Twenty kept-alive connections, idle after one request each: a newcomer closes the oldest.
    idle = [open_socket(node, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n") for _ in range(20)]
    for sock in idle:
        sock.settimeout(10)
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")
    assert requests.get(node.public_url + "/healthz", timeout=10).status_code == 200
    for sock in idle:
        sock.close()
    # Twenty connections in the middle of a head: nothing to close, so a newcomer hears why.
    wait_until(lambda: requests.get(node.public_url + "/healthz", timeout=10).ok, 10, "the idle ones to go")
    busy = [open_socket(node, b"GET /healthz HTTP/1.1\r\n") for _ in range(20)]
    try:
        wait_until(lambda: all(still_open(sock) for sock in busy), 10, "the busy connections to be open")
        newcomer = open_socket(node, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        status, reply, head = read_reply(newcomer)
        assert (status, reply["code"]) == (503, "too_many_connections")
        assert "COUNTER_MAX_CONNECTIONS" in str(reply["detail"])
        assert "Retry-After: 1" in head
        # The sync port counts its own connections: peers still get in.
        assert requests.get(node.sync_url + "/swagger", timeout=10).status_code == 200
    finally:
        for sock in busy:
            sock.close()
    wait_until(lambda: requests.get(node.public_url + "/healthz", timeout=10).ok, 10, "the node to serve again")


def test_pipelined_chunked_and_expect_continue_requests_are_served(make_node: Callable[..., Node]) -> None:
    node = make_node(0).start()
    sock = socket.create_connection(("127.0.0.1", node.public_port), timeout=10)
    replies = ReplyReader(sock)
    # A chunked POST and a GET in one write.
    sock.sendall(
        b"POST /keywords HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\npiped\r\n6\r\n piped\r\n0\r\n\r\n"
        b"GET /keywords?keywords=piped HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    head, body = replies.reply()
    assert head.startswith(b"HTTP/1.1 200") and b'"tokens":2' in body.replace(b" ", b""), (head, body)
    head, body = replies.reply()
    assert head.startswith(b"HTTP/1.1 200") and b'"count":2' in body.replace(b" ", b""), (head, body)
    # A POST that waits for 100 Continue before sending its body.
    sock.sendall(b"POST /keywords HTTP/1.1\r\nHost: x\r\nContent-Length: 9\r\nExpect: 100-continue\r\n\r\n")
    head, body = replies.reply()
    assert head == b"HTTP/1.1 100 Continue" and body == b""
    sock.sendall(b"continued")
    head, body = replies.reply()
    assert head.startswith(b"HTTP/1.1 200") and b'"tokens":1' in body.replace(b" ", b""), (head, body)
    sock.close()
    assert node.counts(["continued", "piped"]) == {"continued": 1, "piped": 2}


def test_a_body_past_the_buffer_budget_is_read_by_a_thread_with_a_deadline(make_node: Callable[..., Node]) -> None:
    # No buffer budget: every body goes to a thread unbuffered, whose reads time out.
    node = make_node(0, {"COUNTER_MAX_BUFFERED_BYTES": "0", "COUNTER_BODY_TIMEOUT": "1"}).start()
    sock = open_socket(node, b"POST /keywords HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nhalf")
    status, reply, _ = read_reply(sock)
    assert (status, reply["code"]) == (400, "incomplete_body")
    assert node.post("whole body") == {"tokens": 2, "keywords": 2}
    assert node.counts(["half", "whole"]) == {"half": 0, "whole": 1}


def test_a_request_the_http_parser_refuses_gets_a_json_error(make_node: Callable[..., Node]) -> None:
    node = make_node(0).start()
    cases = [
        (b"GET /keywords HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n", 400),
        (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
        (b"BREW /keywords HTTP/9.9\r\nHost: x\r\n\r\n", 400),
    ]
    for request, expected in cases:
        sock = open_socket(node, request)
        status, reply, head = read_reply(sock)
        assert status == expected, (request[:40], head)
        assert "application/json" in head and reply["code"] and "nothing was counted" in str(reply["detail"])
    assert node.post("still serving") == {"tokens": 2, "keywords": 2}


def test_out_of_file_descriptors_the_node_pauses_accepting_and_recovers(make_node: Callable[..., Node]) -> None:
    # A hard limit of 200 open files for the whole node: far below what the connection limits ask for.
    node = make_node(0)
    node.command_prefix = ["prlimit", "--nofile=200:200", "--"]
    node.start()
    held: list[socket.socket] = []
    try:
        for _ in range(400):  # more than the worker can hold: accept() fails with EMFILE
            with suppress(OSError):
                held.append(open_socket(node, b"GET /keywords?keywords=a HTTP/1.1\r\n"))
        wait_until(lambda: "cannot accept connections" in node.log(), 20, "the pause to be logged")
    finally:
        for sock in held:
            sock.close()
    wait_until(lambda: requests.get(node.public_url + "/healthz", timeout=5).ok, 30, "the node to serve again")
    assert node.post("after the flood") == {"tokens": 3, "keywords": 3}
    assert node.stop() == 0
