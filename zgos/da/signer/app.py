"""The DA signer service (``zg da signer``), wired in one place from a typed config.

``SignerService`` registers the signer on chain (BLS key, proof of possession, stake; or
updates its URL), opens its cell store and starts its gRPC server; the KZG trusted setup loads
in the background (the port is ready at once, the first request waits for it). ``run`` serves
until SIGINT/SIGTERM.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from eth_account.signers.local import LocalAccount

from zgos.da.contracts import DAContracts
from zgos.da.rpc import serve_until_signalled
from zgos.da.signer.signer import SignerIdentity, SignerNode, ensure_registered, serve_signer
from zgos.da.signer.store import CellStore
from zgos.da.spec import kzg
from zgos.da.spec.params import SIGNER_STAKE_WEI
from zgos.runtime.datadir import DirectoryClaim
from zgos.runtime.ports import DA_SIGNER_PORT

CELLS_DIR = "cells"
WITHHOLD = "withhold"
DISHONEST_MODES = (WITHHOLD,)


@dataclass(frozen=True)
class SignerConfig:
    """Everything ``zg da signer`` is told, resolved."""

    state_dir: Path  # DATA_DIR/da-signer-INDEX: the cell store
    host: str = "127.0.0.1"
    port: int = DA_SIGNER_PORT
    public_url: str | None = None  # registered on chain [default HOST:PORT]
    stake_wei: int = SIGNER_STAKE_WEI
    dishonest: str | None = None  # test-only, devnet only: "withhold" (sign for cells, serve none)

    @property
    def url(self) -> str:
        return self.public_url or f"{self.host}:{self.port}"


class SignerService:
    """A registered signer node and its gRPC server (see the module docstring)."""

    def __init__(self, config: SignerConfig, da: DAContracts, account: LocalAccount) -> None:
        self.config = config
        self.claim = DirectoryClaim(config.state_dir, "DA signer")
        try:
            self.identity = SignerIdentity.from_account(account)
            ensure_registered(da, self.identity, config.url, config.stake_wei)
            self.node = SignerNode(da, self.identity, CellStore(config.state_dir / CELLS_DIR),
                                   withhold=config.dishonest == WITHHOLD)
        except BaseException:  # nothing will run: the directory is free again
            self.claim.release()
            raise

    @property
    def banner(self) -> str:
        config = self.config
        return f"da signer {self.identity.address} serving on {config.host}:{config.port} (registered as {config.url})"

    def run(self, started: Callable[[str], None] = lambda banner: None) -> None:
        """Serve, call ``started`` with the banner, and return once signalled."""
        try:
            server = serve_signer(self.node, self.config.host, self.config.port)
            threading.Thread(target=kzg.trusted_setup, daemon=True).start()
            started(self.banner)
            serve_until_signalled(server)
        finally:
            self.claim.release()
