from __future__ import annotations

from typing import Any

import pytest
from django.http import HttpRequest, HttpResponse
from django.test import RequestFactory

from counter_site.middleware import BODY_READ_TIMEOUT, PortRoutingMiddleware


class RecordingSocket:
    def __init__(self) -> None:
        self.timeouts: list[float | None] = []

    def settimeout(self, timeout: float | None) -> None:
        self.timeouts.append(timeout)


@pytest.mark.parametrize(
    ("meta", "timeouts"),
    [
        ({"CONTENT_LENGTH": "12"}, [BODY_READ_TIMEOUT]),
        ({"HTTP_TRANSFER_ENCODING": "chunked"}, [BODY_READ_TIMEOUT]),
        ({"CONTENT_LENGTH": ""}, []),
        ({"CONTENT_LENGTH": "0"}, []),
        ({}, []),
    ],
)
def test_only_requests_with_a_body_get_the_body_read_timeout(meta: dict[str, Any], timeouts: list[float]) -> None:
    # A socket with a timeout polls before every send; requests without a body have nothing to wait for.
    socket = RecordingSocket()
    request = RequestFactory().generic("GET", "/keywords")
    request.META.pop("CONTENT_LENGTH", None)
    request.META.update(meta, **{"gunicorn.socket": socket})

    def view(request: HttpRequest) -> HttpResponse:
        return HttpResponse("ok")

    PortRoutingMiddleware(view)(request)
    assert socket.timeouts == timeouts
