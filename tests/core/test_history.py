"""The dashboard's history: a ring of samples, rates between neighbours."""

from __future__ import annotations

import pytest

from storage_app.core.history import History, Sample


def sample(time: float, texts: int = 0, tokens: int = 0, sync_bytes: int = 0, keys: int = 0) -> Sample:
    return Sample(time=time, keys=keys, texts=texts, tokens=tokens, sync_bytes=sync_bytes)


def test_rates_are_the_growth_between_neighbouring_samples_per_second() -> None:
    history = History(interval=2.0, capacity=5)
    history.add(sample(10.0, texts=1, tokens=10, sync_bytes=100, keys=4))
    history.add(sample(12.0, texts=5, tokens=30, sync_bytes=500, keys=9))
    first, second = history.points()
    assert first["texts_per_second"] is None and first["keys"] == 4
    assert second == {
        "time": 12.0,
        "keys": 9,
        "texts_per_second": 2.0,
        "tokens_per_second": 10.0,
        "sync_bytes_per_second": 200.0,
    }


def test_a_total_that_restarts_from_zero_is_a_rate_of_zero_not_negative() -> None:
    history = History(interval=1.0, capacity=5)
    history.add(sample(1.0, sync_bytes=10_000))
    history.add(sample(2.0, sync_bytes=300))  # runsync restarted
    history.add(sample(3.0, sync_bytes=700))
    assert [point["sync_bytes_per_second"] for point in history.points()] == [None, 0.0, 400.0]


def test_only_the_last_capacity_samples_are_kept() -> None:
    history = History(interval=1.0, capacity=3)
    for second in range(10):
        history.add(sample(float(second), tokens=second * 5))
    points = history.points()
    assert [point["time"] for point in points] == [7.0, 8.0, 9.0]
    assert [point["tokens_per_second"] for point in points] == [None, 5.0, 5.0]


def test_a_history_needs_room_for_a_rate() -> None:
    with pytest.raises(ValueError):
        History(interval=1.0, capacity=1)
    with pytest.raises(ValueError):
        History(interval=0.0, capacity=10)
