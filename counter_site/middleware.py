"""Routing by port: the public port and the sync port serve different URLconfs."""

from __future__ import annotations

import gc
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from whitenoise.middleware import WhiteNoiseMiddleware

from storage_app.http import declared_length, is_chunked

BODY_READ_TIMEOUT = 30.0
LARGE_BODY_BYTES = 1 << 20


def _has_body(request: HttpRequest) -> bool:
    meta = request.META
    return meta.get("CONTENT_LENGTH") not in (None, "", "0") or "HTTP_TRANSFER_ENCODING" in meta


class PortRoutingMiddleware:
    """Requests that arrived on COUNTER_SYNC_PORT see only the sync URLconf.

    gunicorn sets SERVER_PORT from the listening socket's own address for TCP
    binds (not from the Host header), so a client cannot reach a sync route
    through the public port by forging a header.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.sync_port = str(settings.COUNTER.sync_port)

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.META.get("SERVER_PORT") == self.sync_port:
            request.urlconf = settings.SYNC_URLCONF
        connection = request.META.get("gunicorn.socket")
        if connection is not None and _has_body(request):
            # gunicorn's threads block on a body that stops arriving; a few slow
            # clients could otherwise hold every thread of the node. (Only then:
            # a socket with a timeout polls before every send, which costs reads.)
            connection.settimeout(BODY_READ_TIMEOUT)
        return self.get_response(request)


class PublicStaticFilesMiddleware(WhiteNoiseMiddleware):
    """WhiteNoise's static files, on the public port only."""

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if getattr(request, "urlconf", None) == settings.SYNC_URLCONF:
            return self.get_response(request)
        response: HttpResponse = super().__call__(request)
        return response


class CollectAfterLargeBodies:
    """Run the garbage collector after a request whose body was 1 MiB or more (or chunked).

    DRF's request, its view and its response refer to each other, so the
    memory of a request, its body included, comes back only when the cycle
    collector runs, and its full collections are rare: after a bulk sync of a
    million keys the worker would hold tens of megabytes of old bodies. A full
    collection costs about 20 ms, less than reading such a body.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if declared_length(request.META) >= LARGE_BODY_BYTES or is_chunked(request.META):
            gc.collect()
        return response
