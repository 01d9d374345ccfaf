"""dumpstate: have the node write its snapshot file every COUNTER_DUMP_INTERVAL seconds."""

from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from storage_app.core.node_client import NodeClient
from storage_app.internal_auth import node_client_from_settings
from storage_app.management.loop_command import LoopCommand


class Command(LoopCommand):
    help = "Write the node's snapshot to COUNTER_DATA_DIR in a loop, or once with --once."
    default_interval_setting = "dump_interval"
    final_step_name = "final dump"

    def add_arguments(self, parser: ArgumentParser) -> None:
        super().add_arguments(parser)
        parser.add_argument("--force", action="store_true", help="Write even if nothing changed.")

    def handle(self, *args: Any, **options: Any) -> None:
        self.force = options["force"]
        super().handle(*args, **options)

    def setup(self) -> None:
        self.node: NodeClient = node_client_from_settings()

    def run_once(self) -> str:
        result = self.node.dump(force=self.force)
        if not result["written"]:
            return f"nothing changed: {result['keys']} keys already on disk"
        return f"wrote {result['keys']} keys ({result['bytes']} bytes) in {result['seconds']:.3f} s"

    def teardown(self) -> None:
        self.node.close()
