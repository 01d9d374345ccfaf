"""The native sync codec: every message round-trips; any bytes are a message or a ProtocolError, nothing else."""

from __future__ import annotations

import contextlib
import struct
import zlib

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from storage_app.core.idempotency import Remembered
from sync_app.core.protocol import (
    MAX_BUCKET_BITS,
    Cursor,
    Hello,
    Kind,
    MemberInfo,
    Message,
    Page,
    ProtocolError,
    Rows,
    UnsupportedVersion,
    decode,
    encode,
)

U64 = st.integers(0, (1 << 64) - 1)
MAX_SLOTS = 16

hellos = st.builds(
    Hello,
    node_id=st.integers(0, MAX_SLOTS - 1),
    incarnation=U64,
    sequence=U64,
    width=st.integers(0, MAX_SLOTS),
    tokenizer=st.sampled_from(["words", "fields"]),
)
cursors = st.builds(Cursor, incarnation=U64, sequence=U64, complete=st.booleans(), reset=st.booleans())
members = st.builds(
    MemberInfo,
    node_id=st.integers(0, MAX_SLOTS - 1),
    url=st.text(max_size=60),
    state=st.sampled_from(["up", "down", "left", "forgotten"]),
    started_ms=U64,
    reuses=st.booleans(),
)
remembered = st.builds(
    Remembered,
    key=st.binary(min_size=1, max_size=255),
    fingerprint=st.binary(min_size=16, max_size=16),
    tokens=st.integers(0, (1 << 32) - 1),
    keywords=st.integers(0, (1 << 32) - 1),
    origin=st.integers(0, MAX_SLOTS - 1),
    at_ms=U64,
)
pages = st.builds(Page, start_key=U64, max_rows=st.integers(0, (1 << 32) - 1), done=st.booleans())


@st.composite
def rows(draw: st.DrawFn) -> Rows:
    count = draw(st.integers(0, 20))
    width = draw(st.integers(0, MAX_SLOTS))
    keys = np.array(draw(st.lists(U64, min_size=count, max_size=count)), dtype=np.uint64)
    values = draw(st.lists(U64, min_size=count * width, max_size=count * width))
    return Rows(keys, np.array(values, dtype=np.uint64).reshape(count, width))


@st.composite
def messages(draw: st.DrawFn) -> Message:
    digest_bits = draw(st.integers(0, 6))
    bucket_bits = draw(st.integers(0, MAX_BUCKET_BITS))
    has_ids = draw(st.booleans())
    ids = draw(st.lists(st.integers(0, (1 << bucket_bits) - 1), max_size=10)) if has_ids else None
    return Message(
        kind=draw(st.sampled_from(list(Kind))),
        hello=draw(hellos),
        cursor=draw(st.none() | cursors),
        rows=draw(st.none() | rows()),
        digests=draw(
            st.none()
            | st.lists(U64, min_size=1 << digest_bits, max_size=1 << digest_bits).map(
                lambda values: np.array(values, dtype=np.uint64)
            )
        ),
        bucket_ids=np.array(ids, dtype=np.uint32) if ids is not None else None,
        bucket_bits=bucket_bits if has_ids else 0,
        page=draw(st.none() | pages),
        members=draw(st.none() | st.lists(members, max_size=5).map(tuple)),
        keys_cursor=draw(st.none() | cursors),
        keys=draw(st.none() | st.lists(remembered, max_size=5).map(tuple)),
    )


def same(left: Message, right: Message) -> bool:
    def arrays_equal(a: np.ndarray | None, b: np.ndarray | None) -> bool:
        return (a is None and b is None) or (a is not None and b is not None and a.tolist() == b.tolist())

    return (
        left.kind == right.kind
        and left.hello == right.hello
        and left.cursor == right.cursor
        and left.page == right.page
        and left.members == right.members
        and left.keys_cursor == right.keys_cursor
        and left.keys == right.keys
        and left.bucket_bits == right.bucket_bits
        and arrays_equal(left.digests, right.digests)
        and arrays_equal(left.bucket_ids, right.bucket_ids)
        and (left.rows is None) == (right.rows is None)
        and (
            left.rows is None
            or right.rows is None
            or (
                left.rows.keys.tolist() == right.rows.keys.tolist()
                and left.rows.slots.shape == right.rows.slots.shape
                and left.rows.slots.tolist() == right.rows.slots.tolist()
            )
        )
    )


@settings(max_examples=300, deadline=None)
@given(messages())
def test_every_message_round_trips(message: Message) -> None:
    assert same(decode(encode(message), MAX_SLOTS), message)


def decodes_or_refuses(data: bytes) -> None:
    with contextlib.suppress(ProtocolError, UnsupportedVersion):
        decode(data, MAX_SLOTS)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=300))
def test_any_bytes_are_refused_with_a_protocol_error(data: bytes) -> None:
    decodes_or_refuses(data)


@settings(max_examples=500, deadline=None)
@given(messages(), st.data())
def test_damage_behind_a_recomputed_checksum_is_still_only_a_protocol_error(
    message: Message, data: st.DataObject
) -> None:
    """A peer that checksums garbage correctly gets a clear refusal too: no other exception escapes."""
    body = bytearray(encode(message)[:-4])
    for _ in range(data.draw(st.integers(1, 4))):
        position = data.draw(st.integers(0, len(body) - 1))
        body[position] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans()):
        cut = data.draw(st.integers(0, len(body)))
        body = body[:cut] + bytearray(data.draw(st.binary(max_size=40)))
    decodes_or_refuses(bytes(body) + struct.pack("<I", zlib.crc32(bytes(body))))


def test_a_damaged_byte_is_caught_by_the_checksum() -> None:
    data = bytearray(encode(Message(Kind.EXCHANGE_REQUEST, Hello(1, 2, 3, 4, "words"), cursor=Cursor(5, 6))))
    data[12] ^= 0x01
    try:
        decode(bytes(data))
    except ProtocolError as error:
        assert "checksum mismatch" in str(error)
    else:
        raise AssertionError("a damaged message was accepted")
