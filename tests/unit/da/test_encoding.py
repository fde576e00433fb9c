"""Encoding with real KZG (ckzg): round trip, recovery from half the cells, tampering."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from zgos.core.errors import ConfigError
from zgos.da.spec import kzg
from zgos.da.spec.blob import BYTES_PER_ROW_PAYLOAD, CELLS_PER_ROW, MAX_BLOB_BYTES
from zgos.da.spec.encoding import (
    Cell,
    EncodedBlob,
    Encoder,
    InsufficientCells,
    InvalidBlob,
    InvalidCell,
    verify_cells,
)

DATA = bytes((i * 31 + 7) % 256 for i in range(BYTES_PER_ROW_PAYLOAD + 5000))  # two rows


@pytest.fixture(scope="module")
def encoder() -> Encoder:
    return Encoder(workers=0)


@pytest.fixture(scope="module")
def encoded(encoder: Encoder) -> EncodedBlob:
    return encoder.encode(DATA)


def cells_of(blob: EncodedBlob, columns_per_row: list[list[int]]) -> list[Cell]:
    return [
        Cell(row, c, blob.cells[row][c], blob.proofs[row][c])
        for row, columns in enumerate(columns_per_row)
        for c in columns
    ]


def test_encode_then_decode_from_the_systematic_half_round_trips(encoder: Encoder, encoded: EncodedBlob) -> None:
    assert encoded.header.rows == 2
    assert all(len(row) == CELLS_PER_ROW for row in encoded.cells)
    cells = cells_of(encoded, [list(range(64))] * 2)
    assert encoder.decode(encoded.header, cells) == DATA


def test_blob_recovers_from_exactly_half_of_the_cells_of_each_row(encoder: Encoder, encoded: EncodedBlob) -> None:
    rng = random.Random(5)
    for _ in range(2):
        picks = [rng.sample(range(CELLS_PER_ROW), 64) for _ in range(2)]
        assert encoder.decode(encoded.header, cells_of(encoded, picks)) == DATA
    # the parity half alone
    assert encoder.decode(encoded.header, cells_of(encoded, [list(range(64, 128))] * 2)) == DATA


def test_fewer_than_half_the_cells_gives_a_clear_error(encoder: Encoder, encoded: EncodedBlob) -> None:
    picks = [list(range(64, 128)), list(range(1, 64))]
    with pytest.raises(InsufficientCells, match="row 1 has 63 of 128 cells"):
        encoder.decode(encoded.header, cells_of(encoded, picks))


def test_tampered_cell_is_rejected(encoder: Encoder, encoded: EncodedBlob) -> None:
    cells = cells_of(encoded, [list(range(64))] * 2)
    bad = cells[3]
    data = bytearray(bad.data)
    data[40] ^= 1
    cells[3] = Cell(bad.row, bad.column, bytes(data), bad.proof)
    assert not verify_cells(encoded.header, cells[:8])
    with pytest.raises(InvalidCell):
        encoder.decode(encoded.header, cells)
    # a valid cell claimed at the wrong column is rejected too
    moved = Cell(0, 1, encoded.cells[0][0], encoded.proofs[0][0])
    assert not verify_cells(encoded.header, [moved])
    assert not verify_cells(encoded.header, [Cell(7, 0, bad.data, bad.proof)])


def test_oversized_and_empty_blobs_give_clear_errors(encoder: Encoder) -> None:
    with pytest.raises(InvalidBlob, match="at least 1 byte"):
        encoder.encode(b"")
    with pytest.raises(InvalidBlob, match="exceeds the maximum"):
        encoder.encode(bytes(MAX_BLOB_BYTES + 1))


def test_process_pool_encoding_matches_in_process_encoding(encoded: EncodedBlob) -> None:
    with Encoder(workers=2) as pool:
        again = pool.encode(DATA)
    assert again == encoded


def test_trusted_setup_with_a_wrong_hash_is_refused(tmp_path: Path) -> None:
    fake = tmp_path / "trusted_setup.txt"
    fake.write_text("4096\n65\n")
    with pytest.raises(ConfigError, match="sha256"):
        kzg.trusted_setup(fake)
