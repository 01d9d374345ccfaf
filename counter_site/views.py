from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.reverse import reverse
from rest_framework.views import APIView


class ApiRootView(APIView):
    """Where to go from here."""

    @extend_schema(exclude=True)
    def get(self, request: Request) -> Response:
        return Response(
            {
                "keywords": reverse("keywords", request=request),
                "openapi": reverse("schema", request=request),
                "swagger_ui": reverse("swagger-ui", request=request),
            }
        )


class HealthView(APIView):
    """200 whenever the node's process serves requests."""

    renderer_classes = APIView.renderer_classes[:1]

    @extend_schema(exclude=True)
    def get(self, request: Request) -> Response:
        from django.conf import settings

        from storage_app.services import get_store

        return Response({"status": "ok", "node_id": settings.COUNTER_NODE_ID, "keys": len(get_store())})


class ReadyView(APIView):
    """200 once the node has recovered its state (snapshot and log) and serves; 503 before."""

    renderer_classes = APIView.renderer_classes[:1]

    @extend_schema(exclude=True)
    def get(self, request: Request) -> Response:
        from storage_app.services import is_ready

        if is_ready():
            return Response({"status": "ready"})
        return Response({"status": "recovering", "detail": "loading the snapshot and replaying the log"}, status=503)
