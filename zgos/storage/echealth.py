"""Health of an erasure-coded file (``zgos.storage.erasurecode`` lays it out): per stripe,
which pieces exist on which live nodes; which live node of a piece's shard lacks it (what a
repair, ``zgos.storage.ecrepair``, restores); which pieces no live node's shard holds. Pure:
``ErasureClient`` asks the nodes what they hold."""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import Any

from zgos.storage.contracts import ErasureRecord
from zgos.storage.erasurecode import LiveNodes
from zgos.storage.spec.erasure import StripeLayout
from zgos.storage.spec.shard import ShardConfig
from zgos.storage.upload import Submitted


@dataclass(frozen=True)
class Piece:
    """One piece of a stripe: a data segment, a parity file segment, or a virtual zero."""

    kind: str  # "data" | "parity" | "zero"
    index: int | None
    flow_segment: int | None
    nodes: tuple[str, ...]  # live nodes holding it


@dataclass(frozen=True)
class StripeHealth:
    stripe: int
    pieces: tuple[Piece, ...]

    @property
    def present(self) -> int:
        return sum(1 for p in self.pieces if p.kind == "zero" or p.nodes)


@dataclass
class HealthReport:
    root: bytes
    record: ErasureRecord
    stripes: list[StripeHealth]
    dead_nodes: list[str]
    missing: dict[str, list[tuple[str, int]]] = field(default_factory=dict)  # node -> [(kind, index)] to restore
    orphaned: list[tuple[str, int, ShardConfig]] = field(default_factory=list)  # pieces no live node's shard holds

    @property
    def survives(self) -> int:
        """How many more group losses every stripe survives (negative: unreadable)."""
        k, total = self.record.params.k, self.record.params.pieces
        return min((s.present for s in self.stripes), default=total) - k


def check_health(report: HealthReport, live: LiveNodes, layout: StripeLayout, files: dict[str, Submitted],
                 held: Mapping[tuple[str, str], AbstractSet[int]]) -> None:
    """Fill ``report`` with the stripes of ``layout``: where each piece of the ``"data"`` and
    ``"parity"`` files is, which live node of its shard lacks it, which have no live node.
    ``held`` names the segments of each file that each live node holds, by (url, kind)."""
    def piece(kind: str, index: int | None) -> Piece:
        if index is None:
            return Piece("zero", None, None, ())
        flow_segment = files[kind].first_segment + index
        holders = tuple(n.url for n, s in live if s.holds(flow_segment) and index in held[(n.url, kind)])
        shard_nodes = [n.url for n, s in live if s.holds(flow_segment)]
        for url in shard_nodes:
            if index not in held[(url, kind)]:
                report.missing.setdefault(url, []).append((kind, index))
        if not shard_nodes:
            owner = next(g for g in report.record.groups if g.holds(flow_segment % layout.modulus))
            report.orphaned.append((kind, index, owner))
        return Piece(kind, index, flow_segment, holders)

    for t, stripe in enumerate(layout.stripes):
        pieces = [piece("data", i) for i in stripe.data] + [piece("parity", j) for j in stripe.parity]
        report.stripes.append(StripeHealth(t, tuple(pieces)))


def describe(report: HealthReport) -> dict[str, Any]:
    """The health report as JSON-friendly data (for the CLI and the gateway)."""
    k, total = report.record.params.k, report.record.params.pieces
    return {
        "root": "0x" + report.root.hex(),
        "parityRoot": "0x" + report.record.parity_root.hex(),
        "ec": str(report.record.params),
        "groups": [str(g) for g in report.record.groups],
        "survivesMoreLosses": report.survives,
        "deadNodes": report.dead_nodes,
        "stripes": [
            {"stripe": s.stripe, "present": s.present, "of": total, "readable": s.present >= k,
             "pieces": [{"kind": p.kind, "index": p.index, "flowSegment": p.flow_segment, "nodes": list(p.nodes)}
                        for p in s.pieces]}
            for s in report.stripes
        ],
        "toRestore": {url: len(pieces) for url, pieces in report.missing.items()},
        "noLiveNode": [f"{kind} {index} (shard {shard})" for kind, index, shard in report.orphaned],
    }
