"""The one port table of zgos: where every process listens, and where a devnet moves it.

The ``*_PORT`` values are ARCHITECTURE.md's ("Process model and ports (devnet defaults)"). The
default devnet (chain on ``CHAIN_PORT``) runs every service on them, and every standalone
command (``zg storage node``, ``zg compute provider serve``, ...) takes its default ``--port``
from here. All are TCP ports, on 127.0.0.1 unless a command's ``--host`` says otherwise.

A devnet on any other chain port (tests, a second devnet on one machine) puts each service at a
fixed distance above its chain port instead, the service's ``*_DELTA``; ``service_port`` is the
rule. A service counted by an index ``i`` (storage node ``i``, DA signer ``i``) takes its base
port + ``i`` under either rule.

Pure constants and one pure function. The runtime sits below every network package, so nothing
here imports one.
"""

from __future__ import annotations

# --- chain -------------------------------------------------------------------------------------

CHAIN_PORT = 8545  # anvil (chain id 31337): JSON-RPC over HTTP and WebSocket; it never moves

# --- storage -----------------------------------------------------------------------------------

STORAGE_PORT = 5678  # storage node i on STORAGE_PORT + i: JSON-RPC + raw segment fast path
STORAGE_DELTA = 100  # storage node i at chain port + 100 + i
INDEXER_PORT = 12345  # storage indexer: indexer_* JSON-RPC and the REST gateway
INDEXER_DELTA = 150
KV_PORT = 6789  # KV node: kv_* JSON-RPC (0G's methods) and the replay status
KV_DELTA = 160

# --- INFT ----------------------------------------------------------------------------------------

INFT_ORACLE_PORT = 7070  # INFT oracle i on INFT_ORACLE_PORT + i: inft_* JSON-RPC
INFT_ORACLE_DELTA = 170  # oracle i at chain port + 170 + i

# --- data availability -------------------------------------------------------------------------

DA_SIGNER_PORT = 34000  # DA signer i on DA_SIGNER_PORT + i (gRPC)
DA_SIGNER_DELTA = 200  # signer i at chain port + 200 + i; the disperser takes the next slot
DA_DISPERSER_PORT = 51001  # DA disperser (gRPC, 0G-compatible); delta DA_SIGNER_DELTA + signers

# --- compute: inference ------------------------------------------------------------------------

MODEL_PORT = 8081  # model server: llama.cpp's OpenAI-compatible HTTP API (Gemma 3 270M)
MODEL_DELTA = 1
PROVIDER_PORT = 3080  # inference provider broker (HTTP, the registered service URL)
PROVIDER_DELTA = 2
PROVIDER_ADMIN_PORT = 3081  # the broker's admin API (always 127.0.0.1, install token)
PROVIDER_ADMIN_DELTA = 3
USER_PROXY_PORT = 8787  # `zg compute serve`: the user's local OpenAI-compatible proxy (not a devnet service)

# --- compute: fine-tuning ----------------------------------------------------------------------

FINETUNE_PORT = 3082  # fine-tuning provider's progress API (HTTP, the registered service URL)
FINETUNE_DELTA = 4
TUNED_MODEL_PORT = 8082  # llama.cpp serving the newest tuned model (base + LoRA)
TUNED_MODEL_DELTA = 5
TUNED_BROKER_PORT = 3083  # the inference broker in front of the tuned model
TUNED_BROKER_DELTA = 6
TUNED_ADMIN_PORT = 3084  # that broker's admin API (127.0.0.1)
TUNED_ADMIN_DELTA = 7

# --- alignment and explorer --------------------------------------------------------------------

AUDITOR_PORT = 9090  # alignment auditor's status API
AUDITOR_DELTA = 180
EXPLORER_PORT = 8000  # explorer web app (HTTP)
EXPLORER_DELTA = 300


def service_port(default: int, chain_delta: int, chain_port: int, port_offset: int = 0) -> int:
    """The port a devnet service listens on: the one rule every network follows.

    On the default chain port (``chain_port == CHAIN_PORT``) the service listens on its
    ``default`` (the table above); on any other chain port it listens on ``chain_port +
    chain_delta``, so the chain port alone places a devnet's whole block of services.
    ``port_offset`` (``zg devnet up --port-offset``) is added to either. The chain's own port is
    never passed through this rule: it is ``chain_port`` itself.
    """
    base = default if chain_port == CHAIN_PORT else chain_port + chain_delta
    return base + port_offset
