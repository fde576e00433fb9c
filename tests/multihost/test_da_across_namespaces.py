"""DA certification across hosts (issue 19 §3): four DA signers on two hosts register the
addresses they were told (``--host``), a disperser on the client host reaches them only through
those registered addresses, and a blob it certifies is read back by the client from the signers,
again through the chain's records. The lab (``conftest.network``) runs the chain on its own host."""

from __future__ import annotations

import re
from pathlib import Path

from tests.multihost.conftest import Network, zg
from tests.multihost.netns import connected_hosts, zg_env
from zgos.chain.client import Chain
from zgos.chain.deploy import load_deployment
from zgos.da.contracts import DAContracts
from zgos.runtime.netutil import port_in_use, wait_until
from zgos.runtime.ports import DA_DISPERSER_PORT, DA_SIGNER_PORT

SIGNERS = {"s1": (0, 1), "s2": (2, 3)}  # host -> signer indexes (port 34000 + i, devnet account 10 + i)
READY_S = 120.0


def test_a_blob_is_certified_by_signers_on_other_hosts_and_read_back_through_their_registered_addresses(
    network: Network, tmp_path: Path,
) -> None:
    lab, chain_flags = network.lab, ("--rpc-url", network.rpc, "--deployment", str(network.deployment))
    listening = []
    for host, indexes in SIGNERS.items():
        for i in indexes:
            lab.spawn(host, zg(tmp_path / host, "da", "signer", "--index", str(i), "--host", lab[host].address,
                               *chain_flags), tmp_path / f"signer-{i}.log", env=zg_env())
            listening.append((lab[host].address, DA_SIGNER_PORT + i))
    client, address = tmp_path / "client", lab["client"].address
    lab.spawn("client", zg(client, "da", "disperser", "--host", address, "--workers", "0", *chain_flags),
              tmp_path / "disperser.log", env=zg_env())
    listening.append((address, DA_DISPERSER_PORT))
    for host_address, port in listening:
        assert wait_until(lambda h=host_address, p=port: lab.run_on("client", lambda: port_in_use(p, h)), READY_S), \
            f"{host_address}:{port} listens: {_logs(tmp_path)}"

    assert wait_until(lambda: lab.run_on("client", lambda: quorum_size(network)) == 4, READY_S), \
        "an epoch's quorum holds the signers of both hosts"

    blob = tmp_path / "blob.bin"
    blob.write_bytes(bytes(range(256)) * 300)
    put = lab.run("client", zg(client, "da", "put", str(blob), "--disperser", f"{address}:{DA_DISPERSER_PORT}",
                               "--timeout", "120"), env=zg_env())
    assert put.returncode == 0, f"{put.stderr}\n{_logs(tmp_path)}"
    blob_id = re.search(r"blob (0x[0-9a-f]{64}) (CONFIRMED|FINALIZED)", put.stdout)
    assert blob_id is not None, put.stdout
    out = tmp_path / "out.bin"
    got = lab.run("client", zg(client, "da", "get", blob_id.group(1), str(out), *chain_flags), env=zg_env())
    assert got.returncode == 0, got.stderr
    assert out.read_bytes() == blob.read_bytes()
    hosts = connected_hosts(sorted(tmp_path.glob("*.log")))
    assert {lab["s1"].address, lab["s2"].address} <= set(hosts), "the disperser dialled the signers' hosts"
    assert all(host in lab.addresses() for host in hosts), f"no process dialled a loopback address: {hosts}"


def quorum_size(network: Network) -> int:
    """Members of the current epoch's quorum, read from the chain."""
    chain = Chain(network.rpc)
    da = DAContracts.from_addresses(chain, load_deployment(network.deployment).addresses)
    return len(da.quorum(da.current_epoch()).members)


def _logs(work: Path) -> str:
    return "\n".join(f"--- {log.name}\n{log.read_text()[-1500:]}" for log in sorted(work.glob("*.log")))
