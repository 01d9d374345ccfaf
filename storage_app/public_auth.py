"""Optional tokens on the public port: COUNTER_PUBLIC_TOKEN for writes, COUNTER_PUBLIC_READ_TOKEN for reads."""

from __future__ import annotations

import secrets
from typing import Any

from django.http import HttpRequest
from rest_framework import status
from rest_framework.exceptions import APIException
from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.request import Request

from storage_app.node import current_node


def bearer_matches(request: HttpRequest | Request, expected: str) -> bool:
    """Does the request carry ``Authorization: Bearer <expected>`` (compared in constant time)?"""
    return authorization_is_bearer(request.META.get("HTTP_AUTHORIZATION", ""), expected)


def authorization_is_bearer(header: str, expected: str) -> bool:
    """Is the Authorization header's value ``Bearer <expected>`` (compared in constant time)?"""
    scheme, _, token = header.partition(" ")
    return scheme.lower() == "bearer" and secrets.compare_digest(token.strip().encode(), expected.encode())


class PublicTokenRequired(APIException):
    status_code = status.HTTP_401_UNAUTHORIZED
    default_code = "public_token_required"


def reads_need_a_token() -> bool:
    return bool(current_node().config.public_read_token)


class HasPublicToken(BasePermission):
    """Writes need COUNTER_PUBLIC_TOKEN when it is set; reads need COUNTER_PUBLIC_READ_TOKEN when that is set."""

    def has_permission(self, request: Request, view: Any) -> bool:
        config = current_node().config
        reading = request.method in SAFE_METHODS
        expected, variable = (
            (config.public_read_token, "COUNTER_PUBLIC_READ_TOKEN")
            if reading
            else (config.public_token, "COUNTER_PUBLIC_TOKEN")
        )
        if expected and not bearer_matches(request, expected):
            what = "Reading counts" if reading else "Counting a text"
            raise PublicTokenRequired(
                f"{what} on this node needs 'Authorization: Bearer <{variable}>'; nothing was done."
            )
        return True
