"""The DA signer node: registers on-chain, verifies and stores its columns, signs blobs.

``StoreCells`` accepts a blob's cells only if (1) the blob is recorded on-chain by
``DAEntrance`` for the stated epoch, (2) this signer is in that epoch's quorum, (3) the cells
are exactly this signer's columns for every row, and (4) every cell's KZG proof verifies
against the row commitments read from the chain, in one batch check. It then stores them
durably (``CellStore``) and returns its BLS signature of ``DAEntrance.signingMessage``.
A failed batch check refuses the whole request: the cells are not re-checked one by one to name
the bad one (that would cost the signer up to 8,192 single checks, holding the GIL, for every
bad request a stranger sends). Refusals are ``INVALID_ARGUMENT`` with the rule broken.
``GetCells`` serves stored cells (with proofs) to retrievers and samplers.

Restart behaviour: the store is on disk; registration is idempotent (a registered signer only
updates its URL if it changed).
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass

import blspy
import grpc
from eth_account.signers.local import LocalAccount

from zgos.core.errors import ZgError
from zgos.da.contracts import BlobRecord, BlobStatus, DAContracts, Quorum, UnknownBlob
from zgos.da.proto import signer_pb2, signer_pb2_grpc
from zgos.da.rpc import SIGNER_LIMITS, cell_from_pb, cell_to_pb, serve
from zgos.da.signer.store import CellStore
from zgos.da.spec import bls
from zgos.da.spec.blob import BYTES_PER_CELL, BYTES_PER_PROOF, CELLS_PER_ROW, MAX_ROWS, BlobHeader
from zgos.da.spec.encoding import Cell, verify_cells
from zgos.da.spec.params import SIGNER_STAKE_WEI

log = logging.getLogger(__name__)

BLOB_ID_BYTES = 32
MAX_CELLS_PER_REQUEST = MAX_ROWS * CELLS_PER_ROW  # every cell of a whole extended blob


class CellRejected(ZgError):
    """The cells handed to this signer are not acceptable (the message says why)."""


@dataclass(frozen=True)
class SignerIdentity:
    account: LocalAccount
    secret: blspy.PrivateKey

    @classmethod
    def from_account(cls, account: LocalAccount) -> SignerIdentity:
        return cls(account, bls.derive_secret_key(bytes(account.key)))

    @property
    def address(self) -> str:
        return str(self.account.address)

    @property
    def pubkey(self) -> bytes:
        return bls.public_key(self.secret)


def ensure_registered(da: DAContracts, identity: SignerIdentity, url: str, stake: int = SIGNER_STAKE_WEI) -> None:
    """Register the signer (key, proof of possession, stake) or update its URL."""
    if not da.is_registered(identity.address):
        da.register(identity.account, identity.secret, url, stake)
        log.info("registered %s as a DA signer at %s", identity.address, url)
        return
    if da.signer_url(identity.address) != url:
        da.update_url(identity.account, url)


class SignerNode:
    """The signer's logic, independent of gRPC (tests call it directly too)."""

    def __init__(self, da: DAContracts, identity: SignerIdentity, store: CellStore, withhold: bool = False) -> None:
        self.da = da
        self.identity = identity
        self.store = store
        self.withhold = withhold  # test-only (devnet): sign for cells, then never serve them

    def header(self, record: BlobRecord) -> BlobHeader:
        return self._header(record.blob_id, record)

    @functools.lru_cache(maxsize=256)  # noqa: B019 - a blob id fixes its header forever
    def _header(self, blob_id: bytes, record: BlobRecord) -> BlobHeader:
        return self.da.header(blob_id, record)

    def store_and_sign(self, blob_id: bytes, epoch: int, quorum_id: int, cells: list[Cell]) -> bytes:
        """Check the cells (see the module docstring), store them, and sign the blob."""
        if len(blob_id) != BLOB_ID_BYTES:
            raise CellRejected(f"blob id must be {BLOB_ID_BYTES} bytes, got {len(blob_id)}")
        if quorum_id != 0:
            raise CellRejected(f"unknown quorum {quorum_id}: each epoch has one quorum (0)")
        record, quorum = self._quorum_of(blob_id, epoch)
        header = self.header(record)
        self._check_assignment(header, quorum, cells)
        if not verify_cells(header, cells):
            raise CellRejected(
                f"the batch KZG check of the {len(cells)} cells failed: some cell does not open its row "
                "commitment (the request is refused whole; cells are not checked one by one)"
            )
        if not self.store.has(blob_id):
            self.store.put(blob_id, epoch, cells)
        return bls.sign(self.identity.secret, self.da.signing_message(blob_id, epoch, quorum_id))

    def _quorum_of(self, blob_id: bytes, epoch: int) -> tuple[BlobRecord, Quorum]:
        """The blob's record and the quorum of ``epoch``, if the blob is pending or certified
        on chain in that epoch and this signer is a member."""
        try:
            record = self.da.blob(blob_id)
        except UnknownBlob:
            raise CellRejected(f"blob 0x{blob_id.hex()} is not submitted on chain") from None
        if record.status not in (BlobStatus.SUBMITTED, BlobStatus.CERTIFIED):
            raise CellRejected(f"blob 0x{blob_id.hex()} is {record.status.name.lower()}")
        if record.epoch != epoch:
            raise CellRejected(f"blob 0x{blob_id.hex()} belongs to epoch {record.epoch}, not {epoch}")
        quorum = self.da.quorum(epoch)
        if self.identity.address not in quorum.members:
            raise CellRejected(f"{self.identity.address} is not in the quorum of epoch {epoch}")
        return record, quorum

    def _check_assignment(self, header: BlobHeader, quorum: Quorum, cells: list[Cell]) -> None:
        """The cells are exactly this signer's columns of every row, each of the right size."""
        columns = quorum.columns(self.identity.address)
        expected = {(row, column) for row in range(header.rows) for column in columns}
        got = [(c.row, c.column) for c in cells]
        if len(set(got)) != len(got) or set(got) != expected:
            missing, extra = len(expected - set(got)), len(set(got) - expected)
            raise CellRejected(
                f"cells do not match this signer's assignment ({len(columns)} columns x "
                f"{header.rows} rows): {missing} missing, {extra} unexpected, "
                f"{len(got) - len(set(got))} duplicated"
            )
        for cell in cells:
            if len(cell.data) != BYTES_PER_CELL or len(cell.proof) != BYTES_PER_PROOF:
                raise CellRejected(f"cell (row {cell.row}, column {cell.column}) has a wrong size")

    def get_cells(self, blob_id: bytes, indices: list[tuple[int, int]] | None) -> list[Cell] | None:
        cells = None if self.withhold else self.store.get(blob_id)
        if cells is None or indices is None:
            return cells
        wanted = set(indices)
        return [c for c in cells if (c.row, c.column) in wanted]


class SignerServicer(signer_pb2_grpc.SignerServicer):
    def __init__(self, node: SignerNode) -> None:
        self.node = node

    def StoreCells(self, request: signer_pb2.StoreCellsRequest, context: grpc.ServicerContext) -> signer_pb2.StoreCellsReply:
        if len(request.cells) > MAX_CELLS_PER_REQUEST:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          f"{len(request.cells)} cells: a blob has at most {MAX_CELLS_PER_REQUEST}")
        cells = [cell_from_pb(c) for c in request.cells]
        try:
            signature = self.node.store_and_sign(bytes(request.blob_id), request.epoch, request.quorum_id, cells)
        except CellRejected as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, exc.message)
        except ZgError as exc:
            context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
        return signer_pb2.StoreCellsReply(signature=signature, signer=self.node.identity.address)

    def GetCells(self, request: signer_pb2.GetCellsRequest, context: grpc.ServicerContext) -> signer_pb2.GetCellsReply:
        blob_id = bytes(request.blob_id)
        if len(blob_id) != BLOB_ID_BYTES:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"blob id must be {BLOB_ID_BYTES} bytes")
        indices = None if request.all else [(i.row, i.column) for i in request.indices]
        if indices is not None and any(c >= CELLS_PER_ROW for _, c in indices):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"column must be < {CELLS_PER_ROW}")
        cells = self.node.get_cells(blob_id, indices)
        if cells is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"this signer holds no cells of blob 0x{blob_id.hex()}")
        return signer_pb2.GetCellsReply(cells=[cell_to_pb(c) for c in cells])

    def GetStatus(self, request: signer_pb2.StatusRequest, context: grpc.ServicerContext) -> signer_pb2.StatusReply:
        return signer_pb2.StatusReply(
            address=self.node.identity.address,
            pubkey=self.node.identity.pubkey,
            blobs=self.node.store.count(),
            registered=self.node.da.is_registered(self.node.identity.address),  # False while the chain is down
        )


def serve_signer(node: SignerNode, host: str, port: int) -> grpc.Server:
    """Start the signer's gRPC server (returns at once; call ``wait_for_termination``)."""
    return serve(signer_pb2_grpc.add_SignerServicer_to_server, SignerServicer(node), host, port, SIGNER_LIMITS)
