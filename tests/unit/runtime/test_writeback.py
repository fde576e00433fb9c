"""start_writeback: the kernel takes the hint for a real file's range, and a bad descriptor is
refused without an exception (it is only a hint; the caller's fsync is what makes data durable)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from zgos.runtime.writeback import start_writeback


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="sync_file_range is Linux's")
def test_writeback_starts_for_a_written_range_and_a_bad_descriptor_is_refused_quietly(tmp_path: Path) -> None:
    fd = os.open(tmp_path / "out.bin", os.O_RDWR | os.O_CREAT)
    try:
        os.pwrite(fd, os.urandom(1 << 20), 1 << 20)
        assert start_writeback(fd, 1 << 20, 1 << 20)
        os.fsync(fd)
        assert os.pread(fd, 16, 0) == bytes(16), "the hole before the range is untouched"
    finally:
        os.close(fd)
    assert not start_writeback(fd, 0, 1 << 20), "a closed descriptor: refused, no exception"
