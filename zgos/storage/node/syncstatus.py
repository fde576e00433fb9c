"""The status JSON of peer sync, restart repair and pruning, built in one place:
``admin_getSyncStatus`` (one file), ``admin_getSyncInfo``'s ``fileSync`` and ``admin_getPeers``."""

from __future__ import annotations

from typing import Any

from zgos.storage.node.peersync import FileSync, PeerSync


def file_sync_json(job: FileSync, now: float, timeout_s: float, held: int) -> dict[str, Any]:
    """One file's sync job (``fileSync.files``)."""
    return {"goal": job.goal, "held": held, "fetched": job.fetched, "attempts": job.attempts,
            "elapsedSecs": round(now - job.started, 1), "stuck": job.stuck(now, timeout_s),
            "lastError": job.last_error, "corruptPeers": sorted(job.corrupt_from)}


def file_status(sync: PeerSync, seq: int) -> str | None:
    """0G-style sync state of one file, or None when no sync ran for it."""
    job = sync.file_job(seq)
    if job is None:
        return None
    held = sync.node.store.count_segments(seq)
    if job.stuck(sync.clock(), sync.config.stuck_timeout_s):
        return f"Stuck ({held}/{job.goal} segments, {job.attempts} attempts): {job.last_error}"
    if job.last_error:
        return f"Failed ({held}/{job.goal} segments): {job.last_error}"
    return f"Syncing ({held}/{job.goal} segments)"


def peers_json(sync: PeerSync) -> list[dict[str, Any]]:
    """The known peers with their scores (``fileSync.peers``, ``admin_getPeers``)."""
    scores = sync.scores
    return [{"url": p.url, "shardConfig": p.shard.to_json(), "score": scores.score(p.url),
             "banned": scores.banned(p.url), "backedOffSecs": round(scores.backed_off_for(p.url), 1),
             "lastError": scores.reason(p.url)} for p in sync.peers]


def sync_info(sync: PeerSync) -> dict[str, Any]:
    """``admin_getSyncInfo``'s ``fileSync``: open jobs, counters of sync, repair and pruning."""
    now, timeout_s = sync.clock(), sync.config.stuck_timeout_s
    jobs = sync.open_jobs()
    files = {str(j.seq): file_sync_json(j, now, timeout_s, sync.node.store.count_segments(j.seq)) for j in jobs}
    return {
        "files": files,
        "stuck": sorted(j.seq for j in jobs if j.stuck(now, timeout_s)),
        "segmentsFetched": sync.segments_fetched,
        "corruptRejected": sync.corrupt_rejected,
        "repaired": dict(sync.repair.repaired),
        "pruned": sync.pruner.pruned,
        "peers": peers_json(sync),
        "skippedPeers": [s.to_json() for s in sync.skipped_peers],
    }
