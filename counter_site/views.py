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
