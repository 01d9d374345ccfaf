"""Plain JSON reads skip DRF's machinery; what they answer must be what DRF would."""

from __future__ import annotations

import pytest
from django.http import QueryDict
from django.test import RequestFactory
from hypothesis import given
from hypothesis import strategies as st

from storage_app.node import Node, replace_node
from storage_app.plain_json import query_values, wants_plain_json
from tests.conftest import PortClient

QUERY_PARTS = st.sampled_from(
    ["keywords", "format", "=", "&", "+", "%", "%2", "%41", "%C3%A9", "%E9", "%ZZ", "key%77ords", "a", " ", ";", "é"]
)


@given(st.lists(QUERY_PARTS, max_size=20).map("".join))
def test_query_values_reads_a_query_string_exactly_like_django(query: str) -> None:
    request = RequestFactory().get("/keywords")
    request.META["QUERY_STRING"] = query.encode("utf-8").decode("latin-1")  # as a WSGI server passes it
    expected = QueryDict(query.encode("utf-8"))
    for name in ("keywords", "format", "a"):
        assert query_values(request, name) == expected.getlist(name)


def test_only_gets_that_ask_for_nothing_but_json_take_the_short_path() -> None:
    factory = RequestFactory()
    assert wants_plain_json(factory.get("/keywords?keywords=a"))
    assert wants_plain_json(factory.get("/keywords", HTTP_ACCEPT="*/*"))
    assert wants_plain_json(factory.get("/keywords", HTTP_ACCEPT="application/json"))
    assert not wants_plain_json(factory.get("/keywords", HTTP_ACCEPT="text/html"))
    assert not wants_plain_json(factory.get("/keywords", HTTP_ACCEPT="application/json; indent=4"))
    assert not wants_plain_json(factory.get("/keywords?format=api"))
    assert not wants_plain_json(factory.post("/keywords"))


@pytest.mark.parametrize(
    "path", ["/keywords?keywords=the&keywords=Caf%C3%A9&keywords=nothing&keywords=", "/keywords/the", "/keywords"]
)
def test_the_short_path_answers_what_drf_answers(public_client: PortClient, path: str) -> None:
    public_client.generic("POST", "/keywords", "the café THE", "text/plain")
    short = public_client.get(path)
    # A media-type parameter keeps the same JSON but takes DRF's own negotiation and renderer.
    through_drf = public_client.get(path, HTTP_ACCEPT="application/json; q=1")
    assert short.status_code == through_drf.status_code == 200
    assert short.content == through_drf.content
    for header in ("Content-Type", "Vary", "Allow"):
        assert short[header] == through_drf[header]
    assert short["Content-Length"] == str(len(short.content))


def test_errors_still_take_drf_path(public_client: PortClient, node: Node) -> None:
    replace_node(Node(node.config))  # not recovered yet
    response = public_client.get("/keywords?keywords=the")
    assert response.status_code == 503
    assert response.json()["code"] == "not_ready"
