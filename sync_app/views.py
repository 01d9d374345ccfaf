"""Peer-facing sync routes (native protocol, counter-app's push) and the public GET /cluster."""

from __future__ import annotations

from typing import Any

from django.http import HttpResponse
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from storage_app.http import read_body
from storage_app.public_auth import HasPublicToken
from storage_app.serializers import ErrorSerializer
from storage_app.views import READ_TOKEN_REQUIRED
from sync_app.auth import HasSyncToken
from sync_app.core.legacy_protocol import decode_legacy_sync
from sync_app.core.protocol import CONTENT_TYPE, decode, encode
from sync_app.serializers import ClusterSerializer, LegacySyncItemSerializer, MergeResultSerializer
from sync_app.sync_state import current_sync


class SyncView(APIView):
    """Base of the peer-facing sync views: JSON errors, COUNTER_SYNC_TOKEN enforced."""

    renderer_classes = APIView.renderer_classes[:1]  # JSON only: peers are programs
    permission_classes = [HasSyncToken]


class NullableBodySchema(AutoSchema):
    """The JSON body may be null too: counter-app (Go) marshals an empty state as null."""

    def get_operation(self, *args: Any, **kwargs: Any) -> dict[str, Any] | None:
        operation: dict[str, Any] | None = super().get_operation(*args, **kwargs)
        if operation is not None and "requestBody" in operation:
            operation["requestBody"]["content"]["application/json"]["schema"]["nullable"] = True
        return operation


class LegacySyncView(SyncView):
    """Merge a peer's state sent in counter-app's format."""

    schema = NullableBodySchema()

    @extend_schema(
        operation_id="sync_legacy_push",
        summary="Merge a peer's state (counter-app format)",
        description=(
            "`totals[i]` is node i's slot. Per key and slot the larger value wins. A malformed body changes nothing; "
            "a null body is an empty state."
        ),
        request={"application/json": LegacySyncItemSerializer(many=True)},
        responses={
            200: MergeResultSerializer,
            400: OpenApiResponse(ErrorSerializer),
            401: OpenApiResponse(ErrorSerializer),
            413: OpenApiResponse(ErrorSerializer),
        },
    )
    def post(self, request: Request) -> Response:
        sync = current_sync()
        config = sync.node.config
        sync.node.require_ready()
        body = read_body(request, config.max_sync_body_bytes, "COUNTER_MAX_SYNC_BODY_BYTES")
        keys, slots = decode_legacy_sync(body, config.max_slots)
        result = sync.node.merge_rows(keys, slots)
        # counter-app pushes its full state, so this peer has now told us its copy of our slot.
        sync.note_legacy_push(request.META.get("REMOTE_ADDR", ""))
        return Response({"received": result.received, "changed": result.changed, "added": result.added})


class NativeSyncView(SyncView):
    """The native protocol: one binary request message in, one answer message out."""

    @extend_schema(
        operation_id="sync_native",
        summary="Exchange a native sync message (docs/protocol.md)",
        description=(
            "Body and answer are binary messages (`application/x-counter-sync`): an exchange of "
            "deltas, a comparison of bucket digests, or the rows of some buckets. Errors are JSON: "
            "400 for a damaged message or another protocol version, 401 without the sync token, "
            "409 for a peer that must not sync with this node (another tokenizer, the same node id)."
        ),
        request={CONTENT_TYPE: OpenApiTypes.BINARY},
        responses={
            (200, CONTENT_TYPE): OpenApiTypes.BINARY,
            400: OpenApiResponse(ErrorSerializer),
            401: OpenApiResponse(ErrorSerializer),
            409: OpenApiResponse(ErrorSerializer),
            413: OpenApiResponse(ErrorSerializer),
        },
    )
    def post(self, request: Request) -> HttpResponse:
        sync = current_sync()
        sync.node.require_ready()
        body = read_body(request, sync.node.config.max_sync_body_bytes, "COUNTER_MAX_SYNC_BODY_BYTES")
        answer = sync.replica.handle(decode(body))
        return HttpResponse(encode(answer), content_type=CONTENT_TYPE)


class ClusterView(APIView):
    """This node and each of its peers as runsync last saw them."""

    permission_classes = [HasPublicToken]

    @extend_schema(
        operation_id="cluster_status",
        summary="Replication status",
        description=(
            "`node`: this node's id, incarnation, change sequence, keys, slots and tokenizer, and `pending`: "
            "why the node cannot yet prove its own slot complete (`reason`, null when it can), since when "
            "(`since`, Unix time), and the keys and increments it holds as pending until it has learned its "
            "slot from every seed (they are in its reads, and replicated once added to its slot). `peers`: for each "
            "seed, its address, node id, mode (native, legacy for counter-app, refused, self), whether it is "
            "reachable, the last successful sync and anti-entropy (Unix time), keys and bytes sent and received, "
            "errors, the last error, `lag`: how many of the changes this node had when the last round began the "
            "peer has not acknowledged, and `handed_over`: while this node leaves, whether the peer holds every "
            "change it had when it began to."
        ),
        responses={200: ClusterSerializer, 401: READ_TOKEN_REQUIRED},
    )
    def get(self, request: Request) -> Response:
        return Response(ClusterSerializer(current_sync().cluster_status()).data)
