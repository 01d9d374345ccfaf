"""Texts cut into chunks of at most N bytes that never split a word (for ``indexfiles``).

A chunk ends just after ASCII whitespace, which separates tokens for every
tokenizer, so counting the chunks one by one counts what the whole text
counts. Only a run of more than N bytes without whitespace has to be cut
inside; it is cut at a UTF-8 character boundary, and reported.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass

_WHITESPACE = b" \t\n\r\x0b\x0c"


@dataclass(frozen=True)
class Chunk:
    offset: int
    data: bytes
    splits_a_word: bool = False


def chunks(text: bytes, max_bytes: int) -> Iterator[Chunk]:
    """``text`` in order, in chunks of 1 to ``max_bytes`` (at least 4) bytes; their concatenation is ``text``."""
    if max_bytes < 4:
        raise ValueError("max_bytes must be at least 4 (the longest UTF-8 character)")
    start = 0
    while start < len(text):
        end = start + max_bytes
        if end >= len(text):
            yield Chunk(start, text[start:])
            return
        cut = max(text.rfind(bytes([space]), start, end) for space in _WHITESPACE)
        if cut >= start:
            yield Chunk(start, text[start : cut + 1])
            start = cut + 1
            continue
        # No whitespace in the window: a word longer than a chunk, cut at the
        # last character boundary (one lies within any 4 bytes).
        cut = end
        while cut > start + 1 and text[cut] & 0xC0 == 0x80:
            cut -= 1
        yield Chunk(start, text[start:cut], splits_a_word=True)
        start = cut


def chunk_key(source: str, content_digest: str, chunk: Chunk) -> str:
    """The Idempotency-Key of a chunk: the same source, content and position give the same key.

    Visible ASCII, at most 100 characters, whatever ``source`` is.
    """
    source_digest = hashlib.blake2b(source.encode("utf-8", "surrogateescape"), digest_size=8).hexdigest()
    return f"if1-{source_digest}-{content_digest}-{chunk.offset}-{len(chunk.data)}"


def content_digest(text: bytes) -> str:
    return hashlib.blake2b(text, digest_size=16).hexdigest()
