"""The dashboard at ``GET /`` and the figures its charts draw (``GET /history``).

The serving process samples the node every ``SAMPLE_INTERVAL`` seconds in a
background thread (started by ``counter_site/wsgi.py``), so a page opened now
shows the last minutes at once. The page itself is one template, one script
and one stylesheet served by the node: no CDN, no build step.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.renderers import JSONRenderer, TemplateHTMLRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.reverse import reverse
from rest_framework.views import APIView

from storage_app.core.history import History, Sample
from storage_app.node import current_node
from storage_app.public_auth import HasPublicToken
from storage_app.views import READ_TOKEN_REQUIRED
from sync_app.sync_state import current_sync

logger = logging.getLogger(__name__)

SAMPLE_INTERVAL = 2.0  # seconds
HISTORY = History(SAMPLE_INTERVAL, capacity=450)  # 15 minutes

_sampler_lock = threading.Lock()
_sampler: threading.Thread | None = None


def take_sample() -> Sample:
    """The node's running totals now: keys, texts and tokens counted, and sync bytes over every peer."""
    node = current_node()
    peers = current_sync().cluster_status()["peers"]
    sync_bytes = sum(int(peer.get("bytes_sent") or 0) + int(peer.get("bytes_received") or 0) for peer in peers)
    return Sample(
        time=time.time(),
        keys=len(node.store),
        texts=node.texts_indexed,
        tokens=node.tokens_indexed,
        sync_bytes=sync_bytes,
    )


def _sample_forever() -> None:
    while True:
        try:
            HISTORY.add(take_sample())
        except Exception:  # a failed sample is a gap in a chart, never the end of the worker
            logger.exception("dashboard sample failed")
        time.sleep(SAMPLE_INTERVAL)


def start_sampling() -> None:
    """Start the sampler thread of this process (once)."""
    global _sampler
    with _sampler_lock:
        if _sampler is None:
            _sampler = threading.Thread(target=_sample_forever, name="dashboard-sampler", daemon=True)
            _sampler.start()


class DashboardRenderer(TemplateHTMLRenderer):
    """The dashboard page, for a browser (``Accept: text/html``)."""

    template_name = "counter/dashboard.html"


class ApiRootView(APIView):
    """``GET /``: the dashboard in a browser; where to go from here for everyone else (JSON)."""

    # JSON first: a client that accepts anything (curl) gets the links.
    renderer_classes = [JSONRenderer, DashboardRenderer]

    @extend_schema(exclude=True)
    def get(self, request: Request) -> Response:
        return Response(
            {
                "keywords": reverse("keywords", request=request),
                "cluster": reverse("cluster", request=request),
                "history": reverse("history", request=request),
                "metrics": reverse("metrics", request=request),
                "openapi": reverse("schema", request=request),
                "swagger_ui": reverse("swagger-ui", request=request),
            }
        )


class HistoryPointSerializer(serializers.Serializer):
    time = serializers.FloatField(help_text="When the sample was taken (Unix time).")
    keys = serializers.IntegerField(min_value=0, help_text="Keywords in the store.")
    texts_per_second = serializers.FloatField(
        allow_null=True, help_text="Texts counted per second since the sample before (null for the first)."
    )
    tokens_per_second = serializers.FloatField(allow_null=True, help_text="Tokens counted per second.")
    sync_bytes_per_second = serializers.FloatField(
        allow_null=True, help_text="Sync bytes sent and received per second, over every peer."
    )


class HistorySerializer(serializers.Serializer):
    interval = serializers.FloatField(help_text="Seconds between samples.")
    points = HistoryPointSerializer(many=True, help_text="Oldest first; at most the last 15 minutes.")


class HistoryView(APIView):
    """The node's figures over the last minutes (the dashboard's charts)."""

    permission_classes = [HasPublicToken]

    @extend_schema(
        operation_id="history",
        summary="The node's figures over the last minutes",
        description=(
            f"Sampled every {SAMPLE_INTERVAL:g} s by the serving process: keys in the store, and the indexing "
            "and sync rates between samples. Rates count this node's own work only: texts posted to it and "
            "sync traffic to and from its peers."
        ),
        responses={200: HistorySerializer, 401: READ_TOKEN_REQUIRED},
    )
    def get(self, request: Request) -> Response:
        data: dict[str, Any] = {"interval": HISTORY.interval, "points": HISTORY.points()}
        return Response(HistorySerializer(data).data)
