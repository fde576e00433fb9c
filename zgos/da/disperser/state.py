"""The disperser's durable state: one JSON record per request, the payload of each unfinished
request and the bytes of each certified blob, every file written to a temporary name, fsynced
and renamed, so a request acknowledged by ``DisperseBlob`` survives ``kill -9``.

Layout: ``<state>/requests/<request id>.json`` (a ``Dispersal``), ``<state>/requests/<request
id>.bin`` (its payload, deleted once the request is final), ``<state>/blobs/<blob id hex>.bin``.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path

PROCESSING = "PROCESSING"
CONFIRMED = "CONFIRMED"
FAILED = "FAILED"
FINALIZED = "FINALIZED"


@dataclass
class Dispersal:
    """The durable state of one DisperseBlob request."""

    request_id: str
    size: int
    status: str = PROCESSING
    reason: str = "queued"
    blob_id: str = ""
    epoch: int = 0
    quorum_id: int = 0
    certificate_tx: str = ""
    certificate_block: int = 0
    signers: list[str] = field(default_factory=list)


def write_durably(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class DispersalStore:
    """Every request's ``Dispersal`` (in memory and on disk), payloads and certified blobs."""

    def __init__(self, state_dir: Path) -> None:
        self.requests_dir = state_dir / "requests"
        self.blobs_dir = state_dir / "blobs"
        self.requests_dir.mkdir(parents=True, exist_ok=True)
        self.blobs_dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._requests: dict[str, Dispersal] = {}
        for path in sorted(self.requests_dir.glob("*.json")):
            dispersal = Dispersal(**json.loads(path.read_text()))
            self._requests[dispersal.request_id] = dispersal

    def unfinished(self) -> list[str]:
        """The requests still processing whose payload is on disk (to process again)."""
        return [d.request_id for d in self._requests.values()
                if d.status == PROCESSING and self._payload_path(d.request_id).exists()]

    def get(self, request_id: str) -> Dispersal | None:
        with self._lock:
            return self._requests.get(request_id)

    def save(self, dispersal: Dispersal) -> None:
        with self._lock:
            self._requests[dispersal.request_id] = dispersal
            write_durably(self.requests_dir / f"{dispersal.request_id}.json", json.dumps(asdict(dispersal)).encode())

    def _payload_path(self, request_id: str) -> Path:
        return self.requests_dir / f"{request_id}.bin"

    def put_payload(self, request_id: str, data: bytes) -> None:
        write_durably(self._payload_path(request_id), data)

    def payload(self, request_id: str) -> bytes:
        return self._payload_path(request_id).read_bytes()

    def drop_payload(self, request_id: str) -> None:
        self._payload_path(request_id).unlink(missing_ok=True)

    def put_blob(self, blob_id: str, data: bytes) -> None:
        write_durably(self.blobs_dir / f"{blob_id}.bin", data)

    def blob(self, blob_id: str) -> bytes | None:
        try:
            return (self.blobs_dir / f"{blob_id}.bin").read_bytes()
        except FileNotFoundError:
            return None
