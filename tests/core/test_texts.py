"""Keyword texts in the store, and top-N and prefix answers against a reference count."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from storage_app.core import store as store_module
from storage_app.core.keywords import Keywords, keyword_key
from storage_app.core.store import GCounterStore, TopRow
from storage_app.core.texts import NO_TEXT, TextArena, TextColumn, TextsCorrupt, column_from_arena, leading_bytes

WORDS = Keywords("words")


@pytest.fixture(autouse=True)
def small_pending_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    """A tiny pending dict, so tests go through both the dict and the sorted arrays."""
    monkeypatch.setattr(store_module, "_PENDING_MIN", 4)


def index(store: GCounterStore, text: str, slot: int = 0) -> None:
    """Count ``text`` in ``slot`` the way a node does, texts included."""
    _tokens, counts = WORDS.count_keywords(text.encode())
    keys = np.array([keyword_key(word.decode()) for word in counts], dtype=np.uint64)
    amounts = np.array(list(counts.values()), dtype=np.uint64)
    store.increment_arrays(slot, keys, amounts, texts=TextColumn.from_texts(list(counts)))


def reference_top(counts: dict[str, int], n: int, prefix: str | None = None) -> list[tuple[str, int]]:
    rows = [(word, count) for word, count in counts.items() if count and (prefix is None or word.startswith(prefix))]
    return sorted(rows, key=lambda row: (-row[1], row[0].encode()))[:n]


def as_pairs(rows: list[TopRow]) -> list[tuple[str | None, int]]:
    return [(row.text.decode() if row.text is not None else None, row.count) for row in rows]


def test_a_column_round_trips_through_its_wire_form() -> None:
    column = TextColumn.from_texts([b"the", None, "caf\u00e9".encode(), b"x" * 300])
    decoded, end = TextColumn.decode(b"junk" + column.encode(), 4, 4)
    assert decoded.texts() == [b"the", None, "caf\u00e9".encode(), b"x" * 300]
    assert end == 4 + len(column.encode())


def test_a_column_whose_lengths_run_past_its_data_is_refused() -> None:
    data = TextColumn.from_texts([b"the", b"quick"]).encode()
    with pytest.raises(TextsCorrupt):
        TextColumn.decode(data[:-1], 0, 2)
    with pytest.raises(TextsCorrupt):
        TextColumn.decode(data[:6], 0, 2)


def test_the_arena_keeps_short_and_long_texts_and_gathers_them_as_a_column() -> None:
    arena = TextArena()
    texts = [b"a", b"y" * 254, b"z" * 255, b"w" * 70_000, "\u00fc".encode()]
    offsets = np.array([arena.append(text) for text in texts] + [NO_TEXT], dtype=np.uint32)
    assert column_from_arena(arena.buffer, offsets).texts() == [*texts, None]
    assert arena.nbytes == sum(len(text) for text in texts) + 3 * 1 + 2 * 5


def test_leading_bytes_never_contradict_the_order_of_texts() -> None:
    texts = [b"ab", b"ab\x00", b"abcdefgh", b"abcdefghz", b"abcdefgi", b"b", "\u00e9".encode()]
    arena = TextArena()
    offsets = np.array([arena.append(text) for text in texts] + [NO_TEXT], dtype=np.uint32)
    leads = leading_bytes(arena.buffer, offsets).tolist()
    ordered = sorted(range(len(texts)), key=lambda index: texts[index])
    assert [leads[index] for index in ordered] == sorted(leads[: len(texts)])
    assert leads[-1] == (1 << 64) - 1 > max(leads[:-1])


def test_a_key_keeps_its_first_text_through_compaction_merges_and_export() -> None:
    store = GCounterStore()
    for number in range(40):
        index(store, f"w{number} the the")
    assert store.texts_of(np.array([keyword_key("the"), keyword_key("w7"), 12345], dtype=np.uint64)) == [
        b"the",
        b"w7",
        None,
    ]
    # A second text for a known key (a CRC-64 clash) does not replace the first.
    store.set_texts(np.array([keyword_key("the")], dtype=np.uint64), TextColumn.from_texts([b"other"]))
    assert store.texts_of(np.array([keyword_key("the")], dtype=np.uint64)) == [b"the"]
    exported: dict[int, bytes | None] = {}
    for chunk in store.export_chunks(chunk_rows=7, with_texts=True):
        assert chunk.texts is not None
        exported.update(zip(chunk.keys.tolist(), chunk.texts.texts(), strict=True))
    assert exported == {keyword_key(word): word.encode() for word in ["the", *(f"w{n}" for n in range(40))]}


def test_a_merge_brings_texts_for_keys_without_one_and_ignores_texts_of_rows_it_drops() -> None:
    store = GCounterStore()
    keys = np.array([keyword_key("alpha"), keyword_key("beta"), keyword_key("gamma")], dtype=np.uint64)
    store.merge(keys, np.array([[1, 0], [0, 2], [0, 0]], dtype=np.uint64))
    assert store.missing_texts(keys).tolist() == [True, True, True]
    texts = TextColumn.from_texts([b"alpha", None, b"gamma"])
    store.merge(keys, np.array([[1, 0], [0, 0], [0, 0]], dtype=np.uint64), texts=texts)
    assert store.texts_of(keys) == [b"alpha", None, None]  # gamma has no count, so no row to hold a text
    assert store.missing_texts(keys).tolist() == [False, True, True]


def test_top_lists_highest_first_ties_by_text_and_keys_without_text_last() -> None:
    store = GCounterStore()
    index(store, "b a c a b a d")
    store.merge(np.array([99, 7], dtype=np.uint64), np.array([[1], [1]], dtype=np.uint64))  # counter-app keys: no text
    rows = store.top(10)
    assert [(row.text, row.count, row.key) for row in rows] == [
        (b"a", 3, keyword_key("a")),
        (b"b", 2, keyword_key("b")),
        (b"c", 1, keyword_key("c")),
        (b"d", 1, keyword_key("d")),
        (None, 1, 7),
        (None, 1, 99),
    ]
    assert as_pairs(store.top(3)) == [("a", 3), ("b", 2), ("c", 1)]
    assert as_pairs(store.top(10, prefix=b"b")) == [("b", 2)]


def test_top_adds_amounts_held_beside_the_store() -> None:
    store = GCounterStore()
    index(store, "one two two")
    extra = {keyword_key("one"): 5, keyword_key("new"): 1}
    rows = store.top(5, extra=extra, extra_texts={keyword_key("new"): b"new"})
    assert as_pairs(rows) == [("one", 6), ("two", 2), ("new", 1)]


def test_ties_at_the_cut_among_many_rows_are_broken_by_the_whole_text(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store_module, "_PENDING_MIN", 1 << 20)
    store = GCounterStore()
    words = [f"prefix{number:05d}" for number in range(3000)]  # 8 leading bytes shared by runs of 100
    index(store, " ".join(reversed(words)))
    store._compact()  # every row in the arrays: the numpy path
    assert as_pairs(store.top(150)) == [(word, 1) for word in words[:150]]
    assert as_pairs(store.top(5, prefix=b"prefix029")) == [(word, 1) for word in words[2900:2905]]


@settings(max_examples=150, deadline=None)
@given(
    texts=st.lists(
        st.lists(st.sampled_from(["a", "ab", "abc", "b", "ba", "caf\u00e9", "cafe", "z", "\u00fcber"]), max_size=12),
        max_size=12,
    ),
    n=st.integers(min_value=1, max_value=12),
    prefix=st.sampled_from([None, "a", "ab", "caf", "z", "\u00fc", "q"]),
)
def test_top_equals_the_top_of_a_reference_count(texts: list[list[str]], n: int, prefix: str | None) -> None:
    store = GCounterStore()
    reference: dict[str, int] = {}
    for slot, words in enumerate(texts):
        index(store, " ".join(words), slot=slot % 3)
        for word in words:
            reference[word] = reference.get(word, 0) + 1
    expected = reference_top(reference, n, prefix)
    assert as_pairs(store.top(n, prefix=None if prefix is None else prefix.encode())) == expected


def test_many_texts_go_into_the_arena_in_one_step_and_read_back() -> None:
    arena = TextArena()
    texts = [f"word{number}".encode() for number in range(5000)]
    offsets = arena.extend(TextColumn.from_texts(texts))
    assert column_from_arena(arena.buffer, offsets).texts() == texts
    with_long = [b"a", b"b" * 300]
    offsets = arena.extend(TextColumn.from_texts(with_long))  # before reading arena.buffer: growing replaces it
    assert column_from_arena(arena.buffer, offsets).texts() == with_long


def test_only_and_compress_keep_the_texts_of_the_rows_asked_for() -> None:
    column = TextColumn.from_texts([b"one", None, b"three", b"four"])
    mask = np.array([False, True, True, True])
    assert column.only(mask).texts() == [None, None, b"three", b"four"]
    assert column.compress(mask).texts() == [None, b"three", b"four"]


def test_a_key_repeated_in_a_merge_puts_one_text_in_the_arena() -> None:
    store = GCounterStore()
    keys = np.array([keyword_key("echo"), keyword_key("echo"), keyword_key("fox")], dtype=np.uint64)
    store.merge(keys, np.array([[1], [1], [1]], dtype=np.uint64))
    store._compact()  # the keys in the arrays, where a text goes straight into the arena
    texts = TextColumn.from_texts([b"echo", b"echo", b"fox"])
    store.merge(keys, np.array([[1], [2], [1]], dtype=np.uint64), texts=texts)
    assert store.texts_of(keys) == [b"echo", b"echo", b"fox"]
    assert store.memory_bytes() == 2 * (8 + 8 + 4) + (1 + 4) + (1 + 3)  # key, slot, offset; each text once


@pytest.mark.parametrize("seed", range(5))
def test_top_of_thousands_of_keys_with_many_ties_equals_a_full_sort(seed: int) -> None:
    generator = np.random.default_rng(seed)
    words = [f"{chr(97 + number % 26)}{number}" for number in range(5000)]
    counts = generator.zipf(1.8, len(words)).clip(max=50).astype(np.uint64)  # most counts 1, few large
    keys = np.array([keyword_key(word) for word in words], dtype=np.uint64)
    store = GCounterStore()
    store.merge(keys, counts.reshape(-1, 1), texts=TextColumn.from_texts([word.encode() for word in words]))
    store.compact()
    reference = dict(zip(words, counts.tolist(), strict=True))
    for n in (1, 10, 100, 1000):
        assert as_pairs(store.top(n)) == reference_top(reference, n)
        assert as_pairs(store.top(n, prefix=b"q")) == reference_top(reference, n, "q")
