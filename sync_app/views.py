"""Sync port: counter-app's full-state push, so mixed clusters converge."""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from counter_site.http import read_body
from storage_app import services
from storage_app.serializers import ErrorSerializer
from sync_app.core.legacy_protocol import decode_legacy_sync
from sync_app.serializers import LegacySyncItemSerializer, MergeResultSerializer


class LegacySyncView(APIView):
    """Merge a peer's state sent in counter-app's format."""

    renderer_classes = APIView.renderer_classes[:1]  # JSON only: peers are programs

    @extend_schema(
        operation_id="sync_legacy_push",
        summary="Merge a peer's state (counter-app format)",
        description=(
            "`totals[i]` is node i's slot. Per key and slot the larger value wins. A malformed body changes nothing."
        ),
        request=LegacySyncItemSerializer(many=True),
        responses={200: MergeResultSerializer, 400: OpenApiResponse(ErrorSerializer), 413: OpenApiTypes.OBJECT},
    )
    def post(self, request: Request) -> Response:
        body = read_body(request, settings.COUNTER_MAX_SYNC_BODY_BYTES, "COUNTER_MAX_SYNC_BODY_BYTES")
        keys, slots = decode_legacy_sync(body, services.get_store().max_slots)
        result = services.merge_rows(keys, slots)
        return Response({"received": result.received, "changed": result.changed, "added": result.added})
