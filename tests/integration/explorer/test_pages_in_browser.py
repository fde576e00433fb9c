"""Every explorer page in a real headless chromium (driven through the DevTools protocol,
``tests.cdp``) on the session chain holding a file just submitted to Flow, a DA blob just
certified, a fine-tuning task, a settlement, a registered model, an agent token and an audit
report: each page shows them as a person would read them, lays out at a phone's width without
scrolling sideways, and is saved as a screenshot (desktop and phone) under
``test-artifacts/explorer`` (or ``$ZGOS_TEST_ARTIFACTS``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount

from tests.cdp import CHROMIUM, Browser
from tests.integration.explorer.explorer_fixtures import certified_blob, show_page, upload
from zgos.alignment.contracts import AlignmentContracts
from zgos.alignment.spec.bonds import BondKind
from zgos.alignment.spec.reports import Finding
from zgos.chain.accounts import devnet_role
from zgos.chain.client import Chain
from zgos.chain.deploy import Deployment
from zgos.compute.contracts import ComputeContracts
from zgos.compute.finetune.contracts import FineTuningMarket, ModelRegistry
from zgos.compute.spec import vouchers
from zgos.da.contracts import DAContracts
from zgos.inft.contracts import InftContracts

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (make test installs it as root)")


def funded(chain: Chain) -> LocalAccount:
    account: LocalAccount = Account.create()
    chain.transact(devnet_role("deployer"), to=account.address, value=10**18)
    return account


def settle_once(chain: Chain, deployment: Deployment, user: LocalAccount) -> str:
    """A provider settles ``user``'s signed receipt; the provider's address."""
    provider = funded(chain)
    compute = ComputeContracts.from_deployment(chain, deployment)
    compute.deposit_and_fund(user, provider.address, 10**15)
    receipt = vouchers.Receipt(user.address.lower(), provider.address.lower(), 7000)
    compute.settle(provider, [(receipt, vouchers.sign_message(bytes(user.key), compute.domain, receipt))])
    return provider.address


def reported_subject(chain: Chain, deployment: Deployment, auditor: LocalAccount, evidence: bytes) -> str:
    """An operator an auditor reported (latency, -5) with ``evidence`` (a root on Flow)."""
    contracts = AlignmentContracts.from_deployment(chain, deployment)
    contracts.register_auditor(auditor, contracts.min_auditor_stake())
    subject = Account.create().address
    contracts.report(auditor, subject, BondKind.COMPUTE, Finding.LATENCY, evidence, -5)
    return subject


def test_every_page_shows_the_new_data_and_fits_a_phone(
    explorer: str, chain: Chain, deployment: Deployment, private_da: DAContracts, new_account: LocalAccount,
    tmp_path: Path,
) -> None:
    root, tx_hash = upload(chain, deployment, new_account, 3000)
    blob_id, signer = certified_blob(chain, private_da, new_account)
    ModelRegistry(chain, deployment.address("ModelRegistry")).register_base_model(new_account, root, "browser-model", "MIT")
    market = FineTuningMarket(chain, deployment.address("FineTuningServing"))
    market.add_or_update_service(new_account, "http://127.0.0.1:9/finetune", 1, 10**6, 10**6, [root])
    task_id = market.create_task(new_account, new_account.address, root, root, b"{}", 10**15, 1)
    token_id = InftContracts.from_deployment(chain, deployment).mint_plain(new_account, new_account.address)
    provider = settle_once(chain, deployment, new_account)
    subject = reported_subject(chain, deployment, new_account, root)
    block = chain.w3.eth.get_transaction_receipt(tx_hash)["blockNumber"]
    block_hash = chain.w3.eth.get_block(block)["hash"].to_0x_hex()
    root_hex, blob_hex = "0x" + root.hex(), "0x" + blob_id.hex()
    pages = [  # route, the page kind it draws, what a person must see on it
        ("", "home", ["chain 31337", root_hex[:10], blob_hex[:10], "Flow"]),
        (f"#/blocks/{block + 1}", "blocks", ["Blocks", block_hash]),  # the page of blocks below block + 1
        ("#/files", "files", ["Files on Flow", root_hex, "3000 B"]),
        (f"#/file/{root_hex}", "file", [f"File {root_hex}", "3000 bytes", new_account.address]),
        ("#/blobs", "blobs", ["DA blobs", blob_hex, "certified"]),
        (f"#/blob/{blob_hex}", "blob", [f"DA blob {blob_hex}", "certified", signer, "Availability sampling",
                                        "NOT available: 64 of 64 samples failed", "127.0.0.1:9"]),
        ("#/tasks", "tasks", ["Fine-tuning tasks", "created"]),
        (f"#/task/{task_id}", "task", [f"Fine-tuning task {task_id}", root_hex, "unreachable"]),
        ("#/settlements", "settlements", ["Settlements", provider, new_account.address]),
        (f"#/tx/{tx_hash}", "tx", [f"Transaction {tx_hash}", "Flow.submit", "RewardFilled"]),
        (f"#/block/{block}", "block", [f"Block {block}", tx_hash]),
        (f"#/address/{new_account.address}", "address", [f"Address {new_account.address}", "Compute ledger"]),
        (f"#/token/{token_id}", "token", [f"Agent token {token_id}", new_account.address]),
        (f"#/model/{root_hex}", "model", ["Lineage of", "browser-model"]),
        ("#/alignment", "alignment", ["Operators auditors watch", "Audit reports", subject, "latency"]),
        (f"#/address/{subject}", "address", ["Alignment standing", "Reports on it", "latency", new_account.address]),
        ("#/file/0x1234", "file", ["Not found", "not a data root"]),
        (f"#/blob/0x{'ab' * 32}", "blob", ["Not found", "no blob"]),
    ]
    missing = []
    with Browser(tmp_path / "profile") as browser:
        for number, (route, kind, expected) in enumerate(pages):
            text = show_page(browser, f"{explorer}/{route}", kind, f"{number:02d}-{kind}")
            missing += [(route, e) for e in expected if e not in text]
    assert not missing, f"not shown: {missing}"
