"""The KV transaction encoding: byte for byte as 0G's TS SDK writes it, and a round trip."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.nodejs import run_node
from zgos.kv.spec.stream import (
    MAX_SET_SIZE,
    NO_VERSION_CHECK,
    OPS_WITH_ACCOUNT,
    OPS_WITH_KEY,
    STREAM_DOMAIN,
    AccessControl,
    AclOp,
    InvalidStreamData,
    ListTooLong,
    StreamData,
    StreamRead,
    StreamWrite,
    compute_stream_tags,
    decode_stream_data,
    encode_stream_data,
    parse_hex_id,
    parse_stream_tags,
)

stream_ids = st.sampled_from([bytes([i]) * 32 for i in range(1, 4)])
keys = st.binary(min_size=1, max_size=40)
accounts = st.binary(min_size=20, max_size=20)


@st.composite
def controls(draw: st.DrawFn) -> AccessControl:
    op = draw(st.sampled_from(list(AclOp)))
    return AccessControl(op, draw(stream_ids),
                         draw(keys) if op in OPS_WITH_KEY else None,
                         draw(accounts) if op in OPS_WITH_ACCOUNT else None)


transactions = st.builds(
    StreamData,
    version=st.one_of(st.just(NO_VERSION_CHECK), st.integers(0, NO_VERSION_CHECK)),
    reads=st.lists(st.builds(StreamRead, stream_ids, keys), max_size=4).map(tuple),
    writes=st.lists(st.builds(StreamWrite, stream_ids, keys, st.binary(max_size=300)), max_size=4).map(tuple),
    controls=st.lists(controls(), max_size=4).map(tuple),
)


@given(transactions)
def test_decode_inverts_encode(data: StreamData) -> None:
    assert decode_stream_data(encode_stream_data(data)) == data


@given(transactions, st.data())
def test_every_truncation_is_invalid_data_never_a_crash(data: StreamData, draw: st.DataObject) -> None:
    raw = encode_stream_data(data)
    cut = draw.draw(st.integers(0, len(raw) - 1))
    with pytest.raises(InvalidStreamData):
        decode_stream_data(raw[:cut])


def test_the_encoding_is_byte_for_byte_the_0g_ts_sdks(tmp_path: Path) -> None:
    cases = [
        StreamData(7, (StreamRead(b"\x01" * 32, b"r"),), (StreamWrite(b"\x02" * 32, b"k", b"v" * 300),),
                   tuple(AccessControl(op, b"\x02" * 32, b"key" if op in OPS_WITH_KEY else None,
                                       b"\xab" * 20 if op in OPS_WITH_ACCOUNT else None) for op in AclOp)),
        StreamData(NO_VERSION_CHECK, (), (StreamWrite(b"\x03" * 32, b"a" * 1000, b""),
                                          StreamWrite(b"\x01" * 32, b"b", b"\x00\xff")), ()),
        StreamData(0),
    ]
    spec = [{"version": str(d.version), "viaBuilder": False,
             "reads": [["0x" + r.stream_id.hex(), r.key.hex()] for r in d.reads],
             "writes": [["0x" + w.stream_id.hex(), w.key.hex(), w.data.hex()] for w in d.writes],
             "controls": [[c.op, "0x" + c.stream_id.hex(), c.key.hex() if c.key is not None else None,
                           c.account.hex() if c.account is not None else None] for c in d.controls]}
            for d in cases]
    # The SDK's builder, as an app uses it: writes grouped by stream, in first-use order.
    built = StreamData(NO_VERSION_CHECK, (), (StreamWrite(b"\x05" * 32, b"x", b"1"), StreamWrite(b"\x05" * 32, b"y", b"22")))
    spec.append({"version": str(NO_VERSION_CHECK), "viaBuilder": True, "reads": [], "controls": [],
                 "writes": [["0x" + w.stream_id.hex(), w.key.hex(), w.data.hex()] for w in built.writes]})
    path = tmp_path / "txs.json"
    path.write_text(json.dumps(spec))
    lines = run_node("kv_encode.cjs", str(path)).strip().split("\n")
    for data, line in zip([*cases, built], lines, strict=True):
        encoded, tags = line.split()
        assert bytes.fromhex(encoded) == encode_stream_data(data)
        assert bytes.fromhex(tags) == compute_stream_tags(data.stream_ids())


def test_keys_and_lists_are_held_to_0gs_limits() -> None:
    sid = b"\x01" * 32
    with pytest.raises(InvalidStreamData, match="key"):
        encode_stream_data(StreamData(writes=(StreamWrite(sid, b"", b"v"),)))
    with pytest.raises(ListTooLong):
        encode_stream_data(StreamData(reads=(StreamRead(sid, b"k"),) * (MAX_SET_SIZE + 1)))
    too_long = (0).to_bytes(8, "big") + (MAX_SET_SIZE + 1).to_bytes(4, "big")
    with pytest.raises(ListTooLong):
        decode_stream_data(too_long)
    unknown_op = encode_stream_data(StreamData()) [:-4] + (1).to_bytes(4, "big") + b"\x99" + sid
    with pytest.raises(InvalidStreamData, match="0x99"):
        decode_stream_data(unknown_op)


@settings(max_examples=50)
@given(st.lists(stream_ids, max_size=5).map(tuple))
def test_stream_tags_name_the_streams_after_the_domain(ids: tuple[bytes, ...]) -> None:
    tags = compute_stream_tags(ids)
    assert tags[:32] == STREAM_DOMAIN == bytes.fromhex(
        "df2ff3bb0af36c6384e6206552a4ed807f6f6a26e7d0aa6bff772ddc9d4307aa")
    assert parse_stream_tags(tags) == ids


def test_tags_of_other_files_are_not_kv_transactions() -> None:
    assert parse_stream_tags(b"") is None
    assert parse_stream_tags(b"\x00" * 64) is None
    assert parse_stream_tags(STREAM_DOMAIN + b"\x01" * 31) is None


@given(st.binary(min_size=20, max_size=20), st.sampled_from(["0x", "0X"]))
def test_a_hex_id_is_0x_and_exactly_its_digits(raw: bytes, prefix: str) -> None:
    assert parse_hex_id(f" {prefix}{raw.hex()} ", 20) == raw
    assert parse_hex_id(raw.hex(), 20) is None  # no 0x
    assert parse_hex_id("0x" + raw.hex()[:-1], 20) is None
    assert parse_hex_id("0x" + raw.hex()[:-1] + "g", 20) is None
    assert parse_hex_id("0x" + raw.hex(), 32) is None
