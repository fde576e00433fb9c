"""Sealing: the pieces this node holds inside the recorded epochs are sealed for its miner id
(§3.1) and stored, a bounded amount per control tick, in the background of mining."""

from __future__ import annotations

import logging

from zgos.storage.fasthash import seal_pieces
from zgos.storage.miner.reader import FlowReader
from zgos.storage.miner.store import MinerStore, SealRow
from zgos.storage.spec.answer import EpochRange, NoSealingContext, get_sealing_context, is_zero_seal
from zgos.storage.spec.merkle import ceil_div
from zgos.storage.spec.pora import SEALS_PER_LOAD, SECTORS_PER_LOAD
from zgos.storage.spec.sealing import BYTES_PER_SEAL, SECTORS_PER_SEAL, compute_seal_seed

log = logging.getLogger(__name__)

SEALS_PER_TICK = 4096  # sealing work per control tick (16 MiB)


class Sealer:
    """Seals what the node holds and is not sealed yet (a piece not stored here waits)."""

    def __init__(self, store: MinerStore, reader: FlowReader, miner_id: bytes) -> None:
        self.store = store
        self.reader = reader
        self.miner_id = miner_id

    def seal(self, ranges: list[EpochRange], flow_length: int) -> None:
        """Seal up to ``SEALS_PER_TICK`` pieces inside ``ranges`` and the flow's length."""
        if not ranges:
            return
        limit = min(ranges[-1].end, flow_length) // SECTORS_PER_SEAL
        done = self.store.sealed_indexes(1, limit)
        rows: list[SealRow] = []
        for load in range(ceil_div(limit, SEALS_PER_LOAD)):
            first, last = max(1, load * SEALS_PER_LOAD), min(limit, (load + 1) * SEALS_PER_LOAD)
            todo = [s for s in range(first, last) if s not in done]
            if todo:
                rows += self._seal_load(ranges, load, todo)
            if len(rows) >= SEALS_PER_TICK:
                break
        if rows:
            self.store.put_seals(rows)
            log.info("sealed %d piece(s) of 4 KiB", len([r for r in rows if r[2] is not None]))

    def _seal_load(self, ranges: list[EpochRange], load: int, todo: list[int]) -> list[SealRow]:
        """The sealed pieces ``todo`` of one 256 KiB load (none if it is not all stored here yet)."""
        data = self.reader.sectors(load * SECTORS_PER_LOAD, SECTORS_PER_LOAD)
        if data is None:
            return []  # some of it is not stored here (yet): try again later
        rows: list[SealRow] = []
        pieces, seeds, sealed_rows = [], [], []
        for index in todo:
            offset = (index - load * SEALS_PER_LOAD) * BYTES_PER_SEAL
            piece = data[offset : offset + BYTES_PER_SEAL]
            try:
                context = get_sealing_context(ranges, index)
            except NoSealingContext:
                continue
            if is_zero_seal(piece):
                rows.append((index, context.digest, None))
                continue
            pieces.append(piece)
            seeds.append(compute_seal_seed(self.miner_id, context.digest, index * SECTORS_PER_SEAL))
            sealed_rows.append((index, context.digest))
        sealed = seal_pieces(b"".join(pieces), b"".join(seeds))  # all of the load at once, natively
        rows += [(index, digest, sealed[i * BYTES_PER_SEAL : (i + 1) * BYTES_PER_SEAL])
                 for i, (index, digest) in enumerate(sealed_rows)]
        return rows
