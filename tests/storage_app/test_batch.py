"""POST /keywords with Content-Type application/x-ndjson: many texts, one result per line, each text once."""

from __future__ import annotations

import json
from typing import Any

from tests.conftest import PortClient, restart_node

NDJSON = "application/x-ndjson"


def post_batch(client: PortClient, lines: list[Any], key: str | None = None, **extra: Any) -> Any:
    body = "".join(json.dumps(line) + "\n" for line in lines)
    if key is not None:
        extra["HTTP_IDEMPOTENCY_KEY"] = key
    return client.generic("POST", "/keywords", body, NDJSON, **extra)


def results(response: Any) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == NDJSON
    return [json.loads(line) for line in response.content.decode().splitlines()]


def counts(client: PortClient, *keywords: str) -> list[int]:
    return [item["count"] for item in client.get("/keywords", {"keywords": list(keywords)}).json()]


def test_each_text_is_counted_and_answered_on_its_own_line(public_client: PortClient) -> None:
    answer = post_batch(public_client, ["red red blue", "blue", {"text": ""}, "Green!"])
    assert results(answer) == [
        {"tokens": 3, "keywords": 2, "replayed": False},
        {"tokens": 1, "keywords": 1, "replayed": False},
        {"tokens": 0, "keywords": 0, "replayed": False},
        {"tokens": 1, "keywords": 1, "replayed": False},
    ]
    assert counts(public_client, "red", "blue", "green") == [2, 2, 1]
    metrics = public_client.get("/metrics").content.decode()
    assert "counter_texts_indexed_total 4.0" in metrics and "counter_tokens_indexed_total 5.0" in metrics


def test_the_same_batch_again_under_the_same_header_counts_nothing(public_client: PortClient) -> None:
    texts = ["alpha beta", "beta gamma", "alpha"]
    assert [line["replayed"] for line in results(post_batch(public_client, texts, key="batch-1"))] == [False] * 3
    again = results(post_batch(public_client, texts, key="batch-1"))
    assert again == [
        {"tokens": 2, "keywords": 2, "replayed": True},
        {"tokens": 2, "keywords": 2, "replayed": True},
        {"tokens": 1, "keywords": 1, "replayed": True},
    ]
    assert counts(public_client, "alpha", "beta", "gamma") == [2, 2, 1]
    # Each line's key is the header's plus its position: a single POST under that key is a replay too.
    single = public_client.post("/keywords", "beta gamma", content_type="text/plain", HTTP_IDEMPOTENCY_KEY="batch-1/2")
    assert single["Idempotent-Replayed"] == "true"
    assert counts(public_client, "gamma") == [1]


def test_own_keys_a_repeat_inside_the_batch_and_a_key_seen_before(public_client: PortClient) -> None:
    assert public_client.post("/keywords", "seen before", content_type="text/plain", HTTP_IDEMPOTENCY_KEY="old")
    answer = post_batch(
        public_client,
        [
            {"text": "fresh words", "key": "new"},
            {"text": "fresh words", "key": "new"},  # a retry inside the batch
            {"text": "seen before", "key": "old"},
            "no key at all",
        ],
    )
    assert [line["replayed"] for line in results(answer)] == [False, True, True, False]
    assert counts(public_client, "fresh", "seen", "no") == [1, 1, 1]


def test_a_key_reused_for_another_text_refuses_the_whole_batch(public_client: PortClient) -> None:
    public_client.post("/keywords", "original", content_type="text/plain", HTTP_IDEMPOTENCY_KEY="taken")
    refused = post_batch(public_client, ["counted? no", {"text": "changed", "key": "taken"}])
    assert refused.status_code == 409 and refused.json()["code"] == "idempotency_key_reused"
    assert "'taken'" in refused.json()["detail"]
    inside = post_batch(public_client, [{"text": "one", "key": "twice"}, {"text": "two", "key": "twice"}])
    assert inside.status_code == 409
    assert counts(public_client, "counted", "changed", "one", "two") == [0, 0, 0, 0]


def test_bad_input_is_a_400_naming_the_line_and_counts_nothing(public_client: PortClient) -> None:
    for body, where in [
        ('"good words"\n{"text": 7}\n', "Line 2"),
        ('"good words"\nnot json\n', "Line 2"),
        ('"good words"\n{"text": "x", "key": "a b"}\n', "Line 2"),
    ]:
        refused = public_client.generic("POST", "/keywords", body, NDJSON)
        assert refused.status_code == 400, refused.content
        assert refused.json()["code"] in ("invalid_batch", "invalid_idempotency_key")
        assert where in refused.json()["detail"]
    refused = public_client.generic("POST", "/keywords", b'"good words"\n"\xff"\n', NDJSON)
    assert refused.status_code == 400 and "UTF-8" in refused.json()["detail"]
    assert counts(public_client, "good") == [0]


def test_more_texts_than_the_limit_is_a_400(public_client: PortClient) -> None:
    restart_node(max_batch_texts=5)
    refused = post_batch(public_client, ["word"] * 6)
    assert refused.status_code == 400 and "COUNTER_MAX_BATCH_TEXTS" in refused.json()["detail"]
    assert len(results(post_batch(public_client, ["word"] * 5))) == 5
    assert counts(public_client, "word") == [5]


def test_a_batch_needs_the_write_token_like_any_post(public_client: PortClient) -> None:
    restart_node(public_token="w")
    assert post_batch(public_client, ["guarded"]).status_code == 401
    assert results(post_batch(public_client, ["guarded"], HTTP_AUTHORIZATION="Bearer w"))[0]["tokens"] == 1


def test_the_keys_of_a_batch_survive_a_crash(public_client: PortClient) -> None:
    results(post_batch(public_client, ["kept once", "kept twice kept"], key="crash-batch"))
    restart_node()  # no shutdown step: the keys come back from the log
    again = results(post_batch(public_client, ["kept once", "kept twice kept"], key="crash-batch"))
    assert [line["replayed"] for line in again] == [True, True]
    assert counts(public_client, "kept", "once", "twice") == [3, 1, 1]
