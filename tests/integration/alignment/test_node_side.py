"""The storage node's side: it signs custody of what it holds, `zg storage challenge` opens a
challenge with it, and the operator's responder answers from the node's store (issue 17)."""

from __future__ import annotations

import re
import time

from tests.integration.alignment.conftest import AlignmentNet
from tests.integration.clirunner import zg
from zgos.chain.accounts import PRIVATE_KEY_ENV
from zgos.runtime.datadir import DataDir
from zgos.storage.node.responder import ChallengeResponder

ANSWER_WAIT_S = 20.0


def test_a_challenged_node_answers_by_itself_and_keeps_its_bond(alignment_net: AlignmentNet, devnet_dir: DataDir) -> None:
    net, contracts = alignment_net, alignment_net.contracts
    operator = net.node_operator
    assert operator is not None
    auditor = net.funded()
    env = {PRIVATE_KEY_ENV: auditor.key.hex()}
    registered = zg(devnet_dir.root, "alignment", "register-auditor", "1", env=env)
    assert registered.returncode == 0 and f"{auditor.address} is an auditor" in registered.stdout, registered.stderr
    opened = zg(devnet_dir.root, "storage", "challenge", net.storage.url, "--tx-seq", str(net.entry.seq), env=env)
    assert opened.returncode == 0, opened.stderr + opened.stdout
    match = re.search(rf"challenge (\d+): {operator.address} \(file {net.entry.seq}\)", opened.stdout)
    assert match, opened.stdout
    challenge_id = int(match.group(1))

    def source(tx_seq: int, sector: int) -> tuple[bytes, list[bytes]]:
        data, proof = net.storage.node.challenged_sector(tx_seq, sector)
        return data, list(proof.siblings)

    responder = ChallengeResponder(contracts, operator, source, poll_s=0.1)
    responder.start()
    try:
        deadline = time.monotonic() + ANSWER_WAIT_S
        while contracts.challenge(challenge_id).status == "open" and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        responder.stop()
    assert contracts.challenge(challenge_id).status == "answered"
    assert ChallengeResponder(contracts, operator, source).run_once() == []  # a restart finds nothing to do


def test_zg_storage_challenge_refuses_what_it_cannot_challenge(alignment_net: AlignmentNet, devnet_dir: DataDir) -> None:
    net = alignment_net
    env = {PRIVATE_KEY_ENV: net.auditor().key.hex()}
    missing = zg(devnet_dir.root, "storage", "challenge", net.storage.url, "--tx-seq", "999999", env=env)
    assert missing.returncode != 0 and "signs custody of no file" in missing.stderr + missing.stdout
    stranger = zg(devnet_dir.root, "storage", "challenge", net.funded().address, env=env)
    assert stranger.returncode != 0 and "announces no storage node" in stranger.stderr + stranger.stdout
    garbage = zg(devnet_dir.root, "storage", "challenge", "nonsense", env=env)
    assert garbage.returncode != 0 and "operator address or a URL" in garbage.stderr + garbage.stdout
