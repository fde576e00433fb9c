from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Cell(_message.Message):
    __slots__ = ("row", "column", "data", "proof")
    ROW_FIELD_NUMBER: _ClassVar[int]
    COLUMN_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    PROOF_FIELD_NUMBER: _ClassVar[int]
    row: int
    column: int
    data: bytes
    proof: bytes
    def __init__(self, row: _Optional[int] = ..., column: _Optional[int] = ..., data: _Optional[bytes] = ..., proof: _Optional[bytes] = ...) -> None: ...

class CellIndex(_message.Message):
    __slots__ = ("row", "column")
    ROW_FIELD_NUMBER: _ClassVar[int]
    COLUMN_FIELD_NUMBER: _ClassVar[int]
    row: int
    column: int
    def __init__(self, row: _Optional[int] = ..., column: _Optional[int] = ...) -> None: ...

class StoreCellsRequest(_message.Message):
    __slots__ = ("blob_id", "epoch", "quorum_id", "cells")
    BLOB_ID_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    QUORUM_ID_FIELD_NUMBER: _ClassVar[int]
    CELLS_FIELD_NUMBER: _ClassVar[int]
    blob_id: bytes
    epoch: int
    quorum_id: int
    cells: _containers.RepeatedCompositeFieldContainer[Cell]
    def __init__(self, blob_id: _Optional[bytes] = ..., epoch: _Optional[int] = ..., quorum_id: _Optional[int] = ..., cells: _Optional[_Iterable[_Union[Cell, _Mapping]]] = ...) -> None: ...

class StoreCellsReply(_message.Message):
    __slots__ = ("signature", "signer")
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    SIGNER_FIELD_NUMBER: _ClassVar[int]
    signature: bytes
    signer: str
    def __init__(self, signature: _Optional[bytes] = ..., signer: _Optional[str] = ...) -> None: ...

class GetCellsRequest(_message.Message):
    __slots__ = ("blob_id", "indices", "all")
    BLOB_ID_FIELD_NUMBER: _ClassVar[int]
    INDICES_FIELD_NUMBER: _ClassVar[int]
    ALL_FIELD_NUMBER: _ClassVar[int]
    blob_id: bytes
    indices: _containers.RepeatedCompositeFieldContainer[CellIndex]
    all: bool
    def __init__(self, blob_id: _Optional[bytes] = ..., indices: _Optional[_Iterable[_Union[CellIndex, _Mapping]]] = ..., all: _Optional[bool] = ...) -> None: ...

class GetCellsReply(_message.Message):
    __slots__ = ("cells",)
    CELLS_FIELD_NUMBER: _ClassVar[int]
    cells: _containers.RepeatedCompositeFieldContainer[Cell]
    def __init__(self, cells: _Optional[_Iterable[_Union[Cell, _Mapping]]] = ...) -> None: ...

class StatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class StatusReply(_message.Message):
    __slots__ = ("address", "pubkey", "blobs", "registered")
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    PUBKEY_FIELD_NUMBER: _ClassVar[int]
    BLOBS_FIELD_NUMBER: _ClassVar[int]
    REGISTERED_FIELD_NUMBER: _ClassVar[int]
    address: str
    pubkey: bytes
    blobs: int
    registered: bool
    def __init__(self, address: _Optional[str] = ..., pubkey: _Optional[bytes] = ..., blobs: _Optional[int] = ..., registered: _Optional[bool] = ...) -> None: ...
