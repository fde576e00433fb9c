"""``zg alignment bond|unbond|withdraw|scores`` against the session chain (issue 17)."""

from __future__ import annotations

from tests.integration.alignment.conftest import AlignmentNet
from tests.integration.clirunner import zg
from zgos.chain.accounts import PRIVATE_KEY_ENV
from zgos.chain.registry import NodeKind, NodeRegistry
from zgos.runtime.datadir import DataDir


def test_an_operator_bonds_unbonds_and_sees_its_score(alignment_net: AlignmentNet, devnet_dir: DataDir) -> None:
    net = alignment_net
    operator = net.funded()
    env = {PRIVATE_KEY_ENV: operator.key.hex()}
    root = devnet_dir.root
    bad_kind = zg(root, "alignment", "bond", "kv", "1", env=env)
    assert bad_kind.returncode != 0 and "unknown bond kind 'kv'" in bad_kind.stderr + bad_kind.stdout
    bad_amount = zg(root, "alignment", "bond", "storage", "lots", env=env)
    assert bad_amount.returncode != 0 and "not an amount" in bad_amount.stderr + bad_amount.stdout
    unannounced = zg(root, "alignment", "bond", "storage", "1", env=env)
    assert unannounced.returncode != 0 and "NotRegistered" in unannounced.stderr + unannounced.stdout
    NodeRegistry(net.chain, net.deployment.address("NodeRegistry")).announce(operator, NodeKind.STORAGE,
                                                                               "http://127.0.0.1:1")
    bonded = zg(root, "alignment", "bond", "storage", "1.5", env=env)
    assert bonded.returncode == 0, bonded.stderr
    assert f"{operator.address} storage bond: 1.5" in bonded.stdout
    scores = zg(root, "alignment", "scores", "--kind", "storage")
    assert scores.returncode == 0, scores.stderr
    line = next(x for x in scores.stdout.splitlines() if operator.address in x)
    assert "score     0" in line and "slashes 0" in line and "bond 1.5" in line
    assert zg(root, "alignment", "unbond", "storage", env=env).returncode == 0
    early = zg(root, "alignment", "withdraw", "storage", env=env)
    assert early.returncode != 0 and "StillLocked" in early.stderr + early.stdout
