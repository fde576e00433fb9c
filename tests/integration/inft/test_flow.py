"""Issue 16's Must-hold claims for the data itself, with real storage, real oracles (2-of-3)
and real keys: who can decrypt after a transfer, clones, and an oracle that is down."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.integration.inft.conftest import InftNet
from zgos.core.errors import ZgError
from zgos.inft.client import pubkey_of


def agent_file(tmp_path: Path, size: int = 70_000) -> tuple[Path, bytes]:
    data = os.urandom(size)
    path = tmp_path / "agent.bin"
    path.write_bytes(data)
    return path, data


def test_after_a_transfer_the_new_owner_can_decrypt_and_the_old_owner_cannot(inft_net: InftNet, tmp_path: Path) -> None:
    owner, receiver = inft_net.funded(), inft_net.funded()
    path, data = agent_file(tmp_path)
    seller = inft_net.client(owner)
    token = seller.mint([(path, "system prompt")])
    assert seller.decrypt(token, tmp_path / "mine").pop().read_bytes() == data
    offer = seller.offer(token, pubkey_of(receiver))
    buyer = inft_net.client(receiver)
    seller.transfer(offer, buyer.accept(offer, receiver))
    assert seller.contracts.owner_of(token) == receiver.address
    assert buyer.decrypt(token, tmp_path / "theirs").pop().read_bytes() == data
    with pytest.raises(ZgError, match="wrong encryption key"):
        seller.decrypt(token, tmp_path / "stolen")  # the old key does not open the new ciphertext
    assert not (tmp_path / "stolen").exists()


def test_a_clone_gives_the_receiver_a_working_copy_and_the_owner_keeps_theirs(inft_net: InftNet, tmp_path: Path) -> None:
    owner, receiver = inft_net.funded(), inft_net.funded()
    path, data = agent_file(tmp_path)
    seller = inft_net.client(owner)
    token = seller.mint([(path, "memory")])
    offer = seller.offer(token, pubkey_of(receiver))
    buyer = inft_net.client(receiver)
    clone = seller.clone(offer, buyer.accept(offer, receiver))
    assert buyer.decrypt(clone, tmp_path / "copy").pop().read_bytes() == data
    assert seller.decrypt(token, tmp_path / "original").pop().read_bytes() == data


def test_one_oracle_down_neither_blocks_nor_forges_a_transfer(inft_net: InftNet, tmp_path: Path) -> None:
    owner, receiver = inft_net.funded(), inft_net.funded()
    path, data = agent_file(tmp_path, 5000)
    seller = inft_net.client(owner)
    token = seller.mint([(path, "weights")])
    down = inft_net.oracles[0]
    down.server.stop()
    try:
        offer = seller.offer(token, pubkey_of(receiver))
    finally:
        inft_net.oracles[0] = _restart(inft_net, 0)
    buyer = inft_net.client(receiver)
    seller.transfer(offer, buyer.accept(offer, receiver))
    assert buyer.decrypt(token, tmp_path / "out").pop().read_bytes() == data


def _restart(inft_net: InftNet, index: int):  # type: ignore[no-untyped-def]
    from tests.integration.inft.conftest import start_oracle
    from zgos.inft.contracts import devnet_oracles

    old = inft_net.oracles[index]
    old.close()
    return start_oracle(old.config.state_dir, inft_net.chain, inft_net.deployment, inft_net.storage.url,
                        devnet_oracles()[index])


def _dishonest_lead(inft_net: InftNet, tmp_path: Path, *, other_data: bool, seal_to_self: bool) -> str:
    """Play a lead oracle that cheats, and ask an honest oracle to endorse; its refusal."""
    import secrets

    from zgos.core.signatures import sign_digest
    from zgos.inft.oracle.messages import Endorsement, ReencryptRequest
    from zgos.inft.spec.keys import encode_handover, seal
    from zgos.inft.spec.proofs import compute_request_digest
    from zgos.runtime.netutil import JsonRpcCallError, call_jsonrpc
    from zgos.storage.encrypted import Recipient, new_ephemeral_secret, upload_encrypted

    owner, receiver, thief = inft_net.funded(), inft_net.funded(), inft_net.funded()
    path, _ = agent_file(tmp_path)
    seller = inft_net.client(owner)
    token = seller.mint([(path, "prompt")])
    old = seller.contracts.datas_of(token)[0].data_hash
    honest = inft_net.oracles[1]
    key, nonce = seller.keys_of(token)[0], os.urandom(32)
    digest = compute_request_digest(seller.contracts.domain(), token, old, pubkey_of(receiver), nonce)
    request = ReencryptRequest(token, old, pubkey_of(receiver), nonce,
                               {honest.account.address: seal(honest.work.pubkey, key, new_ephemeral_secret(), os.urandom(16))},
                               sign_digest(bytes(owner.key), digest))
    new_key, ephemeral, seal_nonce = secrets.token_bytes(32), new_ephemeral_secret(), os.urandom(16)
    if other_data:
        path.write_bytes(os.urandom(70_000))
    new_root = upload_encrypted(seller.storage, path, Recipient(symmetric_key=new_key), tmp_path / "staging").root
    sealed_key = seal(pubkey_of(thief if seal_to_self else receiver), new_key, ephemeral, seal_nonce)
    handover = seal(honest.work.pubkey, encode_handover(new_key, ephemeral, seal_nonce), new_ephemeral_secret(), os.urandom(16))
    endorsement = Endorsement(request, new_root, sealed_key, handover)
    with pytest.raises(JsonRpcCallError) as refused:
        call_jsonrpc(seller.http, honest.url, "inft_endorse", [endorsement.to_json()], timeout_s=120)
    return refused.value.message


def test_an_honest_oracle_will_not_endorse_other_data(inft_net: InftNet, tmp_path: Path) -> None:
    assert "does not hold the old plaintext" in _dishonest_lead(inft_net, tmp_path, other_data=True, seal_to_self=False)


def test_an_honest_oracle_will_not_endorse_a_key_sealed_to_someone_else(inft_net: InftNet, tmp_path: Path) -> None:
    refusal = _dishonest_lead(inft_net, tmp_path, other_data=False, seal_to_self=True)
    assert "does not seal the handed-over key to the receiver" in refusal
