"""decommission: this node leaves the cluster for good, and stops.

Run with the environment of a running node, on its machine. The node stops
taking client writes, tells every member it leaves (in every exchange from
then on), and once every member that is up has had a round with it since and
holds all of its changes, the node is stopped (SIGTERM to runnode, which makes
its final push and dump). Its counts stay in every total; the other members
show it as ``left`` and stop contacting it.
"""

from __future__ import annotations

import os
import signal
import time
from argparse import ArgumentParser
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from storage_app.core.node_client import NodeError
from storage_app.internal_auth import internal_token
from sync_app.core.transport import InternalNode


def _unfinished(status: dict[str, Any]) -> list[str]:
    """The members that are up and do not yet hold every change this node had when it began to leave."""
    since = status.get("leaving_since")
    if since is None:
        return ["runsync has not started telling the members yet"]
    unfinished = []
    for peer in status["peers"]:
        if peer["state"] != "up" or peer["mode"] not in ("native", "legacy", "unknown"):
            continue
        # counter-app peers take whole pushes: any push since holds everything.
        caught_up = peer.get("handed_over") or peer["mode"] == "legacy"
        if not ((peer.get("last_success") or 0) > since and caught_up):
            unfinished.append(f"node {peer['node_id']} ({peer['url']})")
    return unfinished


def _alive(pid: int) -> bool:
    """Is process ``pid`` running (a zombie waiting for its parent is not)?"""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


class Command(BaseCommand):
    help = "Make this node leave the cluster: no more writes, everything pushed to every member, then stop."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument(
            "--timeout", type=float, default=60.0, help="Seconds to wait for the members to hold everything."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        config = settings.COUNTER
        node = InternalNode(config, internal_token(config), timeout=30.0)
        try:
            node.leave()
            self.stdout.write(f"node {config.node_id} takes no more writes and tells its members it leaves")
            deadline = time.monotonic() + options["timeout"]
            while unfinished := _unfinished(node.status()):
                if time.monotonic() > deadline:
                    raise CommandError(
                        f"after {options['timeout']:.0f} s these members do not hold everything yet: "
                        f"{', '.join(unfinished)}; the node keeps running without client writes: "
                        "run decommission again, or stop it once they are back"
                    )
                time.sleep(0.2)
        except NodeError as error:
            raise CommandError(f"{error}; nothing was changed if the node was not reached") from None
        finally:
            node.close()
        self.stdout.write("every member that is up holds all of this node's counts and knows it left")
        self.stop_node(config.pid_path)
        self.stdout.write(f"node {config.node_id} has left the cluster and stopped")

    def stop_node(self, pid_path: Path) -> None:
        try:
            pid = int(pid_path.read_text())
        except (OSError, ValueError):
            raise CommandError(
                f"cannot read {pid_path}: stop the node yourself (it has left the cluster and takes no writes)"
            ) from None
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + 60
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _alive(pid):
            raise CommandError(f"node process {pid} did not stop within 60 s after SIGTERM")
