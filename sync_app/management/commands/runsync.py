"""runsync: push this node's state to every seed, every COUNTER_SYNC_INTERVAL seconds."""

from __future__ import annotations

from django.conf import settings

from counter_site.loop_command import LoopCommand
from counter_site.node_client import NodeClient, node_client_from_settings
from storage_app.core.store import StoreChunk
from sync_app.core.legacy_protocol import encode_legacy_sync
from sync_app.core.peers import LegacyPusher


class Command(LoopCommand):
    help = "Push this node's state to its seeds (counter-app's format) in a loop, or once with --once."
    default_interval_setting = "sync_interval"
    final_step_name = "final sync push"

    def setup(self) -> None:
        config = settings.COUNTER
        self.node: NodeClient = node_client_from_settings()
        self.pusher = LegacyPusher(config.seeds, timeout=config.sync_timeout)
        # counter-app panics when it increments a key whose slot list is shorter
        # than its id, so every row we send covers every node of the cluster.
        self.min_width = max(config.node_id, len(config.seeds)) + 1

    def run_once(self) -> str:
        if not self.pusher.peers:
            return "no seeds configured"
        state = self.node.fetch_state()
        body = encode_legacy_sync([StoreChunk(state.keys, state.slots)], self.min_width)
        results = self.pusher.push_all(body)
        taken = sum(results.values())
        return f"pushed {len(state.keys)} keys ({len(body)} bytes) to {taken} of {len(results)} seeds"

    def teardown(self) -> None:
        self.pusher.close()
        self.node.close()
