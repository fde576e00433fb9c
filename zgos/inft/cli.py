"""``zg inft``: ERC-7857 agent NFTs from the command line (issue 16), a thin layer over
``zgos.inft.client`` and the oracle service.

``mint`` encrypts and uploads the agent's files and mints; ``show``/``list`` read tokens;
``transfer``/``clone`` run the oracle flow (end to end for a receiver whose account this machine
holds, or as an offer that the receiver ``accept``s); ``revoke``/``delegate`` manage use and
acceptance; ``decrypt`` writes the owner's plaintext; ``oracle`` runs an oracle; ``oracles``
lists them. ``authorize`` and ``run``, which involve a compute provider, are added by
``zgos.compute.cli.agents``, so that this network never imports the compute network.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from zgos.cli.context import CliContext, console, get_ctx
from zgos.cli.options import DEFAULT_HOST, HostOpt, PublicUrlOpt
from zgos.core.errors import ConfigError
from zgos.runtime.ports import INFT_ORACLE_PORT

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

    from zgos.inft.client import InftClient, Offer

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


def address_of(cli: CliContext, text: str) -> str:
    from eth_utils.address import is_address, to_checksum_address

    if is_address(text):
        return str(to_checksum_address(text))
    return str(cli.account(text, role=None).address)


@inft_app.command("mint")
def mint_command(ctx: typer.Context, files: Annotated[list[Path], typer.Argument(help="The agent's files.")],
                 desc: Annotated[list[str] | None, typer.Option("--desc", help="A description per file.")] = None,
                 lora: Annotated[Path | None, typer.Option("--lora", help="A GGUF LoRA adapter the agent runs with.")] = None,
                 tuned_model: Annotated[str | None, typer.Option(
                     "--tuned-model", help="The ModelRegistry id of the tuned model the adapter is (lineage).")] = None,
                 account: AccountOpt = None, node: NodeOpt = None) -> None:
    """Encrypt FILES under fresh keys, upload them and mint a token holding them. An agent's
    first file is its system prompt; `--lora` adds its adapter (zgos.inft.spec.agents)."""
    from zgos.inft.spec.agents import InvalidAgent, describe_adapter, parse_model_id

    cli = get_ctx(ctx)
    descriptions = desc or [f.name for f in files]
    if len(descriptions) != len(files):
        raise ConfigError(f"{len(files)} files but {len(descriptions)} --desc", "give one --desc per file, or none")
    if tuned_model is not None and lora is None:
        raise ConfigError("--tuned-model names the model of a --lora adapter", "add --lora ADAPTER.gguf")
    items = list(zip(files, descriptions, strict=True))
    if lora is not None:
        try:
            model = None if tuned_model is None else parse_model_id(tuned_model)
        except InvalidAgent as exc:
            raise ConfigError(f"--tuned-model: {exc}", "give the 0x model id `zg finetune decrypt` printed") from None
        items.append((lora, describe_adapter(model)))
    for f, _ in items:
        if not f.is_file():
            raise ConfigError(f"no such file: {f}")
    with inft_client(cli, account, node) as client, console.status("encrypting, uploading and minting"):
        token = client.mint(items)
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
    who = address_of(cli, owner) if owner else cli.account(account).address
    contracts = InftContracts.from_deployment(cli.chain(), cli.deployment())
    tokens = contracts.tokens_of(who, cli.deployment().deploy_block)
    console.print(f"{who} holds {len(tokens)} token(s)" + (": " + ", ".join(map(str, tokens)) if tokens else ""),
                  highlight=False)


def _move(ctx: typer.Context, token_id: int, to: str | None, accepted: Path | None, out: Path | None,
          account: str | None, node: list[str] | None, clone: bool) -> None:
    """Transfer or clone: end to end for a receiver whose key is here; else an offer file for a
    receiver named by its public key, or the last step with the receiver's accepted offer."""
    from zgos.inft.client import pubkey_of
    from zgos.inft.oracles import parse_pubkey

    cli = get_ctx(ctx)
    with inft_client(cli, account, node) as client:
        if accepted is not None:
            offer, access = _read_accepted(accepted, token_id)
        elif to is None:
            raise ConfigError("name the receiver (an account here, or its public key) or pass --accepted FILE")
        elif to.startswith("0x") and len(to) == 130:
            with console.status(f"re-encrypting token {token_id} through the oracles"):
                offer = client.offer(token_id, parse_pubkey(to))
            path = out or Path(f"inft-offer-{token_id}.json")
            path.write_text(json.dumps(offer.to_json(), indent=1))
            console.print(f"offer written to {path}: the receiver runs `zg inft accept {path}`, then you run "
                          f"`zg inft {'clone' if clone else 'transfer'} {token_id} --accepted {path.stem}.accepted.json`",
                          highlight=False, markup=False)
            return
        else:
            receiver: LocalAccount = cli.account(to, role=None)
            with console.status(f"re-encrypting token {token_id} for {receiver.address} through the oracles"):
                offer = client.offer(token_id, pubkey_of(receiver))
            with console.status("the receiver checks and accepts the new data"):
                access = client.accept(offer, receiver)
        if clone:
            done = f"cloned token {token_id} to {offer.receiver} as token {client.clone(offer, access)}"
        else:
            client.transfer(offer, access)
            done = f"transferred token {token_id} to {offer.receiver}"
    console.print(done, highlight=False, markup=False)


def _read_accepted(path: Path, token_id: int) -> tuple[Offer, list[bytes]]:
    from zgos.inft.client import Offer
    from zgos.inft.spec.proofs import InvalidProof

    try:
        record = json.loads(path.read_text())
        offer = Offer.from_json(record["offer"])
        access = [bytes.fromhex(str(a).removeprefix("0x")) for a in record["access"]]
    except (OSError, ValueError, KeyError, TypeError, InvalidProof) as exc:
        raise ConfigError(f"{path} is not an accepted offer: {exc}") from None
    if offer.token_id != token_id:
        raise ConfigError(f"{path} is an offer for token {offer.token_id}, not {token_id}")
    return offer, access


ToArg = Annotated[str | None, typer.Argument(help="The receiver: an account here (devnet:N, a keystore name) "
                                                  "or its public key (0x + 128 hex: writes an offer file).")]
AcceptedOpt = Annotated[Path | None, typer.Option("--accepted", help="The receiver's accepted offer: send it.")]
OutOpt = Annotated[Path | None, typer.Option("--out", help="Where to write the offer (default inft-offer-ID.json).")]


@inft_app.command("transfer")
def transfer_command(ctx: typer.Context, token_id: Annotated[int, typer.Argument(min=0)], to: ToArg = None,
                     accepted: AcceptedOpt = None, out: OutOpt = None, account: AccountOpt = None,
                     node: NodeOpt = None) -> None:
    """Transfer a token with its data re-encrypted for TO (the oracles' 2-of-3 proof)."""
    _move(ctx, token_id, to, accepted, out, account, node, clone=False)


@inft_app.command("clone")
def clone_command(ctx: typer.Context, token_id: Annotated[int, typer.Argument(min=0)], to: ToArg = None,
                  accepted: AcceptedOpt = None, out: OutOpt = None, account: AccountOpt = None,
                  node: NodeOpt = None) -> None:
    """Give TO a new token with a copy of the data re-encrypted for it; yours is kept."""
    _move(ctx, token_id, to, accepted, out, account, node, clone=True)


@inft_app.command("accept")
def accept_command(ctx: typer.Context, offer_file: Annotated[Path, typer.Argument(help="The owner's offer file.")],
                   account: AccountOpt = None, node: NodeOpt = None) -> None:
    """As the receiver: check an offer (open each sealed key, download and decrypt the new
    data) and sign it; writes OFFER.accepted.json for the owner."""
    from zgos.inft.client import Offer
    from zgos.inft.spec.proofs import InvalidProof

    cli = get_ctx(ctx)
    try:
        offer = Offer.from_json(json.loads(offer_file.read_text()))
    except (OSError, ValueError, InvalidProof) as exc:
        raise ConfigError(f"{offer_file} is not an offer: {exc}") from None
    me = cli.account(account)
    if offer.receiver != me.address:
        raise ConfigError(f"the offer is for {offer.receiver}, not for {me.address}", "pass --account")
    with inft_client(cli, account, node) as client, console.status("checking the new data"):
        access = client.accept(offer, me)
    out = offer_file.with_name(offer_file.stem + ".accepted.json")
    out.write_text(json.dumps({"offer": offer.to_json(), "access": ["0x" + a.hex() for a in access]}, indent=1))
    console.print(f"accepted: the new data opens with your key; send {out} to the owner", highlight=False, markup=False)


@inft_app.command("pubkey")
def pubkey_command(ctx: typer.Context, account: AccountOpt = None) -> None:
    """Your account's public key (what an owner needs to offer you a token)."""
    from zgos.inft.client import pubkey_of

    console.print("0x" + pubkey_of(get_ctx(ctx).account(account)).hex(), highlight=False)


@inft_app.command("revoke")
def revoke_command(ctx: typer.Context, token_id: Annotated[int, typer.Argument(min=0)],
                   user: Annotated[str, typer.Argument(help="Address or account.")], account: AccountOpt = None) -> None:
    """Withdraw USER's authorization (from its next request on)."""
    owner_call(ctx, account, lambda contracts, me, cli: contracts.revoke(me, token_id, address_of(cli, user)),
                f"revoked {user} on token {token_id}")


@inft_app.command("delegate")
def delegate_command(ctx: typer.Context, assistant: Annotated[str, typer.Argument(help="Address or account.")],
                     account: AccountOpt = None) -> None:
    """Let ASSISTANT accept transfers (sign access proofs) for your account."""
    owner_call(ctx, account, lambda contracts, me, cli: contracts.delegate(me, address_of(cli, assistant)),
                f"delegated access proofs to {assistant}")


def owner_call(ctx: typer.Context, account: str | None, call: object, done: str) -> None:
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
    host: HostOpt = DEFAULT_HOST,
    port: Annotated[int | None, typer.Option("--port", help="Default: 7070 + INDEX.")] = None,
    public_url: PublicUrlOpt = None,
) -> None:
    """Run an INFT oracle: re-encrypt agents for their receivers and sign the ownership proofs
    with the other oracles. A trusted signer, not a TEE: it sees what it re-encrypts."""
    from zgos.chain.accounts import devnet_role
    from zgos.inft.oracle.app import OracleConfig, OracleService
    from zgos.runtime.listen import compute_public_url
    from zgos.runtime.logs import configure_service_logging
    from zgos.storage.cli.common import storage_nodes

    cli = get_ctx(ctx)
    signer = cli.account(account, role=None) if account else _devnet_oracle(cli, index, devnet_role)
    deployment = cli.deployment()
    name = f"inft-oracle-{index}"
    config = OracleConfig(state_dir=cli.data_dir.service(name), nft=deployment.address("AgentNFT"),
                          verifier=deployment.address("INFTVerifier"), registry=deployment.address("NodeRegistry"),
                          flow=deployment.address("Flow"), storage_nodes=storage_nodes(cli, storage_node),
                          outbound=cli.outbound_policy(), host=host, port=port or INFT_ORACLE_PORT + index,
                          public_url=compute_public_url(host, port or INFT_ORACLE_PORT + index, public_url))
    configure_service_logging()
    service = OracleService(config, signer, cli.chain())
    service.run(started=lambda: console.print(f"inft oracle {name} ({signer.address}) on {service.url}", highlight=False))


def _devnet_oracle(cli: CliContext, index: int, devnet_role: object) -> LocalAccount:
    from zgos.chain.networks import is_devnet

    if not is_devnet(cli.chain().chain_id):
        raise ConfigError("pass --account: devnet oracle keys are public and only serve a devnet")
    return devnet_role("inft-oracle", index)  # type: ignore[operator, no-any-return]
