"""The auditor's DA sampling against real signers (issue 17 §2, §6): every signer of a
certified blob passes while it serves its cells; one that withholds them is found by one check."""

from __future__ import annotations

import random

from tests.integration.da.conftest import DANetwork, blob_bytes
from zgos.alignment.auditor.da import DaAudit
from zgos.alignment.spec.bonds import BondKind
from zgos.alignment.spec.reports import Finding
from zgos.runtime.addresses import DEVNET_POLICY

CHECKS = 5


def test_signers_serving_their_cells_pass_and_a_withholding_signer_is_found(healthy: DANetwork) -> None:
    reply = healthy.disperse(blob_bytes(21))
    blob_id = bytes(reply.info.blob_header.storage_root)
    audit = DaAudit(healthy.da, random.Random(3), DEVNET_POLICY, samples=64)
    assert blob_id in audit.recent_blobs()
    honest = [o for _ in range(CHECKS) for o in audit.sample()]
    assert honest and all(o.clean and o.kind == BondKind.DA_SIGNER for o in honest)
    assert {o.subject for o in honest} == {n.identity.address for n in healthy.nodes}, "64 samples reach every signer"

    withholding = healthy.nodes[2]
    withholding.withhold = True  # `zg da signer --dishonest withhold`: it signed, it serves nothing
    try:
        found = [o for o in audit.sample() if not o.clean]
    finally:
        withholding.withhold = False
    assert [(o.subject, o.finding) for o in found] == [(withholding.identity.address, Finding.WITHHELD_CELLS)]
    assert found[0].evidence["cells"] and "NOT_FOUND" in found[0].detail
