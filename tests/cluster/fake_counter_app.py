"""A stand-in for a counter-app node's sync port, as a process a test can freeze (SIGSTOP) and thaw.

Like counter-app it takes ``POST /sync`` (merge by max per slot), has no other
sync route (404, so Counter syncs with it as counter-app), and pushes its full
state to each of its seeds over and over, with no pull. ``GET /state`` (a
test's window into it) answers its state as ``{"<key>": [slot values]}``.

    python -m tests.cluster.fake_counter_app PORT SEED_URL [SEED_URL ...]
"""

from __future__ import annotations

import contextlib
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests

PUSH_EVERY = 0.2

_state: dict[int, list[int]] = {}
_lock = threading.Lock()


def merge(items: list[dict[str, object]]) -> None:
    with _lock:
        for item in items:
            key = int(item["hash_keyword"])  # type: ignore[call-overload]
            totals = [int(value) for value in item["totals"]]  # type: ignore[attr-defined]
            row = _state.setdefault(key, [])
            row.extend([0] * (len(totals) - len(row)))
            for slot, value in enumerate(totals):
                row[slot] = max(row[slot], value)


def full_state() -> list[dict[str, object]]:
    with _lock:
        return [{"hash_keyword": key, "totals": list(row)} for key, row in _state.items()]


class SyncPort(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.path != "/sync":
            self.answer(404, b"404 page not found")
            return
        try:
            merge(json.loads(body))
        except (ValueError, KeyError, TypeError):
            self.answer(400, b"bad body")
            return
        self.answer(200, b"")

    def do_GET(self) -> None:
        if self.path != "/state":
            self.answer(404, b"404 page not found")
            return
        with _lock:
            state = {str(key): list(row) for key, row in _state.items()}
        self.answer(200, json.dumps(state).encode())

    def answer(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def push_forever(seeds: list[str]) -> None:
    with requests.Session() as session:
        while True:
            for seed in seeds:
                with contextlib.suppress(requests.RequestException):
                    session.post(seed + "/sync", data=json.dumps(full_state()), timeout=5)
            time.sleep(PUSH_EVERY)


def main() -> None:
    port, seeds = int(sys.argv[1]), sys.argv[2:]
    server = ThreadingHTTPServer(("127.0.0.1", port), SyncPort)
    threading.Thread(target=push_forever, args=(seeds,), daemon=True).start()
    server.serve_forever()


if __name__ == "__main__":
    main()
