from __future__ import annotations

import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from storage_app.core import store as store_module
from storage_app.core.errors import TooManySlots
from storage_app.core.store import GCounterStore

U64 = st.integers(min_value=0, max_value=(1 << 64) - 1)
# Few distinct keys, so that merges overlap.
KEYS = st.integers(min_value=0, max_value=40).map(lambda n: (n * 0x9E3779B97F4A7C15) % (1 << 64))
ROWS = st.lists(st.tuples(KEYS, st.lists(U64, min_size=0, max_size=4)), max_size=30)


@pytest.fixture(autouse=True)
def small_pending_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    """A tiny pending dict, so tests go through both the dict and the sorted arrays."""
    monkeypatch.setattr(store_module, "_PENDING_MIN", 4)


def as_arrays(rows: list[tuple[int, list[int]]]) -> tuple[np.ndarray, np.ndarray]:
    width = max((len(slots) for _, slots in rows), default=0)
    matrix = np.zeros((len(rows), width), dtype=np.uint64)
    for index, (_, slots) in enumerate(rows):
        matrix[index, : len(slots)] = slots
    return np.array([key for key, _ in rows], dtype=np.uint64), matrix


def state_of(store: GCounterStore) -> dict[int, tuple[int, ...]]:
    """Key -> slots with trailing zeros dropped (the width is an implementation detail)."""
    state: dict[int, tuple[int, ...]] = {}
    for chunk in store.export_chunks(chunk_rows=7):
        for key, slots in zip(chunk.keys.tolist(), chunk.slots.tolist(), strict=True):
            while slots and slots[-1] == 0:
                slots.pop()
            state[key] = tuple(slots)
    return state


def merged(*batches: list[tuple[int, list[int]]]) -> dict[int, tuple[int, ...]]:
    store = GCounterStore()
    for batch in batches:
        store.merge(*as_arrays(batch))
    return state_of(store)


@given(ROWS, ROWS)
def test_merge_is_commutative(a: list[tuple[int, list[int]]], b: list[tuple[int, list[int]]]) -> None:
    assert merged(a, b) == merged(b, a)


@given(ROWS, ROWS, ROWS)
def test_merge_is_associative(a, b, c) -> None:
    assert merged(a, b, c) == merged(c, a, b) == merged(b, c, a)


@given(ROWS)
def test_merge_is_idempotent(a: list[tuple[int, list[int]]]) -> None:
    assert merged(a) == merged(a, a)


@given(ROWS)
def test_merge_keeps_the_larger_value_of_each_slot(rows: list[tuple[int, list[int]]]) -> None:
    expected: dict[int, list[int]] = {}
    for key, slots in rows:
        current = expected.setdefault(key, [])
        current.extend([0] * (len(slots) - len(current)))
        for index, value in enumerate(slots):
            current[index] = max(current[index], value)
    store = GCounterStore()
    for key, slots in rows:  # one at a time: the pending dict path
        store.merge(*as_arrays([(key, slots)]))
    for key, slots in expected.items():
        assert store.read([key]) == [sum(slots)]


@settings(max_examples=50)
@given(st.lists(st.tuples(KEYS, st.integers(0, 2), st.integers(1, 1000)), max_size=60))
def test_increments_touch_only_their_slot_and_reads_sum_the_slots(ops: list[tuple[int, int, int]]) -> None:
    store = GCounterStore()
    expected: dict[int, list[int]] = {}
    for key, slot, amount in ops:
        store.increment(slot, {key: amount})
        expected.setdefault(key, [0, 0, 0])[slot] += amount
    for key, slots in expected.items():
        assert ([*store.slots_of(key), 0, 0, 0])[:3] == slots
    keys = list(expected)
    assert store.read(keys) == [sum(expected[key]) for key in keys]
    assert len(store) == len(expected)


@given(ROWS, st.lists(KEYS | U64, min_size=1, max_size=12))
def test_a_few_keys_read_the_same_as_many(rows: list[tuple[int, list[int]]], extra: list[int]) -> None:
    # Up to _FEW_KEYS keys take a pure-Python path; more take numpy's. Half the rows stay pending.
    store = GCounterStore()
    store.merge(*as_arrays(rows[: len(rows) // 2]))
    store._compact()
    for key, slots in rows[len(rows) // 2 :]:
        store.merge(*as_arrays([(key, slots)]))
    keys = [key for key, _ in rows] + extra
    many = store.read(keys + [0] * max(0, store_module._FEW_KEYS + 1 - len(keys)))[: len(keys)]
    assert many == [store.read([key])[0] for key in keys]


def test_reads_of_unknown_keys_are_zero_and_keep_order_and_duplicates() -> None:
    store = GCounterStore()
    store.increment(0, {5: 2, 9: 1})
    assert store.read([9, 1, 5, 9]) == [1, 0, 2, 1]
    assert store.read([]) == []


def test_sums_do_not_wrap_at_64_bits() -> None:
    store = GCounterStore()
    big = (1 << 64) - 1
    store.merge(np.array([7], dtype=np.uint64), np.array([[big, big]], dtype=np.uint64))
    assert store.read([7]) == [2 * big]


def test_duplicate_keys_in_one_merge_combine_by_max() -> None:
    store = GCounterStore()
    result = store.merge(np.array([3, 3, 3], dtype=np.uint64), np.array([[1, 9], [5, 2], [4, 4]], dtype=np.uint64))
    assert store.slots_of(3) == [5, 9]
    assert result.received == 1 and result.added == 1


def test_a_bulk_merge_goes_straight_into_the_arrays() -> None:
    store = GCounterStore()
    keys = np.arange(10_000, dtype=np.uint64) * np.uint64(7919)
    store.increment(1, {int(keys[5]): 3, 12345678: 1})  # pending before the bulk merge
    result = store.merge(keys, np.ones((len(keys), 3), dtype=np.uint64))
    assert result.added == len(keys) - 1
    assert len(store) == len(keys) + 1
    assert store.read([int(keys[5]), 12345678, int(keys[-1])]) == [1 + 3 + 1, 1, 3]
    assert store.memory_bytes() == (len(keys) + 1) * (8 * 4 + 4)  # a key, 3 slots and a text offset


def test_merge_reports_what_changed() -> None:
    store = GCounterStore()
    store.merge(np.array([1, 2], dtype=np.uint64), np.array([[1, 1], [1, 1]], dtype=np.uint64))
    again = store.merge(np.array([1, 2, 3], dtype=np.uint64), np.array([[1, 1], [0, 2], [0, 0]], dtype=np.uint64))
    # Key 1 is unchanged, key 2 grew, key 3 is all zeros: nothing to store.
    assert (again.received, again.changed, again.added) == (3, 1, 0)
    assert len(store) == 2


def test_a_slot_past_the_limit_is_refused_and_changes_nothing() -> None:
    store = GCounterStore(max_slots=4)
    with pytest.raises(TooManySlots):
        store.merge(np.array([1], dtype=np.uint64), np.array([[1, 0, 0, 0, 1]], dtype=np.uint64))
    with pytest.raises(TooManySlots):
        store.increment(4, {1: 1})
    assert len(store) == 0
    # Trailing zero slots widen nothing and are accepted.
    store.merge(np.array([1], dtype=np.uint64), np.array([[1, 0, 0, 0, 0, 0]], dtype=np.uint64))
    assert store.width == 1


def test_export_is_sorted_and_complete_across_pending_and_arrays() -> None:
    store = GCounterStore()
    keys = [(n * 0x9E3779B97F4A7C15) % (1 << 64) for n in range(1, 200)]
    for index, key in enumerate(keys):
        store.increment(index % 3, {key: index + 1})
    exported = np.concatenate([chunk.keys for chunk in store.export_chunks(chunk_rows=16)])
    assert exported.tolist() == sorted(keys)


def test_concurrent_increments_are_all_counted() -> None:
    store = GCounterStore()

    def writer(offset: int) -> None:
        for round_number in range(300):
            store.increment(0, {offset + round_number % 50: 1, 10_000 + round_number: 1})

    threads = [threading.Thread(target=writer, args=(index * 1000,)) for index in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    total = sum(store.read([index * 1000 + n for index in range(4) for n in range(50)]))
    assert total == 4 * 300
    assert store.read([10_000 + n for n in range(300)]) == [4] * 300


def test_a_count_saturates_instead_of_wrapping() -> None:
    store = GCounterStore()
    big = (1 << 64) - 2
    store.merge(np.array([1, 2], dtype=np.uint64), np.array([[big], [0]], dtype=np.uint64))
    store.increment(0, {1: 5})
    assert store.slots_of(1) == [(1 << 64) - 1]
    store.increment(0, {3: 1})  # pending path
    store.merge(np.array([3], dtype=np.uint64), np.array([[big]], dtype=np.uint64))
    store.increment(0, {3: 7})
    assert store.slots_of(3) == [(1 << 64) - 1]
    (chunk,) = store.export_chunks()  # the saturated values are what a snapshot or a peer gets
    assert chunk.keys.tolist() == [1, 3] and chunk.slots.tolist() == [[(1 << 64) - 1], [(1 << 64) - 1]]


def test_every_change_is_told_to_the_listener_in_sequence_order_with_its_origin() -> None:
    store = GCounterStore()
    store.increment(0, {1: 1})
    seen: list[tuple[int, list[int], int]] = []
    assert (
        store.set_change_listener(lambda sequence, keys, origin, _mask: seen.append((sequence, keys.tolist(), origin)))
        == 1
    )
    store.increment(0, {2: 1, 3: 1})
    store.merge(np.array([2, 4], dtype=np.uint64), np.array([[0, 5], [0, 0]], dtype=np.uint64), origin=1)
    store.merge(np.array([2], dtype=np.uint64), np.array([[0, 5]], dtype=np.uint64), origin=1)  # changes nothing
    assert seen == [(2, [2, 3], -1), (3, [2], 1)]
    assert store.sequence == 3


def test_reads_during_writes_never_go_backwards_and_end_exact() -> None:
    # Reads take only references under the lock; every total they see must be one a write produced.
    store = GCounterStore()
    keys = list(range(1, 2001))
    done = threading.Event()

    def write() -> None:
        for _ in range(200):
            store.increment(0, dict.fromkeys(keys, 1))  # new keys go pending, then compact into the arrays
            store.merge(
                np.array(keys[:10], dtype=np.uint64), np.tile(np.array([0, 7], dtype=np.uint64), (10, 1)), origin=1
            )
        done.set()

    writer = threading.Thread(target=write)
    writer.start()
    last = [0, 0, 0]
    while not done.is_set():
        seen = store.read([1, 500, 2000])
        assert all(now >= before for now, before in zip(seen, last, strict=True)), (seen, last)
        last = seen
    writer.join()
    assert store.read([1, 500, 2000]) == [207, 200, 200]


_KEY_LISTS = st.lists(st.integers(min_value=0, max_value=2**64 - 1), max_size=60)


@given(_KEY_LISTS, _KEY_LISTS)
@settings(max_examples=200, deadline=None)
def test_sorted_unique_and_marked_union_agree_with_numpy(keys: list[int], marked: list[int]) -> None:
    key_array = np.array(keys, dtype=np.uint64)
    marked_array = np.unique(np.array(marked, dtype=np.uint64))  # marked keys are distinct
    assert store_module.sorted_unique(key_array).tolist() == np.unique(key_array).tolist()
    union, mask = store_module.marked_union(np.unique(key_array), marked_array)
    assert union.tolist() == np.union1d(key_array, marked_array).tolist()
    assert mask.tolist() == np.isin(union, marked_array).tolist()
