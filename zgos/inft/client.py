"""The INFT SDK (``zgos.inft``): mint agents whose data is encrypted in storage, read them as
their owner, and transfer or clone them through the oracles (issue 16; system.md §5.3).

* **Mint**: each file is encrypted under its own fresh key (format v1, with the key check on
  chain), uploaded, and minted with its key sealed to the owner, published on chain; the owner
  recovers it later from the ``PublishedSealedKey`` event with its wallet key.
* **Transfer / clone**: for each data item the owner asks an oracle to lead a re-encryption
  for the receiver's public key (the data key sealed to every oracle, the request signed), and
  gets back the new root, the new key sealed to the receiver and ``threshold`` oracle
  signatures, each checked here before any gas is spent. The receiver then **accepts**: it
  opens the sealed key with its wallet key and downloads and decrypts the new data (key check
  and every proof) before it signs. Only then is ``iTransferFrom``/``iCloneFrom`` sent, so a
  token never ends up pointing at data its owner cannot decrypt.
"""

from __future__ import annotations

import secrets
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_account.signers.local import LocalAccount
from eth_utils.address import is_address, to_checksum_address

from zgos.chain.client import Receipt
from zgos.chain.registry import NodeRegistry
from zgos.core.signatures import sign_digest
from zgos.inft.contracts import InftContracts, IntelligentData
from zgos.inft.oracle.messages import ReencryptRequest, Vouched
from zgos.inft.oracles import OracleEndpoint, OracleError, find_oracles
from zgos.inft.spec.keys import compute_raw_pubkey, seal, unseal_key
from zgos.inft.spec.proofs import (
    InvalidProof,
    TransferProof,
    compute_pubkey_address,
    compute_request_digest,
    recover_ownership_signer,
    sign_access,
)
from zgos.runtime.netutil import JsonRpcFailure, call_jsonrpc
from zgos.runtime.outbound import OutboundClient
from zgos.storage.client import StorageClient
from zgos.storage.encrypted import (
    Keys,
    Recipient,
    download_decrypted,
    new_ephemeral_secret,
    upload_encrypted,
)
from zgos.storage.spec.encryption import AES_KEY_SIZE, NONCE_SIZE

REENCRYPT_TIMEOUT_S = 900.0
NONCE_BYTES = 32


def pubkey_of(account: LocalAccount) -> bytes:
    """An account's 64-byte public key (x || y)."""
    return compute_raw_pubkey(bytes(account.key))


@dataclass(frozen=True)
class Offer:
    """A re-encrypted token, vouched for by the oracles, waiting for the receiver to accept."""

    token_id: int
    receiver: str
    vouched: tuple[Vouched, ...]

    def to_json(self) -> dict[str, Any]:
        return {"tokenId": self.token_id, "receiver": self.receiver, "vouched": [v.to_json() for v in self.vouched]}

    @classmethod
    def from_json(cls, value: Any) -> Offer:
        """An offer from a file; every field checked (``InvalidProof`` names the first bad one)."""
        if not isinstance(value, dict) or not isinstance(value.get("vouched"), list) or \
                not isinstance(value.get("tokenId"), int) or not is_address(value.get("receiver")):
            raise InvalidProof("an offer is {tokenId, receiver, vouched: [...]}")
        return cls(value["tokenId"], to_checksum_address(value["receiver"]),
                   tuple(Vouched.from_json(v) for v in value["vouched"]))


class InftClient:
    def __init__(self, contracts: InftContracts, registry: NodeRegistry, storage: StorageClient,
                 account: LocalAccount, http: OutboundClient, work_dir: Path, from_block: int = 0) -> None:
        self.contracts = contracts
        self.registry = registry
        self.storage = storage
        self.account = account
        self.http = http
        self.work_dir = work_dir
        self.from_block = from_block

    # --- owning ------------------------------------------------------------------------------

    def mint(self, files: list[tuple[Path, str]], to: LocalAccount | None = None) -> int:
        """Encrypt and upload each (file, description), then mint the token for ``to`` (default:
        this account) with each key sealed to it."""
        owner = to or self.account
        datas, sealed = [], []
        for path, description in files:
            key = secrets.token_bytes(AES_KEY_SIZE)
            uploaded = upload_encrypted(self.storage, path, Recipient(symmetric_key=key), self.work_dir / "staging")
            datas.append(IntelligentData(description, uploaded.root))
            sealed.append(seal(pubkey_of(owner), key, new_ephemeral_secret(), secrets.token_bytes(NONCE_SIZE)))
        return self.contracts.mint(self.account, datas, owner.address, sealed)

    def keys_of(self, token_id: int, account: LocalAccount | None = None) -> list[bytes]:
        """The data keys of ``token_id`` as last published to ``account`` (default: this one)."""
        holder = account or self.account
        sealed = self.contracts.sealed_keys(token_id, holder.address, self.from_block)
        if sealed is None:
            raise OracleError(f"no key of token {token_id} was ever published to {holder.address}")
        return [unseal_key(bytes(holder.key), s) for s in sealed]

    def decrypt(self, token_id: int, out: Path, account: LocalAccount | None = None) -> list[Path]:
        """Write the token's data, decrypted, to ``out`` (one item) or ``out/<i>`` (several).
        A key that is not the data's is refused by the key check before anything is written."""
        count = len(self.contracts.datas_of(token_id))
        paths = [out] if count == 1 else [out / str(i) for i in range(count)]
        self.decrypt_items(token_id, dict(enumerate(paths)), account)
        return paths

    def decrypt_items(self, token_id: int, paths: dict[int, Path], account: LocalAccount | None = None) -> None:
        """Write the token's data items ``i``, decrypted, to ``paths[i]``."""
        datas = self.contracts.datas_of(token_id)
        keys = self.keys_of(token_id, account)
        if len(keys) != len(datas):
            raise OracleError(f"token {token_id} has {len(datas)} data items but {len(keys)} published keys")
        for index, path in paths.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            download_decrypted(self.storage, datas[index].data_hash, path, Keys(symmetric_key=keys[index]))

    def grant_executor(self, token_id: int, executor_pubkey: bytes) -> None:
        """Seal the token's data keys to a sealed executor (a compute provider) and publish
        them, so it can run the agent for the token's authorized users."""
        sealed = [seal(executor_pubkey, key, new_ephemeral_secret(), secrets.token_bytes(NONCE_SIZE))
                  for key in self.keys_of(token_id)]
        self.contracts.publish_executor_keys(self.account, token_id, compute_pubkey_address(executor_pubkey), sealed)

    # --- moving ------------------------------------------------------------------------------

    def offer(self, token_id: int, receiver_pubkey: bytes) -> Offer:
        """Have the oracles re-encrypt every data item of ``token_id`` for ``receiver_pubkey``."""
        oracles, threshold = find_oracles(self.contracts, self.registry, self.http)
        if len(oracles) < threshold:
            raise OracleError(f"{len(oracles)} oracles answer, {threshold} must sign", "start the oracles and retry")
        datas, keys = self.contracts.datas_of(token_id), self.keys_of(token_id)
        vouched = tuple(self._reencrypt(token_id, data, key, receiver_pubkey, oracles, threshold)
                        for data, key in zip(datas, keys, strict=True))
        return Offer(token_id, to_checksum_address(compute_pubkey_address(receiver_pubkey)), vouched)

    def _reencrypt(self, token_id: int, data: IntelligentData, key: bytes, receiver_pubkey: bytes,
                   oracles: list[OracleEndpoint], threshold: int) -> Vouched:
        nonce = secrets.token_bytes(NONCE_BYTES)
        digest = compute_request_digest(self.contracts.domain(), token_id, data.data_hash, receiver_pubkey, nonce)
        request = ReencryptRequest(token_id, data.data_hash, receiver_pubkey, nonce,
                                   {o.address: seal(o.pubkey, key, new_ephemeral_secret(), secrets.token_bytes(NONCE_SIZE))
                                    for o in oracles}, sign_digest(bytes(self.account.key), digest))
        failures = []
        for lead in oracles:  # any oracle may lead: one that is down or refuses is passed over
            try:
                answer = call_jsonrpc(self.http, lead.url, "inft_reencrypt", [request.to_json()],
                                      timeout_s=REENCRYPT_TIMEOUT_S)
                vouched = Vouched.from_json(answer)
                self._check(vouched, request, {o.address for o in oracles}, threshold)
                return vouched
            except (JsonRpcFailure, OracleError, ValueError) as exc:
                failures.append(f"{lead.url}: {exc}")
        raise OracleError("no oracle re-encrypted the data: " + "; ".join(failures))

    def _check(self, vouched: Vouched, request: ReencryptRequest, oracles: set[str], threshold: int) -> None:
        r = vouched.reencryption
        if (r.old_data_hash, r.target_pubkey, r.nonce) != (request.old_data_hash, request.target_pubkey, request.nonce):
            raise OracleError("the answer is for another request")
        signers = {to_checksum_address(recover_ownership_signer(self.contracts.domain(), r, s)) for s in vouched.signatures}
        if len(signers & oracles) < threshold or not signers <= oracles:
            raise OracleError(f"the answer carries {len(signers & oracles)} registered oracle signatures, {threshold} needed")

    def accept(self, offer: Offer, receiver: LocalAccount) -> list[bytes]:
        """The receiver's side: open each sealed key, download and decrypt the new data (proofs
        and key check), and only then sign the access proofs."""
        signatures = []
        with tempfile.TemporaryDirectory(dir=self.work_dir) as tmp:
            for i, v in enumerate(offer.vouched):
                key = unseal_key(bytes(receiver.key), v.reencryption.sealed_key)
                download_decrypted(self.storage, v.reencryption.new_data_hash, Path(tmp) / str(i), Keys(symmetric_key=key))
                signatures.append(sign_access(self.contracts.domain(), v.reencryption, bytes(receiver.key)))
        return signatures

    def transfer(self, offer: Offer, access: list[bytes]) -> Receipt:
        return self.contracts.transfer(self.account, self.account.address, offer.receiver, offer.token_id,
                                       _proofs(offer, access))

    def clone(self, offer: Offer, access: list[bytes]) -> int:
        return self.contracts.clone(self.account, self.account.address, offer.receiver, offer.token_id,
                                    _proofs(offer, access))


def _proofs(offer: Offer, access: list[bytes]) -> list[TransferProof]:
    if len(access) != len(offer.vouched):
        raise OracleError(f"{len(access)} access signatures for {len(offer.vouched)} data items")
    return [TransferProof(v.reencryption, v.signatures, a) for v, a in zip(offer.vouched, access, strict=True)]
