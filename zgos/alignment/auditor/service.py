"""The auditor process (``zg auditor run``, devnet service ``auditor``): rounds in a thread, and
a small read-only status API (FastAPI behind the guarded edge):

- ``GET /health``;
- ``GET /v1/status``: rounds begun and finished, the last round's time, findings (published or
  not), challenges by status and compute slashes;
- ``GET /v1/findings?subject=0x..&limit=N``: the newest findings, with their evidence roots.

A round that fails (the chain or storage away) is logged and the next one runs on time; a
restarted auditor carries on from its journal (:mod:`zgos.alignment.auditor.journal`).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Query
from pydantic import BaseModel

from zgos.alignment.auditor.journal import Journal, StoredFinding
from zgos.alignment.auditor.rounds import Auditor
from zgos.runtime.edge import EdgePolicy, Route
from zgos.runtime.serve import hardened_server, serve_in_foreground

log = logging.getLogger(__name__)

API_POLICY = EdgePolicy(routes=(Route("/", max_body_bytes=1024, deadline_s=30.0),))  # GETs only
MAX_FINDINGS_PAGE = 200


class AuditorStatus(BaseModel):
    auditor: str
    rounds_begun: int
    rounds_finished: int
    last_round_at: float | None
    counts: dict[str, int]


class FindingView(BaseModel):
    id: int
    round: int
    subject: str
    kind: str
    check: str
    finding: str
    delta: int
    detail: str
    evidence_root: str | None
    published: bool

    @classmethod
    def of(cls, stored: StoredFinding) -> FindingView:
        o = stored.observation
        return cls(id=stored.id, round=stored.round, subject=o.subject, kind=o.kind.name.lower(), check=o.check,
                   finding=o.finding.name.lower() if o.finding is not None else "none", delta=o.delta,
                   detail=o.detail, evidence_root=None if stored.root is None else "0x" + stored.root.hex(),
                   published=stored.published)


def create_app(journal: Journal, auditor_address: str) -> FastAPI:
    app = FastAPI(title="zgos auditor")

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/v1/status")
    def status() -> AuditorStatus:
        begun, finished, last = journal.rounds()
        return AuditorStatus(auditor=auditor_address, rounds_begun=begun, rounds_finished=finished,
                             last_round_at=last, counts=journal.counts())

    @app.get("/v1/findings")
    def findings(subject: str | None = Query(None, max_length=42),
                 limit: int = Query(50, ge=1, le=MAX_FINDINGS_PAGE)) -> list[FindingView]:
        return [FindingView.of(f) for f in journal.findings(subject, limit=limit)]

    return app


@dataclass
class AuditorProcess:
    auditor: Auditor
    interval_s: float
    stop: threading.Event = field(default_factory=threading.Event)

    def _loop(self) -> None:
        while not self.stop.wait(self.interval_s):  # the first round after one interval: let the network settle
            try:
                summary = self.auditor.run_round()
                log.info("round %d: %d checks, %d findings", summary.n, summary.checks, len(summary.findings))
            except Exception as exc:  # the chain, a node or storage away: the next round runs on time
                log.warning("audit round failed: %s", exc)

    def run(self, host: str, port: int) -> None:
        thread = threading.Thread(target=self._loop, name="audit-rounds", daemon=True)
        thread.start()
        app: Any = create_app(self.auditor.journal, self.auditor.account.address)
        try:
            serve_in_foreground(hardened_server(app, host=host, port=port, policy=API_POLICY))
        finally:
            self.stop.set()
            thread.join(timeout=30)
            if self.auditor.probe is not None:
                self.auditor.probe.close()
            self.auditor.journal.close()
