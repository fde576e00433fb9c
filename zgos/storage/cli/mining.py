"""``zg storage rewards`` and ``zg storage miner ...``: where the storage fees are and what a
node's miner is doing. Reads the Reward/PoraMine contracts and the node's ``zgs_getStatus``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import typer
from eth_utils import is_address, to_checksum_address
from rich.table import Table

from zgos.cli.context import console, get_ctx
from zgos.core.errors import ConfigError
from zgos.core.units import format_amount
from zgos.runtime.netutil import (
    JsonRpcErrorAnswer,
    JsonRpcNotJson,
    JsonRpcUnreachable,
    call_jsonrpc,
)
from zgos.storage.cli.common import resolve_nodes
from zgos.storage.contracts import FlowContract, PoraMine, Reward
from zgos.storage.spec.pora import SECTORS_PER_PRICING, compute_owner_miner_id

miner_app = typer.Typer(help="The PoRA miner of a storage node.", no_args_is_help=True)
AMOUNT_PLACES = 18  # storage fees are small: show every neuron


def _amount(neurons: int) -> str:
    return format_amount(neurons, AMOUNT_PLACES)


def rewards_command(
    ctx: typer.Context,
    address: str | None = typer.Argument(None, help="A miner or beneficiary address to report on."),
) -> None:
    """Reward pools per 8 GiB pricing chunk (fees, released, paid, claimable, locked) and, for
    ADDR, what it was paid and its miner registration."""
    cli = get_ctx(ctx)
    chain, deployment = cli.chain(), cli.deployment()
    reward = Reward(chain, deployment.address("Reward"))
    flow_length = FlowContract(chain, deployment.address("Flow")).flow_length()
    table = Table("chunk", "fees", "released", "paid to miners", "claimable", "locked", title="reward pools")
    for index in range(max(1, -(-flow_length // SECTORS_PER_PRICING))):
        pool, released = reward.pool(index), reward.released(index)
        table.add_row(str(index), _amount(pool.total), _amount(released), _amount(pool.distributed),
                      _amount(released - pool.distributed),
                      _amount(pool.total - released) if pool.start_time else _amount(pool.total))
    console.print(table)
    console.print(f"deposited {_amount(reward.total_deposited())}, paid {_amount(reward.total_distributed())}, "
                  f"release period {reward.release_seconds() // 86_400} days")
    if address is not None:
        _report_address(reward, PoraMine(chain, deployment.address("PoraMine")), address)


def _report_address(reward: Reward, mine: PoraMine, address: str) -> None:
    """What ``address`` was paid and, as a miner's owner, its registration."""
    if not is_address(address):
        raise ConfigError(f"not an address: {address!r}", "an address is 0x followed by 40 hex digits")
    who = to_checksum_address(address)
    console.print(f"{who}: claimed {_amount(reward.claimed_by(who))}, owed (withdrawable) {_amount(reward.owed(who))}")
    miner_id = compute_owner_miner_id(bytes.fromhex(who[2:]))
    beneficiary = mine.beneficiary(miner_id)
    if beneficiary is None:
        console.print("not registered as a miner")
    else:
        epoch = mine.last_rewarded_epoch(miner_id)
        console.print(f"miner 0x{miner_id.hex()} pays {beneficiary}; last rewarded epoch {epoch or 'none'}")


def _node_url(ctx: typer.Context, node: str | None) -> str:
    if node is not None:
        return node
    return resolve_nodes(get_ctx(ctx), None)[0]


def _rpc(url: str, method: str, token: str | None = None) -> Any:
    """``method`` at the node ``url``; ``token``: the install token its local methods require."""
    headers = {"Authorization": f"Bearer {token}"} if token else None
    try:
        with httpx.Client(timeout=10, headers=headers) as http:
            return call_jsonrpc(http, url, method)
    except (JsonRpcUnreachable, JsonRpcNotJson) as exc:
        raise ConfigError(f"storage node {url} did not answer ({exc})", "is it running?") from None
    except JsonRpcErrorAnswer as exc:
        raise ConfigError(f"{url}: {exc}") from None


def _miner_status(url: str) -> dict[str, Any]:
    status = _rpc(url, "zgs_getStatus")
    if not isinstance(status, dict) or "miner" not in status:
        raise ConfigError(f"the node at {url} does not mine", "start it with --miner-key")
    miner: dict[str, Any] = status["miner"]
    return miner


NODE_HELP = "Storage node URL (default: the first announced node)."
TOKEN_HELP = "The node's install token file (default: DATA_DIR/token)."


def _token(ctx: typer.Context, token_file: Path | None) -> str:
    from zgos.runtime.access import TOKEN_FILE, read_token

    return read_token(token_file or get_ctx(ctx).data_dir.root / TOKEN_FILE)


@miner_app.command("status")
def status_command(ctx: typer.Context, node: str | None = typer.Option(None, "--node", help=NODE_HELP)) -> None:
    """Hash rate, sealed data, answers submitted/accepted and the last reward of a node's miner."""
    url = _node_url(ctx, node)
    m = _miner_status(url)
    last = m.get("lastReward")
    console.print(f"miner      {m['minerAddress']} (id {m['minerId']}) on {url}")
    console.print(f"state      {'running' if m['running'] else 'stopped'}; "
                  f"{'registered' if m['registered'] else 'not registered yet'}; beneficiary {m['beneficiary']}")
    console.print(f"hash rate  {m['hashRate']} PoRA iterations/s ({m['threads']} thread(s) at "
                  f"{100 * m['cpuFraction']:.0f}% CPU); {m['iterations']} iterations")
    console.print(f"sealed     {m['sealedPieces']} pieces of 4 KiB ({m['zeroPieces']} all-zero skipped)")
    console.print(f"answers    {m['answersSubmitted']} submitted, {m['answersAccepted']} accepted, "
                  f"{m['answersRejected']} rejected; earned {_amount(int(m['totalReward']))}")
    if last:
        console.print(f"last       epoch {last['epoch']}: {_amount(int(last['reward']))} (tx {last['detail']})")
    if m.get("lastError"):
        console.print(f"last error {m['lastError']}")


@miner_app.command("start")
def start_command(ctx: typer.Context, node: str | None = typer.Option(None, "--node", help=NODE_HELP),
                  token_file: Path | None = typer.Option(None, "--token-file", help=TOKEN_HELP)) -> None:
    """Resume mining (admin RPC ``miner_start``: the install token, from the node's host or, with the
    node's --remote-admin, from another)."""
    _rpc(_node_url(ctx, node), "miner_start", _token(ctx, token_file))
    console.print("mining")


@miner_app.command("stop")
def stop_command(ctx: typer.Context, node: str | None = typer.Option(None, "--node", help=NODE_HELP),
                 token_file: Path | None = typer.Option(None, "--token-file", help=TOKEN_HELP)) -> None:
    """Pause mining (admin RPC ``miner_stop``: the install token, from the node's host or, with the
    node's --remote-admin, from another)."""
    _rpc(_node_url(ctx, node), "miner_stop", _token(ctx, token_file))
    console.print("mining paused")
