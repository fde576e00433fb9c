"""Keeping freed segment buffers in the process (glibc's allocator).

glibc serves a block over 128 KiB with a fresh ``mmap`` and unmaps it when freed, and gives the
top of its heap back to the kernel once more than twice that is free there. A process that
relays segments (the gateway: a 256 KiB ``bytes`` per segment, hundreds per second) then pays a
page fault per 4 KiB of every segment, about a tenth of its CPU. ``keep_freed_buffers`` has
blocks up to ``RECYCLED_BLOCK_BYTES`` come from the heap and keeps up to ``KEPT_FREE_BYTES``
free there for the next ones. A no-op where the C library is not glibc.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)

M_TRIM_THRESHOLD = -1  # glibc <malloc.h>
M_MMAP_THRESHOLD = -3
RECYCLED_BLOCK_BYTES = 32 * 1024 * 1024  # glibc's largest mmap threshold; a frame of 16 segments is 4 MiB
KEPT_FREE_BYTES = 128 * 1024 * 1024  # freed heap kept for reuse before any is given back


def keep_freed_buffers() -> bool:
    """Tell glibc to recycle large freed blocks (see the module docstring); False where it cannot."""
    name = ctypes.util.find_library("c")
    try:
        mallopt = ctypes.CDLL(name).mallopt if name else None
    except (OSError, AttributeError):  # not glibc
        mallopt = None
    if mallopt is None:
        return False
    kept = bool(mallopt(M_MMAP_THRESHOLD, RECYCLED_BLOCK_BYTES)) and bool(mallopt(M_TRIM_THRESHOLD, KEPT_FREE_BYTES))
    if not kept:
        log.info("the C library refused mallopt: large buffers are mapped afresh each time")
    return kept
