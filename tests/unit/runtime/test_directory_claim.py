"""``DirectoryClaim``: one process per service state directory. A second claim, from another
process or the same one, is a ``ConfigError`` naming the holder's pid; the hold ends when the
holder releases it or dies, ``kill -9`` included (real processes, real ``flock``)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from zgos.core.errors import ConfigError
from zgos.runtime.datadir import LOCK_FILE, DirectoryClaim

HOLDER = """
import sys, time
from pathlib import Path
from zgos.runtime.datadir import DirectoryClaim
claim = DirectoryClaim(Path(sys.argv[1]), "storage node")
print("held", flush=True)
time.sleep(60)
"""


def test_a_directory_held_by_another_process_is_refused_until_that_process_dies(tmp_path: Path) -> None:
    state = tmp_path / "storage-0"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(state)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(ConfigError, match=rf"in use by another storage node \(pid {holder.pid}\)") as refused:
            DirectoryClaim(state, "storage node")
        assert "another --name" in (refused.value.hint or "")
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(10)
        claim = DirectoryClaim(state, "storage node")  # nothing stale is left behind
        assert (state / LOCK_FILE).read_text() == str(os.getpid())
        claim.release()
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(10)


def test_a_second_claim_in_one_process_is_refused_until_the_first_is_released(tmp_path: Path) -> None:
    first = DirectoryClaim(tmp_path / "kv", "KV node")
    with pytest.raises(ConfigError, match=rf"in use by another KV node \(pid {os.getpid()}\)"):
        DirectoryClaim(tmp_path / "kv", "KV node")
    first.release()
    first.release()  # idempotent
    DirectoryClaim(tmp_path / "kv", "KV node").release()
