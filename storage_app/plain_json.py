"""A shortcut past DRF's request machinery for plain JSON reads.

DRF wraps the request, negotiates the renderer, checks permissions and
throttles, and renders through a template response: on a read of one keyword
that is about three times the work of the read itself. A ``GET`` that asks
for nothing but JSON (no Accept header, ``*/*`` or ``application/json``, no
``?format=``) is answered directly, with the bytes and headers DRF's
``JSONRenderer`` would give. Everything else, errors included, takes DRF's path.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import unquote_plus

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from rest_framework.request import Request
from rest_framework.settings import api_settings

from storage_app.public_auth import reads_need_a_token

# The Accept headers of a client that wants nothing but JSON.
PLAIN_JSON_ACCEPT = frozenset({None, "*/*", "application/json"})


def wants_plain_json(request: HttpRequest) -> bool:
    """A GET whose answer DRF would render with its JSON renderer, whatever the view.

    A query string that mentions the format parameter anywhere (even inside a
    value) takes DRF's path, which reads it properly.
    """
    return (
        request.method == "GET"
        and request.META.get("HTTP_ACCEPT") in PLAIN_JSON_ACCEPT
        and str(api_settings.URL_FORMAT_OVERRIDE) not in request.META.get("QUERY_STRING", "")
    )


def query_values(request: HttpRequest | Request, name: str) -> list[str]:
    """``request.GET.getlist(name)``; for an ASCII query string without building Django's QueryDict.

    The same rules as Django's (``urllib.parse.parse_qsl`` with blank values
    kept, ``+`` as a space, UTF-8 with replacement); a hundred keywords cost a
    third of the time. Query strings over Django's field limit take its path,
    which refuses them.
    """
    query: str = request.META.get("QUERY_STRING", "")
    limit = settings.DATA_UPLOAD_MAX_NUMBER_FIELDS
    if not query.isascii() or (limit is not None and query.count("&") >= limit):
        return list(request.GET.getlist(name))
    values = []
    for field in query.split("&"):
        if not field:
            continue
        key, _, value = field.partition("=")
        if key == name or (("%" in key or "+" in key) and unquote_plus(key) == name):
            values.append(unquote_plus(value) if "%" in value or "+" in value else value)
    return values


def json_response(data: Any, allow: str) -> HttpResponse:
    """``data`` as DRF's compact, UTF-8 ``JSONRenderer`` writes it, with DRF's Vary and Allow headers."""
    body = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8")
    response = HttpResponse(body, content_type="application/json")
    response["Vary"] = "Accept"
    response["Allow"] = allow
    # With a length gunicorn sends the body as is, not as chunks (one write fewer).
    response["Content-Length"] = str(len(body))
    return response


class PlainJSONReads:
    """Mixin for an ``APIView`` whose ``get`` returns ``Response(self.read(request, ...))``."""

    def read(self, request: HttpRequest | Request, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        # A read token is checked on DRF's path (the view's permission classes).
        if wants_plain_json(request) and not reads_need_a_token():
            try:
                data = self.read(request, *args, **kwargs)
            except Exception:  # noqa: BLE001 - reads change nothing: DRF's path reads again and renders the error
                pass
            else:
                return json_response(data, ", ".join(self.allowed_methods))  # type: ignore[attr-defined]
        return super().dispatch(request, *args, **kwargs)  # type: ignore[misc]
