"""Routing by port: the public port and the sync port serve different URLconfs."""

from __future__ import annotations

import gc
import math
import time
from collections.abc import Callable

from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.http import HttpRequest, HttpResponse, JsonResponse
from whitenoise.middleware import WhiteNoiseMiddleware

from storage_app.core.rate_limit import RateLimiter
from storage_app.http import declared_length, is_chunked

LARGE_BODY_BYTES = 1 << 20


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
        return self.get_response(request)


class AllowedHostsMiddleware:
    """The public API answers only to the host names in COUNTER_ALLOWED_HOSTS (all, by default).

    Django checks the Host header only when something asks for it, which a JSON
    API rarely does; this asks on every public request, so a request naming
    another host is refused with a JSON 400 before any view runs. Probes and
    /metrics are exempt (kubelet and Prometheus address a node by its IP), and
    so is the sync port: peers address each other by their advertised URLs,
    and the internal token authenticates them.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.sync_port = str(settings.COUNTER.sync_port)
        self.everyone = "*" in settings.ALLOWED_HOSTS

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if self.everyone or request.META.get("SERVER_PORT") == self.sync_port or request.path in _PROBES:
            return self.get_response(request)
        try:
            request.get_host()
        except DisallowedHost:
            named = request.META.get("HTTP_HOST", "")
            return JsonResponse(
                {
                    "detail": (
                        f"This node does not answer to the host {named!r} (the request's Host header); it answers "
                        f"to {', '.join(settings.ALLOWED_HOSTS)} (COUNTER_ALLOWED_HOSTS). Nothing was done."
                    ),
                    "code": "host_not_allowed",
                },
                status=400,
            )
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


class RateLimitMiddleware:
    """COUNTER_RATE_LIMIT requests per second per client address on the public port (off when 0).

    Answers 429 with Retry-After past it. The address is the TCP peer's: behind
    a proxy every client shares the proxy's bucket, so limit at the proxy instead.
    Health and readiness probes and /metrics (monitoring) are never limited.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        config = settings.COUNTER
        self.limiter = RateLimiter(config.rate_limit, config.rate_burst) if config.rate_limit > 0 else None

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if (
            self.limiter is None
            or getattr(request, "urlconf", None) == settings.SYNC_URLCONF
            or request.path in _PROBES
        ):
            return self.get_response(request)
        wait = self.limiter.wait_for(request.META.get("REMOTE_ADDR", ""), time.monotonic())
        if wait <= 0:
            return self.get_response(request)
        config = settings.COUNTER
        response = JsonResponse(
            {
                "detail": (
                    f"Too many requests from {request.META.get('REMOTE_ADDR', 'this address')}: at most "
                    f"{config.rate_limit:g} per second with bursts of {config.rate_burst} (COUNTER_RATE_LIMIT, "
                    f"COUNTER_RATE_BURST). Retry after {math.ceil(wait)} s; this request was not served."
                ),
                "code": "rate_limited",
            },
            status=429,
        )
        response["Retry-After"] = str(math.ceil(wait))
        return response


_PROBES = frozenset({"/healthz", "/readyz", "/metrics"})


class MetricsMiddleware:
    """Counts every answered request and its time for /metrics (outermost, so all time is in it)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        # Imported here, once: the metrics module imports the apps, which this module must not
        # do at import time (settings name it before Django is set up).
        from counter_site.metrics import record_request

        self.get_response = get_response
        self.record_request = record_request

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = self.get_response(request)
        self.record_request(request, response, time.perf_counter() - started)
        return response
