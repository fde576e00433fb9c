"""``bench_scale``'s output: markdown tables (machine load beside each row), the issue's claims
stated against the figures, and the plots beside ``bench/RESULTS.md`` (``scale_*.png``)."""

from __future__ import annotations

import itertools
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

from bench.scaling import compute_growth_exponent, compute_slope, compute_spread

matplotlib.use("Agg")
import matplotlib.pyplot as plt

if TYPE_CHECKING:
    from bench.bench_scale import ProviderRow, SignerRow, StorageRow

PLOTS = Path(__file__).parent
FLAT_TOLERANCE = 0.20  # per-node CPU and memory within +-20% from 4 to 32 nodes
MAX_REFRESH_RATIO = 2.0  # indexer refresh with 32 nodes <= 2x with 4
CLAIM_SIZES = (4, 32)


def _mean(values: Sequence[float]) -> float:
    return statistics.fmean(values)


def _verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def _print(lines: list[str]) -> None:
    print("\n".join(lines), flush=True)


def storage_row(row: StorageRow) -> None:
    """One size's figures as soon as they are measured."""
    print(f"  {row.nodes} nodes: up {row.upload_mbps:.2f} MB/s, down {row.download_mbps:.2f} MB/s, join "
          f"{row.join_s:.1f} s, refresh {row.refresh_cold_s * 1000:.0f}/{row.refresh_warm_s * 1000:.0f} ms, idle CPU "
          f"{_mean(row.idle_cpu_s):.2f} s/node, RSS {_mean(row.rss_mib):.0f} MiB/node (load {row.load})", flush=True)


def storage(rows: Sequence[StorageRow], file_mib: int, idle_s: float, replicas: int) -> None:
    _print([
        f"\n| nodes | upload MB/s | download MB/s | new node synced, s (after ready) | indexer refresh cold / warm, ms "
        f"| idle CPU s per node in {idle_s:g} s (max) | workload CPU s per node (max) | RSS MiB per node (max) "
        f"| peak RSS MiB per node | load (1, 5, 15 min) |",
        "|---|---|---|---|---|---|---|---|---|---|",
        *(f"| {r.nodes} | {r.upload_mbps:.2f} | {r.download_mbps:.2f} | {r.join_s:.1f} ({r.join_after_ready_s:.1f}) "
          f"| {r.refresh_cold_s * 1000:.0f} / {r.refresh_warm_s * 1000:.0f} "
          f"| {_mean(r.idle_cpu_s):.2f} ({max(r.idle_cpu_s):.2f}) "
          f"| {_mean(r.workload_cpu_s):.2f} ({max(r.workload_cpu_s):.2f}) "
          f"| {_mean(r.rss_mib):.0f} ({max(r.rss_mib):.0f}) | {_mean(r.peak_rss_mib):.0f} | {r.load} |" for r in rows),
        f"(file {file_mib} MiB; workload = one upload and two downloads of it; {replicas} node(s) per shard)",
    ])
    _storage_claims(rows)
    _storage_plot(rows, replicas)


def _storage_claims(rows: Sequence[StorageRow]) -> None:
    by_size = {r.nodes: r for r in rows}
    if not all(n in by_size for n in CLAIM_SIZES):
        print(f"claims need {CLAIM_SIZES} nodes measured: skipped", flush=True)
        return
    claimed = [r for r in rows if CLAIM_SIZES[0] <= r.nodes <= CLAIM_SIZES[1]]
    cpu = compute_spread([_mean(r.idle_cpu_s) for r in claimed])
    rss = compute_spread([_mean(r.rss_mib) for r in claimed])
    ratio = by_size[CLAIM_SIZES[1]].refresh_warm_s / by_size[CLAIM_SIZES[0]].refresh_warm_s
    cold = by_size[CLAIM_SIZES[1]].refresh_cold_s / by_size[CLAIM_SIZES[0]].refresh_cold_s
    sizes = [float(r.nodes) for r in claimed]
    _print([
        f"claim: per-node idle CPU flat within +-20% from 4 to 32 nodes: largest deviation {cpu:.0%} "
        f"(growth exponent {compute_growth_exponent(sizes, [_mean(r.idle_cpu_s) for r in claimed]):.2f}) "
        f"-> {_verdict(cpu <= FLAT_TOLERANCE)}",
        f"claim: per-node RSS flat within +-20% from 4 to 32 nodes: largest deviation {rss:.0%} "
        f"-> {_verdict(rss <= FLAT_TOLERANCE)}",
        f"claim: indexer refresh with 32 nodes <= 2x with 4: warm {ratio:.2f}x, cold {cold:.2f}x "
        f"-> {_verdict(ratio <= MAX_REFRESH_RATIO)}",
        f"growth exponents 4..32 nodes (1 = linear): warm refresh "
        f"{compute_growth_exponent(sizes, [r.refresh_warm_s for r in claimed]):.2f}, new-node sync "
        f"{compute_growth_exponent(sizes, [r.join_s for r in claimed]):.2f}, total idle CPU "
        f"{compute_growth_exponent(sizes, [sum(r.idle_cpu_s) for r in claimed]):.2f}",
    ])


def _storage_plot(rows: Sequence[StorageRow], replicas: int) -> None:
    sizes = [r.nodes for r in rows]
    figure, axes = plt.subplots(2, 3, figsize=(13, 7.5))
    panels = [
        ("throughput, MB/s", {"upload": [r.upload_mbps for r in rows], "download": [r.download_mbps for r in rows]}),
        ("new node synced its shard, s", {"from start": [r.join_s for r in rows],
                                          "from ready": [r.join_after_ready_s for r in rows]}),
        ("indexer refresh, ms", {"cold": [r.refresh_cold_s * 1000 for r in rows],
                                 "warm": [r.refresh_warm_s * 1000 for r in rows]}),
        ("idle CPU s per node (20 s window)", {"mean": [_mean(r.idle_cpu_s) for r in rows],
                                               "max": [max(r.idle_cpu_s) for r in rows]}),
        ("RSS MiB per node", {"mean": [_mean(r.rss_mib) for r in rows], "peak": [_mean(r.peak_rss_mib) for r in rows]}),
        ("workload CPU s per node", {"mean": [_mean(r.workload_cpu_s) for r in rows],
                                     "sum": [sum(r.workload_cpu_s) for r in rows]}),
    ]
    for axis, (title, series) in zip(axes.flat, panels, strict=True):
        for label, values in series.items():
            axis.plot(sizes, values, marker="o", label=label)
        axis.set(title=title, xlabel="storage nodes", xscale="log", xticks=sizes, xticklabels=[str(s) for s in sizes])
        axis.set_ylim(bottom=0)
        axis.legend()
    figure.suptitle(f"zgos storage network scale (one 2-core machine, {replicas} node(s) per shard)")
    figure.tight_layout()
    figure.savefig(PLOTS / ("scale_storage.png" if replicas == 1 else f"scale_storage_{replicas}x.png"), dpi=90)
    plt.close(figure)


def signers(rows: Sequence[SignerRow]) -> None:
    counts = [float(r.signers) for r in rows]
    gas = [float(r.gas) for r in rows]
    slope = compute_slope(counts, gas)
    marginal = [(b.gas - a.gas) / (b.signers - a.signers) for a, b in itertools.pairwise(rows)]
    linear = all(later <= 1.1 * marginal[0] for later in marginal[1:])
    _print([
        "\n| signers | certificate latency, s (median) | certificate gas | gas per signer | load (1, 5, 15 min) |",
        "|---|---|---|---|---|",
        *(f"| {r.signers} | {r.latency_s:.2f} | {r.gas:,} | {r.gas / r.signers:,.0f} | {r.load} |" for r in rows),
        f"certificate gas slope: {slope:,.0f} gas per signer (least squares); marginal per step "
        f"{', '.join(f'{m:,.0f}' for m in marginal)}",
        f"claim: certificate gas at most linear in signers: marginal gas per signer does not grow "
        f"(within 10%) -> {_verdict(linear)}",
    ])
    figure, axes = plt.subplots(1, 2, figsize=(10, 4))
    axes[0].plot(counts, [r.latency_s for r in rows], marker="o")
    axes[0].set(title="certificate latency, s (1 MiB blob, 1 s blocks)", xlabel="DA signers")
    axes[1].plot(counts, gas, marker="o", label="measured")
    intercept = statistics.fmean(gas) - slope * statistics.fmean(counts)
    axes[1].plot(counts, [intercept + slope * c for c in counts], linestyle="--", label=f"fit: {slope:,.0f} gas/signer")
    axes[1].set(title="certificate gas", xlabel="DA signers")
    axes[1].legend()
    for axis in axes:
        axis.set_ylim(bottom=0)
    figure.tight_layout()
    figure.savefig(PLOTS / "scale_da.png", dpi=90)
    plt.close(figure)


def providers(rows: Sequence[ProviderRow], users: int) -> None:
    spread = compute_spread([r.gas_per_user for r in rows])
    _print([
        f"\n| providers | settlement gas per user per provider ({users} users each) | settlement txs | load (1, 5, 15 min) |",
        "|---|---|---|---|",
        *(f"| {r.providers} | {r.gas_per_user:,.0f} | {r.transactions} | {r.load} |" for r in rows),
        f"settlement gas per user varies {spread:.1%} from 1 to {rows[-1].providers} providers",
    ])
    figure, axis = plt.subplots(figsize=(5, 4))
    axis.plot([r.providers for r in rows], [r.gas_per_user for r in rows], marker="o")
    axis.set(title="settlement gas per user per provider", xlabel="providers")
    axis.set_ylim(bottom=0)
    figure.tight_layout()
    figure.savefig(PLOTS / "scale_compute.png", dpi=90)
    plt.close(figure)
