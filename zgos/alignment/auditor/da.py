"""DA audits: availability sampling of recent certified blobs (issue 17 §2).

A signer that signed a blob's certificate promised to serve the cells of its columns. Each
check picks a random blob certified in the last ``RECENT_BLOCKS`` and asks its assigned signers
for random cells (:meth:`zgos.da.retriever.Retriever.sample`), each verified against the row's
KZG commitment recorded on chain. A signer that withholds a cell, or serves one that fails its
proof, is a ``WITHHELD_CELLS`` finding; every signer asked that served all its cells passed.
"""

from __future__ import annotations

import random

from zgos.alignment.auditor.findings import WITHHELD_DELTA, Observation
from zgos.alignment.spec.bonds import BondKind
from zgos.alignment.spec.reports import Finding
from zgos.core.errors import ZgError
from zgos.da.contracts import DAContracts
from zgos.da.retriever import Retriever
from zgos.runtime.addresses import AddressPolicy

CHECK = "da-sampling"
RECENT_BLOCKS = 2_000  # blobs certified this recently are sampled
SAMPLES_PER_CHECK = 16  # cells asked per blob


class DaAudit:
    def __init__(self, da: DAContracts, rng: random.Random, policy: AddressPolicy,
                 samples: int = SAMPLES_PER_CHECK) -> None:
        self.da = da
        self.retriever = Retriever(da, policy=policy)  # signers' addresses are their own claims
        self.rng = rng
        self.samples = samples

    def recent_blobs(self) -> list[bytes]:
        head = self.da.chain.block_number()
        events = self.da.chain.get_logs(self.da.entrance, "BlobCertified", max(0, head - RECENT_BLOCKS), head)
        return [bytes(e["args"]["blobId"]) for e in events]

    def sample(self) -> list[Observation]:
        """One sampled blob: an observation per signer asked (none when no blob is recent)."""
        blobs = self.recent_blobs()
        if not blobs:
            return []
        blob_id = self.rng.choice(blobs)
        try:
            report = self.retriever.sample(blob_id, self.samples, self.rng)
            quorum = self.da.quorum(self.da.blob(blob_id).epoch)
        except ZgError:
            return []  # cancelled or expired since: nothing promised any more
        failed = {f.signer.lower(): f for f in report.failures}
        asked = {quorum.members[quorum.column_owners[column]] for _, column in report.picks}
        observations = []
        for signer in sorted(asked):
            failure = failed.get(signer.lower())
            if failure is None:
                observations.append(Observation(signer, BondKind.DA_SIGNER, CHECK))
                continue
            cells = [[row, column] for row, column in report.failed_cells
                     if quorum.members[quorum.column_owners[column]].lower() == signer.lower()]
            observations.append(Observation(signer, BondKind.DA_SIGNER, CHECK, Finding.WITHHELD_CELLS, WITHHELD_DELTA,
                                            failure.reason, {"blob": "0x" + blob_id.hex(), "url": failure.url,
                                                             "cells": cells}))
        return observations
