"""Properties of the signed messages: signatures bind every field, domain and signer."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zgos.compute.spec import settlement
from zgos.compute.spec import vouchers as v

KEYS = st.binary(min_size=32, max_size=32).filter(
    lambda k: 0 < int.from_bytes(k, "big") < v.SECP256K1_N
)
ADDRESSES = st.binary(min_size=20, max_size=20).map(lambda b: "0x" + b.hex())
HASHES = st.binary(min_size=32, max_size=32)
UINTS = st.integers(min_value=0, max_value=v.UINT256_MAX)
DOMAINS = st.builds(v.Domain, chain_id=st.integers(1, 2**64), verifying_contract=ADDRESSES)
REQUESTS = st.builds(v.Request, user=ADDRESSES, provider=ADDRESSES, nonce=UINTS, body_hash=HASHES, max_fee=UINTS)
RESPONSES = st.builds(
    v.Response, request_hash=HASHES, response_hash=HASHES, model_id=st.text(max_size=40),
    model_hash=HASHES, input_tokens=UINTS, output_tokens=UINTS, fee=UINTS,
)
RECEIPTS = st.builds(v.Receipt, user=ADDRESSES, provider=ADDRESSES, total=UINTS)
MESSAGES = st.one_of(REQUESTS, RESPONSES, RECEIPTS)


@settings(max_examples=60, deadline=None)
@given(key=KEYS, domain=DOMAINS, message=MESSAGES)
def test_signature_recovers_to_signer(key: bytes, domain: v.Domain, message: v.Message) -> None:
    signature = v.sign_message(key, domain, message)
    assert len(signature) == v.SIGNATURE_BYTES and signature[64] in (27, 28)
    assert v.recover_message(domain, message, signature) == v.address_of_private_key(key)
    assert v.is_valid_signature(domain, message, signature, v.address_of_private_key(key))


@settings(max_examples=60, deadline=None)
@given(key=KEYS, domain=DOMAINS, message=RECEIPTS, other_total=UINTS)
def test_receipt_signature_does_not_cover_another_total(
    key: bytes, domain: v.Domain, message: v.Receipt, other_total: int
) -> None:
    signature = v.sign_message(key, domain, message)
    changed = v.Receipt(message.user, message.provider, other_total)
    signer = v.address_of_private_key(key)
    assert v.is_valid_signature(domain, changed, signature, signer) == (other_total == message.total)


@settings(max_examples=40, deadline=None)
@given(key=KEYS, domain=DOMAINS, other=DOMAINS, message=MESSAGES)
def test_signature_is_bound_to_one_deployment(
    key: bytes, domain: v.Domain, other: v.Domain, message: v.Message
) -> None:
    signature = v.sign_message(key, domain, message)
    assert v.is_valid_signature(other, message, signature, v.address_of_private_key(key)) == (
        other.separator() == domain.separator()
    )


@settings(max_examples=40, deadline=None)
@given(key=KEYS, domain=DOMAINS, request=REQUESTS, body=st.binary(max_size=200), other=st.binary(max_size=200))
def test_request_signature_binds_the_body_bytes(
    key: bytes, domain: v.Domain, request: v.Request, body: bytes, other: bytes
) -> None:
    signed = v.Request(request.user, request.provider, request.nonce, v.compute_body_hash(body), request.max_fee)
    signature = v.sign_message(key, domain, signed)
    replayed = v.Request(request.user, request.provider, request.nonce, v.compute_body_hash(other), request.max_fee)
    assert v.is_valid_signature(domain, replayed, signature, v.address_of_private_key(key)) == (body == other)


@settings(max_examples=40, deadline=None)
@given(key=KEYS, other=KEYS, domain=DOMAINS, message=MESSAGES)
def test_signature_by_another_key_is_refused(key: bytes, other: bytes, domain: v.Domain, message: v.Message) -> None:
    signature = v.sign_message(other, domain, message)
    if key != other:
        with pytest.raises(v.InvalidSignature):
            v.validate_signed_by(domain, message, signature, v.address_of_private_key(key))


@settings(max_examples=40, deadline=None)
@given(key=KEYS, domain=DOMAINS, message=MESSAGES)
def test_high_s_malleated_signature_is_refused(key: bytes, domain: v.Domain, message: v.Message) -> None:
    signature = v.sign_message(key, domain, message)
    s = int.from_bytes(signature[32:64], "big")
    flipped = signature[:32] + (v.SECP256K1_N - s).to_bytes(32, "big") + bytes([55 - signature[64]])
    with pytest.raises(v.InvalidSignature):
        v.recover_message(domain, message, flipped)


@given(signature=st.binary(max_size=80))
def test_malformed_signature_raises_invalid_signature(signature: bytes) -> None:
    domain = v.Domain(1, "0x" + "11" * 20)
    message = v.Receipt("0x" + "22" * 20, "0x" + "33" * 20, 1)
    try:
        address = v.recover_message(domain, message, signature)
    except v.InvalidSignature:
        return
    assert len(signature) == v.SIGNATURE_BYTES and len(address) == 42


@settings(max_examples=60, deadline=None)
@given(fees=st.lists(st.integers(0, 10**18), max_size=30))
def test_cumulative_receipts_settle_exactly_the_sum_once(fees: list[int]) -> None:
    user, provider = "0x" + "aa" * 20, "0x" + "bb" * 20
    receipt = None
    settled = 0
    paid = 0
    for fee in fees:
        receipt = v.next_receipt(receipt, user, provider, fee)
    for _ in range(3):  # settling the same (or an older) receipt again pays nothing more
        if receipt is not None:
            amount = v.compute_settlement_amount(receipt.total, settled, balance=10**40)
            settled += amount
            paid += amount
    assert paid == sum(fees)


@given(total=UINTS, settled=UINTS, balance=UINTS)
def test_settlement_never_pays_beyond_receipt_or_balance(total: int, settled: int, balance: int) -> None:
    amount = v.compute_settlement_amount(total, settled, balance)
    assert 0 <= amount <= balance
    assert settled + amount <= max(total, settled)


@settings(max_examples=40, deadline=None)
@given(key=KEYS, response=RESPONSES)
def test_signed_response_round_trips_through_json(key: bytes, response: v.Response) -> None:
    signature = v.sign_digest(key, v.keccak256(b"x"))
    decoded = v.decode_response(v.encode_response(response, signature))
    assert decoded == (response, signature)


@pytest.mark.parametrize("text", ["", "{}", "[]", '{"request_hash": "0x12"}', "not json"])
def test_malformed_signed_response_raises_invalid_message(text: str) -> None:
    with pytest.raises(v.InvalidMessage):
        v.decode_response(text)


@pytest.mark.parametrize("address", ["", "0x12", "0x" + "zz" * 20, "11" * 21])
def test_bad_address_raises_invalid_message(address: str) -> None:
    with pytest.raises(v.InvalidMessage):
        v.Receipt(address, "0x" + "11" * 20, 1).struct_hash()


def test_negative_amount_raises_invalid_message() -> None:
    with pytest.raises(v.InvalidMessage):
        v.Receipt("0x" + "11" * 20, "0x" + "11" * 20, -1).struct_hash()


@settings(max_examples=40, deadline=None)
@given(request=REQUESTS, receipt=RECEIPTS)
def test_struct_hashes_use_standard_abi_encoding(request: v.Request, receipt: v.Receipt) -> None:
    from eth_abi.abi import encode

    assert request.struct_hash() == v.keccak256(encode(
        ["bytes32", "address", "address", "uint256", "bytes32", "uint256"],
        [v.REQUEST_TYPEHASH, request.user, request.provider, request.nonce, request.body_hash, request.max_fee]))
    assert receipt.struct_hash() == v.keccak256(encode(
        ["bytes32", "address", "address", "uint256"], [v.RECEIPT_TYPEHASH, receipt.user, receipt.provider,
                                                         receipt.total]))


DUE = st.builds(
    settlement.DueReceipt,
    receipt=st.builds(v.Receipt, user=st.sampled_from([f"0x{i:040x}" for i in range(1, 40)]),
                      provider=st.just("0x" + "ab" * 20), total=st.integers(1, 10**18)),
    signature=st.just(b"\x01" * 65), due_since=st.floats(0, 10**6), refund_unlock_at=st.sampled_from([0, 0, 5, 9]),
)


@given(due=st.lists(DUE, max_size=60), gas_limit=st.integers(0, 60_000_000))
def test_settlement_chunks_fit_the_batch_and_gas_limits_and_pay_refunds_then_oldest_debt_first(
    due: list[settlement.DueReceipt], gas_limit: int
) -> None:
    size = settlement.compute_chunk_size(gas_limit)
    assert 1 <= size <= settlement.MAX_VOUCHERS_PER_BATCH
    if size > 1:
        assert settlement.SETTLE_BATCH_BASE_GAS + size * settlement.SETTLE_GAS_PER_VOUCHER <= gas_limit * settlement.SETTLE_BLOCK_GAS_PERCENT // 100
    chunks = settlement.plan_settlement(due, size)
    assert all(1 <= len(chunk) <= size for chunk in chunks)
    ordered = [entry for chunk in chunks for entry in chunk]
    assert sorted(map(id, ordered)) == sorted(map(id, due))  # every entry exactly once
    for first, second in itertools.pairwise(ordered):
        if first.refund_unlock_at and second.refund_unlock_at:
            assert first.refund_unlock_at <= second.refund_unlock_at
        elif not first.refund_unlock_at and not second.refund_unlock_at:
            assert first.due_since <= second.due_since
        else:
            assert first.refund_unlock_at  # refunding users come before everyone else


def test_a_30m_gas_block_takes_the_contract_batch_limit_and_a_small_block_less() -> None:
    assert settlement.compute_chunk_size(30_000_000) == settlement.MAX_VOUCHERS_PER_BATCH  # anvil's default block
    assert settlement.compute_chunk_size(10_000_000) == 82  # half a block at 60,000 gas per voucher
    assert settlement.compute_chunk_size(0) == 1


@given(st.integers(min_value=0, max_value=10**6), st.lists(st.integers(min_value=0, max_value=40), max_size=12),
       st.integers(min_value=1, max_value=16))
def test_the_ledger_watch_reads_every_new_block_exactly_once(start: int, growth: list[int], span: int) -> None:
    """Round after round, as the chain grows by any number of blocks (none included), the
    watch's ranges cover every block after the start once, in order, at most ``span`` each
    (a block skipped between rounds hid a refund from the broker: the flaky refund test)."""
    watched, latest, read = start, start, []
    for new_blocks in growth:
        latest += new_blocks
        ranges = settlement.ledger_watch_ranges(watched, latest, span)
        for first, last in ranges:
            assert first <= last and last - first < span
            read.extend(range(first, last + 1))
            watched = last
    assert read == list(range(start + 1, latest + 1))


def test_a_ledger_watch_span_below_one_block_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1 block"):
        settlement.ledger_watch_ranges(0, 10, 0)
