"""runnode: one Counter node, configured only by COUNTER_* environment variables.

It supervises three processes:

* gunicorn serving the public and the sync port (one worker with threads:
  that worker owns the store),
* ``manage.py runsync``, pushing state to the seeds every COUNTER_SYNC_INTERVAL,
* ``manage.py dumpstate``, writing the snapshot every COUNTER_DUMP_INTERVAL.

On SIGTERM or SIGINT it stops them in an order that loses nothing: the node
first stops taking client writes, then runsync makes its final push and
dumpstate its final dump, then gunicorn finishes its requests and exits (its
worker dumps once more if a peer's push changed anything since). Exit status 0
when everything stopped cleanly.

Children run in their own session, so a Ctrl-C in a terminal reaches only
this supervisor, which then stops them in order; and they get SIGTERM if the
supervisor itself dies.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from argparse import ArgumentParser
from pathlib import Path
from typing import Any

import requests
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from storage_app.core.config import NodeConfig
from storage_app.core.errors import CounterError
from storage_app.core.node_client import NodeClient, NodeError
from storage_app.core.snapshot import check_snapshot_file
from storage_app.core.stop_signals import stop_on_signals, unblock_stop_signals

logger = logging.getLogger("counter.runnode")

PROJECT_DIR = Path(__file__).resolve().parents[3]
_PR_SET_PDEATHSIG = 1
_HELPER_STOP_TIMEOUT = 60.0
_GUNICORN_STOP_TIMEOUT = 30.0


_SUPERVISOR_PID = os.getpid()


def _die_with_parent() -> None:
    """In the child, before exec: receive stop signals, and get SIGTERM when the supervisor dies."""
    unblock_stop_signals()  # blocked in the supervisor, which takes them in a thread
    _get_sigterm_when_the_supervisor_dies()


def _die_with_parent_and_hold_stop_signals() -> None:
    """As ``_die_with_parent``, but the stop signals stay blocked across exec (as in the supervisor).

    A helper stopped while it is still starting would otherwise die of the
    default action and skip its final step; blocked, the signal waits until
    the loop command takes it (``stop_signals``).
    """
    _get_sigterm_when_the_supervisor_dies()


def _get_sigterm_when_the_supervisor_dies() -> None:
    """In the child, before exec: the parent-death signal (Linux)."""
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != _SUPERVISOR_PID:
        # The supervisor died between fork and prctl: no signal will ever come.
        os._exit(1)


def _check_port_free(host: str, port: int, variable: str) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            raise CommandError(f"{variable}={port}: cannot listen on {host}:{port}: {error.strerror}") from None


class Command(BaseCommand):
    help = "Run one Counter node: gunicorn (public and sync ports), runsync and dumpstate."
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument(
            "--reuse-id",
            action="store_true",
            help="Take over the node id of a decommissioned node (same as COUNTER_REUSE_ID=true).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        config: NodeConfig = settings.COUNTER
        self.config = config
        self.preflight(config)
        token = secrets.token_urlsafe(32)
        self.write_token(config, token)
        # Commands run by hand (decommission) stop the node through this.
        config.pid_path.write_text(f"{os.getpid()}\n")
        python_path = os.pathsep.join(filter(None, [str(PROJECT_DIR), os.environ.get("PYTHONPATH")]))
        self.env = {
            # glibc raises its mmap threshold after the first large free, and from then
            # on keeps the store's freed temporaries (a bulk merge copies whole arrays)
            # in its heap for good: a fixed threshold hands them back to the system, and
            # two arenas keep eight threads from holding eight heaps. An operator's own
            # values win.
            "MALLOC_MMAP_THRESHOLD_": "131072",
            "MALLOC_ARENA_MAX": "2",
            **os.environ,
            "COUNTER_INTERNAL_TOKEN": token,
            "PYTHONUNBUFFERED": "1",
            **({"COUNTER_REUSE_ID": "true"} if options["reuse_id"] else {}),
            # Children run in the caller's directory (relative COUNTER_DATA_DIR) but import the project.
            "PYTHONPATH": python_path,
        }
        self.node = NodeClient(config, token, timeout=15.0)
        self.stopping = threading.Event()
        stop_on_signals(self.stopping.set)

        logger.info(
            "starting node %d: public http://%s:%d, sync http://%s:%d, seeds %s, data %s, tokenizer %s",
            config.node_id,
            config.host,
            config.public_port,
            config.host,
            config.sync_port,
            ", ".join(config.seeds) or "none",
            config.data_dir,
            config.tokenizer,
        )
        self.gunicorn = self.spawn(
            [sys.executable, "-m", "gunicorn", "--config", "python:counter_site.gunicorn_conf", "counter_site.wsgi"]
        )
        self.helpers: dict[str, subprocess.Popen[bytes]] = {}
        serving = self.wait_until_serving()
        # Not serving because of a stop signal is a clean stop; because gunicorn died, a failure.
        failed = not serving and not self.stopping.is_set()
        if serving:
            self.helpers = {name: self.spawn_helper(name) for name in ("runsync", "dumpstate")}
            failed = self.supervise()
        clean = self.shutdown()
        config.internal_token_path.unlink(missing_ok=True)
        config.pid_path.unlink(missing_ok=True)
        if failed or not clean:
            raise CommandError("node stopped with errors (see above)")
        logger.info("node %d stopped cleanly", config.node_id)

    def preflight(self, config: NodeConfig) -> None:
        """Refuse to start, with one clear line, on what would fail later."""
        try:
            config.data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise CommandError(f"COUNTER_DATA_DIR={str(config.data_dir)!r}: {error.strerror}") from None
        try:
            check_snapshot_file(config.snapshot_path, config.node_id)
        except CounterError as error:
            raise CommandError(f"{error}; move the file away to start empty, or restore a good copy") from None
        _check_port_free(config.host, config.public_port, "COUNTER_PUBLIC_PORT")
        _check_port_free(config.host, config.sync_port, "COUNTER_SYNC_PORT")

    def write_token(self, config: NodeConfig, token: str) -> None:
        path = config.internal_token_path
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(descriptor, 0o600)  # a file left by an earlier run keeps its mode otherwise
        with os.fdopen(descriptor, "w") as handle:
            handle.write(token + "\n")

    def spawn(self, command: list[str], hold_stop_signals: bool = False) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            command,
            env=self.env,
            start_new_session=True,
            preexec_fn=_die_with_parent_and_hold_stop_signals if hold_stop_signals else _die_with_parent,
        )

    def spawn_helper(self, name: str) -> subprocess.Popen[bytes]:
        return self.spawn([sys.executable, str(PROJECT_DIR / "manage.py"), name], hold_stop_signals=True)

    def wait_until_serving(self) -> bool:
        """Wait until the worker answers /readyz (state recovered); False if gunicorn died first."""
        url = self.config.public_base_url + "/readyz"
        while not self.stopping.is_set():
            if self.gunicorn.poll() is not None:
                logger.error("gunicorn exited with status %s during start-up", self.gunicorn.returncode)
                return False
            try:
                if requests.get(url, timeout=5.0).status_code == 200:
                    logger.info("node %d is serving", self.config.node_id)
                    return True
            except requests.RequestException:
                pass
            self.stopping.wait(0.05)
        logger.info("stopped before node %d served", self.config.node_id)
        return False

    def supervise(self) -> bool:
        """Wait for a stop signal; restart a helper that died. True if gunicorn itself failed."""
        while not self.stopping.wait(0.2):
            if self.gunicorn.poll() is not None:
                logger.error("gunicorn exited with status %s; stopping the node", self.gunicorn.returncode)
                return True
            for name, process in list(self.helpers.items()):
                if process.poll() is not None:
                    logger.error("%s exited with status %s; restarting it", name, process.returncode)
                    time.sleep(1.0)
                    self.helpers[name] = self.spawn_helper(name)
        logger.info("stopping node %d", self.config.node_id)
        return False

    def shutdown(self) -> bool:
        """Stop everything in order; True if every process exited with status 0."""
        if self.gunicorn.poll() is None:
            try:
                self.node.drain()
            except NodeError as error:
                logger.warning("could not close client writes before stopping: %s", error)
        clean = True
        for name, process in self.helpers.items():
            clean &= self.stop_child(name, process, _HELPER_STOP_TIMEOUT)
        clean &= self.stop_child("gunicorn", self.gunicorn, _GUNICORN_STOP_TIMEOUT)
        self.node.close()
        return clean

    def stop_child(self, name: str, process: subprocess.Popen[bytes], timeout: float) -> bool:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                logger.error("%s did not stop within %.0f s; killing it", name, timeout)
                process.kill()
                process.wait()
                return False
        if process.returncode != 0:
            logger.error("%s exited with status %s", name, process.returncode)
            return False
        return True
