"""The provider as a sealed executor of agent NFTs (issue 16 §5; system.md §5.3).

A chat request with ``zg_agent`` runs that ``AgentNFT`` token's agent here, for a user who
never sees its data:
1. the signing user must be the token's owner or in ``authorizedUsersOf`` (read from the chain
   on every request, so a revoked user is refused from the next request on);
2. the agent's keys are those the owner published to this provider's account
   (``AgentNFT.publishExecutorKeys``), opened with its wallet key; the data is downloaded with
   every proof checked and decrypted only if the key check on chain confirms the key;
3. the agent's first data item is its system prompt (UTF-8, at most ``AGENT_PROMPT_MAX_BYTES``),
   put in front of the first user message (as Gemma's own template does with a system turn:
   llama.cpp's ``gemma`` format drops system messages); the answer goes through the normal
   paid, signed path.
Decrypted prompts are kept in memory only, keyed by the token's data hashes, so a transfer or
an update (new data) is never served from a stale copy. LoRA adapters are not loaded yet.
"""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from eth_account.signers.local import LocalAccount
from eth_utils.address import to_checksum_address

from zgos.compute.provider.wire import BrokerError
from zgos.core.errors import TxReverted, ZgError
from zgos.inft.client import InftClient, pubkey_of

AGENT_PROMPT_MAX_BYTES = 16 * 1024
MAX_CACHED_AGENTS = 64


class SealedExecutor:
    def __init__(self, client: Callable[[], InftClient], account: LocalAccount, work_dir: Path) -> None:
        self._client_factory = client
        self._client: InftClient | None = None
        self.account = account
        self.pubkey = pubkey_of(account)
        self.work_dir = work_dir
        self.prompts: dict[tuple[int, tuple[bytes, ...]], str] = {}
        self._lock = threading.Lock()

    @property
    def client(self) -> InftClient:
        """The INFT client, made on first use (storage nodes may start after the provider)."""
        with self._lock:
            if self._client is None:
                self._client = self._client_factory()
            return self._client

    def messages_for(self, token_id: int, user: str, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The messages to run: the user's, the first user turn led by the agent's prompt; ``BrokerError``
        when the user may not use the agent or it cannot be loaded."""
        contracts = self.client.contracts
        try:
            token = contracts.token(token_id)
        except TxReverted:
            raise BrokerError(404, "unknown-agent", f"agent token {token_id} does not exist") from None
        if to_checksum_address(user) != token.owner and to_checksum_address(user) not in token.authorized:
            raise BrokerError(403, "not-authorized", f"{user} is neither the owner of agent {token_id} nor authorized to use it")
        if not token.datas:
            raise BrokerError(409, "no-agent-data", f"token {token_id} carries no agent data")
        prompt = self._prompt(token_id, tuple(d.data_hash for d in token.datas))
        first = next((i for i, m in enumerate(messages) if m["role"] == "user"), None)
        if first is None:
            raise BrokerError(400, "bad-request", "a request for an agent needs a user message")
        return [*messages[:first], {**messages[first], "content": f"{prompt}\n\n{messages[first]['content']}"},
                *messages[first + 1:]]

    def _prompt(self, token_id: int, hashes: tuple[bytes, ...]) -> str:
        if (token_id, hashes) in self.prompts:
            return self.prompts[(token_id, hashes)]
        size = self.client.storage.size_of(hashes[0])
        if size is None or size > AGENT_PROMPT_MAX_BYTES + 64:  # the encryption header is at most 50 bytes
            raise BrokerError(413, "agent-too-large", f"agent {token_id}'s prompt is over {AGENT_PROMPT_MAX_BYTES} bytes")
        with tempfile.TemporaryDirectory(dir=self.work_dir) as tmp:
            try:
                paths = self.client.decrypt(token_id, Path(tmp) / "agent", self.account)
                prompt = paths[0].read_bytes().decode()
            except ZgError as exc:
                raise BrokerError(409, "agent-locked", f"cannot open agent {token_id} here: {exc} "
                                  "(its owner grants this provider with `zg inft authorize ... --executor`)") from None
            except UnicodeDecodeError:
                raise BrokerError(409, "agent-not-text", f"agent {token_id}'s prompt is not UTF-8 text") from None
        if len(self.prompts) >= MAX_CACHED_AGENTS:
            self.prompts.pop(next(iter(self.prompts)))
        self.prompts[(token_id, hashes)] = prompt
        return prompt
