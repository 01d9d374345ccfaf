"""Shapes of the public API's bodies (used for output and for the OpenAPI document)."""

from __future__ import annotations

from rest_framework import serializers


class OccurrenceSerializer(serializers.Serializer):
    key = serializers.CharField(help_text="The keyword exactly as it was asked for.")
    count = serializers.IntegerField(min_value=0, help_text="Occurrences summed over every node of the cluster.")


class TopKeywordSerializer(serializers.Serializer):
    key = serializers.CharField(
        allow_null=True, help_text="The keyword; null when no node that knows its text has synced with this one."
    )
    hash = serializers.CharField(
        required=False,
        help_text="Only when key is null: the keyword's CRC-64 (as counter-app keys it), 0x and 16 hex digits.",
    )
    count = serializers.IntegerField(min_value=1, help_text="Occurrences summed over every node of the cluster.")


class IndexResultSerializer(serializers.Serializer):
    tokens = serializers.IntegerField(min_value=0, help_text="Tokens found in the text, each counted once.")
    keywords = serializers.IntegerField(min_value=0, help_text="Distinct keywords among those tokens.")


class ErrorSerializer(serializers.Serializer):
    detail = serializers.CharField(help_text="What went wrong and what to do about it.")
    code = serializers.CharField(help_text="A stable machine-readable error code.")
