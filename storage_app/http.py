"""Reading request bodies against a size limit, the same way on both ports."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.http import HttpRequest
from rest_framework.request import Request

from storage_app.core.errors import BodyIncomplete, BodyTooLarge


def declared_length(meta: Mapping[str, Any]) -> int:
    """The request's Content-Length (0 when absent or not a number)."""
    try:
        return int(meta.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return 0


def is_chunked(meta: Mapping[str, Any]) -> bool:
    return "chunked" in str(meta.get("HTTP_TRANSFER_ENCODING", "")).lower()


def read_body(request: Request | HttpRequest, limit: int, setting: str) -> bytes:
    """The raw body, whatever its Content-Type; ``BodyTooLarge`` past ``limit`` bytes.

    A declared Content-Length over the limit is refused before reading anything.
    A chunked body (no Content-Length) is read up to one byte past the limit,
    since Django itself would read it as empty.
    """
    http_request: HttpRequest = request._request if isinstance(request, Request) else request
    too_large = BodyTooLarge(f"Request body is larger than {setting}={limit} bytes; send it in smaller parts.")
    declared = declared_length(http_request.META)
    if declared > limit:
        raise too_large
    if is_chunked(http_request.META):
        stream = http_request.META["wsgi.input"]
        parts: list[bytes] = []
        remaining = limit + 1
        while remaining > 0:
            part = stream.read(min(remaining, 1 << 20))
            if not part:
                break
            parts.append(part)
            remaining -= len(part)
        body = b"".join(parts)
    else:
        try:
            body = http_request.body
        except OSError:
            raise BodyIncomplete("The request body stopped arriving; nothing was counted.") from None
        if len(body) != declared:
            # The client promised more than it sent (it disconnected): counting a
            # cut-off text would count a fragment, and its retry twice.
            raise BodyIncomplete(
                f"The request body ended after {len(body)} of the {declared} bytes its Content-Length "
                "announced; nothing was counted."
            )
    if len(body) > limit:
        raise too_large
    return body
