"""Run a fine-tuning worker (tiny model, directory blob store) as its own process, so tests
can ``kill -9`` it.

usage: python -m tests.integration.finetune.provider_proc RPC FT_ADDRESS JOURNAL STORE WORK
       FROM_BLOCK [UPLOAD_DELAY_S]   (provider key in ZGOS_PRIVATE_KEY)
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from pathlib import Path

import torch
from eth_account import Account

from tests.integration.finetune.blobstore import DirectoryBlobStore
from zgos.chain.client import Chain
from zgos.compute.finetune.contracts import FineTuningMarket
from zgos.compute.finetune.journal import Journal
from zgos.compute.finetune.tiny import TinyBaseModel
from zgos.compute.finetune.worker import FineTuningWorker, WorkerConfig


def main(argv: list[str]) -> None:
    rpc, address, journal_path, store_dir, work_dir, from_block = argv[:6]
    delay = float(argv[6]) if len(argv) > 6 else 0.0
    logging.basicConfig(level=logging.INFO)
    torch.set_num_threads(1)
    base = TinyBaseModel()
    worker = FineTuningWorker(
        market=FineTuningMarket(Chain(rpc), address),
        provider=Account.from_key(os.environ["ZGOS_PRIVATE_KEY"]),
        journal=Journal(Path(journal_path)),
        store=DirectoryBlobStore(Path(store_dir), upload_delay_s=delay),
        base_models={base.model_hash: base},
        config=WorkerConfig(work_dir=Path(work_dir), poll_s=0.2, from_block=int(from_block)),
    )
    print("worker ready", flush=True)
    worker.run(threading.Event())


if __name__ == "__main__":
    main(sys.argv[1:])
