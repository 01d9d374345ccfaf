"""Keyword texts: the UTF-8 text of each key, kept beside the counts.

A key is the CRC-64 of its keyword, so on its own it can be counted but never
shown. Two forms carry texts:

* ``TextColumn``: the texts of a run of keys (a log record's, a snapshot
  chunk's, a sync message's), aligned with those keys: ``lengths[i]`` bytes of
  ``data`` belong to key ``i``, a length of 0 means "text not known" (a
  keyword is never empty). Wire form: ``rows x u32 lengths`` (little-endian),
  then the texts one after the other.
* ``TextArena``: the store's own copy, one append-only byte array holding every
  text once, each entry a length byte and the text (a text of 255 bytes or
  more: its u32 length, the byte 255, the text). The store keeps, per key, the
  ``u32`` offset of the text itself (``NO_TEXT`` when unknown), so a key's text
  costs its length plus 5 bytes and no Python object, and a text's first byte
  is one lookup away (what a prefix query compares first).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from .errors import CounterError

OffsetArray = npt.NDArray[np.uint32]
Positions = npt.NDArray[np.int64]

NO_TEXT = 0xFFFFFFFF  # the offset of a key whose text is not known
_LONG = 255  # the length byte of an entry whose u32 length follows
_U32 = struct.Struct("<I")
_LE_U32 = np.dtype("<u4")


class TextsCorrupt(CounterError):
    """A texts section whose lengths run past the bytes it has."""

    code = "texts_corrupt"


@dataclass(frozen=True)
class TextColumn:
    """The texts of ``len(lengths)`` keys, aligned with them; a length of 0 is an unknown text."""

    lengths: npt.NDArray[np.uint32]
    data: bytes

    @classmethod
    def from_texts(cls, texts: Sequence[bytes | None]) -> TextColumn:
        """A column of ``texts`` (None or empty: not known)."""
        lengths = np.fromiter((len(text) if text else 0 for text in texts), dtype=np.uint32, count=len(texts))
        return cls(lengths, b"".join(text for text in texts if text))

    @classmethod
    def unknown(cls, rows: int) -> TextColumn:
        return cls(np.zeros(rows, dtype=np.uint32), b"")

    def __len__(self) -> int:
        return len(self.lengths)

    def any(self) -> bool:
        """True if at least one text is known."""
        return bool(self.data)

    def texts(self) -> list[bytes | None]:
        """Every row's text (None where unknown), in order."""
        result: list[bytes | None] = []
        data, position = self.data, 0
        for length in self.lengths.tolist():
            if length:
                result.append(data[position : position + length])
                position += length
            else:
                result.append(None)
        return result

    def only(self, mask: npt.NDArray[np.bool_]) -> TextColumn:
        """The same rows, with the texts of rows where ``mask`` is False made unknown (one numpy gather)."""
        keep = mask & (self.lengths > 0)
        kept_lengths = self.lengths[keep].astype(np.int64)
        starts = (np.cumsum(self.lengths, dtype=np.int64) - self.lengths)[keep]
        data = np.frombuffer(self.data, dtype=np.uint8)[_gather_index(starts, kept_lengths)].tobytes()
        return TextColumn(np.where(keep, self.lengths, np.uint32(0)).astype(np.uint32), data)

    def compress(self, mask: npt.NDArray[np.bool_]) -> TextColumn:
        """Only the rows where ``mask`` is True."""
        kept = self.only(mask)
        return TextColumn(kept.lengths[mask], kept.data)

    def encode(self) -> bytes:
        """The wire form: u32 lengths, then the texts."""
        return self.lengths.astype(_LE_U32, copy=False).tobytes() + self.data

    @classmethod
    def decode(
        cls, buffer: bytes | memoryview, offset: int, rows: int, end: int | None = None
    ) -> tuple[TextColumn, int]:
        """Read a column of ``rows`` texts at ``offset`` (not past ``end``); return it and the offset after it.

        Raises ``TextsCorrupt`` if the lengths run past the buffer; the bytes are
        not checked to be UTF-8 (a node shows a text as it was sent).
        """
        end = len(buffer) if end is None else end
        if offset + 4 * rows > end:
            raise TextsCorrupt(f"a texts section of {rows} rows runs past the end of its data")
        lengths = np.frombuffer(buffer, dtype=_LE_U32, count=rows, offset=offset).astype(np.uint32)
        offset += 4 * rows
        size = int(lengths.sum(dtype=np.uint64))
        if offset + size > end:
            raise TextsCorrupt(f"texts of {size} bytes run past the end of their data")
        return cls(lengths, bytes(buffer[offset : offset + size])), offset + size


def concat_columns(columns: Sequence[TextColumn]) -> TextColumn:
    """Columns one after the other."""
    if not columns:
        return TextColumn.unknown(0)
    return TextColumn(np.concatenate([column.lengths for column in columns]), b"".join(c.data for c in columns))


class TextArena:
    """An append-only byte array of length-prefixed texts (not thread-safe: the store's lock guards it).

    ``buffer[:used]`` never changes once written, so a reader may keep a
    reference to ``buffer`` and ``used`` and read entries after the lock is
    released; growing replaces ``buffer`` and leaves the old one to such readers.
    Capacity doubles, and pages of it not written yet take no memory.
    """

    def __init__(self) -> None:
        self.buffer: npt.NDArray[np.uint8] = np.empty(0, dtype=np.uint8)
        self.used = 0

    def append(self, text: bytes) -> int:
        """Store ``text`` (non-empty); return its offset, or ``NO_TEXT`` if the arena is full (4 GiB)."""
        head = bytes((len(text),)) if len(text) < _LONG else _U32.pack(len(text)) + bytes((_LONG,))
        entry = head + text
        start = self.used
        if start + len(entry) >= NO_TEXT:
            return NO_TEXT
        self._reserve(len(entry))
        self.buffer[start : start + len(entry)] = np.frombuffer(entry, dtype=np.uint8)
        self.used = start + len(entry)
        return start + len(head)

    def extend(self, column: TextColumn) -> OffsetArray:
        """Store every text of ``column`` (all known); return their offsets. One numpy step for short texts."""
        lengths = column.lengths.astype(np.int64)
        sizes = lengths + 1
        entry_ends = np.cumsum(sizes)
        total = int(entry_ends[-1]) if len(entry_ends) else 0
        if bool((lengths >= _LONG).any()) or self.used + total >= NO_TEXT or not bool((lengths > 0).all()):
            return np.array([self.append(text) if text else NO_TEXT for text in column.texts()], dtype=np.uint32)
        self._reserve(total)
        base = self.used
        entry_starts = entry_ends - sizes
        written = self.buffer[base : base + total]
        written[entry_starts] = lengths.astype(np.uint8)
        text_starts = np.cumsum(lengths) - lengths
        written[_gather_index(text_starts, lengths) + np.repeat(entry_starts + 1 - text_starts, lengths)] = (
            np.frombuffer(column.data, dtype=np.uint8)
        )
        self.used = base + total
        return (entry_starts + base + 1).astype(np.uint32)

    def _reserve(self, size: int) -> None:
        if self.used + size > len(self.buffer):
            grown = np.empty(max(2 * len(self.buffer), self.used + size, 4096), dtype=np.uint8)
            grown[: self.used] = self.buffer[: self.used]
            self.buffer = grown

    @property
    def nbytes(self) -> int:
        """Bytes written (the capacity past them is not touched, so not resident)."""
        return self.used


def read_entry(buffer: npt.NDArray[np.uint8], offset: int) -> bytes:
    """The text at ``offset`` in the arena."""
    length = int(buffer[offset - 1])
    if length == _LONG:
        (length,) = _U32.unpack(buffer[offset - 5 : offset - 1].tobytes())
    return buffer[offset : offset + length].tobytes()


def entry_spans(buffer: npt.NDArray[np.uint8], offsets: OffsetArray) -> tuple[Positions, Positions]:
    """Where each text starts in ``buffer``, and its length (offsets must not be ``NO_TEXT``)."""
    starts = offsets.astype(np.int64)
    lengths = buffer[starts - 1].astype(np.int64)
    for index in np.flatnonzero(lengths == _LONG).tolist():  # texts of 255 bytes or more are rare
        position = int(starts[index])
        (lengths[index],) = _U32.unpack(buffer[position - 5 : position - 1].tobytes())
    return starts, lengths


def rows_with_prefix(
    buffer: npt.NDArray[np.uint8], offsets: OffsetArray, prefix: bytes, written: int
) -> npt.NDArray[np.intp]:
    """The rows whose text (at ``offsets[row]``) starts with ``prefix``, ascending.

    Only texts within the first ``written`` bytes of ``buffer`` count: rows
    without a text (``NO_TEXT`` is never below it) or with one written later
    never match. The first byte is compared for every such row in one gather (a
    text is never empty, and its offset is where it starts); the rest one byte
    at a time over the rows still in, so the work falls off as fast as the
    matches do.
    """
    rows = np.flatnonzero(offsets < written)
    if not prefix or len(rows) == 0:
        return rows
    found = offsets[rows]
    same = np.flatnonzero(buffer[found] == prefix[0])
    rows = rows[same]
    starts, lengths = entry_spans(buffer, found[same])
    for position in range(1, len(prefix)):
        if len(rows) == 0:
            break
        keep = lengths > position
        keep[keep] = buffer[starts[keep] + position] == prefix[position]
        rows, starts, lengths = rows[keep], starts[keep], lengths[keep]
    return rows


def leading_bytes(buffer: npt.NDArray[np.uint8], offsets: OffsetArray) -> npt.NDArray[np.uint64]:
    """Each text's first 8 bytes as a big-endian number (zero-padded); 2**64 - 1 where there is no text.

    The order of these numbers never contradicts the order of the texts (a
    UTF-8 text never holds the byte 0xFF, so no text reaches the value of a
    missing one); equal numbers need the full texts to tell them apart.
    """
    result = np.full(len(offsets), np.uint64(0xFFFFFFFFFFFFFFFF), dtype=np.uint64)
    known = np.flatnonzero(offsets != NO_TEXT)
    starts, lengths = entry_spans(buffer, offsets[known])
    packed = np.zeros(len(known), dtype=np.uint64)
    for position in range(8):
        byte = np.zeros(len(known), dtype=np.uint64)
        inside = lengths > position
        byte[inside] = buffer[starts[inside] + position]
        packed = (packed << np.uint64(8)) | byte
    result[known] = packed
    return result


def iter_entries(buffer: npt.NDArray[np.uint8], offsets: OffsetArray) -> Iterator[bytes | None]:
    """The text at each offset (None for ``NO_TEXT``)."""
    for offset in offsets.tolist():
        yield None if offset == NO_TEXT else read_entry(buffer, offset)


def _gather_index(starts: Positions, lengths: Positions) -> Positions:
    """Indexes of the bytes of runs ``[starts[i], starts[i] + lengths[i])``, one run after the other."""
    ends = np.cumsum(lengths)
    total = int(ends[-1]) if len(ends) else 0
    index: Positions = np.arange(total, dtype=np.int64) + np.repeat(starts - (ends - lengths), lengths)
    return index


def column_from_arena(buffer: npt.NDArray[np.uint8], offsets: OffsetArray) -> TextColumn:
    """The texts at ``offsets`` (``NO_TEXT``: unknown) as a column, gathered in one numpy step."""
    lengths = np.zeros(len(offsets), dtype=np.int64)
    known = np.flatnonzero(offsets != NO_TEXT)
    if len(known) == 0:
        return TextColumn.unknown(len(offsets))
    starts, known_lengths = entry_spans(buffer, offsets[known])
    lengths[known] = known_lengths
    data = buffer[_gather_index(starts, known_lengths)].tobytes()
    return TextColumn(lengths.astype(np.uint32), data)
