"""The provider as a sealed executor of agent NFTs (issue 16 §5; system.md §5.3).

A chat request with ``zg_agent`` runs that ``AgentNFT`` token's agent here, for a user who
never sees its data:
1. the signing user must be the token's owner or in ``authorizedUsersOf`` (read from the chain
   on every request, so a revoked user is refused from the next request on);
2. the agent's keys are those the owner published to this provider's account
   (``AgentNFT.publishExecutorKeys``), opened with its wallet key; the data is downloaded with
   every proof checked and decrypted only if the key check on chain confirms the key;
3. the agent's items are laid out as :mod:`zgos.inft.spec.agents` says. Its system prompt
   (UTF-8, at most ``AGENT_PROMPT_MAX_BYTES``) is put in front of the first user message (as
   Gemma's own template does with a system turn: llama.cpp's ``gemma`` format drops system
   messages). An adapter (at most ``AGENT_ADAPTER_MAX_BYTES``) is run on its own model server
   (:mod:`zgos.compute.provider.adapters`); the answer goes through the normal paid, signed path.
Decrypted prompts are kept in memory only, keyed by the token's data hashes, so a transfer or
an update (new data) is never served from a stale copy; a decrypted adapter lives only as long
as its model server, in a directory only this account can read.
"""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_account.signers.local import LocalAccount
from eth_utils.address import to_checksum_address

from zgos.compute.provider.adapters import AdapterServers
from zgos.compute.provider.wire import BrokerError
from zgos.core.errors import TxReverted, ZgError
from zgos.inft.client import InftClient, pubkey_of
from zgos.inft.contracts import Token
from zgos.inft.spec.agents import AgentLayout, InvalidAgent, compute_agent_layout

AGENT_PROMPT_MAX_BYTES = 16 * 1024
AGENT_ADAPTER_MAX_BYTES = 64 * 1024 * 1024  # a rank-64 LoRA on every projection of a 1B model fits
ENCRYPTION_HEADER_MAX_BYTES = 64  # the storage encryption header is at most 50 bytes
MAX_CACHED_AGENTS = 64


@dataclass(frozen=True)
class AgentRun:
    """How to run one request for an agent: its messages, and the model server to send them to
    (None: the provider's own)."""

    messages: list[dict[str, Any]]
    upstream_url: str | None


class SealedExecutor:
    def __init__(self, client: Callable[[], InftClient], account: LocalAccount, work_dir: Path,
                 adapters: AdapterServers | None = None) -> None:
        self._client_factory = client
        self._client: InftClient | None = None
        self.account = account
        self.pubkey = pubkey_of(account)
        self.work_dir = work_dir
        self.adapters = adapters
        self.prompts: dict[tuple[int, tuple[bytes, ...]], str] = {}
        self._lock = threading.Lock()

    @property
    def client(self) -> InftClient:
        """The INFT client, made on first use (storage nodes may start after the provider)."""
        with self._lock:
            if self._client is None:
                self._client = self._client_factory()
            return self._client

    def close(self) -> None:
        """Stop the agents' adapter servers (their decrypted adapters go with them)."""
        if self.adapters is not None:
            self.adapters.close()

    def run(self, token_id: int, user: str, messages: list[dict[str, Any]]) -> AgentRun:
        """The request as agent ``token_id`` runs it: the first user turn led by the agent's
        prompt, on its adapter's model server if it has one; ``BrokerError`` when the user may
        not use the agent or it cannot be loaded."""
        token = self._usable_token(token_id, user)
        try:
            layout = compute_agent_layout([d.description for d in token.datas])
        except InvalidAgent as exc:
            raise BrokerError(409, "not-an-agent", f"token {token_id} is not a runnable agent: {exc}") from None
        first = next((i for i, m in enumerate(messages) if m["role"] == "user"), None)
        if first is None:
            raise BrokerError(400, "bad-request", "a request for an agent needs a user message")
        prompt, upstream_url = self._load(token_id, token, layout)
        return AgentRun([*messages[:first], {**messages[first], "content": f"{prompt}\n\n{messages[first]['content']}"},
                         *messages[first + 1:]], upstream_url)

    def _usable_token(self, token_id: int, user: str) -> Token:
        try:
            token = self.client.contracts.token(token_id)
        except TxReverted:
            raise BrokerError(404, "unknown-agent", f"agent token {token_id} does not exist") from None
        if to_checksum_address(user) != token.owner and to_checksum_address(user) not in token.authorized:
            raise BrokerError(403, "not-authorized", f"{user} is neither the owner of agent {token_id} nor authorized to use it")
        if not token.datas:
            raise BrokerError(409, "no-agent-data", f"token {token_id} carries no agent data")
        return token

    def _load(self, token_id: int, token: Token, layout: AgentLayout) -> tuple[str, str | None]:
        """The agent's prompt and its adapter server's URL, decrypting what is not cached."""
        hashes = tuple(d.data_hash for d in token.datas)
        prompt = self.prompts.get((token_id, hashes))
        if prompt is None:
            try:
                prompt = self._decrypt(token_id, hashes, layout.prompt_index, AGENT_PROMPT_MAX_BYTES).decode()
            except UnicodeDecodeError:
                raise BrokerError(409, "agent-not-text", f"agent {token_id}'s prompt is not UTF-8 text") from None
            if len(self.prompts) >= MAX_CACHED_AGENTS:
                self.prompts.pop(next(iter(self.prompts)))
            self.prompts[(token_id, hashes)] = prompt
        index = layout.adapter_index
        if index is None:
            return prompt, None
        if self.adapters is None:
            raise BrokerError(409, "no-adapters", f"agent {token_id} carries a LoRA adapter; this provider runs none")
        return prompt, self.adapters.url_for(
            hashes[index].hex(), lambda: self._decrypt(token_id, hashes, index, AGENT_ADAPTER_MAX_BYTES))

    def _decrypt(self, token_id: int, hashes: tuple[bytes, ...], index: int, limit: int) -> bytes:
        """Item ``index`` of the agent, decrypted; refused above ``limit`` bytes before a byte is fetched."""
        size = self.client.storage.size_of(hashes[index])
        if size is None or size > limit + ENCRYPTION_HEADER_MAX_BYTES:
            raise BrokerError(413, "agent-too-large", f"agent {token_id}'s item {index} is missing or over {limit} bytes")
        with tempfile.TemporaryDirectory(dir=self.work_dir) as tmp:
            path = Path(tmp) / str(index)
            try:
                self.client.decrypt_items(token_id, {index: path}, self.account)
            except ZgError as exc:
                raise BrokerError(409, "agent-locked", f"cannot open agent {token_id} here: {exc} "
                                  "(its owner grants this provider with `zg inft authorize ... --executor`)") from None
            return path.read_bytes()
