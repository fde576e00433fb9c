"""What the explorer's panels read, passed to each router: the data dir (deployment), the chain,
and a source of the running services' status (the devnet's, handed in by ``zg explorer serve``,
so the explorer never reaches up into the orchestrator)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import HTTPException

from zgos.chain.client import Chain
from zgos.core.errors import ZgError
from zgos.runtime.datadir import DataDir

ServiceRows = Callable[[], list[dict[str, Any]]]


def no_services() -> list[dict[str, Any]]:
    return []


@dataclass
class ExplorerDeps:
    data_dir: DataDir
    rpc_url: str
    # name, url, pid and state of each service this explorer can see (none outside a devnet)
    services: ServiceRows = no_services
    _chain: Chain | None = None

    def chain(self) -> Chain:
        if self._chain is None:
            try:
                self._chain = Chain(self.rpc_url)
            except ZgError as exc:
                raise HTTPException(503, detail=str(exc)) from None
        return self._chain
