"""forget: drop a dead member from the cluster for good, through any live node.

The member stops being contacted and disappears from ``GET /cluster``; the
node tells every other member (a tombstone travels with the membership news),
so gossip does not bring it back. Its counts stay in every total.
"""

from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from storage_app.core.node_client import NodeError
from storage_app.internal_auth import internal_token
from sync_app.core.transport import InternalNode


class Command(BaseCommand):
    help = "Drop a member that is gone for good (run with the environment of any live node)."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("node_id", type=int, help="The node id of the member to drop.")
        parser.add_argument("--force", action="store_true", help="Even if the member is still shown as up.")

    def handle(self, *args: Any, **options: Any) -> None:
        config = settings.COUNTER
        node = InternalNode(config, internal_token(config), timeout=30.0)
        try:
            answer = node.forget(options["node_id"], force=options["force"])
        except NodeError as error:
            raise CommandError(f"{error}; nothing was forgotten") from None
        finally:
            node.close()
        if not answer["forgotten"]:
            self.stdout.write(f"node {answer['node_id']} was not a known member; it is marked forgotten all the same")
        else:
            self.stdout.write(f"node {answer['node_id']} ({answer['was']}) is forgotten; every member will be told")
