from __future__ import annotations

import contextlib
import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from storage_app.core.errors import BadSyncPayload
from storage_app.core.store import StoreChunk
from sync_app.core.legacy_protocol import decode_legacy_sync, encode_legacy_sync

U64 = st.integers(min_value=0, max_value=(1 << 64) - 1)


@given(st.lists(st.tuples(U64, st.lists(U64, min_size=3, max_size=3)), max_size=20))
def test_decode_of_encode_is_the_same_rows(rows: list[tuple[int, list[int]]]) -> None:
    keys = np.array([key for key, _ in rows], dtype=np.uint64)
    slots = np.array([totals for _, totals in rows], dtype=np.uint64).reshape(len(rows), 3)
    decoded_keys, decoded_slots = decode_legacy_sync(encode_legacy_sync([StoreChunk(keys, slots)]))
    assert decoded_keys.tolist() == keys.tolist()
    assert decoded_slots.tolist() == slots.tolist()


def test_encoding_is_counter_app_json_padded_to_the_cluster_width() -> None:
    body = encode_legacy_sync([StoreChunk(np.array([5], dtype=np.uint64), np.array([[2]], dtype=np.uint64))], 3)
    assert json.loads(body) == [{"hash_keyword": 5, "totals": [2, 0, 0]}]


def test_null_and_ragged_rows_are_accepted() -> None:
    assert len(decode_legacy_sync(b"null")[0]) == 0
    _keys, slots = decode_legacy_sync(b'[{"hash_keyword":1,"totals":[1]},{"hash_keyword":2,"totals":[0,0,4]}]')
    assert slots.tolist() == [[1, 0, 0], [0, 0, 4]]


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b'{"hash_keyword": 1, "totals": [1]}',
        b"[1, 2]",
        b'[{"totals": [1]}]',
        b'[{"hash_keyword": 1}]',
        b'[{"hash_keyword": -1, "totals": [1]}]',
        b'[{"hash_keyword": 18446744073709551616, "totals": [1]}]',
        b'[{"hash_keyword": 1.5, "totals": [1]}]',
        b'[{"hash_keyword": true, "totals": [1]}]',
        b'[{"hash_keyword": "1", "totals": [1]}]',
        b'[{"hash_keyword": 1, "totals": [-1]}]',
        b'[{"hash_keyword": 1, "totals": [18446744073709551616]}]',
        b'[{"hash_keyword": 1, "totals": [1.0]}]',
        b'[{"hash_keyword": 1, "totals": "1"}]',
        b"\xff\xfe",
        b"[" * 200_000,
        b"[" + b'{"hash_keyword": 1, "totals": [' + b"0," * 300 + b"1]}]",
    ],
)
def test_malformed_bodies_are_refused_with_a_message(body: bytes) -> None:
    with pytest.raises(BadSyncPayload) as raised:
        decode_legacy_sync(body)
    assert str(raised.value)


@given(st.binary(max_size=100))
def test_any_bytes_give_rows_or_a_clean_error(data: bytes) -> None:
    with contextlib.suppress(BadSyncPayload):
        decode_legacy_sync(data)
