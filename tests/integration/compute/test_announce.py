"""A provider broker announces the URL other hosts reach it by (``zg compute provider serve
--public-url``): the registered service URL becomes it, once; an unregistered provider is told
to register first."""

from __future__ import annotations

import pytest
from eth_account import Account

from tests.integration.compute.conftest import PRICES, funded_account
from zgos.chain.client import Chain
from zgos.cli.context import CliContext
from zgos.compute.cli.provider import _announce_url
from zgos.compute.contracts import ComputeContracts
from zgos.core.errors import ConfigError
from zgos.runtime.datadir import DataDir


def test_serve_with_a_public_url_announces_it_in_place_of_the_registered_one(
    chain: Chain, compute: ComputeContracts, devnet_dir: DataDir,
) -> None:
    provider = funded_account(chain)
    compute.register(provider, url="http://127.0.0.1:9", model="m", model_hash=b"\x01" * 32, prices=PRICES,
                     signer=provider.address)
    cli = CliContext(devnet_dir)
    before = chain.w3.eth.get_transaction_count(provider.address)
    _announce_url(cli, provider, "http://10.0.0.7:3080")
    service = compute.service(provider.address)
    assert service.url == "http://10.0.0.7:3080" and service.input_price == PRICES.input_price
    _announce_url(cli, provider, "http://10.0.0.7:3080")
    assert chain.w3.eth.get_transaction_count(provider.address) == before + 1, "unchanged: no second transaction"

    with pytest.raises(ConfigError, match="register it first"):
        _announce_url(cli, Account.create(), "http://10.0.0.8:3080")
