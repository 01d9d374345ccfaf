"""Internal routes (sync port) through which the node's own commands drive its store."""

from __future__ import annotations

from django.http import StreamingHttpResponse
from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from storage_app.core.snapshot import decode_snapshot
from storage_app.http import read_body
from storage_app.internal_auth import IsLocalNodeCommand
from storage_app.node import current_node
from storage_app.top import parse_top_query, top_entries


class InternalView(APIView):
    permission_classes = [IsLocalNodeCommand]
    renderer_classes = APIView.renderer_classes[:1]  # JSON only


@extend_schema(exclude=True)
class StateView(InternalView):
    """GET: the whole store, streamed in snapshot format (for runsync)."""

    def get(self, request: Request) -> StreamingHttpResponse:
        return StreamingHttpResponse(current_node().snapshot_stream(), content_type="application/octet-stream")


@extend_schema(exclude=True)
class TopView(InternalView):
    """GET: what the public ``GET /top`` answers (for manage.py topkeywords)."""

    def get(self, request: Request) -> Response:
        n, prefix = parse_top_query({name: request.GET.getlist(name) for name in ("n", "prefix")})
        return Response(top_entries(current_node().top(n, prefix)))


@extend_schema(exclude=True)
class DumpView(InternalView):
    """POST: write the snapshot file now if anything changed (``?force=1``: even if not)."""

    def post(self, request: Request) -> Response:
        result = current_node().dump(force=request.query_params.get("force") == "1")
        return Response(
            {"written": result.written, "keys": result.keys, "bytes": result.size_bytes, "seconds": result.seconds}
        )


@extend_schema(exclude=True)
class LoadView(InternalView):
    """POST rows in snapshot format (from loadstate): merge them, max per slot."""

    def post(self, request: Request) -> Response:
        snapshot = decode_snapshot(read_body(request, 1 << 40, "internal"))
        result = current_node().merge_rows(snapshot.keys, snapshot.slots, texts=snapshot.texts)
        return Response({"received": result.received, "changed": result.changed, "added": result.added})


@extend_schema(exclude=True)
class DrainView(InternalView):
    """POST: stop taking client writes (shutdown), once those in flight are done."""

    def post(self, request: Request) -> Response:
        current_node().close_writes()
        return Response({"writes": "closed"})
