"""Top-N queries at scale, in process: how long they hold the store's lock, and what keyword texts cost.

``bench.perf`` (``make bench``) times ``GET /top`` over HTTP on a real node; this
module measures what HTTP cannot show:

* how long ``GCounterStore.top`` holds the store's lock, against a read of one
  keyword and of 100, on the same store (the lock is swapped for one that
  times every hold);
* the bytes the keyword texts add per key when the store holds the corpus.

``python -m bench.top_queries`` prints the first with each call's time, on a
store of a million new keywords and 16 MB of the corpus (``make bench``
builds the corpus).
"""

from __future__ import annotations

import functools
import statistics
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import numpy as np

from storage_app.core.keywords import Keywords
from storage_app.core.store import GCounterStore
from storage_app.core.tokenizer_processes import count_as_arrays

_WORDS = Keywords("words")


class TimedLock:
    """A lock that records how long each hold lasted (seconds)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._since = 0.0
        self.holds: list[float] = []

    def __enter__(self) -> TimedLock:
        self._lock.acquire()
        self._since = time.perf_counter()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.holds.append(time.perf_counter() - self._since)
        self._lock.release()


@dataclass(frozen=True)
class LockHolds:
    """Per kind of call, the median and the longest single hold of the store's lock (seconds)."""

    median: dict[str, float]
    longest: dict[str, float]


def index_into(store: GCounterStore, texts: Iterable[bytes]) -> None:
    """Count ``texts`` into slot 0 the way a node does: keys, counts and the texts of new keywords."""
    for text in texts:
        counted = count_as_arrays(_WORDS, text)
        store.increment_arrays(0, counted.keys, counted.counts, texts=counted.texts)


def lock_holds(store: GCounterStore, calls: dict[str, Callable[[], object]], repeats: int) -> LockHolds:
    """Run each call ``repeats`` times with a timing lock in the store; every hold of each call counts."""
    timed = TimedLock()
    original = store._lock
    store._lock = timed  # type: ignore[assignment]
    median: dict[str, float] = {}
    longest: dict[str, float] = {}
    try:
        for name, call in calls.items():
            timed.holds = []
            for _ in range(repeats):
                call()
            median[name] = statistics.median(timed.holds)
            longest[name] = max(timed.holds)
    finally:
        store._lock = original
    return LockHolds(median, longest)


def standard_calls(store: GCounterStore, words: list[str], prefixes: list[str]) -> dict[str, Callable[[], object]]:
    """The calls compared: reads of 1 and 100 keywords, top 100, and top 100 of each prefix."""
    keys = np.array(_WORDS.keys_of(words[:100]), dtype=np.uint64)
    one = [int(keys[0])]
    many = [int(key) for key in keys]
    calls: dict[str, Callable[[], object]] = {
        "read of 1 keyword": lambda: store.read(one),
        "read of 100 keywords": lambda: store.read(many),
        "top 100": lambda: store.top(100),
    }
    for prefix in prefixes:
        calls[f"top 100, prefix {prefix!r}"] = functools.partial(store.top, 100, prefix.encode())
    return calls


def text_bytes_per_key(texts: Iterable[bytes]) -> tuple[int, float]:
    """Keys of a store holding ``texts``, and what their keyword texts cost per key (offset, length, text)."""
    store = GCounterStore()
    index_into(store, texts)
    store.compact()
    return len(store), store.text_memory_bytes() / max(len(store), 1)


def main() -> None:
    """``python -m bench.top_queries``: top-N times and lock holds on a store of new keywords plus some corpus."""
    import argparse

    from bench.corpus import iter_chunks
    from bench.perf import PROJECT_DIR, TOP_PREFIXES, TOP_REPEATS, corpus_words, distinct_words_text

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--keys", type=int, default=1_000_000, help="new keywords seen once each")
    parser.add_argument("--corpus-bytes", type=int, default=16_000_000, help="corpus bytes counted besides")
    parser.add_argument("--corpus", type=Path, default=PROJECT_DIR / ".bench" / "corpus" / "corpus.txt")
    options = parser.parse_args()
    corpus = options.corpus.read_bytes()[: options.corpus_bytes]  # built by `make bench`
    chunks = list(iter_chunks(corpus, 65536))
    store = GCounterStore()
    index_into(store, iter_chunks(distinct_words_text(options.keys), 256 * 1024))
    index_into(store, chunks)
    calls = standard_calls(store, corpus_words(chunks, 100), TOP_PREFIXES)
    holds = lock_holds(store, calls, TOP_REPEATS)
    print(f"{len(store):,} keys; {TOP_REPEATS} calls each")
    for name, call in calls.items():
        times = []
        for _ in range(TOP_REPEATS):
            started = time.perf_counter()
            call()
            times.append(time.perf_counter() - started)
        print(
            f"{name}: {1000 * statistics.median(times):.2f} ms a call; the store's lock held "
            f"{1e6 * holds.median[name]:.0f} µs (median), {1e6 * holds.longest[name]:.0f} µs (longest)"
        )


if __name__ == "__main__":
    main()
