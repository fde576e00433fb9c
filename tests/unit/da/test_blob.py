"""Pure blob layout rules: packing, padding, commitments root and blob id."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zgos.core.hashing import keccak256, keccak256_pair
from zgos.da.spec.blob import (
    BYTES_PER_ROW,
    BYTES_PER_ROW_PAYLOAD,
    MAX_BLOB_BYTES,
    BlobError,
    BlobHeader,
    InvalidBlobSize,
    InvalidPadding,
    InvalidRow,
    compute_blob_id,
    compute_commitments_root,
    compute_row_count,
    pack_rows,
    unpack_rows,
)

payloads = st.binary(min_size=1, max_size=2 * BYTES_PER_ROW_PAYLOAD + 100)
commitment = st.binary(min_size=48, max_size=48)


def test_max_blob_is_at_least_16_mib() -> None:
    assert MAX_BLOB_BYTES >= 16 * 2**20
    assert compute_row_count(MAX_BLOB_BYTES) == 256


@settings(max_examples=40, deadline=None)
@given(payloads)
def test_pack_then_unpack_returns_the_exact_bytes(data: bytes) -> None:
    rows = pack_rows(data)
    assert len(rows) == compute_row_count(len(data))
    assert all(len(row) == BYTES_PER_ROW for row in rows)
    assert unpack_rows(rows, len(data)) == data


@settings(max_examples=40, deadline=None)
@given(payloads)
def test_every_field_element_is_below_2_pow_248(data: bytes) -> None:
    for row in pack_rows(data):
        assert all(row[i] == 0 for i in range(0, BYTES_PER_ROW, 32))


@given(st.integers(min_value=1, max_value=MAX_BLOB_BYTES))
def test_row_count_is_the_ceiling_of_size_over_row_payload(size: int) -> None:
    rows = compute_row_count(size)
    assert (rows - 1) * BYTES_PER_ROW_PAYLOAD < size <= rows * BYTES_PER_ROW_PAYLOAD


def test_empty_and_oversized_blobs_are_rejected() -> None:
    with pytest.raises(InvalidBlobSize, match="at least 1 byte"):
        pack_rows(b"")
    with pytest.raises(InvalidBlobSize, match="exceeds the maximum"):
        compute_row_count(MAX_BLOB_BYTES + 1)


def test_unpack_rejects_nonzero_padding_and_high_bytes() -> None:
    rows = pack_rows(b"abc")
    with pytest.raises(InvalidPadding):
        unpack_rows(rows, 2)
    bad = bytearray(rows[0])
    bad[32] = 1
    with pytest.raises(InvalidRow):
        unpack_rows([bytes(bad)], 3)
    with pytest.raises(InvalidRow):
        unpack_rows([rows[0][:-1]], 3)


@given(st.lists(commitment, min_size=1, max_size=9))
def test_commitments_root_follows_the_carry_up_rule(commitments: list[bytes]) -> None:
    level = [keccak256(c) for c in commitments]
    while len(level) > 1:
        nxt = [keccak256_pair(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        level = [*nxt, level[-1]] if len(level) % 2 else nxt
    assert compute_commitments_root(commitments) == level[0]


address = st.binary(min_size=20, max_size=20).map(lambda raw: "0x" + raw.hex())


@given(st.lists(commitment, min_size=1, max_size=4), address, address, st.data())
def test_blob_id_binds_size_and_every_commitment(commitments: list[bytes], submitter: str, other_submitter: str,
                                                data: st.DataObject) -> None:
    rows = len(commitments)
    size = data.draw(st.integers((rows - 1) * BYTES_PER_ROW_PAYLOAD + 1, rows * BYTES_PER_ROW_PAYLOAD))
    blob_id = compute_blob_id(submitter, size, commitments)
    header = BlobHeader.decode(size, b"".join(commitments))
    assert header.blob_id(submitter) == blob_id
    assert header.blob_id(submitter.upper().replace("0X", "0x")) == blob_id, "any spelling of the address"
    if other_submitter != submitter:
        assert compute_blob_id(other_submitter, size, commitments) != blob_id, "and the submitter"
    index = data.draw(st.integers(0, rows - 1))
    changed = list(commitments)
    changed[index] = bytes([changed[index][0] ^ 1]) + changed[index][1:]
    assert compute_blob_id(submitter, size, changed) != blob_id
    other = size - 1 if size > (rows - 1) * BYTES_PER_ROW_PAYLOAD + 1 else size + 1
    if compute_row_count(other) == rows:
        assert compute_blob_id(submitter, other, commitments) != blob_id


def test_blob_id_rejects_a_wrong_commitment_count() -> None:
    with pytest.raises(BlobError, match="rows"):
        compute_blob_id("0x" + "11" * 20, BYTES_PER_ROW_PAYLOAD + 1, [b"\x00" * 48])
    with pytest.raises(BlobError, match="20-byte address"):
        compute_blob_id("0x1234", 10, [b"\x00" * 48])
    with pytest.raises(BlobError, match="48-byte"):
        BlobHeader.decode(10, b"\x00" * 47)
