"""Tour steps 1 to 3: upload a dataset, fine-tune on it, see the tuned model served.

Step 1 stores a small built-in dataset (JSON Lines of prompt/completion pairs, the format
:mod:`zgos.compute.spec.dataset` accepts) and checks that the root the ``Flow`` contract
recorded is the root of the file's own bytes. Step 2 orders a fine-tune of the devnet's base
model on it through :class:`~zgos.compute.finetune.user.FineTuningUser` (quote, escrow, live
progress, acknowledge, decrypt, register). Step 3 waits until the fine-tuning provider serves
the tuned model and has registered it in ``InferenceServing``.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import httpx

from zgos.compute.spec.tasks import TrainingParams
from zgos.core.errors import ConfigError, ZgError
from zgos.tour.state import Tour, tour_dir

if TYPE_CHECKING:
    from zgos.compute.finetune.wire import ServedModel

DATASET = (
    {"prompt": "What is zgos?", "completion": " A decentralized AI operating system on one EVM chain."},
    {"prompt": "Where does zgos keep a file?", "completion": " On storage nodes, named by its Merkle root."},
    {"prompt": "Who checks a zgos answer?", "completion": " The user: every answer carries the provider's signature."},
    {"prompt": "What ties a tuned model to its data?", "completion": " The provenance graph, read from chain events."},
)
# 4 examples x 2 epochs = 8 LoRA steps: a tuned model in well under a minute on 2 CPU cores.
TOUR_PARAMS = TrainingParams(epochs=2, learning_rate=1e-3, lora_rank=4, max_seq_tokens=64)
DATASET_FILE = "dataset.jsonl"
ADAPTER_DIR = "adapter"
SERVE_TIMEOUT_S = 240.0
SERVED_PATH = "/v1/finetune/served"
SERVED_ANSWER_S = 5.0


def dataset_jsonl() -> bytes:
    """The tour's dataset, one JSON object a line."""
    return "".join(json.dumps(example) + "\n" for example in DATASET).encode()


def upload_dataset(tour: Tour) -> None:
    from zgos.storage.cli.common import storage_client
    from zgos.storage.hasher import build_file_tree_from_bytes

    tour.guide.proves("A file in storage is named by its Merkle root, which anyone can recompute from its bytes: "
                      "the root the Flow contract recorded for this upload is the root of this very file.")
    data = dataset_jsonl()
    path = tour_dir(tour.cli.data_dir) / DATASET_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    local_root = build_file_tree_from_bytes(data).root
    with storage_client(tour.cli, None) as client:
        uploaded = client.upload(path)
        assert client.flow is not None  # a client built on the deployment always reads the chain
        record = client.flow.file_of(uploaded.root)
    if uploaded.root != local_root or record is None or record.size != len(data):
        raise ZgError(f"the storage root 0x{uploaded.root.hex()} is not the root of {path} (0x{local_root.hex()})")
    how = f"tx {uploaded.tx_hash}" if uploaded.tx_hash else "already on chain from an earlier tour"
    tour.guide.ok(f"{len(DATASET)} examples, {len(data)} bytes uploaded ({how})")
    tour.guide.ok(f"root 0x{local_root.hex()} computed from the file's bytes = the root on Flow "
                  f"(submitted by {record.submitter}, {record.size} bytes)")
    tour.state.forget(*tour.derived_from(1))
    tour.state.update(dataset_root="0x" + local_root.hex(), dataset_file=str(path))
    tour.guide.link(f"file/0x{local_root.hex()}")


def finetune(tour: Tour) -> None:
    from zgos.compute.finetune.cli import _user, follow_task

    root = bytes.fromhex(tour.state.need("dataset_root").removeprefix("0x"))
    tour.guide.proves("Anyone can pay a provider to fine-tune a model on their data: the fee is escrowed on chain, "
                      "and released only once the user has downloaded and checked the sealed result.")
    user = _user(tour.cli, None, None)
    if not user.market.providers():
        raise ConfigError("this devnet runs no fine-tuning provider",
                          "start the whole devnet (`zg devnet up`); steps 1 and 4 to 8 run without one")
    service = user.service(None)
    base = user.model(service, None)
    quote = user.quote(service, base, user.download_dataset(root), TOUR_PARAMS)
    task_id = user.create(quote, root, TOUR_PARAMS)
    tour.guide.ok(f"task {task_id}: {quote.examples} examples, {quote.tokens} tokens x {quote.epochs} epochs, "
                  f"fee {quote.fee} neuron escrowed with {service.provider}")
    tour.guide.link(f"task/{task_id}")
    state, view = follow_task(user.market, task_id, service.url, tour.cli.outbound_policy())
    if state.lower() != "delivered":
        raise ZgError(f"fine-tuning task {task_id} ended {state}: {view.get('error') or 'no deliverable'}",
                      f"see `zg finetune status {task_id}` and the finetune-provider log")
    result_root = user.acknowledge(task_id)
    tour.guide.ok(f"deliverable 0x{result_root.hex()} downloaded, its root checked, acknowledged on chain")
    out = tour_dir(tour.cli.data_dir) / f"{ADAPTER_DIR}-{task_id}"
    with tour.guide.console.status("waiting for the provider to settle and release the key"):
        done = user.decrypt(task_id, out)
    tour.guide.ok(f"key released at settlement; adapter decrypted into {out} ({', '.join(done.files)})")
    tour.guide.ok(f"tuned model 0x{done.model_id.hex()} registered in ModelRegistry "
                  f"(parent 0x{base.hex()[:12]}…, dataset 0x{root.hex()[:12]}…, task {task_id})")
    tour.state.forget(*tour.derived_from(2))
    tour.state.update(task_id=task_id, tuned_model_id="0x" + done.model_id.hex(), adapter_dir=str(out))
    tour.guide.link(f"model/0x{done.model_id.hex()}")


def served_model(url: str, task_id: int) -> ServedModel | None:
    """What the fine-tuning provider at ``url`` serves, if it is task ``task_id``'s model."""
    from zgos.compute.finetune.wire import Served

    try:
        answer = httpx.get(url.rstrip("/") + SERVED_PATH, timeout=SERVED_ANSWER_S)
        serving = Served.model_validate_json(answer.content).serving if answer.status_code == 200 else None
    except (httpx.HTTPError, ValueError):  # ValueError: pydantic's, an answer of another shape
        return None
    return serving if serving is not None and serving.task_id == task_id else None


def serve(tour: Tour) -> None:
    from zgos.compute.cli.common import _contracts
    from zgos.compute.finetune.cli import _market

    task_id = int(tour.state.need("task_id"))
    model_id = bytes.fromhex(tour.state.need("tuned_model_id").removeprefix("0x"))
    tour.guide.proves("The provider that trained the model now sells answers from it, registered in "
                      "InferenceServing under the tuned model's id, so every answer names the model it came from.")
    market = _market(tour.cli)
    url = market.get_service(market.get_task(task_id).provider).url
    served = tour.guide.waiting(f"waiting for the provider to serve task {task_id}'s model",
                                lambda: served_model(url, task_id), SERVE_TIMEOUT_S)
    contracts = _contracts(tour.cli)
    service = tour.guide.waiting("waiting for its InferenceServing registration", lambda: next(
        (s for s in contracts.services() if s.model_hash == model_id), None), SERVE_TIMEOUT_S)
    tour.guide.ok(f"{served.model} served at {served.url} (llama.cpp with the LoRA adapter)")
    tour.guide.ok(f"registered in InferenceServing by {service.provider} with model hash 0x{model_id.hex()}")
    tour.state.update(served_model=served.model)
    tour.guide.link(f"model/0x{model_id.hex()}")
