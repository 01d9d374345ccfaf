"""Anti-entropy's view of a store: per-bucket digests of its rows, and the rows of chosen buckets.

Keys fall into 2**bits buckets (``bucket_of``). Two stores hold the same rows
in a bucket exactly when (barring a 2**-64 accident) the bucket's digests are
equal, so two nodes compare 4,096 digests and exchange only the rows of the
buckets that differ. Both functions read the store through ``export_chunks``,
one chunk under its lock at a time.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from storage_app.core.store import GCounterStore, KeyArray, SlotArray, stack_rows

_MIX_1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX_2 = np.uint64(0x94D049BB133111EB)
_BUCKET_SALT = np.uint64(0x9E3779B97F4A7C15)


def _mix(values: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    """splitmix64's finaliser: a bijection of uint64 that spreads every input bit."""
    values = values ^ (values >> np.uint64(30))
    values = values * _MIX_1
    values = values ^ (values >> np.uint64(27))
    values = values * _MIX_2
    return values ^ (values >> np.uint64(31))


def bucket_of(keys: KeyArray, bits: int) -> npt.NDArray[np.intp]:
    """The anti-entropy bucket of each key: top ``bits`` of a mix of the key.

    CRC keys of short words cluster in their top bits, hence the mix.
    """
    if bits == 0:
        return np.zeros(len(keys), dtype=np.intp)
    return (_mix(keys ^ _BUCKET_SALT) >> np.uint64(64 - bits)).astype(np.intp)


def row_hashes(keys: KeyArray, slots: SlotArray) -> npt.NDArray[np.uint64]:
    """A 64-bit hash of each (key, non-zero slots) row; trailing zero slots change nothing."""
    hashes = _mix(keys)
    for column in range(slots.shape[1]):
        values = slots[:, column]
        salt = np.uint64((column + 1) * 0xD6E8FEB86659FD93 % (1 << 64))
        contribution = _mix(_mix(values ^ salt) + salt)
        hashes ^= np.where(values != 0, contribution, np.uint64(0))
    return _mix(hashes)


def bucket_digests(store: GCounterStore, bits: int) -> npt.NDArray[np.uint64]:
    """A 64-bit digest of each of the 2**bits buckets of the store's keys; O(n)."""
    digests = np.zeros(1 << bits, dtype=np.uint64)
    for chunk in store.export_chunks():
        np.bitwise_xor.at(digests, bucket_of(chunk.keys, bits), row_hashes(chunk.keys, chunk.slots))
    return digests


def rows_in_buckets(
    store: GCounterStore, buckets: npt.NDArray[np.uint32], bits: int, start_key: int, max_rows: int
) -> tuple[KeyArray, SlotArray, int | None]:
    """The store's rows whose key is in one of ``buckets``, from ``start_key`` up, at most ``max_rows``.

    Returns the rows and the key to continue from, or ``None`` when the whole
    key space was covered.
    """
    wanted = np.zeros(1 << bits, dtype=np.bool_)
    wanted[buckets.astype(np.intp)] = True
    found_keys: list[KeyArray] = []
    found_slots: list[SlotArray] = []
    taken = 0
    for chunk in store.export_chunks(start_key=start_key):
        mask = wanted[bucket_of(chunk.keys, bits)]
        keys, slots = chunk.keys[mask], chunk.slots[mask]
        if taken + len(keys) >= max_rows and len(keys):
            cut = max(max_rows - taken, 1)
            keys, slots = keys[:cut], slots[:cut]
            found_keys.append(keys)
            found_slots.append(slots)
            last = int(keys[-1])
            next_key = last + 1 if last + 1 < 1 << 64 else None
            return _concat(found_keys), stack_rows(found_slots), next_key
        found_keys.append(keys)
        found_slots.append(slots)
        taken += len(keys)
    return _concat(found_keys), stack_rows(found_slots), None


def _concat(keys: list[KeyArray]) -> KeyArray:
    return np.concatenate(keys) if keys else np.empty(0, dtype=np.uint64)
