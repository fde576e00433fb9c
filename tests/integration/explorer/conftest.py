"""One explorer for the package's tests (``tests/integration/explorer/`` runs on one xdist
worker), on the session chain with a DA contract pair of its own."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.explorer.explorer_fixtures import running_explorer
from zgos.chain.client import Chain
from zgos.da.contracts import DAContracts


@pytest.fixture(scope="package")
def private_da(chain: Chain) -> DAContracts:
    """A DA contract pair of the explorer's own, so the signer a test registers joins no other
    test's quorum."""
    from tests.integration.da.helpers import deploy_da

    return deploy_da(chain)


@pytest.fixture(scope="package")
def explorer(chain: Chain, deployment_path: Path, tmp_path_factory: pytest.TempPathFactory,
             private_da: DAContracts) -> Iterator[str]:
    """One explorer on the session chain for these tests (each uses its own accounts)."""
    da = {"DASigners": private_da.signers.address, "DAEntrance": private_da.entrance.address}
    with running_explorer(tmp_path_factory.mktemp("explorer"), chain, deployment_path, da) as url:
        yield url
