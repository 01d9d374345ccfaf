"""The management commands as an operator runs them: runnode's checks, dumpstate, runsync, loadstate."""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from storage_app.core.keywords import Keywords
from storage_app.core.snapshot import read_snapshot_file
from tests.cluster.nodes import Node, crash, free_port, manage, wait_until

pytestmark = [pytest.mark.cluster, pytest.mark.xdist_group("commands")]

SEED_DATA = Path(__file__).resolve().parents[1] / "data" / "counter-app"


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("COUNTER_NODE_ID", "-1", "COUNTER_NODE_ID='-1': must be an integer from 0 to 255"),
        ("COUNTER_NODE_ID", "one", "COUNTER_NODE_ID='one'"),
        ("COUNTER_PUBLIC_PORT", "70000", "COUNTER_PUBLIC_PORT='70000'"),
        ("COUNTER_SYNC_PORT", "http", "COUNTER_SYNC_PORT='http'"),
        ("COUNTER_SEEDS", "localhost:4001", "is not an http(s) base URL"),
        ("COUNTER_SEEDS", "ftp://x:1", "is not an http(s) base URL"),
        ("COUNTER_SYNC_INTERVAL", "0", "COUNTER_SYNC_INTERVAL='0'"),
        ("COUNTER_TOKENIZER", "letters", "must be one of words, fields"),
        ("COUNTER_HOST", "0.0.0.0", "listening beyond loopback needs COUNTER_SYNC_TOKEN"),
        ("COUNTER_FSYNC", "sometimes", "must be one of always, interval"),
        ("COUNTER_NODE_ID", "16", "must be below COUNTER_MAX_NODES=16"),
    ],
)
def test_a_bad_setting_stops_the_node_with_one_line(tmp_path: Path, variable: str, value: str, message: str) -> None:
    result = manage("runnode", env={variable: value, "COUNTER_DATA_DIR": str(tmp_path)}, cwd=tmp_path)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert message in lines[0] and variable in lines[0]


def test_a_corrupt_snapshot_stops_the_start_and_is_left_alone(make_node: Callable[..., Node]) -> None:
    node = make_node(0).start()
    node.post("keep me")
    assert node.stop() == 0
    snapshot = node.workdir / "data" / "node-0.snapshot"
    damaged = bytearray(snapshot.read_bytes())
    damaged[-10] ^= 0xFF
    snapshot.write_bytes(bytes(damaged))
    result = manage("runnode", env=node.env, cwd=node.workdir)
    assert result.returncode != 0
    assert "checksum mismatch" in result.stderr and str(snapshot.name) in result.stderr
    assert snapshot.read_bytes() == bytes(damaged)


def test_another_nodes_snapshot_is_refused(make_node: Callable[..., Node]) -> None:
    node = make_node(0).start()
    node.post("mine")
    assert node.stop() == 0
    data = node.workdir / "data"
    shutil.copy(data / "node-0.snapshot", data / "node-1.snapshot")
    result = manage("runnode", env={**node.env, "COUNTER_NODE_ID": "1"}, cwd=node.workdir)
    assert result.returncode != 0
    assert "belongs to node 0" in result.stderr


def test_a_port_in_use_is_named(make_node: Callable[..., Node]) -> None:
    first = make_node(0).start()
    result = manage("runnode", env={**first.env, "COUNTER_SYNC_PORT": str(free_port())}, cwd=first.workdir)
    assert result.returncode != 0
    assert f"COUNTER_PUBLIC_PORT={first.public_port}" in result.stderr
    assert first.stop() == 0


def test_dumpstate_once_writes_the_snapshot_and_needs_a_running_node(make_node: Callable[..., Node]) -> None:
    node = make_node(0, env={"COUNTER_DUMP_INTERVAL": "3600"}).start()
    node.post("one two two")
    result = manage("dumpstate", "--once", "--force", env=node.env, cwd=node.workdir)
    assert result.returncode == 0, result.stderr
    assert "wrote 2 keys" in result.stdout
    snapshot = read_snapshot_file(node.workdir / "data" / "node-0.snapshot", 0)
    assert snapshot is not None and len(snapshot.keys) == 2
    again = manage("dumpstate", "--once", env=node.env, cwd=node.workdir)
    assert "nothing changed" in again.stdout
    assert node.stop() == 0
    down = manage("dumpstate", "--once", env=node.env, cwd=node.workdir)
    assert down.returncode != 0 and "is not running" in down.stderr


class FakeCounterApp(BaseHTTPRequestHandler):
    """counter-app's sync port: takes POST /sync bodies and remembers them."""

    received: list[list[dict[str, object]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.path != "/sync":  # counter-app has no other route
            self.send_response(404)
            self.end_headers()
            return
        FakeCounterApp.received.append(json.loads(body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def fake_counter_app() -> Iterator[str]:
    FakeCounterApp.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeCounterApp)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_runsync_once_pushes_counter_app_format_to_every_seed(
    make_node: Callable[..., Node], fake_counter_app: str
) -> None:
    node = make_node(1, env={"COUNTER_SYNC_INTERVAL": "3600", "COUNTER_TOKENIZER": "fields"})
    node.start()  # a state on disk first: a new node keeps its writes pending until it has learned its slot
    assert node.stop() == 0
    node.env["COUNTER_SEEDS"] = f"{fake_counter_app}, http://127.0.0.1:{free_port()}"
    node.start()
    node.post("Fox fox,")
    result = manage("runsync", "--once", env=node.env, cwd=node.workdir)
    assert result.returncode == 0, result.stderr
    assert f"{fake_counter_app}: legacy" in result.stdout and ": failed" in result.stdout
    fields = Keywords("fields")
    body = {item["hash_keyword"]: item["totals"] for item in FakeCounterApp.received[-1]}
    # Slot 1 is ours; rows cover every node of the cluster (3 = 2 seeds + us), as counter-app needs.
    assert body == {fields.key_of("fox"): [0, 1, 0], fields.key_of("fox,"): [0, 1, 0]}
    assert node.stop() == 0


def test_loadstate_imports_counter_app_files_offline_and_online(make_node: Callable[..., Node]) -> None:
    node = make_node(0, env={"COUNTER_TOKENIZER": "fields"})
    node.workdir.mkdir(parents=True, exist_ok=True)
    offline = manage("loadstate", "--legacy", str(SEED_DATA / "base0"), env=node.env, cwd=node.workdir)
    assert offline.returncode == 0, offline.stderr
    assert "node not running" in offline.stdout and "16 new" in offline.stdout
    node.start()
    expected = {"the": 7, "fox": 3, "hound,": 1, "ünïcödé": 1, "straße": 1, "dog.": 1}
    assert node.counts(list(expected)) == expected
    online = manage("loadstate", "--legacy", str(SEED_DATA / "base1"), env=node.env, cwd=node.workdir)
    assert online.returncode == 0, online.stderr
    assert "into the running node" in online.stdout and "0 changed" in online.stdout
    assert node.counts(list(expected)) == expected
    bad = manage("loadstate", "--legacy", str(node.log_path), env=node.env, cwd=node.workdir)
    assert bad.returncode != 0 and "record at offset 0" in bad.stderr
    assert node.counts(list(expected)) == expected
    assert node.stop() == 0


def test_loadstate_merges_live_into_a_node_that_has_a_sync_token(make_node: Callable[..., Node]) -> None:
    node = make_node(0, env={"COUNTER_TOKENIZER": "fields", "COUNTER_SYNC_TOKEN": "s3cret"}).start()
    for name in ("base0", "base1"):
        result = manage("loadstate", "--legacy", str(SEED_DATA / name), env=node.env, cwd=node.workdir)
        assert result.returncode == 0, result.stderr
        assert "into the running node" in result.stdout
    expected = {"the": 7, "fox": 3, "and": 1, "hound,": 1, "ünïcödé": 1, "straße": 1, "dog.": 1, "runs!": 1}
    assert node.counts(list(expected)) == expected
    wrong = manage(
        "loadstate",
        "--legacy",
        str(SEED_DATA / "base0"),
        env={**node.env, "COUNTER_INTERNAL_TOKEN": "x"},
        cwd=node.workdir,
    )
    assert wrong.returncode != 0
    assert "Traceback" not in wrong.stderr and len(wrong.stderr.strip().splitlines()) == 1, wrong.stderr
    assert "403" in wrong.stderr and "nothing was merged" in wrong.stderr
    missing = manage("loadstate", "--legacy", str(node.workdir / "nope"), env=node.env, cwd=node.workdir)
    assert missing.returncode != 0 and len(missing.stderr.strip().splitlines()) == 1, missing.stderr
    assert node.stop() == 0


def test_a_killed_helper_is_restarted(make_node: Callable[..., Node]) -> None:
    import os
    import signal

    node = make_node(0).start()
    wait_until(lambda: "dumpstate" in _children(node), 20, "dumpstate to run")
    os.kill(_children(node)["dumpstate"], signal.SIGKILL)
    wait_until(lambda: "restarting it" in node.log(), 20, "runnode to restart dumpstate")
    node.post("after restart")
    assert node.stop() == 0, node.log()


def _children(node: Node) -> dict[str, int]:
    """Helper command name -> pid, among the runnode process's children."""
    assert node.process is not None
    found: dict[str, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
            command = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        parent = next((line.split()[1] for line in status.splitlines() if line.startswith("PPid:")), "")
        if parent == str(node.process.pid) and len(command) > 2:
            found[command[2].decode()] = int(entry.name)
    return found


def test_a_damaged_log_record_stops_the_start_naming_file_and_offset(make_node: Callable[..., Node]) -> None:
    node = make_node(0, env={"COUNTER_DUMP_INTERVAL": "3600"}).start()
    for word in ("one", "two", "three"):
        node.post(word)
    crash(node)  # no final dump: the words live only in the log
    segment = sorted((node.workdir / "data" / "node-0.wal").glob("*.wal"))[-1]
    data = bytearray(segment.read_bytes())
    data[30] ^= 0xFF
    segment.write_bytes(bytes(data))
    result = manage("runnode", env=node.env, cwd=node.workdir, timeout=120)
    assert result.returncode != 0
    assert f"{segment.name}: record checksum mismatch at offset 16" in result.stderr


def test_production_settings_pass_djangos_deploy_checks_and_keep_one_secret_key(tmp_path: Path) -> None:
    env = {"COUNTER_DATA_DIR": str(tmp_path / "data")}
    result = manage("check", "--deploy", "--fail-level", "WARNING", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    key_file = tmp_path / "data" / "secret-key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    key = key_file.read_text().strip()
    assert len(key) >= 50
    show = "from django.conf import settings; print(settings.SECRET_KEY, settings.DEBUG, settings.ALLOWED_HOSTS)"
    again = manage("shell", "--no-imports", "-c", show, env=env, cwd=tmp_path)
    assert again.stdout.split()[0] == key, "the key made once is kept"
    given = manage(
        "shell",
        "--no-imports",
        "-c",
        show,
        env={**env, "COUNTER_SECRET_KEY": "k" * 60, "COUNTER_DEBUG": "true", "COUNTER_ALLOWED_HOSTS": "a.example, b"},
        cwd=tmp_path,
    )
    assert given.stdout.strip() == f"{'k' * 60} True ['a.example', 'b']"
    debug = manage("check", "--deploy", "--fail-level", "WARNING", env={**env, "COUNTER_DEBUG": "true"}, cwd=tmp_path)
    assert debug.returncode != 0 and "DEBUG" in debug.stderr, "the deploy check catches a node left in debug mode"
