"""A shortcut past Django and DRF for the most common write: one plain text to ``POST /keywords``.

A 1 KB text costs the node's worker about 2 ms of CPU, and most of it is not
counting: Django's request and response objects, the middleware stack, URL
resolving and DRF's dispatch are about a quarter. This WSGI wrapper answers a
``POST /keywords`` on the public port that needs none of them (a declared
body within COUNTER_MAX_BODY_BYTES, no query string, JSON or no Accept
header, not an NDJSON batch, no rate limit configured, the write token if one
is set, a Host header COUNTER_ALLOWED_HOSTS allows), with the same bytes and
headers as the DRF view, and counts it for ``/metrics`` under the same labels.

Everything else takes Django's path, and so does every refusal: when the
node refuses the text (not UTF-8, a bad or reused Idempotency-Key, still
recovering, shutting down, ...) nothing was counted, and the request is
handed to Django with its body, where the view meets the same refusal and
renders it as it always does. So the error rules stay in one place.
"""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from django.conf import settings
from django.http.request import split_domain_port, validate_host

from counter_site.exceptions import SERVER_ERROR
from counter_site.metrics import HTTP_DURATION, HTTP_REQUESTS
from storage_app.core.batch import MEDIA_TYPE as BATCH_MEDIA_TYPE
from storage_app.core.errors import CounterError
from storage_app.core.idempotency import check_key
from storage_app.node import current_node
from storage_app.plain_json import PLAIN_JSON_ACCEPT
from storage_app.public_auth import authorization_is_bearer

logger = logging.getLogger("django.request")

WSGIApplication = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

ROUTE = "keywords"  # the URL pattern's route, as /metrics labels the DRF view's requests
_SERVER_ERROR = json.dumps(SERVER_ERROR).encode()


class FastKeywordWrites:
    """WSGI middleware: plain ``POST /keywords`` answered here, every other request by ``django_application``."""

    def __init__(self, django_application: WSGIApplication) -> None:
        config = settings.COUNTER
        self.django_application = django_application
        self.public_port = str(config.public_port)
        self.limit = config.max_body_bytes
        self.token = config.public_token
        self.enabled = config.rate_limit <= 0  # the rate limit is the middleware's
        self.allowed_hosts = None if "*" in settings.ALLOWED_HOSTS else list(settings.ALLOWED_HOSTS)
        # What the DRF view's answer carries besides its body: the renderer's type, DRF's
        # Vary and Allow, and the security middleware's headers.
        self.headers = [
            ("Content-Type", "application/json"),
            ("Vary", "Accept"),
            ("Allow", "GET, POST, HEAD, OPTIONS"),
            ("X-Frame-Options", settings.X_FRAME_OPTIONS),
            ("X-Content-Type-Options", "nosniff"),
            ("Referrer-Policy", settings.SECURE_REFERRER_POLICY),
            ("Cross-Origin-Opener-Policy", settings.SECURE_CROSS_ORIGIN_OPENER_POLICY),
        ]

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        length = self.plain_write_length(environ)
        if length is None:
            return self.django_application(environ, start_response)
        started = time.perf_counter()
        try:
            body = environ["wsgi.input"].read(length) if length else b""
        except OSError:  # the body did not arrive in time (COUNTER_BODY_TIMEOUT)
            body = b""
        header = environ.get("HTTP_IDEMPOTENCY_KEY")
        result = None
        if len(body) == length:  # else the client stopped sending: the view says so, in its words
            try:
                result = current_node().index(body, check_key(header) if header is not None else None)
            except CounterError:
                pass  # a refusal: nothing was counted
            except Exception:
                # Not a refusal, so the text may have been counted: never count it again on the
                # other path. Logged, and answered as Django's handler500 answers.
                logger.exception("Internal Server Error: /keywords")
                return self.answer(start_response, "500 Internal Server Error", _SERVER_ERROR, started, "500")
        if result is None:
            environ["wsgi.input"] = io.BytesIO(body)
            return self.django_application(environ, start_response)
        answer = json.dumps({"tokens": result.tokens, "keywords": result.keywords}, separators=(",", ":")).encode()
        extra = [("Idempotent-Replayed", "true")] if result.replayed else []
        return self.answer(start_response, "200 OK", answer, started, "200", extra)

    def answer(
        self,
        start_response: Callable[..., Any],
        status: str,
        body: bytes,
        started: float,
        code: str,
        extra: list[tuple[str, str]] | None = None,
    ) -> list[bytes]:
        start_response(status, [*self.headers, ("Content-Length", str(len(body))), *(extra or [])])
        HTTP_REQUESTS.labels(ROUTE, "POST", code).inc()
        HTTP_DURATION.labels(ROUTE, "POST").observe(time.perf_counter() - started)
        return [body]

    def plain_write_length(self, environ: dict[str, Any]) -> int | None:
        """The body length of a request this shortcut answers; None for every other request."""
        if not (
            self.enabled
            and environ.get("REQUEST_METHOD") == "POST"
            and environ.get("PATH_INFO") == "/keywords"
            and environ.get("SERVER_PORT") == self.public_port
            and not environ.get("QUERY_STRING")
            and environ.get("HTTP_ACCEPT") in PLAIN_JSON_ACCEPT
            and "HTTP_TRANSFER_ENCODING" not in environ
        ):
            return None
        declared = environ.get("CONTENT_LENGTH") or "0"
        if not declared.isdigit() or int(declared) > self.limit:
            return None
        if environ.get("CONTENT_TYPE", "").partition(";")[0].strip().lower() == BATCH_MEDIA_TYPE:
            return None
        if self.token and not authorization_is_bearer(environ.get("HTTP_AUTHORIZATION", ""), self.token):
            return None
        if self.allowed_hosts is not None and not validate_host(
            split_domain_port(environ.get("HTTP_HOST", ""))[0], self.allowed_hosts
        ):
            return None  # Django's middleware refuses it
        return int(declared)
