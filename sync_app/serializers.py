from __future__ import annotations

from rest_framework import serializers


class LegacySyncItemSerializer(serializers.Serializer):
    hash_keyword = serializers.IntegerField(min_value=0, max_value=(1 << 64) - 1)
    totals = serializers.ListField(child=serializers.IntegerField(min_value=0, max_value=(1 << 64) - 1))


class MergeResultSerializer(serializers.Serializer):
    received = serializers.IntegerField(help_text="Distinct keys in the body.")
    changed = serializers.IntegerField(help_text="Keys whose slots grew, new keys included.")
    added = serializers.IntegerField(help_text="Keys this node had not seen before.")
