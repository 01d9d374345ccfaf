from __future__ import annotations

from rest_framework import serializers


class LegacySyncItemSerializer(serializers.Serializer):
    hash_keyword = serializers.IntegerField(min_value=0, max_value=(1 << 64) - 1)
    totals = serializers.ListField(child=serializers.IntegerField(min_value=0, max_value=(1 << 64) - 1))


class MergeResultSerializer(serializers.Serializer):
    received = serializers.IntegerField(help_text="Distinct keys in the body.")
    changed = serializers.IntegerField(help_text="Keys whose slots grew, new keys included.")
    added = serializers.IntegerField(help_text="Keys this node had not seen before.")


class PendingSerializer(serializers.Serializer):
    reason = serializers.CharField(
        allow_null=True, help_text="Why the node cannot yet prove its own slot complete; null when it can."
    )
    since = serializers.FloatField(allow_null=True, help_text="Unix time since when (null when not pending).")
    keys = serializers.IntegerField(min_value=0, help_text="Distinct keywords with pending increments.")
    increments = serializers.IntegerField(min_value=0, help_text="Pending increments, summed.")


class ClusterNodeSerializer(serializers.Serializer):
    node_id = serializers.IntegerField(min_value=0)
    incarnation = serializers.CharField(help_text="This process's store, 16 hex digits (new at every start).")
    sequence = serializers.IntegerField(min_value=0, help_text="The number of the store's latest change.")
    keys = serializers.IntegerField(min_value=0)
    slots = serializers.IntegerField(min_value=0)
    tokenizer = serializers.CharField()
    ready = serializers.BooleanField()
    clash = serializers.CharField(
        allow_null=True,
        help_text="Set when another live process runs with this node id and started first: this one takes no writes.",
    )
    pending = PendingSerializer()


class PeerSerializer(serializers.Serializer):
    url = serializers.CharField(help_text="The peer's sync URL: a seed as configured, or what a member advertises.")
    state = serializers.ChoiceField(
        ["up", "down", "left"],
        help_text="up: heard from; down: unreachable for COUNTER_MEMBER_TIMEOUT; left: decommissioned.",
    )
    node_id = serializers.IntegerField(allow_null=True)
    mode = serializers.ChoiceField(["unknown", "native", "legacy", "refused", "self", "left", "forgotten"])
    reachable = serializers.BooleanField(allow_null=True)
    last_success = serializers.FloatField(allow_null=True)
    last_anti_entropy = serializers.FloatField(allow_null=True)
    last_error = serializers.CharField(allow_null=True)
    errors = serializers.IntegerField(min_value=0)
    consecutive_failures = serializers.IntegerField(min_value=0)
    keys_sent = serializers.IntegerField(min_value=0)
    keys_received = serializers.IntegerField(min_value=0)
    bytes_sent = serializers.IntegerField(min_value=0)
    bytes_received = serializers.IntegerField(min_value=0)
    lag = serializers.IntegerField(allow_null=True, help_text="This node's changes the peer has not acknowledged.")
    rounds = serializers.IntegerField(min_value=0)
    anti_entropy_rounds = serializers.IntegerField(min_value=0)
    clash = serializers.CharField(allow_null=True, help_text="The peer runs with this node's id and started first.")
    learned_for = serializers.CharField(
        allow_null=True, help_text="This node's incarnation when anti-entropy with the peer last completed."
    )


class ClusterSerializer(serializers.Serializer):
    node = ClusterNodeSerializer()
    reported_at = serializers.FloatField(allow_null=True, help_text="When runsync last reported (Unix time).")
    leaving_since = serializers.FloatField(
        allow_null=True, help_text="Since when this node tells its members it leaves (decommission); null if not."
    )
    peers = PeerSerializer(many=True)
