"""The DA disperser service (``zg da disperser``), wired in one place from a typed config.

``DisperserService`` starts the encoder's worker processes (they load the KZG setup in the
background) and the ``Disperser`` on its state directory (resuming unfinished requests), which
calls signers only at announced addresses the outbound policy allows;
``run`` serves 0G's disperser gRPC API until SIGINT/SIGTERM, then closes both.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from eth_account.signers.local import LocalAccount

from zgos.da.contracts import DAContracts
from zgos.da.disperser.disperser import Disperser
from zgos.da.disperser.servicer import serve_disperser
from zgos.da.rpc import serve_until_signalled
from zgos.da.spec.encoding import Encoder
from zgos.runtime.addresses import AddressPolicy
from zgos.runtime.datadir import DirectoryClaim
from zgos.runtime.ports import DA_DISPERSER_PORT


@dataclass(frozen=True)
class DisperserConfig:
    """Everything ``zg da disperser`` is told, resolved."""

    state_dir: Path  # DATA_DIR/da-disperser: requests, certified blobs, the install token
    host: str = "127.0.0.1"
    port: int = DA_DISPERSER_PORT
    workers: int | None = None  # encoder processes [None: one per CPU; 0: in this process]


class DisperserService:
    """The disperser, its encoder and its gRPC server (see the module docstring)."""

    def __init__(self, config: DisperserConfig, da: DAContracts, payer: LocalAccount, policy: AddressPolicy) -> None:
        self.config = config
        self.claim = DirectoryClaim(config.state_dir, "DA disperser")
        try:
            self.encoder = Encoder(config.workers)
            self.disperser = Disperser(da, payer, self.encoder, config.state_dir, policy)
        except BaseException:  # nothing will run: the directory is free again
            self.claim.release()
            raise

    @property
    def banner(self) -> str:
        config, disperser = self.config, self.disperser
        return (f"da disperser serving on {config.host}:{config.port} (fees paid by {disperser.account.address}; "
                f"dispersal needs the install token in {disperser.token_path})")

    def run(self, started: Callable[[str], None] = lambda banner: None) -> None:
        """Serve, call ``started`` with the banner, and return once signalled (closing the
        disperser and the encoder's processes)."""
        try:
            server = serve_disperser(self.disperser, self.config.host, self.config.port)
            started(self.banner)
            serve_until_signalled(server)
        finally:
            self.disperser.close()
            self.encoder.close()
            self.claim.release()
