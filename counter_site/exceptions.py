"""Errors become HTTP here, in one place, and every error body is JSON.

The apps raise their own exceptions (``CounterError`` subclasses with a stable
``code``); ``STATUS_OF`` gives each its status. Error bodies have the shape
``{"detail": "<what went wrong and what to do>", "code": "<stable code>"}``.
"""

from __future__ import annotations

import logging
from typing import Any

from django.http import HttpRequest, JsonResponse
from rest_framework import status
from rest_framework.exceptions import APIException
from rest_framework.response import Response
from rest_framework.views import exception_handler

from storage_app.core.batch import BadBatch
from storage_app.core.errors import (
    BadSyncPayload,
    BadTopQuery,
    BodyIncomplete,
    BodyTooLarge,
    CounterError,
    KeywordTooLong,
    LookupTooLarge,
    NodeIdClash,
    ShuttingDown,
    SnapshotCorrupt,
    SnapshotForeign,
    StillRecovering,
    TextNotUtf8,
    TooManySlots,
)
from storage_app.core.idempotency import BadIdempotencyKey, IdempotencyKeyReused
from storage_app.core.wal import LogWriteFailed
from sync_app.core.protocol import ProtocolError, UnsupportedVersion
from sync_app.core.replication import DuplicateNodeId, PeerRefused

logger = logging.getLogger(__name__)

# Each error's status; a subclass takes its nearest listed ancestor's. Unlisted: 500.
STATUS_OF: dict[type[CounterError], int] = {
    TextNotUtf8: status.HTTP_400_BAD_REQUEST,
    BadBatch: status.HTTP_400_BAD_REQUEST,
    LookupTooLarge: status.HTTP_400_BAD_REQUEST,
    BadTopQuery: status.HTTP_400_BAD_REQUEST,
    BadIdempotencyKey: status.HTTP_400_BAD_REQUEST,
    IdempotencyKeyReused: status.HTTP_409_CONFLICT,
    KeywordTooLong: status.HTTP_400_BAD_REQUEST,
    BodyIncomplete: status.HTTP_400_BAD_REQUEST,
    BadSyncPayload: status.HTTP_400_BAD_REQUEST,
    TooManySlots: status.HTTP_400_BAD_REQUEST,
    ProtocolError: status.HTTP_400_BAD_REQUEST,
    UnsupportedVersion: status.HTTP_400_BAD_REQUEST,
    SnapshotCorrupt: status.HTTP_400_BAD_REQUEST,  # a body in snapshot format (loadstate's) that is damaged
    SnapshotForeign: status.HTTP_400_BAD_REQUEST,
    PeerRefused: status.HTTP_409_CONFLICT,
    BodyTooLarge: status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
    StillRecovering: status.HTTP_503_SERVICE_UNAVAILABLE,
    ShuttingDown: status.HTTP_503_SERVICE_UNAVAILABLE,
    NodeIdClash: status.HTTP_503_SERVICE_UNAVAILABLE,
    LogWriteFailed: status.HTTP_507_INSUFFICIENT_STORAGE,
}


def status_of(error: CounterError) -> int:
    for kind in type(error).__mro__:
        if kind in STATUS_OF:
            return STATUS_OF[kind]
    return status.HTTP_500_INTERNAL_SERVER_ERROR


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """The apps' errors by ``STATUS_OF``; DRF's own (404, 405, 401, ...) with a ``code`` added."""
    if isinstance(exc, CounterError):
        response_status = status_of(exc)
        if isinstance(exc, PeerRefused):
            logger.warning("refused a sync request: %s", exc)
        elif isinstance(exc, LogWriteFailed):
            logger.error("refused a write: %s", exc)
        body: dict[str, Any] = {"detail": str(exc), "code": exc.code}
        if isinstance(exc, DuplicateNodeId):
            body["newcomer"] = "you" if exc.sender_is_newcomer else "me"
        response = Response(body, status=response_status)
        return response
    response = exception_handler(exc, context)
    if response is not None and isinstance(exc, APIException) and isinstance(response.data, dict):
        codes = exc.get_codes()
        response.data.setdefault("code", codes if isinstance(codes, str) else "invalid")
    return response


def json_not_found(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return JsonResponse({"detail": f"No route {request.path!r} on this port.", "code": "not_found"}, status=404)


SERVER_ERROR = {"detail": "Internal error; the node logged it.", "code": "server_error"}


def json_server_error(request: HttpRequest) -> JsonResponse:
    return JsonResponse(SERVER_ERROR, status=500)


def json_bad_request(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return JsonResponse({"detail": "Bad request.", "code": "bad_request"}, status=400)
