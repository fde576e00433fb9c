"""A blob sent right after the signers register waits for their first epoch instead of failing."""

from __future__ import annotations

from pathlib import Path

from zgos.chain.client import Chain
from zgos.da.contracts import BlobStatus
from zgos.da.disperser.disperser import Disperser
from zgos.da.disperser.state import CONFIRMED, FINALIZED
from zgos.da.signer.signer import SignerIdentity, SignerNode, ensure_registered, serve_signer
from zgos.da.signer.store import CellStore
from zgos.da.spec.encoding import Encoder
from zgos.runtime.addresses import DEVNET_POLICY
from zgos.runtime.netutil import free_port, wait_until

from .helpers import deploy_da, funded_signer


def test_dispersal_right_after_registration_waits_for_the_signers_epoch(chain: Chain, tmp_path: Path) -> None:
    da = deploy_da(chain, epoch_blocks=50)  # 10 s: three registrations fit in the first epoch, also under load
    servers = []
    for i in range(3):
        keys = funded_signer(chain)
        port = free_port()
        identity = SignerIdentity(keys.account, keys.secret)
        ensure_registered(da, identity, f"127.0.0.1:{port}", 10**18)
        servers.append(serve_signer(SignerNode(da, identity, CellStore(tmp_path / f"s{i}")), "127.0.0.1", port))
    assert da.quorum(da.current_epoch()).members == ()
    disperser = Disperser(da, funded_signer(chain).account, Encoder(workers=0), tmp_path / "disperser", DEVNET_POLICY)
    try:
        request_id = disperser.submit(b"first blob of a fresh network")
        assert wait_until(lambda: disperser.status(request_id).status != "PROCESSING", 60, 0.1)  # type: ignore[union-attr]
        dispersal = disperser.status(request_id)
        assert dispersal is not None and dispersal.status in (CONFIRMED, FINALIZED), dispersal
        assert da.blob(bytes.fromhex(dispersal.blob_id)).status is BlobStatus.CERTIFIED
    finally:
        disperser.close()
        for server in servers:
            server.stop(0)
