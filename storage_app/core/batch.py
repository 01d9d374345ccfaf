"""Many texts in one request: ``POST /keywords`` with ``Content-Type: application/x-ndjson``.

The body is newline-delimited JSON, one text per line: a JSON string, or an
object ``{"text": "...", "key": "..."}`` whose ``key`` is that text's
idempotency key. A line without its own key, in a request with an
``Idempotency-Key`` header K, gets the key ``K/<n>``, n being the text's
position in the batch from 1: a client that sends the same batch again under
the same header counts nothing twice. Blank lines are skipped. The answer has
one line per text, in order: ``{"tokens": t, "keywords": k, "replayed": false}``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from storage_app.core.errors import CounterError
from storage_app.core.idempotency import MAX_KEY_BYTES, BadIdempotencyKey, check_key

MEDIA_TYPE = "application/x-ndjson"


class BadBatch(CounterError):
    """The body is not newline-delimited JSON texts, or holds more texts than the node takes at once."""

    code = "invalid_batch"


@dataclass(frozen=True)
class BatchText:
    text: bytes  # UTF-8
    key: bytes | None


def parse_batch(body: bytes, header_key: bytes | None, max_texts: int) -> list[BatchText]:
    """The texts of an NDJSON body, with their keys; ``BadBatch`` or ``BadIdempotencyKey`` naming the line."""
    try:
        lines = body.decode("utf-8").split("\n")
    except UnicodeDecodeError as error:
        raise BadBatch(
            f"The body is not valid UTF-8 (byte {error.start}: {error.reason}); nothing was counted."
        ) from None
    texts: list[BatchText] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        if len(texts) == max_texts:
            raise BadBatch(
                f"More than {max_texts} texts in one batch (COUNTER_MAX_BATCH_TEXTS); split it. Nothing was counted."
            )
        try:
            item = json.loads(line)
        except (ValueError, RecursionError):
            raise BadBatch(f"Line {number} is not JSON; nothing was counted.") from None
        key: bytes | None = None
        if isinstance(item, dict) and isinstance(item.get("text"), str) and set(item) <= {"text", "key"}:
            text = item["text"]
            if "key" in item:
                if not isinstance(item["key"], str):
                    raise BadIdempotencyKey(f'Line {number}: "key" must be a string; nothing was counted.')
                key = _line_key(item["key"], number)
        elif isinstance(item, str):
            text = item
        else:
            raise BadBatch(
                f'Line {number} must be a JSON string (the text) or an object {{"text": "...", "key": "..."}}; '
                "nothing was counted."
            )
        if key is None and header_key is not None:
            key = _line_key(f"{header_key.decode()}/{len(texts) + 1}", number)
        try:
            encoded = text.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate written as \ud800 in the JSON
            raise BadBatch(f"Line {number} holds a lone UTF-16 surrogate; nothing was counted.") from None
        texts.append(BatchText(encoded, key))
    return texts


def _line_key(key: str, number: int) -> bytes:
    try:
        return check_key(key)
    except BadIdempotencyKey:
        raise BadIdempotencyKey(
            f"Line {number}: the idempotency key {key[:40]!r} must be 1 to {MAX_KEY_BYTES} visible ASCII "
            "characters (a line without its own key takes the header's key plus '/<n>'); nothing was counted."
        ) from None


def encode_results(results: list[tuple[int, int, bool]]) -> bytes:
    """One JSON line per text: (tokens, keywords, replayed)."""
    return b"".join(
        b'{"tokens":%d,"keywords":%d,"replayed":%s}\n' % (tokens, keywords, b"true" if replayed else b"false")
        for tokens, keywords, replayed in results
    )
