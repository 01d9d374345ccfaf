"""Requests with large bodies give their memory back at once, not at the next full collection."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator
from typing import Any

import pytest
from django.http import HttpRequest, HttpResponse
from django.test import RequestFactory

from counter_site.middleware import LARGE_BODY_BYTES, CollectAfterLargeBodies


class Body:
    """Stands for a request body that a reference cycle keeps alive (DRF's request and view)."""


@pytest.fixture
def collector_held_off() -> Iterator[None]:
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def handled(meta: dict[str, Any]) -> weakref.ref[Body]:
    """Pass a request through the middleware to a view that leaves a cycle holding a body."""
    body = Body()

    def view(request: HttpRequest) -> HttpResponse:
        cycle: dict[str, Any] = {"body": body}
        cycle["self"] = cycle
        return HttpResponse("ok")

    request = RequestFactory().post("/keywords", **meta)
    CollectAfterLargeBodies(view)(request)
    return weakref.ref(body)


@pytest.mark.usefixtures("collector_held_off")
@pytest.mark.parametrize(
    "meta",
    [{"CONTENT_LENGTH": str(LARGE_BODY_BYTES)}, {"HTTP_TRANSFER_ENCODING": "chunked", "CONTENT_LENGTH": ""}],
)
def test_a_large_or_chunked_body_is_freed_when_its_request_is_done(meta: dict[str, Any]) -> None:
    assert handled(meta)() is None


@pytest.mark.usefixtures("collector_held_off")
def test_small_bodies_are_left_to_the_collector() -> None:
    body = handled({"CONTENT_LENGTH": str(LARGE_BODY_BYTES - 1)})
    assert body() is not None
    gc.collect()
    assert body() is None
