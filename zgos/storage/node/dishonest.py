"""A storage node that lost half its data but still claims all of it (test-only, devnet only:
``zg storage node --dishonest drop-half``; issue 17 §6). Every odd segment of every file reads
as missing, for downloads, peers and challenges alike, while the node keeps signing custody of
whole files: what an operator who deleted data to save disk would look like from outside."""

from __future__ import annotations

from zgos.storage.node.store import FileSlice, Store

DROP_HALF = "drop-half"
DISHONEST_MODES = (DROP_HALF,)


class ForgetfulStore(Store):
    def segment_source(self, seq: int, index: int) -> bytes | FileSlice | None:
        return None if index % 2 else super().segment_source(seq, index)

    def segment_rows(self, seq: int, indexes: range) -> dict[int, tuple[bytes | FileSlice, str | None]]:
        return {index: row for index, row in super().segment_rows(seq, indexes).items() if not index % 2}
