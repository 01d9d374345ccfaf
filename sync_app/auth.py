"""Peer authentication on the sync port: COUNTER_SYNC_TOKEN as a bearer token."""

from __future__ import annotations

import secrets
from typing import Any

from django.conf import settings
from rest_framework import status
from rest_framework.exceptions import APIException
from rest_framework.permissions import BasePermission
from rest_framework.request import Request


class SyncUnauthorized(APIException):
    status_code = status.HTTP_401_UNAUTHORIZED
    default_detail = "This node's sync port needs 'Authorization: Bearer <COUNTER_SYNC_TOKEN>'."
    default_code = "sync_token_required"


def sync_token_header(token: str) -> dict[str, str]:
    """The header a peer sends (none when no token is configured)."""
    return {"Authorization": f"Bearer {token}"} if token else {}


class HasSyncToken(BasePermission):
    """With COUNTER_SYNC_TOKEN set, a request must carry it (compared in constant time)."""

    def has_permission(self, request: Request, view: Any) -> bool:
        expected: str = settings.COUNTER.sync_token
        if not expected:
            return True
        presented = request.META.get("HTTP_AUTHORIZATION", "")
        scheme, _, token = presented.partition(" ")
        if scheme.lower() != "bearer" or not secrets.compare_digest(token.strip().encode(), expected.encode()):
            raise SyncUnauthorized
        return True
