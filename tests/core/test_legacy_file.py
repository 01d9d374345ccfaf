from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from storage_app.core.errors import LegacyFileCorrupt
from storage_app.core.keywords import Keywords
from storage_app.core.legacy import decode_legacy_file, encode_legacy_file
from storage_app.core.store import GCounterStore

SEED_DATA = Path(__file__).resolve().parents[1] / "data" / "counter-app"
EXPECTED_TOTALS = {
    "and": (0, 1), "brown": (1, 0), "dog": (1, 0), "dog.": (1, 0), "end": (0, 1), "fox": (2, 1),
    "hound,": (0, 1), "jumps": (1, 0), "lazy": (1, 0), "over": (1, 0), "quick": (1, 0), "runs!": (1, 0),
    "sleeps;": (1, 0), "straße": (1, 0), "the": (4, 3), "ünïcödé": (1, 0),
}  # fmt: skip


@pytest.mark.parametrize("name", ["base0", "base1"])
def test_counter_app_files_decode_to_the_documented_counts(name: str) -> None:
    path = SEED_DATA / name
    if not path.exists():
        pytest.fail(f"{path} is missing: the counter-app data files belong to the repository")
    keys, slots = decode_legacy_file(path.read_bytes())
    store = GCounterStore()
    store.merge(keys, slots)
    fields = Keywords("fields")
    assert len(store) == len(EXPECTED_TOTALS)
    for keyword, expected in EXPECTED_TOTALS.items():
        assert store.slots_of(fields.key_of(keyword)) == list(expected), keyword


def test_counter_app_tokenizing_of_the_seed_texts_gives_the_same_keys() -> None:
    fields = Keywords("fields")
    _, first = fields.count(
        "The quick brown fox jumps over the lazy dog. The dog sleeps; the FOX runs! Ünïcödé straße".encode()
    )
    _, second = fields.count(b"the fox and the hound, the end")
    keys, _ = decode_legacy_file((SEED_DATA / "base0").read_bytes())
    assert set(first) | set(second) == set(keys.tolist())


@given(st.dictionaries(st.integers(0, (1 << 64) - 1), st.lists(st.integers(0, (1 << 64) - 1), min_size=1, max_size=3)))
def test_encode_then_decode_is_the_same_state(rows: dict[int, list[int]]) -> None:
    store = GCounterStore()
    for key, values in rows.items():
        store.merge(np.array([key], dtype=np.uint64), np.array([values], dtype=np.uint64))
    keys, slots = decode_legacy_file(b"".join(encode_legacy_file(store.export_chunks())))
    again = GCounterStore()
    again.merge(keys, slots)
    assert again.read(list(rows)) == [sum(values) for values in rows.values()]


def test_empty_file_is_empty_state() -> None:
    keys, _slots = decode_legacy_file(b"")
    assert len(keys) == 0


@pytest.mark.parametrize("cut", [1, 8, 15, 17, 30])
def test_truncated_file_is_refused(cut: int) -> None:
    data = (SEED_DATA / "base0").read_bytes()
    with pytest.raises(LegacyFileCorrupt, match="truncated"):
        decode_legacy_file(data[: len(data) - cut])


def test_absurd_slot_count_is_refused() -> None:
    with pytest.raises(LegacyFileCorrupt, match="slots"):
        decode_legacy_file((1).to_bytes(8, "little") + (10**12).to_bytes(8, "little"))
