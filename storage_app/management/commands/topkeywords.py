"""topkeywords: print the keywords counted most, as GET /top answers."""

from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from storage_app.core.errors import CounterError
from storage_app.core.keywords import Keywords
from storage_app.core.node_client import NodeError, NodeNotRunning
from storage_app.core.snapshot import read_snapshot_file
from storage_app.core.store import GCounterStore
from storage_app.core.top_query import check_top_query
from storage_app.internal_auth import node_client_from_settings
from storage_app.top import DEFAULT_TOP, top_entries


class Command(BaseCommand):
    help = (
        "Print the keywords counted most (cluster-wide, as this node knows it), highest first. Asks the running "
        "node; when it is stopped, reads its snapshot file instead."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--n", type=int, default=DEFAULT_TOP, help=f"How many keywords (default {DEFAULT_TOP}).")
        parser.add_argument("--prefix", help="Only keywords that start with this (normalised like a lookup).")

    def handle(self, *args: Any, **options: Any) -> None:
        n, prefix = options["n"], options["prefix"]
        node = node_client_from_settings()
        try:
            entries = node.top(n, prefix)
        except NodeNotRunning:
            entries = self._from_snapshot(n, prefix)
        except NodeError as error:
            raise CommandError(str(error)) from None
        finally:
            node.close()
        self._print(entries)

    def _from_snapshot(self, n: int, prefix: str | None) -> list[dict[str, Any]]:
        config = settings.COUNTER
        try:
            snapshot = read_snapshot_file(config.snapshot_path, config.node_id, config.max_slots)
        except CounterError as error:
            raise CommandError(f"the node is not running, and its snapshot cannot be read: {error}") from None
        if snapshot is None:
            raise CommandError(f"the node is not running, and it has no snapshot at {config.snapshot_path}")
        self.stderr.write(
            f"The node is not running: reading {config.snapshot_path} (writes logged after it are not included)."
        )
        try:
            prefix_bytes = check_top_query(config, Keywords(config.tokenizer), n, prefix)
        except CounterError as error:
            raise CommandError(str(error)) from None
        store = GCounterStore(config.max_slots)
        store.merge(snapshot.keys, snapshot.slots, texts=snapshot.texts)
        return top_entries(store.top(n, prefix_bytes))

    def _print(self, entries: list[dict[str, Any]]) -> None:
        if not entries:
            self.stdout.write("no keyword counted yet")
            return
        width = max(len("count"), *(len(f"{entry['count']:,}") for entry in entries))
        self.stdout.write(f"{'rank':>4}  {'count':>{width}}  keyword")
        for rank, entry in enumerate(entries, start=1):
            keyword = entry["key"] if entry["key"] is not None else f"(text not known; hash {entry['hash']})"
            self.stdout.write(f"{rank:>4}  {entry['count']:>{width},}  {keyword}")
