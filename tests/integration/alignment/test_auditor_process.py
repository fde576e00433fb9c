"""``zg auditor run`` as a process, killed with ``kill -9`` mid-rounds (issue 17, Must hold): it
resumes its rounds, every challenge it opened on chain is in its journal exactly once (none was
issued twice for one intent, none was lost), and no finding is left unpublished."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx

from tests.integration.alignment.conftest import AlignmentNet, responder
from tests.integration.clirunner import zg
from tests.servers import await_ready
from zgos.alignment.auditor.journal import Journal
from zgos.chain.accounts import PRIVATE_KEY_ENV
from zgos.runtime.datadir import DataDir
from zgos.runtime.netutil import free_port

ROUNDS_BEFORE_KILL = 4
ROUNDS_AFTER_RESTART = 4
WAIT_S = 120.0


def _rounds(url: str) -> int:
    try:
        return int(httpx.get(url + "/v1/status", timeout=2).json()["rounds_finished"])
    except (httpx.HTTPError, ValueError, KeyError):
        return -1


def test_an_auditor_killed_with_kill_9_resumes_without_repeating_or_losing_anything(
        announced: AlignmentNet, devnet_dir: DataDir, tmp_path: Path) -> None:
    net = announced
    network = json.loads(devnet_dir.network.read_text())
    devnet_dir.network.write_text(json.dumps({**network, "services": {"storage-0": net.storage.url}}))
    account = net.funded()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    argv = [sys.executable, "-m", "zgos.cli", "--data-dir", str(devnet_dir.root), "auditor", "run", "--port", str(port),
            "--interval", "1", "--no-probes", "--challenge-every", "2", "--seed", "5"]
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("ZGOS_")}, PRIVATE_KEY_ENV: account.key.hex()}
    log_path = tmp_path / "auditor.log"

    def start() -> subprocess.Popen[bytes]:
        with open(log_path, "ab") as log:
            return subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)

    first = start()
    try:
        await_ready(lambda: _rounds(url) >= ROUNDS_BEFORE_KILL, "the auditor's first rounds", log_path, first)
    finally:
        first.kill()  # SIGKILL, wherever it is in its round
        first.wait()
    journal_path = devnet_dir.service("auditor") / account.address.lower() / "journal.sqlite"
    killed_at = Journal(journal_path).rounds()[1]

    second = start()
    try:
        await_ready(lambda: _rounds(url) >= killed_at + ROUNDS_AFTER_RESTART, "the restarted auditor's rounds",
                    log_path, second)
        status = zg(devnet_dir.root, "auditor", "status", "--url", url)
        assert status.returncode == 0 and f"auditor {account.address}" in status.stdout, status.stdout + status.stderr
    finally:
        second.terminate()
        second.wait(30)
    journal = Journal(journal_path)
    opened = net.chain.get_logs(net.contracts.registry, "ChallengeOpened", net.entry.block_number,
                                net.chain.block_number(), {"challenger": account.address})
    ids = [int(e["args"]["id"]) for e in opened]
    assert ids and len(set(ids)) == len(ids)
    assert sorted(ids) == sorted(journal.challenge_ids()), "every challenge on chain is journaled, once"
    assert journal.findings(unpublished=True) == [], "every finding was published"
    reports = zg(devnet_dir.root, "auditor", "reports", "--from-block", str(net.entry.block_number))
    assert reports.returncode == 0, reports.stderr
    if journal.findings():  # what it published is on chain, with its evidence root
        root = journal.findings()[0].root
        assert root is not None and "0x" + root.hex()[:8] in reports.stdout.replace("\n", "")
    down = zg(devnet_dir.root, "auditor", "status", "--url", url)
    assert down.returncode != 0 and "no auditor answers" in down.stdout + down.stderr
    net.mine(2)
    responder(net).run_once()  # the shared node answers, so later tests find its bond whole
