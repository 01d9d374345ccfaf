"""The change journal: keys by change sequence, cut at its size, woken waiters."""

from __future__ import annotations

import threading
import time

import numpy as np

from storage_app.core.store import GCounterStore
from storage_app.core.texts import TextColumn
from sync_app.core.journal import ChangeJournal


def test_changes_since_a_cursor_leave_out_the_peers_own_and_stop_at_the_limit() -> None:
    store = GCounterStore()
    store.increment(0, {99: 1})  # before the journal listened
    journal = ChangeJournal(store)
    assert journal.sequence == 1
    assert journal.changes_since(0, 100) is None, "the journal does not reach back before it listened"
    store.increment(0, {1: 1, 2: 1})
    store.merge(np.array([3], dtype=np.uint64), np.array([[0, 4]], dtype=np.uint64), origin=1)
    store.increment(0, {2: 1})
    everything = journal.changes_since(1, 100)
    assert everything is not None
    assert everything.keys.tolist() == [1, 2, 3] and everything.up_to == 4 and everything.complete
    assert everything.slots.tolist() == [[1, 0], [2, 0], [0, 4]]
    for_node_1 = journal.changes_since(1, 100, exclude_origin=1)
    assert for_node_1 is not None and for_node_1.keys.tolist() == [1, 2]
    first_only = journal.changes_since(1, 1)
    assert first_only is not None
    assert first_only.keys.tolist() == [1, 2] and first_only.up_to == 2 and not first_only.complete
    assert journal.changes_since(5, 100) is None, "a cursor from the future"


def test_an_old_cursor_is_refused_once_the_journal_dropped_its_changes() -> None:
    store = GCounterStore()
    journal = ChangeJournal(store, max_keys=10)
    for key in range(1, 31):
        store.increment(0, {key: 1})
    assert journal.changes_since(0, 100) is None
    recent = journal.changes_since(25, 100)
    assert recent is not None and recent.keys.tolist() == [26, 27, 28, 29, 30]


def test_wait_for_change_wakes_on_a_change_and_otherwise_times_out() -> None:
    store = GCounterStore()
    journal = ChangeJournal(store)
    store.increment(0, {1: 1})
    assert journal.wait_for_change(0, timeout=30) == 1  # already past: no wait
    started = time.monotonic()
    assert journal.wait_for_change(1, timeout=0.05) == 1
    assert time.monotonic() - started >= 0.05
    writer = threading.Timer(0.05, lambda: store.increment(0, {2: 1}))
    writer.start()
    started = time.monotonic()
    assert journal.wait_for_change(1, timeout=30) == 2
    assert time.monotonic() - started < 10  # woken by the write, not by the timeout
    writer.join()


def test_a_delta_carries_a_keys_text_with_the_change_that_made_it_known_and_not_after() -> None:
    store = GCounterStore()
    journal = ChangeJournal(store)
    keys = np.array([10, 20, 30], dtype=np.uint64)
    # Increments: 10 and 20 come with texts, 30 without.
    store.increment_arrays(0, keys, np.ones(3, dtype=np.uint64), texts=TextColumn.from_texts([b"ten", b"twenty", None]))
    # A merge from node 1: 30's text becomes known, 40 is new with its text, 10's text is already known.
    store.merge(
        np.array([10, 30, 40], dtype=np.uint64),
        np.array([[0, 1], [0, 1], [0, 1]], dtype=np.uint64),
        origin=1,
        texts=TextColumn.from_texts([b"other", b"thirty", b"forty"]),
    )
    store.increment_arrays(0, keys, np.ones(3, dtype=np.uint64), texts=TextColumn.from_texts([b"ten", None, None]))
    first = journal.changes_since(0, 100)
    assert first is not None and first.texts is not None
    assert dict(zip(first.keys.tolist(), first.texts.texts(), strict=True)) == {
        10: b"ten",
        20: b"twenty",
        30: b"thirty",
        40: b"forty",
    }
    for_node_1 = journal.changes_since(0, 100, exclude_origin=1)
    assert for_node_1 is not None and for_node_1.texts is not None
    assert dict(zip(for_node_1.keys.tolist(), for_node_1.texts.texts(), strict=True)) == {
        10: b"ten",
        20: b"twenty",
        30: None,
    }, "30's text became known in node 1's merge: node 1 has it"
    last = journal.changes_since(2, 100)
    assert last is not None and last.keys.tolist() == [10, 20, 30]
    assert last.texts is None, "texts already known before the cursor are not sent again"
    # A text given on its own (as replay does) is a change of that key alone.
    store.merge(np.array([50], dtype=np.uint64), np.array([[0, 2]], dtype=np.uint64), origin=1)
    assert store.set_texts(np.array([50, 10], dtype=np.uint64), TextColumn.from_texts([b"fifty", b"again"])) == 1
    alone = journal.changes_since(4, 100)
    assert alone is not None and alone.keys.tolist() == [50] and alone.texts is not None
    assert alone.texts.texts() == [b"fifty"]
