"""Tour steps 7 and 8: a DA blob posted and sampled; a KV value written and read, and the agent
minted as an INFT.

Step 7 disperses a small blob through the devnet's disperser (as ``zg da put``), waits for its
certificate on chain and samples random cells from the signers (as ``zg da sample``). Step 8
writes a key to the devnet's ``demo`` KV stream and reads it back from the KV node (as ``zg kv
set/get``), then mints an agent token holding an encrypted system prompt and, if step 2 ran,
the tuned LoRA adapter with its model id (as ``zg inft mint --lora``).
"""

from __future__ import annotations

import time
from pathlib import Path

from zgos.core.errors import ZgError
from zgos.tour.state import Tour, tour_dir

DA_TIMEOUT_S = 180.0
BLOB_TEXT = "zgos tour blob: every row of this blob is recoverable from any half of its columns. "
BLOB_REPEAT = 64  # ~5 KiB: several rows of cells
KV_STREAM = "demo"
KV_KEY = b"tour/greeting"
AGENT_PROMPT = "You are the zgos tour guide. Answer in one sentence and cite the explorer."
AGENT_FILE = "agent-prompt.txt"


def post_blob(tour: Tour) -> None:
    from zgos.da.cli import _contracts, disperse
    from zgos.da.retriever import Retriever

    tour.guide.proves("A rollup can post data that stays retrievable without anyone downloading all of it: "
                      "signers certify their cells on chain, and a few random samples give high confidence.")
    data = (BLOB_TEXT * BLOB_REPEAT + f"{time.time_ns()}").encode()
    reply = disperse(tour.cli, data, None, None, DA_TIMEOUT_S)
    assert reply is not None  # a timeout was given: the reply is final
    blob_id = bytes(reply.info.blob_header.storage_root)
    tour.guide.ok(f"blob 0x{blob_id.hex()} ({len(data)} bytes) certified in tx {reply.certificate_tx}")
    with tour.guide.console.status("sampling random cells from the signers"):
        report = Retriever(_contracts(tour.cli), policy=tour.cli.outbound_policy()).sample(blob_id, None)
    if not report.available:
        raise ZgError(f"blob 0x{blob_id.hex()}: {report.samples - report.verified} of {report.samples} samples failed")
    tour.guide.ok(f"{report.verified}/{report.samples} sampled cells verified against their KZG commitments: "
                  f"{100 * report.confidence:.4f}% confidence every row is recoverable")
    tour.guide.link(f"blob/0x{blob_id.hex()}")


def kv_and_agent(tour: Tour) -> None:
    tour.guide.proves("The storage log doubles as a key-value database anyone can replay, and an agent becomes a "
                      "token whose encrypted prompt and weights change hands only with the token.")
    write_and_read(tour)
    mint_agent(tour)


def write_and_read(tour: Tour) -> None:
    from zgos.kv.cli.common import check_served, reader, stream_of, writer
    from zgos.kv.spec.stream import StreamData, StreamWrite

    stream_id = stream_of(tour.cli, KV_STREAM)
    value = f"hello from the zgos tour at {time.strftime('%Y-%m-%d %H:%M:%S')}".encode()
    client = writer(tour.cli, None, None, None)
    try:
        check_served(client, stream_id)
        with tour.guide.console.status("writing the key and waiting for the KV node to replay it"):
            result = client.write(StreamData(writes=(StreamWrite(stream_id, KV_KEY, value),)))
    finally:
        client.close()
        if client.storage is not None:
            client.storage.close()
    if not result.committed:
        raise ZgError(f"the KV write (tx seq {result.tx_seq}) was not committed: {result.result}")
    with reader(tour.cli, None) as kv:
        entry = kv.get(stream_id, KV_KEY, kv.replayed_version())
    if entry is None or entry.data != value:
        raise ZgError(f"the KV node does not return the value just written to {KV_KEY.decode()}")
    tour.guide.ok(f"stream {KV_STREAM}: {KV_KEY.decode()} = {value.decode()!r} (log tx seq {result.tx_seq}, "
                  f"read back at version {entry.version})")
    tour.guide.link(f"file/0x{result.root.hex()}")


def agent_files(tour: Tour) -> list[tuple[Path, str]]:
    """The agent's system prompt and, if step 2 left one, the tuned adapter with its model id."""
    from zgos.compute.finetune.worker import GGUF_LORA_FILENAME
    from zgos.inft.spec.agents import describe_adapter

    prompt = tour_dir(tour.cli.data_dir) / AGENT_FILE
    prompt.parent.mkdir(parents=True, exist_ok=True)
    prompt.write_text(AGENT_PROMPT + "\n")
    files = [(prompt, "system prompt")]
    adapter = Path(tour.state.get("adapter_dir") or "/nonexistent") / GGUF_LORA_FILENAME
    model_id = tour.state.get("tuned_model_id")
    if adapter.is_file() and model_id:
        files.append((adapter, describe_adapter(bytes.fromhex(model_id.removeprefix("0x")))))
    else:
        tour.guide.note("no tuned adapter from step 2: the agent holds its system prompt only")
    return files


def mint_agent(tour: Tour) -> None:
    from zgos.inft.cli import inft_client

    files = agent_files(tour)
    with inft_client(tour.cli, None, None) as client, \
            tour.guide.console.status("encrypting, uploading and minting the agent"):
        token = client.mint(files)
        datas = client.contracts.datas_of(token)
    tour.guide.ok(f"agent token {token} minted to {client.account.address}, holding "
                  + ", ".join(f"{d.description} (0x{d.data_hash.hex()[:12]}…, encrypted)" for d in datas))
    tour.guide.link(f"token/{token}")
