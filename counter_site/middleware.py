"""Routing by port: the public port and the sync port serve different URLconfs."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from whitenoise.middleware import WhiteNoiseMiddleware

BODY_READ_TIMEOUT = 30.0


class PortRoutingMiddleware:
    """Requests that arrived on COUNTER_SYNC_PORT see only the sync URLconf.

    gunicorn sets SERVER_PORT from the listening socket's own address for TCP
    binds (not from the Host header), so a client cannot reach a sync route
    through the public port by forging a header.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.sync_port = str(settings.COUNTER_SYNC_PORT)

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.META.get("SERVER_PORT") == self.sync_port:
            request.urlconf = settings.SYNC_URLCONF
        connection = request.META.get("gunicorn.socket")
        if connection is not None:
            # gunicorn's threads block on a body that stops arriving; a few slow
            # clients could otherwise hold every thread of the node.
            connection.settimeout(BODY_READ_TIMEOUT)
        return self.get_response(request)


class PublicStaticFilesMiddleware(WhiteNoiseMiddleware):
    """WhiteNoise's static files, on the public port only."""

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if getattr(request, "urlconf", None) == settings.SYNC_URLCONF:
            return self.get_response(request)
        response: HttpResponse = super().__call__(request)
        return response
