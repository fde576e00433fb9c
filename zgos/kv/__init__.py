"""KV streams on the storage log (storage.md §6): a key-value database replayed, in log order,
from tagged files. ``spec/`` holds the rules, ``node/`` the KV node, ``client`` the client.

The Python API::

    from zgos.kv import KvClient, StreamData, StreamWrite

    with KvClient("http://127.0.0.1:6789", storage_client) as kv:
        kv.write(StreamData(writes=(StreamWrite(stream_id, b"key", b"value"),)))
        kv.get(stream_id, b"key").data

Names are loaded on first use, so ``import zgos.kv`` (and ``zg --help``) stays light.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "KvClient": "zgos.kv.client", "KvError": "zgos.kv.client", "WriteResult": "zgos.kv.client",
    "StreamData": "zgos.kv.spec.stream", "StreamWrite": "zgos.kv.spec.stream", "StreamRead": "zgos.kv.spec.stream",
    "AccessControl": "zgos.kv.spec.stream", "AclOp": "zgos.kv.spec.stream",
    "NO_VERSION_CHECK": "zgos.kv.spec.stream", "Entry": "zgos.kv.spec.state",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'zgos.kv' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
