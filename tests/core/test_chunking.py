"""Chunks never split a word unless a word is longer than a chunk, and put back together give the text."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from storage_app.core.chunking import Chunk, chunk_key, chunks, content_digest
from storage_app.core.keywords import Keywords


@given(text=st.text(max_size=2000), max_bytes=st.integers(4, 300))
def test_chunks_rebuild_the_text_within_the_limit(text: str, max_bytes: int) -> None:
    data = text.encode()
    pieces = list(chunks(data, max_bytes))
    assert b"".join(piece.data for piece in pieces) == data
    assert all(1 <= len(piece.data) <= max_bytes for piece in pieces)
    assert [piece.offset for piece in pieces] == [sum(len(p.data) for p in pieces[:i]) for i in range(len(pieces))]
    for piece in pieces:
        piece.data.decode()  # never inside a UTF-8 character


@given(
    words=st.lists(st.text(alphabet="abcé'xyz0", min_size=1, max_size=12), max_size=200), max_bytes=st.integers(30, 200)
)
def test_counting_the_chunks_counts_what_the_text_counts(words: list[str], max_bytes: int) -> None:
    data = " \n".join(words).encode()
    keywords = Keywords("words")
    whole = keywords.count(data)
    parts = [keywords.count(piece.data) for piece in chunks(data, max_bytes)]
    assert sum(tokens for tokens, _counts in parts) == whole[0]
    total: dict[int, int] = {}
    for _tokens, counts in parts:
        for key, count in counts.items():
            total[key] = total.get(key, 0) + count
    assert total == dict(whole[1])


def test_keys_depend_on_source_content_and_position() -> None:
    digest = content_digest(b"one two")
    first = chunk_key("a.txt", digest, Chunk(0, b"one "))
    assert first == chunk_key("a.txt", digest, Chunk(0, b"one "))
    assert first != chunk_key("b.txt", digest, Chunk(0, b"one "))
    assert first != chunk_key("a.txt", content_digest(b"one three"), Chunk(0, b"one "))
    assert first != chunk_key("a.txt", digest, Chunk(4, b"two"))
    assert all("!" <= char <= "~" for char in first) and len(first) <= 100
