"""loadstate: merge a data file (counter-app's, or a Counter snapshot) into this node's state."""

from __future__ import annotations

from argparse import ArgumentParser
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from storage_app.core.errors import CounterError
from storage_app.core.legacy import decode_legacy_file
from storage_app.core.node_client import NodeError, NodeNotRunning, NodeUnreachable
from storage_app.core.snapshot import decode_snapshot, encode_snapshot, read_snapshot_file, write_snapshot_file
from storage_app.core.store import GCounterStore
from storage_app.internal_auth import node_client_from_settings


class Command(BaseCommand):
    help = (
        "Merge a file into this node's state (max per slot, so loading twice changes nothing). "
        "If the node is running it merges live; otherwise the snapshot file on disk is updated."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("path", type=Path, help="The file to load.")
        parser.add_argument(
            "--legacy", action="store_true", help="The file is counter-app's data/base<NODE_ID> format."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        path: Path = options["path"]
        try:
            data = path.read_bytes()
            texts = None  # counter-app's files hold no texts
            if options["legacy"]:
                keys, slots = decode_legacy_file(data)
            else:
                snapshot = decode_snapshot(data)
                keys, slots, texts = snapshot.keys, snapshot.slots, snapshot.texts
        except OSError as error:
            raise CommandError(f"cannot read {path}: {error.strerror}; check the path") from None
        except CounterError as error:
            raise CommandError(f"{path}: {error}") from None

        config = settings.COUNTER
        store = GCounterStore(max_slots=config.max_slots)
        try:
            # The file's rows in key order, duplicates combined: the form the node takes.
            store.merge(keys, slots, texts=texts)
        except CounterError as error:
            raise CommandError(f"{path}: {error}; nothing was merged") from None
        node = node_client_from_settings()
        try:
            result = node.load(store.export_chunks(with_texts=True))
            self.stdout.write(
                f"merged {len(keys)} keys from {path} into the running node: "
                f"{result['changed']} changed, {result['added']} new"
            )
            return
        except NodeNotRunning:
            pass  # nothing listens: the node is stopped, so its snapshot on disk is the state to update
        except NodeUnreachable as error:
            raise CommandError(
                f"{error}; the node seems to be running but busy: try again (its snapshot is not touched)"
            ) from None
        except NodeError as error:
            raise CommandError(f"{error}; nothing was merged") from None
        finally:
            node.close()

        try:
            existing = read_snapshot_file(config.snapshot_path, config.node_id)
            state = GCounterStore(max_slots=config.max_slots)
            if existing is not None:
                state.merge(existing.keys, existing.slots, texts=existing.texts)
            merged = state.merge(keys, slots, texts=texts)
            written = write_snapshot_file(
                config.snapshot_path, encode_snapshot(state.export_chunks(with_texts=True), config.node_id)
            )
        except CounterError as error:
            raise CommandError(f"{error}; nothing was merged") from None
        except OSError as error:
            raise CommandError(
                f"cannot write {config.snapshot_path}: {error.strerror}; check COUNTER_DATA_DIR and its permissions"
            ) from None
        self.stdout.write(
            f"node not running: merged {len(keys)} keys from {path} into {written.path} "
            f"({merged.changed} changed, {merged.added} new, {written.keys} keys in all)"
        )
