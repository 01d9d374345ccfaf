"""RequestFramer finds where a request ends however its bytes are split, and never raises."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from counter_site.request_framing import MAX_HEAD_BYTES, Framing, RequestFramer

LIMIT = 1000


def feed_in_pieces(data: bytes, cuts: list[int], limit: int = LIMIT) -> tuple[RequestFramer, Framing]:
    framer = RequestFramer(limit)
    verdict = Framing.NEED_MORE
    start = 0
    for cut in [*sorted(cut % (len(data) + 1) for cut in cuts), len(data)]:
        if cut <= start:
            continue
        verdict = framer.feed(data[start:cut])
        start = cut
        if verdict is not Framing.NEED_MORE:
            break
    return framer, verdict


def chunked(body: bytes, sizes: list[int]) -> bytes:
    parts, at = [], 0
    for size in sizes:
        piece = body[at : at + size]
        if piece:
            parts.append(b"%x\r\n%s\r\n" % (len(piece), piece))
        at += size
    if at < len(body):
        parts.append(b"%x\r\n%s\r\n" % (len(body) - at, body[at:]))
    return b"".join(parts) + b"0\r\n\r\n"


NEXT = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"


@given(body=st.binary(max_size=LIMIT), cuts=st.lists(st.integers(0, 5000), max_size=8))
def test_a_content_length_request_ends_after_its_body(body: bytes, cuts: list[int]) -> None:
    request = b"POST /keywords HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    framer, verdict = feed_in_pieces(request + NEXT, cuts)
    assert verdict is Framing.COMPLETE
    assert bytes(framer.buffer[: framer.request_end]) == request


@given(
    body=st.binary(max_size=LIMIT),
    sizes=st.lists(st.integers(1, 300), max_size=6),
    cuts=st.lists(st.integers(0, 5000), max_size=8),
)
def test_a_chunked_request_ends_after_its_last_chunk(body: bytes, sizes: list[int], cuts: list[int]) -> None:
    request = b"POST /keywords HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked(body, sizes)
    framer, verdict = feed_in_pieces(request + NEXT, cuts)
    assert verdict is Framing.COMPLETE
    assert bytes(framer.buffer[: framer.request_end]) == request


def test_an_unfinished_request_needs_more() -> None:
    assert RequestFramer(LIMIT).feed(b"GET /keywords?keywords=a HTTP/1.1\r\nHost: x\r\n") is Framing.NEED_MORE
    half_body = b"POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\nhalf"
    assert RequestFramer(LIMIT).feed(half_body) is Framing.NEED_MORE
    half_chunk = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nhalf"
    assert RequestFramer(LIMIT).feed(half_chunk) is Framing.NEED_MORE


def test_what_the_parser_or_view_must_answer_is_handed_over() -> None:
    too_large = b"POST / HTTP/1.1\r\nContent-Length: %d\r\n\r\n" % (LIMIT + 1)
    assert RequestFramer(LIMIT).feed(too_large) is Framing.HAND_OVER
    ambiguous = b"POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\nabc"
    assert RequestFramer(LIMIT).feed(ambiguous) is Framing.HAND_OVER
    assert RequestFramer(LIMIT).feed(b"POST / HTTP/1.1\r\nContent-Length: -3\r\n\r\n") is Framing.HAND_OVER
    assert RequestFramer(LIMIT).feed(b"nonsense\r\n\r\n") is Framing.HAND_OVER
    bad_chunk = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"
    assert RequestFramer(LIMIT).feed(bad_chunk) is Framing.HAND_OVER
    endless = b"GET / HTTP/1.1\r\n" + b"X-A: b\r\n" * (MAX_HEAD_BYTES // 8)
    assert RequestFramer(LIMIT).feed(endless) is Framing.HEAD_TOO_LARGE


def test_expect_continue_is_seen_and_can_be_dropped() -> None:
    framer = RequestFramer(LIMIT)
    head = b"POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n"
    assert framer.feed(head) is Framing.NEED_MORE
    assert framer.expects_continue
    framer.drop_expect_continue()
    assert framer.feed(b"ok") is Framing.COMPLETE
    assert bytes(framer.buffer) == b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nok"


@settings(max_examples=500)
@given(data=st.binary(max_size=4000), cuts=st.lists(st.integers(0, 5000), max_size=8))
def test_any_bytes_give_a_verdict(data: bytes, cuts: list[int]) -> None:
    framer, verdict = feed_in_pieces(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n" + data, cuts)
    assert isinstance(verdict, Framing)
    framer, verdict = feed_in_pieces(data, cuts)
    assert isinstance(verdict, Framing)
    if verdict is Framing.COMPLETE:
        assert 0 < framer.request_end <= len(framer.buffer)
