"""Domain errors become HTTP here, and every error body is JSON.

Error bodies have the shape ``{"detail": "<what went wrong and what to do>",
"code": "<stable machine-readable code>"}``.
"""

from __future__ import annotations

import logging
from typing import Any

from django.http import HttpRequest, JsonResponse
from rest_framework import status
from rest_framework.exceptions import APIException
from rest_framework.response import Response
from rest_framework.views import exception_handler

from storage_app.core.errors import BadSyncPayload, CounterError, SnapshotCorrupt, SnapshotForeign, TooManySlots
from storage_app.core.wal import LogWriteFailed
from sync_app.core.protocol import ProtocolError, UnsupportedVersion
from sync_app.core.replication import DuplicateNodeId, OwnAddress, PeerRefused

logger = logging.getLogger(__name__)

_STATUS_OF: dict[type[CounterError], int] = {
    BadSyncPayload: status.HTTP_400_BAD_REQUEST,
    TooManySlots: status.HTTP_400_BAD_REQUEST,
    SnapshotCorrupt: status.HTTP_400_BAD_REQUEST,  # a body in snapshot format (loadstate's) that is damaged
    SnapshotForeign: status.HTTP_400_BAD_REQUEST,
    ProtocolError: status.HTTP_400_BAD_REQUEST,
    UnsupportedVersion: status.HTTP_400_BAD_REQUEST,
    PeerRefused: status.HTTP_409_CONFLICT,
    DuplicateNodeId: status.HTTP_409_CONFLICT,
    OwnAddress: status.HTTP_409_CONFLICT,
}


class PayloadTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "Request body is too large."
    default_code = "payload_too_large"


class BodyIncomplete(APIException):
    status_code = status.HTTP_400_BAD_REQUEST
    default_detail = "The request body is incomplete; nothing was counted."
    default_code = "incomplete_body"


class InvalidText(APIException):
    status_code = status.HTTP_400_BAD_REQUEST
    default_detail = "Request body is not valid UTF-8 text."
    default_code = "invalid_utf8"


class NotReadyYet(APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "The node is still loading its snapshot and log; retry in a moment (GET /readyz says when)."
    default_code = "not_ready"


class ServiceUnavailable(APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "The node is shutting down and takes no more writes; retry on another node."
    default_code = "unavailable"


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's handler, plus the core's errors, plus a ``code`` in every body."""
    from storage_app.services import NotReady

    if isinstance(exc, NotReady):
        exc = NotReadyYet()
    if isinstance(exc, LogWriteFailed):
        logger.error("refused a write: %s", exc)
        return Response({"detail": str(exc), "code": exc.code}, status=status.HTTP_507_INSUFFICIENT_STORAGE)
    if isinstance(exc, CounterError):
        if isinstance(exc, PeerRefused):
            logger.warning("refused a sync request: %s", exc)
        return Response(
            {"detail": str(exc), "code": exc.code},
            status=_STATUS_OF.get(type(exc), status.HTTP_500_INTERNAL_SERVER_ERROR),
        )
    response = exception_handler(exc, context)
    if response is not None and isinstance(exc, APIException) and isinstance(response.data, dict):
        codes = exc.get_codes()
        response.data.setdefault("code", codes if isinstance(codes, str) else "invalid")
    if response is not None and isinstance(exc, PayloadTooLarge):
        # The unread rest of the body would otherwise be parsed as the next request.
        response["Connection"] = "close"
    return response


def json_not_found(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return JsonResponse({"detail": f"No route {request.path!r} on this port.", "code": "not_found"}, status=404)


def json_server_error(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"detail": "Internal error; the node logged it.", "code": "server_error"}, status=500)


def json_bad_request(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return JsonResponse({"detail": "Bad request.", "code": "bad_request"}, status=400)
