from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

U64_MAX = (1 << 64) - 1


@extend_schema_field({"type": "integer", "format": "uint64", "minimum": 0, "maximum": U64_MAX})
class Uint64Field(serializers.IntegerField):
    """An integer in [0, 2**64); drf-spectacular would document it as `int64`, which ends at 2**63 - 1."""


class LegacySyncItemSerializer(serializers.Serializer):
    hash_keyword = Uint64Field(min_value=0, max_value=U64_MAX)
    totals = serializers.ListField(
        child=Uint64Field(min_value=0, max_value=U64_MAX),
        allow_null=True,
        help_text="Slot i is node i's count; null is an empty list (Go, counter-app's language, marshals one so).",
    )


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


class IdempotencySerializer(serializers.Serializer):
    keys = serializers.IntegerField(min_value=0, help_text="Idempotency keys remembered now.")
    evicted = serializers.IntegerField(
        min_value=0,
        help_text="Keys forgotten before COUNTER_IDEMPOTENCY_TTL to stay within COUNTER_MAX_IDEMPOTENCY_KEYS.",
    )


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
    idempotency = IdempotencySerializer()


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
    lag = serializers.IntegerField(
        allow_null=True,
        help_text="This node's changes at the start of the last round that the peer has not acknowledged.",
    )
    handed_over = serializers.BooleanField(
        default=False,
        help_text="The node leaves (decommission) and the peer holds every change it had when it began to.",
    )
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
