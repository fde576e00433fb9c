"""``zg inft``: ERC-7857 agent NFTs from the command line (issue 16), a thin layer over
``zgos.inft.client`` and the oracle service.

``mint`` encrypts and uploads the agent's files and mints; ``show``/``list`` read tokens;
``transfer``/``clone`` run the oracle flow end to end for a receiver whose account this machine
holds (``devnet:N``, a keystore name); ``authorize``/``revoke``/``delegate`` manage use without
disclosure; ``decrypt`` writes the owner's plaintext; ``oracle`` runs an oracle; ``oracles``
lists them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from zgos.cli.context import CliContext, console, get_ctx
from zgos.core.errors import ConfigError
from zgos.runtime.ports import INFT_ORACLE_PORT

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

    from zgos.inft.client import InftClient

inft_app = typer.Typer(help="Agent NFTs (ERC-7857): encrypted agents that change hands with the token.",
                       no_args_is_help=True)
AccountOpt = Annotated[str | None, typer.Option("--account", help="The owner's account (default: the devnet user).")]
NodeOpt = Annotated[list[str] | None, typer.Option("--node", help="Storage node URL (repeat; default: announced on chain).")]


@contextlib.contextmanager
def inft_client(cli: CliContext, account: str | None, nodes: list[str] | None) -> Iterator[InftClient]:
    from zgos.chain.registry import NodeRegistry
    from zgos.inft.client import InftClient
    from zgos.inft.contracts import InftContracts
    from zgos.runtime.outbound import OutboundClient
    from zgos.storage.cli.common import storage_client

    deployment = cli.deployment()
    work = cli.data_dir.root / "inft"
    work.mkdir(parents=True, exist_ok=True)
    with storage_client(cli, nodes, account) as storage, \
            OutboundClient(cli.outbound_policy(), deadline_s=900) as http:
        assert storage.account is not None
        yield InftClient(InftContracts.from_deployment(cli.chain(), deployment),
                         NodeRegistry(cli.chain(), deployment.address("NodeRegistry")), storage, storage.account,
                         http, work, deployment.deploy_block)


def _address(cli: CliContext, text: str) -> str:
    from eth_utils.address import is_address, to_checksum_address

    if is_address(text):
        return str(to_checksum_address(text))
    return str(cli.account(text, role=None).address)


@inft_app.command("mint")
def mint_command(ctx: typer.Context, files: Annotated[list[Path], typer.Argument(help="The agent's files.")],
                 desc: Annotated[list[str] | None, typer.Option("--desc", help="A description per file.")] = None,
                 account: AccountOpt = None, node: NodeOpt = None) -> None:
    """Encrypt FILES under fresh keys, upload them and mint a token holding them."""
    cli = get_ctx(ctx)
    descriptions = desc or [f.name for f in files]
    if len(descriptions) != len(files):
        raise ConfigError(f"{len(files)} files but {len(descriptions)} --desc", "give one --desc per file, or none")
    for f in files:
        if not f.is_file():
            raise ConfigError(f"no such file: {f}")
    with inft_client(cli, account, node) as client, console.status("encrypting, uploading and minting"):
        token = client.mint(list(zip(files, descriptions, strict=True)))
        datas = client.contracts.datas_of(token)
    console.print(f"minted token {token}")
    for d in datas:
        console.print(f"  {d.description}: 0x{d.data_hash.hex()}", highlight=False, markup=False)


@inft_app.command("show")
def show_command(ctx: typer.Context, token_id: Annotated[int, typer.Argument(min=0)]) -> None:
    """A token: owner, data (description and storage root), authorized users."""
    from zgos.inft.contracts import InftContracts

    cli = get_ctx(ctx)
    contracts = InftContracts.from_deployment(cli.chain(), cli.deployment())
    token = contracts.token(token_id)
    console.print(f"token {token_id}\n  owner: {token.owner}", highlight=False)
    for d in token.datas:
        console.print(f"  data: {d.description}: 0x{d.data_hash.hex()}", highlight=False, markup=False)
    if not token.datas:
        console.print("  data: none (a plain ERC-721)")
    console.print(f"  authorized users: {', '.join(token.authorized) or 'none'}", highlight=False)


@inft_app.command("list")
def list_command(ctx: typer.Context, owner: Annotated[str | None, typer.Argument(help="Address or account.")] = None,
                 account: AccountOpt = None) -> None:
    """The tokens OWNER (default: your account) holds."""
    from zgos.inft.contracts import InftContracts

    cli = get_ctx(ctx)
    who = _address(cli, owner) if owner else cli.account(account).address
    contracts = InftContracts.from_deployment(cli.chain(), cli.deployment())
    tokens = contracts.tokens_of(who, cli.deployment().deploy_block)
    console.print(f"{who} holds {len(tokens)} token(s)" + (": " + ", ".join(map(str, tokens)) if tokens else ""),
                  highlight=False)


def _move(ctx: typer.Context, token_id: int, to: str, account: str | None, node: list[str] | None, clone: bool) -> None:
    from zgos.inft.client import pubkey_of

    cli = get_ctx(ctx)
    receiver: LocalAccount = cli.account(to, role=None)
    with inft_client(cli, account, node) as client:
        with console.status(f"re-encrypting token {token_id} for {receiver.address} through the oracles"):
            offer = client.offer(token_id, pubkey_of(receiver))
        with console.status("the receiver checks and accepts the new data"):
            access = client.accept(offer, receiver)
        if clone:
            new = client.clone(offer, access)
            console.print(f"cloned token {token_id} to {receiver.address} as token {new}", highlight=False)
        else:
            client.transfer(offer, access)
            console.print(f"transferred token {token_id} to {receiver.address}", highlight=False)


@inft_app.command("transfer")
def transfer_command(ctx: typer.Context, token_id: Annotated[int, typer.Argument(min=0)],
                     to: Annotated[str, typer.Argument(help="The receiver's account (devnet:N or a keystore name).")],
                     account: AccountOpt = None, node: NodeOpt = None) -> None:
    """Transfer a token with its data re-encrypted for TO (the oracles' 2-of-3 proof)."""
    _move(ctx, token_id, to, account, node, clone=False)


@inft_app.command("clone")
def clone_command(ctx: typer.Context, token_id: Annotated[int, typer.Argument(min=0)],
                  to: Annotated[str, typer.Argument(help="The receiver's account (devnet:N or a keystore name).")],
                  account: AccountOpt = None, node: NodeOpt = None) -> None:
    """Give TO a new token with a copy of the data re-encrypted for it; yours is kept."""
    _move(ctx, token_id, to, account, node, clone=True)


@inft_app.command("authorize")
def authorize_command(ctx: typer.Context, token_id: Annotated[int, typer.Argument(min=0)],
                      user: Annotated[str, typer.Argument(help="Address or account.")],
                      executor: Annotated[str | None, typer.Option(
                          "--executor", help="Provider URL that runs the agent (default: the devnet's provider-0).")] = None,
                      account: AccountOpt = None, node: NodeOpt = None) -> None:
    """Let USER run the agent (``zg inft run``) on a provider acting as sealed executor: the
    agent's keys are sealed to that provider, and USER never sees the data or the keys."""
    cli = get_ctx(ctx)
    url = executor or cli.data_dir.service_url("provider-0")
    if url is None:
        _owner_call(ctx, account, lambda contracts, me, cli: contracts.authorize(me, token_id, _address(cli, user)),
                    f"authorized {user} on token {token_id} (no executor granted: pass --executor URL)")
        return
    address, pubkey = _executor_key(cli, url)
    with inft_client(cli, account, node) as client:
        with console.status(f"sealing the agent's keys to the executor {address}"):
            client.grant_executor(token_id, pubkey)
        client.contracts.authorize(client.account, token_id, _address(cli, user))
    console.print(f"authorized {user} on token {token_id} (executor {url})", highlight=False, markup=False)


def _executor_key(cli: CliContext, url: str) -> tuple[str, bytes]:
    """The executor's address and public key from its ``/v1/agents/executor``; the key must
    hash to the address, and that address must have registered ``url`` as its service."""
    from zgos.compute.contracts import ComputeContracts
    from zgos.inft.oracles import parse_pubkey
    from zgos.inft.spec.proofs import compute_pubkey_address
    from zgos.runtime.outbound import OutboundClient

    with OutboundClient(cli.outbound_policy(), deadline_s=10) as http:
        try:
            info = http.get(url.rstrip("/") + "/v1/agents/executor").json()
            address, pubkey = str(info["address"]), parse_pubkey(info["pubkey"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"{url} does not answer as a sealed executor: {exc}") from None
    if compute_pubkey_address(pubkey) != address.lower():
        raise ConfigError(f"{url} answers with a key that is not {address}'s")
    registered = ComputeContracts.from_deployment(cli.chain(), cli.deployment()).service(address).url
    if registered.rstrip("/") != url.rstrip("/"):
        raise ConfigError(f"{address} registered {registered}, not {url}")
    return address, pubkey


@inft_app.command("run")
def run_command(ctx: typer.Context, token_id: Annotated[int, typer.Argument(min=0)],
                prompt: Annotated[str, typer.Argument(help="What to ask the agent.")],
                provider: Annotated[str | None, typer.Option("--provider", help="Provider address (default: the first).")] = None,
                max_tokens: Annotated[int, typer.Option("--max-tokens", min=1)] = 64,
                account: AccountOpt = None) -> None:
    """Run an agent you are authorized to use, on a provider acting as its sealed executor:
    a paid, signed, verified answer; the agent's data and keys never reach you."""
    from zgos.compute.cli import run_chat

    run_chat(get_ctx(ctx), provider, prompt, max_tokens, None, account, agent=token_id)


@inft_app.command("revoke")
def revoke_command(ctx: typer.Context, token_id: Annotated[int, typer.Argument(min=0)],
                   user: Annotated[str, typer.Argument(help="Address or account.")], account: AccountOpt = None) -> None:
    """Withdraw USER's authorization (from its next request on)."""
    _owner_call(ctx, account, lambda contracts, me, cli: contracts.revoke(me, token_id, _address(cli, user)),
                f"revoked {user} on token {token_id}")


@inft_app.command("delegate")
def delegate_command(ctx: typer.Context, assistant: Annotated[str, typer.Argument(help="Address or account.")],
                     account: AccountOpt = None) -> None:
    """Let ASSISTANT accept transfers (sign access proofs) for your account."""
    _owner_call(ctx, account, lambda contracts, me, cli: contracts.delegate(me, _address(cli, assistant)),
                f"delegated access proofs to {assistant}")


def _owner_call(ctx: typer.Context, account: str | None, call: object, done: str) -> None:
    from zgos.inft.contracts import InftContracts

    cli = get_ctx(ctx)
    contracts = InftContracts.from_deployment(cli.chain(), cli.deployment())
    call(contracts, cli.account(account), cli)  # type: ignore[operator]
    console.print(done, highlight=False, markup=False)


@inft_app.command("decrypt")
def decrypt_command(ctx: typer.Context, token_id: Annotated[int, typer.Argument(min=0)],
                    out: Annotated[Path, typer.Argument(help="Output file (a directory for several data items).")],
                    account: AccountOpt = None, node: NodeOpt = None) -> None:
    """Write the token's data, decrypted with the key published to you (owner only)."""
    cli = get_ctx(ctx)
    with inft_client(cli, account, node) as client, console.status("downloading and decrypting"):
        paths = client.decrypt(token_id, out)
    console.print("wrote " + ", ".join(str(p) for p in paths), highlight=False, markup=False)


@inft_app.command("oracles")
def oracles_command(ctx: typer.Context) -> None:
    """The registered oracles, the threshold, and which ones answer with their own key."""
    from zgos.chain.registry import NodeRegistry
    from zgos.inft.contracts import InftContracts
    from zgos.inft.oracles import find_oracles
    from zgos.runtime.outbound import OutboundClient

    cli = get_ctx(ctx)
    contracts = InftContracts.from_deployment(cli.chain(), cli.deployment())
    registered, threshold = contracts.oracles()
    with OutboundClient(cli.outbound_policy(), deadline_s=10) as http:
        answering = {o.address: o.url for o in find_oracles(
            contracts, NodeRegistry(cli.chain(), cli.deployment().address("NodeRegistry")), http)[0]}
    console.print(f"{threshold} of {len(registered)} oracles must sign (trusted signers, not TEEs)")
    for address in registered:
        state = f"answers at {answering[address]}" if address in answering else "not answering"
        console.print(f"  {address}: {state}", highlight=False, markup=False)


@inft_app.command("oracle")
def oracle_command(
    ctx: typer.Context,
    index: Annotated[int, typer.Option("--index", min=0, help="Which devnet oracle (its account and port).")] = 0,
    account: Annotated[str | None, typer.Option("--account", help="The oracle's account (default: devnet oracle INDEX).")] = None,
    storage_node: Annotated[list[str] | None, typer.Option("--storage-node", help="Storage node URL (repeat).")] = None,
    host: Annotated[str, typer.Option("--host")] = "127.0.0.1",
    port: Annotated[int | None, typer.Option("--port", help="Default: 7070 + INDEX.")] = None,
    public_url: Annotated[str | None, typer.Option("--public-url", help="URL to announce (default http://HOST:PORT).")] = None,
) -> None:
    """Run an INFT oracle: re-encrypt agents for their receivers and sign the ownership proofs
    with the other oracles. A trusted signer, not a TEE: it sees what it re-encrypts."""
    from zgos.chain.accounts import devnet_role
    from zgos.inft.oracle.app import OracleConfig, OracleService
    from zgos.runtime.logs import configure_service_logging
    from zgos.storage.cli.common import storage_nodes

    cli = get_ctx(ctx)
    signer = cli.account(account, role=None) if account else _devnet_oracle(cli, index, devnet_role)
    deployment = cli.deployment()
    name = f"inft-oracle-{index}"
    config = OracleConfig(state_dir=cli.data_dir.service(name), rpc_url=cli.rpc_url, nft=deployment.address("AgentNFT"),
                          verifier=deployment.address("INFTVerifier"), registry=deployment.address("NodeRegistry"),
                          flow=deployment.address("Flow"), storage_nodes=storage_nodes(cli, storage_node),
                          outbound=cli.outbound_policy(), host=host, port=port or INFT_ORACLE_PORT + index,
                          public_url=public_url)
    configure_service_logging()
    service = OracleService(config, signer)
    service.run(started=lambda: console.print(f"inft oracle {name} ({signer.address}) on {service.url}", highlight=False))


def _devnet_oracle(cli: CliContext, index: int, devnet_role: object) -> LocalAccount:
    from zgos.chain.networks import is_devnet

    if not is_devnet(cli.chain().chain_id):
        raise ConfigError("pass --account: devnet oracle keys are public and only serve a devnet")
    return devnet_role("inft-oracle", index)  # type: ignore[operator, no-any-return]
