"""counter-app's sync body: ``[{"hash_keyword": <uint64>, "totals": [<uint64>, ...]}]``.

``totals[i]`` is node i's slot. The decoder is strict: anything but that shape,
a negative number, a number of 2**64 or more, a float or a boolean is refused
with a message that says which item is wrong, before anything is merged.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

import numpy as np

from storage_app.core.errors import BadSyncPayload
from storage_app.core.store import DEFAULT_MAX_SLOTS, KeyArray, SlotArray, StoreChunk, rows_array

_U64_LIMIT = 1 << 64


def _is_u64(value: object) -> bool:
    # bool is a subclass of int in Python; JSON true/false are not counts.
    return type(value) is int and 0 <= value < _U64_LIMIT


def decode_legacy_sync(body: bytes, max_slots: int = DEFAULT_MAX_SLOTS) -> tuple[KeyArray, SlotArray]:
    """Parse and validate a counter-app sync body into keys and slot rows."""
    try:
        items = json.loads(body)
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        raise BadSyncPayload(f"sync body is not valid JSON: {error}") from None
    if items is None:  # Go marshals an empty state as null
        items = []
    if not isinstance(items, list):
        raise BadSyncPayload("sync body must be a JSON array of {hash_keyword, totals} objects")
    keys: list[int] = []
    rows: list[list[int]] = []
    for index, item in enumerate(items):
        if not isinstance(item, dict) or "hash_keyword" not in item or "totals" not in item:
            raise BadSyncPayload(f"item {index} must be an object with hash_keyword and totals")
        key, totals = item["hash_keyword"], item["totals"]
        if not _is_u64(key):
            raise BadSyncPayload(f"item {index}: hash_keyword must be an integer in [0, 2**64)")
        if totals is None:
            totals = []
        if not isinstance(totals, list) or not all(_is_u64(value) for value in totals):
            raise BadSyncPayload(f"item {index}: totals must be a list of integers in [0, 2**64)")
        if len(totals) > max_slots and any(totals[max_slots:]):
            raise BadSyncPayload(f"item {index}: {len(totals)} slots, more than the limit of {max_slots}")
        keys.append(key)
        rows.append(totals[:max_slots])
    return np.array(keys, dtype=np.uint64), rows_array(rows)


def encode_legacy_sync(chunks: Iterable[StoreChunk], min_width: int = 0) -> bytes:
    """A store's content as a counter-app sync body.

    Rows are padded to ``min_width`` slots: counter-app panics when it later
    increments a key whose slot list (created by a merge) is shorter than its id.
    """
    parts: list[str] = []
    for chunk in chunks:
        slots = chunk.slots
        if slots.shape[1] < min_width:
            slots = np.pad(slots, ((0, 0), (0, min_width - slots.shape[1])))
        parts.extend(
            '{"hash_keyword":%d,"totals":[%s]}' % (key, ",".join(map(str, row)))
            for key, row in zip(chunk.keys.tolist(), slots.tolist(), strict=True)
        )
    return ("[" + ",".join(parts) + "]").encode("ascii")
