"""Peer authentication on the sync port: COUNTER_SYNC_TOKEN as a bearer token."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from rest_framework import status
from rest_framework.exceptions import APIException
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from storage_app.public_auth import bearer_matches


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
        if expected and not bearer_matches(request, expected):
            raise SyncUnauthorized
        return True
