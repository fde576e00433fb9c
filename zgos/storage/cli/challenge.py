"""``zg storage challenge NODE``: open an on-chain storage challenge against a node (issue 17).

NODE is the node's operator address (its URL is read from the NodeRegistry) or its URL. The node
is asked for its signed custody of a file (``--tx-seq``, else a random file it holds), and the
caller, a registered auditor, opens the challenge in ``AlignmentRegistry``, paying the fee. The
node must answer within the window (``zgos.storage.spec.challenges``); if it does not,
``--slash`` on a later run (or anyone) takes part of its bond for the challenger.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Annotated

import typer

from zgos.cli.context import CliContext, console, get_ctx
from zgos.core.errors import ConfigError

if TYPE_CHECKING:
    from zgos.runtime.addresses import AddressPolicy
    from zgos.storage.spec.custody import Custody

MAX_FILE_TRIES = 16


def _node_url(cli: CliContext, node: str) -> str:
    from eth_utils.address import is_address, to_checksum_address

    from zgos.chain.registry import NodeKind, NodeRegistry

    if node.startswith(("http://", "https://")):
        return node
    if not is_address(node):
        raise ConfigError(f"NODE must be an operator address or a URL, got {node!r}")
    registry = NodeRegistry(cli.chain(), cli.deployment().address("NodeRegistry"))
    operator = to_checksum_address(node)
    found = [n.url for n in registry.nodes(NodeKind.STORAGE) if n.operator == operator]
    if not found:
        raise ConfigError(f"{node} announces no storage node", "NODE is an operator address or a node URL")
    return found[0]


def _signed_custody(url: str, policy: AddressPolicy, tx_seq: int | None, registry: str) -> tuple[Custody, bytes]:
    """The node's signed custody of file ``tx_seq``, else of a random file it holds."""
    from zgos.runtime.outbound import OutboundClient
    from zgos.storage.nodeclient import NodeConnection, NodeRefused

    reason = "it holds no file"
    with OutboundClient(policy, deadline_s=30) as http:
        connection = NodeConnection(url, http)
        next_seq = int(connection.status()["nextTxSeq"])
        candidates = [tx_seq] if tx_seq is not None else random.sample(range(next_seq), min(next_seq, MAX_FILE_TRIES))
        for seq in candidates:
            try:
                return connection.custody(seq, registry)
            except NodeRefused as exc:
                reason = str(exc)
    raise ConfigError(f"{url} signs custody of no file ({reason})",
                      "is it run with an operator account, and holding files?")


def challenge_command(
    ctx: typer.Context,
    node: Annotated[str, typer.Argument(help="The node: its operator address or its URL.")],
    tx_seq: Annotated[int | None, typer.Option("--tx-seq", min=0, help="The file (default: a random one it holds).")] = None,
    slash: Annotated[int | None, typer.Option("--slash", min=1, help="Slash challenge ID if left unanswered.")] = None,
    account: Annotated[str | None, typer.Option("--account", help="The auditor's account.")] = None,
) -> None:
    """Challenge NODE to prove on chain that it still holds a random sector of a file."""
    from eth_utils.address import to_checksum_address

    from zgos.runtime.addresses import OPEN_POLICY
    from zgos.storage.challenges import StorageChallenges
    from zgos.storage.spec.challenges import recover_custody_signer

    cli = get_ctx(ctx)
    contracts = StorageChallenges.from_deployment(cli.chain(), cli.deployment())
    auditor = cli.account(account)
    if slash is not None:
        contracts.slash_unanswered(auditor, slash)
        console.print(f"challenge {slash} slashed")
        return
    url = _node_url(cli, node)
    policy = OPEN_POLICY if url == node else cli.outbound_policy()  # a URL typed in may be anywhere
    custody, signature = _signed_custody(url, policy, tx_seq, contracts.registry.address)
    operator = to_checksum_address(recover_custody_signer(contracts.domain(), custody, signature))
    challenge_id = contracts.open_challenge(auditor, operator, custody, signature)
    challenge = contracts.challenge(challenge_id)
    console.print(f"challenge {challenge_id}: {operator} (file {custody.tx_seq}), seed block {challenge.seed_block}, "
                  f"answer by block {challenge.deadline}")
