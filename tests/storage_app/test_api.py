from __future__ import annotations

import re
from typing import Any
from unittest import mock

import pytest

from counter_site.dashboard import take_sample
from storage_app.core.history import History, Sample
from storage_app.node import TOKENIZE_IN_CHILD_FROM, Node
from tests.conftest import PortClient, restart_node


def post_text(client: PortClient, body: bytes | str, content_type: str = "text/plain", **extra: Any) -> Any:
    return client.generic("POST", "/keywords", body, content_type, **extra)


def counts(client: PortClient, *keywords: str) -> list[int]:
    response = client.get("/keywords", {"keywords": list(keywords)})
    assert response.status_code == 200
    return [item["count"] for item in response.json()]


def test_post_counts_every_token_and_reports_tokens_and_distinct_keywords(public_client: PortClient) -> None:
    response = post_text(public_client, "Hello, world! Don't say hello")
    assert response.status_code == 200
    assert response.json() == {"tokens": 5, "keywords": 4}
    assert counts(public_client, "hello", "don't", "world", "say") == [2, 1, 1, 1]


def test_post_reads_the_raw_body_whatever_the_content_type(public_client: PortClient) -> None:
    # curl -d sends application/x-www-form-urlencoded; counter-app reads the raw text.
    assert post_text(public_client, "a b a", "application/x-www-form-urlencoded").json() == {"tokens": 3, "keywords": 2}
    assert post_text(public_client, "b", "application/json").status_code == 200
    assert counts(public_client, "a", "b") == [2, 2]


def test_empty_body_counts_nothing(public_client: PortClient) -> None:
    assert post_text(public_client, b"").json() == {"tokens": 0, "keywords": 0}


def test_get_matches_counter_app_order_duplicates_echo_and_lower_casing(public_client: PortClient) -> None:
    post_text(public_client, "fox fox dog")
    response = public_client.get("/keywords?keywords=FOX&keywords=cat&keywords=fox&keywords=Dog")
    assert response.json() == [
        {"key": "FOX", "count": 2},
        {"key": "cat", "count": 0},
        {"key": "fox", "count": 2},
        {"key": "Dog", "count": 1},
    ]


def test_get_without_parameters_is_an_empty_list_not_null(public_client: PortClient) -> None:
    response = public_client.get("/keywords")
    assert response.status_code == 200
    assert response.content == b"[]"


def test_get_one_keyword_by_path(public_client: PortClient) -> None:
    post_text(public_client, "Straße straße")
    assert public_client.get("/keywords/STRAßE").json() == {"key": "STRAßE", "count": 2}
    assert public_client.get("/keywords/never-seen").json() == {"key": "never-seen", "count": 0}


def test_fields_tokenizer_counts_like_counter_app(public_client: PortClient) -> None:
    restart_node(tokenizer="fields")
    post_text(public_client, "Hello, hello and/or")
    assert counts(public_client, "hello,", "hello", "Hello", "and/or") == [1, 1, 1, 1]
    assert public_client.get("/keywords/and/or").json() == {"key": "and/or", "count": 1}


# 10,000 repeats make the body large enough for a tokenizer process.
@pytest.mark.parametrize("repeat", [1, 10_000])
def test_invalid_utf8_is_a_400_in_json_and_counts_nothing(public_client: PortClient, repeat: int) -> None:
    response = post_text(public_client, b"valid words " * repeat + b"then \xff\xfe")
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid_utf8" and f"byte {12 * repeat + 5}" in body["detail"]
    assert counts(public_client, "valid", "words") == [0, 0]


def test_a_large_text_is_counted_exactly(public_client: PortClient) -> None:
    assert TOKENIZE_IN_CHILD_FROM < 200_000
    text = "Alpha beta, BETA gamma! Don’t stop. " * 5_000
    assert post_text(public_client, text).json() == {"tokens": 30_000, "keywords": 5}
    assert counts(public_client, "alpha", "beta", "gamma", "don't", "stop") == [5_000, 10_000, 5_000, 5_000, 5_000]


def test_a_body_over_the_limit_is_a_413_and_counts_nothing(public_client: PortClient) -> None:
    restart_node(max_body_bytes=16)
    response = post_text(public_client, "seventeen bytes!!")
    assert response.status_code == 413
    assert response.json()["code"] == "payload_too_large"
    assert "COUNTER_MAX_BODY_BYTES" in response.json()["detail"]
    assert counts(public_client, "seventeen") == [0]
    assert post_text(public_client, "sixteen bytes ok").status_code == 200


def test_other_methods_get_a_json_405(public_client: PortClient) -> None:
    response = public_client.put("/keywords", "x", content_type="text/plain")
    assert response.status_code == 405
    assert response.json()["code"] == "method_not_allowed"


def test_a_draining_node_refuses_writes_with_503(public_client: PortClient, node: Node) -> None:
    node.close_writes()
    response = post_text(public_client, "late write")
    assert response.status_code == 503
    assert counts(public_client, "late") == [0]


def test_the_public_port_serves_no_sync_or_internal_route(public_client: PortClient) -> None:
    for path in ("/sync", "/internal/state", "/internal/dump"):
        response = public_client.post(path, b"[]", content_type="application/json")
        assert response.status_code == 404, path
        assert response.json()["code"] == "not_found"


def test_unknown_routes_get_json_404(public_client: PortClient) -> None:
    response = public_client.get("/nope")
    assert response.status_code == 404
    assert "detail" in response.json()


def test_browsable_api_offers_a_form_to_post_text(public_client: PortClient) -> None:
    response = public_client.get("/keywords", HTTP_ACCEPT="text/html")
    assert response.status_code == 200
    html = response.content.decode()
    assert "<textarea" in html and "text/plain" in html and "POST" in html


def test_openapi_document_describes_the_public_operations(public_client: PortClient) -> None:
    response = public_client.get("/swagger")
    assert response.status_code == 200
    schema = response.json()
    assert set(schema["paths"]) == {"/cluster", "/history", "/keywords", "/keywords/{keyword}", "/top"}
    post = schema["paths"]["/keywords"]["post"]
    assert set(post["responses"]) == {"200", "400", "401", "409", "413", "429", "503", "507"}
    assert "text/plain" in post["requestBody"]["content"]
    get = schema["paths"]["/keywords"]["get"]
    assert get["parameters"][0]["name"] == "keywords"
    assert schema["components"]["schemas"]["Occurrence"]["required"] == ["count", "key"]
    top = schema["paths"]["/top"]["get"]
    assert [parameter["name"] for parameter in top["parameters"]] == ["n", "prefix"]
    assert set(top["responses"]) == {"200", "400", "401", "429"}
    assert schema["components"]["schemas"]["TopKeyword"]["properties"]["key"]["nullable"] is True


def test_swagger_ui_is_served_without_a_cdn(public_client: PortClient) -> None:
    response = public_client.get("/swagger/ui")
    assert response.status_code == 200
    html = response.content.decode()
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/" in html
    # No asset from another host (a random nonce in the page may well contain "cdn").
    assert not re.search(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//""", html), html
    assert "jsdelivr" not in html and "unpkg" not in html
    asset = public_client.get("/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js")
    assert asset.status_code == 200


@pytest.mark.parametrize("path", ["/healthz", "/"])
def test_health_and_root(public_client: PortClient, path: str) -> None:
    assert public_client.get(path).status_code == 200


def test_a_write_token_guards_posts_and_leaves_reads_open(public_client: PortClient) -> None:
    restart_node(public_token="w-token")
    refused = post_text(public_client, "guarded")
    assert refused.status_code == 401 and refused.json()["code"] == "public_token_required"
    assert "COUNTER_PUBLIC_TOKEN" in refused.json()["detail"]
    assert post_text(public_client, "guarded", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    assert post_text(public_client, "guarded", HTTP_AUTHORIZATION="Bearer w-token").status_code == 200
    assert counts(public_client, "guarded") == [1]
    assert public_client.get("/cluster").status_code == 200


def test_a_read_token_guards_every_read_on_both_paths(public_client: PortClient) -> None:
    restart_node(public_read_token="r-token")
    assert post_text(public_client, "seen").status_code == 200, "writes stay open without a write token"
    for path in ("/keywords?keywords=seen", "/keywords/seen", "/cluster", "/history"):
        for accept in ({}, {"HTTP_ACCEPT": "text/html"}):  # the plain JSON shortcut and DRF's own path
            refused = public_client.get(path, **accept)
            assert refused.status_code == 401, (path, accept, refused.content[:200])
    assert public_client.get("/keywords?keywords=seen").json()["code"] == "public_token_required"
    allowed = public_client.get("/keywords?keywords=seen", HTTP_AUTHORIZATION="Bearer r-token")
    assert allowed.json() == [{"key": "seen", "count": 1}]
    assert public_client.get("/readyz").status_code == 200, "probes stay open"


def test_an_unknown_format_parameter_is_ignored_not_a_bare_404(public_client: PortClient) -> None:
    response = public_client.get("/keywords?keywords=a&format=xml")
    assert response.status_code == 200 and response.json() == [{"key": "a", "count": 0}]
    posted = public_client.post("/keywords?format=nonsense", "counted anyway", content_type="text/plain")
    assert posted.status_code == 200 and posted.json() == {"tokens": 2, "keywords": 2}


def test_root_is_the_dashboard_in_a_browser_and_links_for_everyone_else(public_client: PortClient) -> None:
    links = public_client.get("/", HTTP_ACCEPT="*/*")
    assert links["Content-Type"] == "application/json"
    assert set(links.json()) == {"keywords", "cluster", "history", "metrics", "openapi", "swagger_ui"}
    browser_accept = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"
    page = public_client.get("/", HTTP_ACCEPT=browser_accept)
    assert page["Content-Type"].startswith("text/html")
    html = page.content.decode()
    assert 'src="/static/counter/dashboard.js"' in html and 'id="lookup"' in html and 'id="post"' in html
    assert not re.search(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//""", html), "nothing from another host"
    for asset in ("/static/counter/dashboard.js", "/static/counter/dashboard.css"):
        assert public_client.get(asset).status_code == 200, asset


def test_history_gives_keys_and_rates_from_the_samples(public_client: PortClient) -> None:
    samples = History(interval=2.0, capacity=10)
    samples.add(Sample(time=100.0, keys=0, texts=0, tokens=0, sync_bytes=0))
    post_text(public_client, "one two three")
    with mock.patch("counter_site.dashboard.HISTORY", samples):
        samples.add(take_sample())
        response = public_client.get("/history")
    assert response.status_code == 200
    body = response.json()
    assert body["interval"] == 2.0
    first, second = body["points"]
    assert first == {
        "time": 100.0,
        "keys": 0,
        "texts_per_second": None,
        "tokens_per_second": None,
        "sync_bytes_per_second": None,
    }
    assert second["keys"] == 3
    elapsed = second["time"] - 100.0
    assert second["tokens_per_second"] == pytest.approx(3 / elapsed)
    assert second["texts_per_second"] == pytest.approx(1 / elapsed)
