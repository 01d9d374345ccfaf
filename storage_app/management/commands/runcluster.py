"""runcluster: a local cluster of nodes on one machine, like counter-app's three-node example.

Node i gets id i, public port BASE + i*STEP, sync port BASE + i*STEP + 1, and
the sync ports of all the other nodes as seeds. With the defaults that is
ids 0, 1, 2 on public ports 3000, 4000, 5000 and sync ports 3001, 4001, 5001.
Ctrl-C (or SIGTERM) stops every node cleanly; the exit status is 0 when all did.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from argparse import ArgumentParser
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from storage_app.core.stop_signals import stop_on_signals

PROJECT_DIR = Path(__file__).resolve().parents[3]


def cluster_environments(nodes: int, base_port: int, step: int, host: str) -> list[dict[str, str]]:
    """The COUNTER_* variables of each node of the cluster."""
    sync_urls = [f"http://{host}:{base_port + index * step + 1}" for index in range(nodes)]
    return [
        {
            "COUNTER_NODE_ID": str(index),
            "COUNTER_PUBLIC_PORT": str(base_port + index * step),
            "COUNTER_SYNC_PORT": str(base_port + index * step + 1),
            "COUNTER_SEEDS": ",".join(url for other, url in enumerate(sync_urls) if other != index),
        }
        for index in range(nodes)
    ]


class Command(BaseCommand):
    help = "Run a local cluster (three nodes by default) until Ctrl-C."
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--nodes", type=int, default=3)
        parser.add_argument("--base-port", type=int, default=3000)
        parser.add_argument("--port-step", type=int, default=1000)

    def handle(self, *args: Any, **options: Any) -> None:
        stopping = threading.Event()
        stop_on_signals(stopping.set)
        environments = cluster_environments(options["nodes"], options["base_port"], options["port_step"], "localhost")
        processes = []
        for environment in environments:
            self.stdout.write(
                f"node {environment['COUNTER_NODE_ID']}: public http://localhost:{environment['COUNTER_PUBLIC_PORT']}"
                f"  sync http://localhost:{environment['COUNTER_SYNC_PORT']}  seeds {environment['COUNTER_SEEDS']}"
            )
            processes.append(
                subprocess.Popen(
                    [sys.executable, str(PROJECT_DIR / "manage.py"), "runnode"], env={**os.environ, **environment}
                )
            )
        self.stdout.write("Ctrl-C stops the cluster.")
        self.stdout.flush()
        while not stopping.wait(0.2):
            if any(process.poll() is not None for process in processes):
                self.stderr.write("a node exited; stopping the cluster")
                break
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        statuses = [process.wait() for process in processes]
        if any(statuses):
            raise CommandError(f"nodes exited with statuses {statuses}")
        self.stdout.write("cluster stopped cleanly")
