"""The NDJSON batch codec: texts and their keys from the body, or an error naming the line."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from storage_app.core.batch import BadBatch, BatchText, encode_results, parse_batch
from storage_app.core.idempotency import BadIdempotencyKey


def test_strings_and_objects_with_keys_and_blank_lines() -> None:
    body = b'"one text"\n\n{"text": "two", "key": "own-key"}\r\n{"text": "three"}\n'
    assert parse_batch(body, None, 100) == [
        BatchText(b"one text", None),
        BatchText(b"two", b"own-key"),
        BatchText(b"three", None),
    ]


def test_lines_without_a_key_take_the_header_key_and_their_position() -> None:
    body = b'"a"\n{"text": "b", "key": "mine"}\n"c"\n'
    assert [item.key for item in parse_batch(body, b"batch-7", 100)] == [b"batch-7/1", b"mine", b"batch-7/3"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'"fine"\nnot json\n', "Line 2 is not JSON"),
        (b"42\n", "Line 1 must be a JSON string"),
        (b'{"text": 1}\n', "Line 1 must be a JSON string"),
        (b'{"text": "t", "extra": 1}\n', "Line 1 must be a JSON string"),
        (b'"\\ud800"\n', "Line 1 holds a lone UTF-16 surrogate"),
        (b'"\xff"\n', "not valid UTF-8"),
        (b"[" * 100_000 + b"\n", "Line 1 is not JSON"),
    ],
)
def test_bad_lines_are_named(body: bytes, message: str) -> None:
    with pytest.raises(BadBatch, match=message):
        parse_batch(body, None, 100)


def test_bad_keys_are_named() -> None:
    with pytest.raises(BadIdempotencyKey, match="Line 2"):
        parse_batch(b'"a"\n{"text": "b", "key": "has space"}\n', None, 100)
    with pytest.raises(BadIdempotencyKey, match="Line 1"):
        parse_batch(b'{"text": "b", "key": 5}\n', None, 100)
    with pytest.raises(BadIdempotencyKey, match="Line 1"):  # the header's key plus "/1" is too long
        parse_batch(b'"a"\n', b"k" * 255, 100)


def test_more_texts_than_the_limit_is_refused() -> None:
    assert len(parse_batch(b'"a"\n' * 3, None, 3)) == 3
    with pytest.raises(BadBatch, match="More than 3 texts"):
        parse_batch(b'"a"\n' * 4, None, 3)


def test_results_are_one_json_line_per_text() -> None:
    lines = encode_results([(3, 2, False), (0, 0, True)]).decode().splitlines()
    assert [json.loads(line) for line in lines] == [
        {"tokens": 3, "keywords": 2, "replayed": False},
        {"tokens": 0, "keywords": 0, "replayed": True},
    ]


@given(st.lists(st.text(), max_size=20))
def test_any_texts_written_as_json_lines_come_back(texts: list[str]) -> None:
    body = "".join(json.dumps(text) + "\n" for text in texts).encode()
    try:
        parsed = parse_batch(body, None, 100)
    except BadBatch as error:  # only a lone surrogate may refuse a text
        assert "surrogate" in str(error) and any(0xD800 <= ord(c) <= 0xDFFF for text in texts for c in text)
        return
    # Texts made only of whitespace are still texts (a JSON string is never a blank line).
    assert [item.text for item in parsed] == [text.encode() for text in texts]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_any_bytes_give_texts_or_the_codecs_own_error(body: bytes) -> None:
    try:
        parsed = parse_batch(body, b"header", 50)
    except (BadBatch, BadIdempotencyKey):
        return
    assert all(isinstance(item.text, bytes) and item.key is not None for item in parsed)
