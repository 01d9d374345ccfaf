"""The native sync protocol's wire format (version 1); docs/protocol.md describes it.

A message is a small header, a list of typed sections, and a CRC-32 trailer:

    u32 magic b"CSYN" | u16 version | u16 kind | u32 section count
    section: u16 type | u16 0 | u32 length | payload
    u32 CRC-32 of every byte before it

All integers are little-endian. A decoder never trusts a length: every size is
checked against what is left, so any byte string gives a message or a
``ProtocolError``, never a crash or a huge allocation.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

import numpy as np

from storage_app.core.errors import CounterError
from storage_app.core.idempotency import Remembered, decode_entries
from storage_app.core.store import DEFAULT_MAX_SLOTS, KeyArray, SlotArray
from storage_app.core.texts import TextColumn, TextsCorrupt

MAGIC = b"CSYN"
PROTOCOL_VERSION = 1
CONTENT_TYPE = "application/x-counter-sync"
MAX_BUCKET_BITS = 16
TOKENIZER_CODES = {"words": 0, "fields": 1}
TOKENIZER_NAMES = {code: name for name, code in TOKENIZER_CODES.items()}

_HEADER = struct.Struct("<4sHHI")
_SECTION = struct.Struct("<HHI")
_CRC = struct.Struct("<I")
_HELLO = struct.Struct("<IQQHBB")
_CURSOR = struct.Struct("<QQB")
_ROWS = struct.Struct("<IHH")
_PAGE = struct.Struct("<QIB")
_COUNT = struct.Struct("<H")
_MEMBER = struct.Struct("<IBBHQ")
_LE_U64 = np.dtype("<u8")
_LE_U32 = np.dtype("<u4")


class ProtocolError(CounterError):
    """A sync message that cannot be decoded (truncated, damaged, or not one)."""

    code = "bad_sync_message"


class UnsupportedVersion(CounterError):
    """A sync message of a protocol version this node does not speak."""

    code = "unsupported_protocol_version"


class Kind(IntEnum):
    EXCHANGE_REQUEST = 1
    EXCHANGE_RESPONSE = 2
    DIGEST_REQUEST = 3
    DIGEST_RESPONSE = 4
    BUCKETS_REQUEST = 5
    BUCKETS_RESPONSE = 6


class Section(IntEnum):
    HELLO = 1
    CURSOR = 2
    ROWS = 3
    DIGESTS = 4
    BUCKET_IDS = 5
    PAGE = 6
    MEMBERS = 7
    KEYS_CURSOR = 8
    KEYS = 9
    TEXTS = 10  # the texts of some of the rows' keys; a node that predates it keeps it in ``extra``


MEMBER_STATES = ("up", "down", "left", "forgotten")
MAX_URL_BYTES = 1024


@dataclass(frozen=True)
class MemberInfo:
    """A cluster member as a node tells its peers about it: id, advertised sync URL, state.

    In JSON (runsync's reports, the node's answers) it is the list ``as_list`` gives.
    """

    node_id: int
    url: str
    state: str = "up"  # one of MEMBER_STATES
    started_ms: int = 0  # when the member's process started (Unix ms; only the sender tells its own, else 0)
    reuses: bool = False  # the sender takes over the id of a decommissioned node (``runnode --reuse-id``)

    def as_list(self) -> list[object]:
        return [self.node_id, self.url, self.state, self.started_ms, self.reuses]

    @classmethod
    def from_list(cls, item: list[Any]) -> MemberInfo:
        """The inverse of ``as_list``; ``ValueError`` if ``item`` is not one."""
        try:
            node_id, url, state, started_ms, reuses = item
            if state not in MEMBER_STATES:
                raise ValueError(f"unknown member state {state!r}")
            return cls(int(node_id), str(url), str(state), int(started_ms), bool(reuses))
        except (TypeError, ValueError) as error:
            raise ValueError(f"not a member: {item!r} ({error})") from None


@dataclass(frozen=True)
class Hello:
    """Who is speaking: sent first in every message."""

    node_id: int
    incarnation: int  # random per process start: names the sequence space of ``sequence``
    sequence: int  # the sender's change sequence when it wrote the message
    width: int  # replica slots the sender knows
    tokenizer: str


@dataclass(frozen=True)
class Cursor:
    """A position in a node's change sequence: (incarnation, sequence).

    In a request it says how far the sender has the receiver's changes. In a
    response it is the position the returned rows reach; ``complete`` says
    nothing newer was left out, ``reset`` that the request's cursor could not
    be served (another incarnation, or older than the journal): the sender
    must repair through anti-entropy.
    """

    incarnation: int
    sequence: int
    complete: bool = True
    reset: bool = False


@dataclass(frozen=True)
class Rows:
    keys: KeyArray
    slots: SlotArray
    texts: TextColumn | None = None  # aligned with keys; sent only for keys the receiver may not know the text of

    @staticmethod
    def empty() -> Rows:
        return Rows(np.empty(0, dtype=np.uint64), np.zeros((0, 0), dtype=np.uint64))


@dataclass(frozen=True)
class Page:
    """Paging of bucket rows: start at ``start_key``; ``done`` once the key space is covered."""

    start_key: int
    max_rows: int
    done: bool = False


@dataclass(frozen=True)
class Message:
    kind: Kind
    hello: Hello
    cursor: Cursor | None = None
    rows: Rows | None = None
    digests: np.ndarray | None = None  # uint64 per bucket; len is a power of two
    bucket_ids: np.ndarray | None = None  # uint32
    bucket_bits: int = 0  # how many buckets the ids count in (2**bits), with bucket_ids
    page: Page | None = None
    # The members the sender knows, the sender itself first (with its advertised URL).
    members: tuple[MemberInfo, ...] | None = None
    # Idempotency keys: the sender's position in the receiver's keys (requests) or in its own
    # (responses), and keys the sender remembered (see storage_app/core/idempotency.py).
    keys_cursor: Cursor | None = None
    keys: tuple[Remembered, ...] | None = None
    extra: dict[int, bytes] = field(default_factory=dict)  # sections of a later minor revision


def encode(message: Message) -> bytes:
    """The message's bytes."""
    sections: list[tuple[Section, bytes]] = []
    hello = message.hello
    sections.append(
        (
            Section.HELLO,
            _HELLO.pack(
                hello.node_id, hello.incarnation, hello.sequence, hello.width, TOKENIZER_CODES[hello.tokenizer], 0
            ),
        )
    )
    if message.cursor is not None:
        flags = int(message.cursor.complete) | (int(message.cursor.reset) << 1)
        sections.append((Section.CURSOR, _CURSOR.pack(message.cursor.incarnation, message.cursor.sequence, flags)))
    if message.rows is not None:
        keys, slots = message.rows.keys, message.rows.slots
        sections.append(
            (
                Section.ROWS,
                _ROWS.pack(len(keys), slots.shape[1], 0)
                + keys.astype(_LE_U64, copy=False).tobytes()
                + slots.astype(_LE_U64, copy=False).tobytes(),
            )
        )
        if message.rows.texts is not None and message.rows.texts.any():
            sections.append((Section.TEXTS, message.rows.texts.encode()))
    if message.digests is not None:
        bits = len(message.digests).bit_length() - 1
        sections.append((Section.DIGESTS, bytes([bits]) + message.digests.astype(_LE_U64, copy=False).tobytes()))
    if message.bucket_ids is not None:
        sections.append(
            (
                Section.BUCKET_IDS,
                bytes([message.bucket_bits]) + message.bucket_ids.astype(_LE_U32, copy=False).tobytes(),
            )
        )
    if message.page is not None:
        page = message.page
        sections.append((Section.PAGE, _PAGE.pack(page.start_key, page.max_rows, int(page.done))))
    if message.members is not None:
        sections.append((Section.MEMBERS, _encode_members(message.members)))
    if message.keys_cursor is not None:
        cursor = message.keys_cursor
        flags = int(cursor.complete) | (int(cursor.reset) << 1)
        sections.append((Section.KEYS_CURSOR, _CURSOR.pack(cursor.incarnation, cursor.sequence, flags)))
    if message.keys is not None:
        sections.append((Section.KEYS, b"".join(entry.encode() for entry in message.keys)))
    parts = [_HEADER.pack(MAGIC, PROTOCOL_VERSION, int(message.kind), len(sections))]
    for section_type, payload in sections:
        parts.append(_SECTION.pack(int(section_type), 0, len(payload)))
        parts.append(payload)
    body = b"".join(parts)
    return body + _CRC.pack(zlib.crc32(body))


def decode(data: bytes, max_slots: int = DEFAULT_MAX_SLOTS) -> Message:
    """Parse and check a message; raise ``ProtocolError`` or ``UnsupportedVersion``."""
    view = memoryview(data)
    if len(view) < _HEADER.size + _CRC.size:
        raise ProtocolError(f"sync message too short ({len(view)} bytes)")
    magic, version, kind_code, count = _HEADER.unpack_from(view)
    if magic != MAGIC:
        raise ProtocolError("not a Counter sync message (bad magic number)")
    if version != PROTOCOL_VERSION:
        raise UnsupportedVersion(
            f"sync protocol version {version} is not supported; this node speaks version {PROTOCOL_VERSION}"
        )
    (crc,) = _CRC.unpack_from(view, len(view) - _CRC.size)
    if crc != zlib.crc32(view[: len(view) - _CRC.size]):
        raise ProtocolError("sync message checksum mismatch: truncated or damaged")
    try:
        kind = Kind(kind_code)
    except ValueError:
        raise ProtocolError(f"unknown sync message kind {kind_code}") from None
    end = len(view) - _CRC.size
    offset = _HEADER.size
    payloads: dict[int, memoryview] = {}
    for _ in range(count):
        if offset + _SECTION.size > end:
            raise ProtocolError("sync message ends inside a section header")
        section_type, _reserved, length = _SECTION.unpack_from(view, offset)
        offset += _SECTION.size
        if length > end - offset:
            raise ProtocolError(f"section {section_type} runs past the end of the message")
        if section_type in payloads:
            raise ProtocolError(f"section {section_type} appears twice")
        payloads[section_type] = view[offset : offset + length]
        offset += length
    if offset != end:
        raise ProtocolError("unexpected bytes after the last section")
    if Section.HELLO not in payloads:
        raise ProtocolError("sync message has no hello section")
    known = {int(section) for section in Section}
    rows = _decode_rows(payloads[Section.ROWS], max_slots) if Section.ROWS in payloads else None
    if Section.TEXTS in payloads:
        rows = _with_texts(rows, payloads[Section.TEXTS])
    bucket_bits, bucket_ids = (
        _decode_bucket_ids(payloads[Section.BUCKET_IDS]) if Section.BUCKET_IDS in payloads else (0, None)
    )
    return Message(
        kind=kind,
        hello=_decode_hello(payloads[Section.HELLO], max_slots),
        cursor=_decode_cursor(payloads[Section.CURSOR]) if Section.CURSOR in payloads else None,
        rows=rows,
        digests=_decode_digests(payloads[Section.DIGESTS]) if Section.DIGESTS in payloads else None,
        bucket_ids=bucket_ids,
        bucket_bits=bucket_bits,
        page=_decode_page(payloads[Section.PAGE]) if Section.PAGE in payloads else None,
        members=_decode_members(payloads[Section.MEMBERS], max_slots) if Section.MEMBERS in payloads else None,
        keys_cursor=_decode_cursor(payloads[Section.KEYS_CURSOR]) if Section.KEYS_CURSOR in payloads else None,
        keys=_decode_keys(payloads[Section.KEYS], max_slots) if Section.KEYS in payloads else None,
        extra={key: bytes(value) for key, value in payloads.items() if key not in known},
    )


def _with_texts(rows: Rows | None, payload: memoryview) -> Rows:
    if rows is None:
        raise ProtocolError("a texts section without rows")
    try:
        texts, end = TextColumn.decode(payload, 0, len(rows.keys))
    except TextsCorrupt as error:
        raise ProtocolError(f"texts section: {error}") from None
    _exact(payload, end, "texts")
    return Rows(rows.keys, rows.slots, texts)


def _exact(payload: memoryview, size: int, name: str) -> None:
    if len(payload) != size:
        raise ProtocolError(f"{name} section has {len(payload)} bytes, expected {size}")


def _decode_hello(payload: memoryview, max_slots: int) -> Hello:
    _exact(payload, _HELLO.size, "hello")
    node_id, incarnation, sequence, width, tokenizer_code, _reserved = _HELLO.unpack_from(payload)
    if tokenizer_code not in TOKENIZER_NAMES:
        raise ProtocolError(f"unknown tokenizer code {tokenizer_code}")
    if node_id >= max_slots or width > max_slots:
        raise ProtocolError(f"node id {node_id} or width {width} is past the limit of {max_slots} slots")
    return Hello(node_id, incarnation, sequence, width, TOKENIZER_NAMES[tokenizer_code])


def _decode_keys(payload: memoryview, max_slots: int) -> tuple[Remembered, ...]:
    try:
        entries = decode_entries(payload)
    except ValueError as error:
        raise ProtocolError(f"keys section: {error}") from None
    if any(entry.origin >= max_slots for entry in entries):
        raise ProtocolError(f"keys section names a node id past the limit of {max_slots} slots")
    return tuple(entries)


def _decode_cursor(payload: memoryview) -> Cursor:
    _exact(payload, _CURSOR.size, "cursor")
    incarnation, sequence, flags = _CURSOR.unpack_from(payload)
    return Cursor(incarnation, sequence, complete=bool(flags & 1), reset=bool(flags & 2))


def _decode_rows(payload: memoryview, max_slots: int) -> Rows:
    if len(payload) < _ROWS.size:
        raise ProtocolError("rows section is too short")
    count, width, _reserved = _ROWS.unpack_from(payload)
    if width > max_slots:
        raise ProtocolError(f"rows have {width} slots, past the limit of {max_slots}")
    _exact(payload, _ROWS.size + count * 8 * (1 + width), "rows")
    keys = np.frombuffer(payload, dtype=_LE_U64, count=count, offset=_ROWS.size).astype(np.uint64)
    slots = np.frombuffer(payload, dtype=_LE_U64, count=count * width, offset=_ROWS.size + count * 8)
    return Rows(keys, slots.astype(np.uint64).reshape(count, width))


def _decode_digests(payload: memoryview) -> np.ndarray:
    if len(payload) < 1 or payload[0] > MAX_BUCKET_BITS:
        raise ProtocolError("digests section has no valid bucket count")
    _exact(payload, 1 + 8 * (1 << payload[0]), "digests")
    return np.frombuffer(payload, dtype=_LE_U64, offset=1).astype(np.uint64)


def _decode_bucket_ids(payload: memoryview) -> tuple[int, np.ndarray]:
    if len(payload) < 1 or payload[0] > MAX_BUCKET_BITS or (len(payload) - 1) % 4:
        raise ProtocolError("bucket ids section needs a bucket count and whole u32 ids")
    bits = int(payload[0])
    ids = np.frombuffer(payload, dtype=_LE_U32, offset=1).astype(np.uint32)
    if len(ids) and int(ids.max()) >= 1 << bits:
        raise ProtocolError(f"bucket id out of range for {1 << bits} buckets")
    return bits, ids


def _encode_members(members: tuple[MemberInfo, ...]) -> bytes:
    parts = [_COUNT.pack(len(members))]
    for member in members:
        url = member.url.encode("utf-8")
        if len(url) > MAX_URL_BYTES:
            raise ValueError(f"member {member.node_id}'s URL is longer than {MAX_URL_BYTES} bytes")
        state = MEMBER_STATES.index(member.state)
        parts.append(_MEMBER.pack(member.node_id, state, int(member.reuses), len(url), member.started_ms) + url)
    return b"".join(parts)


def _decode_members(payload: memoryview, max_slots: int) -> tuple[MemberInfo, ...]:
    if len(payload) < _COUNT.size:
        raise ProtocolError("members section is too short")
    (count,) = _COUNT.unpack_from(payload)
    offset = _COUNT.size
    members = []
    for _ in range(count):
        if offset + _MEMBER.size > len(payload):
            raise ProtocolError("members section ends inside a member")
        node_id, state, flags, length, started_ms = _MEMBER.unpack_from(payload, offset)
        offset += _MEMBER.size
        if node_id >= max_slots or state >= len(MEMBER_STATES) or length > MAX_URL_BYTES:
            raise ProtocolError(f"member {node_id} has a bad state ({state}) or URL length ({length})")
        if offset + length > len(payload):
            raise ProtocolError("members section ends inside a URL")
        try:
            url = bytes(payload[offset : offset + length]).decode("utf-8")
        except UnicodeDecodeError:
            raise ProtocolError(f"member {node_id} has a URL that is not UTF-8") from None
        offset += length
        members.append(MemberInfo(node_id, url, MEMBER_STATES[state], started_ms, bool(flags & 1)))
    if offset != len(payload):
        raise ProtocolError("unexpected bytes after the last member")
    return tuple(members)


def _decode_page(payload: memoryview) -> Page:
    _exact(payload, _PAGE.size, "page")
    start_key, max_rows, done = _PAGE.unpack_from(payload)
    return Page(start_key, max_rows, bool(done))
