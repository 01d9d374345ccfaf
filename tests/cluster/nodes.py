"""Real node processes for cluster tests: started with runnode, reached over loopback HTTP."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

PROJECT_DIR = Path(__file__).resolve().parents[2]


# Ports are handed out below the kernel's ephemeral range (32768 and up on Linux), where
# the local ends of outgoing connections never land, in a band of their own for each
# pytest-xdist worker (and one for a process outside pytest, such as `make bench`): a
# port asked of the kernel (bind to port 0) comes from the ephemeral range, and in the
# moment between the probe and the node's own bind, a client connection of another
# test could take it.
_PORT_BANDS_START, _PORT_BAND_SIZE, _PORT_BANDS = 20000, 1400, 9
_next_port_index = os.getpid() % _PORT_BAND_SIZE


def _port_band_start() -> int:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    band = int(worker[2:]) % (_PORT_BANDS - 1) if worker.startswith("gw") and worker[2:].isdigit() else _PORT_BANDS - 1
    return _PORT_BANDS_START + band * _PORT_BAND_SIZE


def free_port() -> int:
    """A loopback port nothing listens on, not handed out before by this process (until its band wraps)."""
    global _next_port_index
    start = _port_band_start()
    for _ in range(_PORT_BAND_SIZE):
        port = start + _next_port_index
        _next_port_index = (_next_port_index + 1) % _PORT_BAND_SIZE
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue  # in use, or in TIME_WAIT after an earlier test
            return port
    raise RuntimeError(f"no free port in 127.0.0.1:{start}..{start + _PORT_BAND_SIZE - 1}")


def wait_until(condition: Callable[[], Any], timeout: float, what: str, interval: float = 0.05) -> Any:
    """Poll ``condition`` until it returns something truthy; fail with ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = condition()
            if result:
                return result
        except (requests.RequestException, ValueError) as error:
            last_error = error
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what} (last error: {last_error})")


class Node:
    """One ``manage.py runnode`` process with its own ports and data directory."""

    def __init__(self, workdir: Path, node_id: int, env: dict[str, str] | None = None) -> None:
        self.node_id = node_id
        self.public_port = free_port()
        self.sync_port = free_port()
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.env = {
            "COUNTER_NODE_ID": str(node_id),
            "COUNTER_PUBLIC_PORT": str(self.public_port),
            "COUNTER_SYNC_PORT": str(self.sync_port),
            "COUNTER_SEEDS": "",
            "COUNTER_DATA_DIR": str(workdir / "data"),
            "COUNTER_SYNC_INTERVAL": "0.2",
            "COUNTER_DUMP_INTERVAL": "0.2",
            "COUNTER_THREADS": "4",
            **(env or {}),
        }
        self.process: subprocess.Popen[bytes] | None = None
        # Where the test reaches the node, and what runs it (a network namespace's `ip netns exec ...`).
        self.address = "127.0.0.1"
        self.command_prefix: list[str] = []
        self.starts = 0

    @property
    def public_url(self) -> str:
        return f"http://{self.address}:{self.public_port}"

    @property
    def sync_url(self) -> str:
        return f"http://{self.address}:{self.sync_port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / f"node-{self.node_id}.log"

    def start(self, wait: bool = True, settled: bool = True) -> Node:
        environment = {key: value for key, value in os.environ.items() if not key.startswith("COUNTER_")}
        environment.pop("DJANGO_SETTINGS_MODULE", None)
        environment.update(self.env)
        self.starts += 1
        with open(self.log_path, "ab") as log:
            log.write(f"--- start {self.starts} ---\n".encode())
            self.process = subprocess.Popen(
                [*self.command_prefix, sys.executable, str(PROJECT_DIR / "manage.py"), "runnode"],
                cwd=self.workdir,
                env=environment,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        if wait:
            self.wait_ready()
            if settled:
                self.wait_settled()
        return self

    def pending(self) -> dict[str, Any]:
        """The node's pending increments as /cluster shows them (reason None: it counts in its slot)."""
        response = requests.get(self.public_url + "/cluster", timeout=5)
        response.raise_for_status()
        pending: dict[str, Any] = response.json()["node"]["pending"]
        return pending

    def wait_settled(self, timeout: float = 60.0) -> None:
        """Wait until the node counts in its own slot (a new or wiped node first learns it from every seed).

        On a loaded machine a seed may start late, and a node retries it with backoff.
        """
        try:
            wait_until(lambda: self.pending()["reason"] is None, timeout, f"node {self.node_id} to learn its slot")
        except AssertionError as error:
            raise AssertionError(f"{error}\n{self.log()[-4000:]}") from None

    def wait_ready(self, timeout: float = 60.0) -> None:
        def serving() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"node {self.node_id} exited with {self.process.returncode}:\n{self.log()}")
            return requests.get(self.public_url + "/readyz", timeout=2).status_code == 200

        wait_until(serving, timeout, f"node {self.node_id} to serve")

    def stop(self, timeout: float = 60.0) -> int:
        """SIGTERM and wait; return the exit status."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"node {self.node_id} did not stop within {timeout} s:\n{self.log()}") from None

    def kill(self) -> None:
        """SIGKILL the supervisor; its children get SIGTERM from the kernel (parent-death signal)."""
        assert self.process is not None
        self.process.kill()
        self.process.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def post(self, text: str | bytes) -> dict[str, int]:
        response = requests.post(self.public_url + "/keywords", data=text, timeout=10)
        assert response.status_code == 200, response.text
        result: dict[str, int] = response.json()
        return result

    def counts(self, keywords: list[str]) -> dict[str, int]:
        """Counts of ``keywords``, asked 200 at a time (a URL has a length limit)."""
        counts: dict[str, int] = {}
        for start in range(0, len(keywords), 200):
            response = requests.get(
                self.public_url + "/keywords", params={"keywords": keywords[start : start + 200]}, timeout=10
            )
            response.raise_for_status()
            counts.update((item["key"], item["count"]) for item in response.json())
        return counts


def manage(*args: str, env: dict[str, str], cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run a management command the way an operator would."""
    environment = {key: value for key, value in os.environ.items() if not key.startswith("COUNTER_")}
    environment.pop("DJANGO_SETTINGS_MODULE", None)
    environment.update(env)
    return subprocess.run(
        [sys.executable, str(PROJECT_DIR / "manage.py"), *args],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def start_all(nodes: list[Node]) -> None:
    """Start nodes side by side (so they can meet), then wait until each serves and counts in its own slot."""
    for node in nodes:
        node.start(wait=False)
    # Every node serving first: a node that failed to start says why at once, instead of
    # its peers waiting out their deadline to learn their slots from it.
    for node in nodes:
        node.wait_ready()
    for node in nodes:
        node.wait_settled()


def start_cluster(make_node: Callable[..., Node], count: int = 3) -> list[Node]:
    """``count`` nodes, each a seed of every other, started and taking writes."""
    nodes = [make_node(node_id) for node_id in range(count)]
    connect(nodes)
    start_all(nodes)
    return nodes


def connect(nodes: list[Node]) -> None:
    """Make every node a seed of every other one (before they start)."""
    for node in nodes:
        node.env["COUNTER_SEEDS"] = ",".join(other.sync_url for other in nodes if other is not node)


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (children, grandchildren, ...)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(parent, []).append(int(entry.name))
    found, stack = [], list(children.get(pid, []))
    while stack:
        child = stack.pop()
        found.append(child)
        stack.extend(children.get(child, []))
    return found


def crash(node: Node, victims: list[int] | None = None) -> None:
    """SIGKILL the node's supervisor and every process under it at once: no shutdown step runs.

    ``victims``: those processes, listed beforehand (finding them takes a scan of /proc).
    """
    assert node.process is not None
    if victims is None:
        victims = [node.process.pid, *descendants(node.process.pid)]
    for pid in victims:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    node.process.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(Path(f"/proc/{pid}").exists() for pid in victims[1:]):
        time.sleep(0.01)


def signal_all(pid: int, signal_number: int) -> None:
    """Send ``signal_number`` to ``pid`` and every process under it."""
    for victim in [pid, *descendants(pid)]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(victim, signal_number)
