from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from storage_app.core.keywords import Keywords
from storage_app.core.tokenizer_processes import Counted, TokenizerProcesses, count_as_arrays

TEXT = (Path(__file__).resolve().parents[2] / "README.md").read_bytes() * 20 + "Ünïcödé naïve—café Don’t".encode()


@pytest.fixture
def children() -> Iterator[TokenizerProcesses]:
    processes = TokenizerProcesses("words", 2)
    yield processes
    processes.close()


def as_dict(result: Counted) -> tuple[int, dict[int, tuple[int, bytes | None]]]:
    """Tokens, and each key's count and text."""
    return result.tokens, {
        key: (count, text)
        for key, count, text in zip(result.keys.tolist(), result.counts.tolist(), result.texts.texts(), strict=True)
    }


@pytest.mark.parametrize("tokenizer", ["words", "fields"])
def test_a_child_counts_exactly_what_the_request_thread_would(tokenizer: str) -> None:
    processes = TokenizerProcesses(tokenizer, 1)
    try:
        expected = as_dict(count_as_arrays(Keywords(tokenizer), TEXT))
        assert expected[0] > 1000
        assert as_dict(processes.count(TEXT)) == expected
        assert as_dict(processes.count(b"")) == (0, {})
    finally:
        processes.close()


def test_text_that_is_not_utf8_raises_the_decode_error_of_the_text(children: TokenizerProcesses) -> None:
    data = b"fine words " * 1000 + b"caf\xe9 " + b"more " * 10
    with pytest.raises(UnicodeDecodeError) as raised:
        children.count(data)
    with pytest.raises(UnicodeDecodeError) as expected:
        data.decode("utf-8")
    assert (raised.value.start, raised.value.reason) == (expected.value.start, expected.value.reason)
    assert as_dict(children.count(b"still serving")) == as_dict(count_as_arrays(Keywords("words"), b"still serving"))


def test_a_killed_child_is_replaced_and_its_text_still_counted(children: TokenizerProcesses) -> None:
    expected = as_dict(count_as_arrays(Keywords("words"), TEXT))
    before = children.pids
    for pid in before:
        os.kill(pid, signal.SIGKILL)
    # Each of the two dead children is noticed by the call that picks it; both calls still count.
    assert as_dict(children.count(TEXT)) == expected
    assert as_dict(children.count(TEXT)) == expected
    after = children.pids
    assert len(after) == 2 and not set(after) & set(before)
    assert as_dict(children.count(TEXT)) == expected


def test_closing_stops_the_children_and_later_texts_are_counted_in_the_caller() -> None:
    processes = TokenizerProcesses("words", 2)
    pids = processes.pids
    processes.close()
    for pid in pids:
        with pytest.raises(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)  # already reaped: the process is gone
    assert as_dict(processes.count(TEXT)) == as_dict(count_as_arrays(Keywords("words"), TEXT))
