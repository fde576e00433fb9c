"""`zg compute` user and provider commands against the session chain (no model needed)."""

from __future__ import annotations

from eth_account.signers.local import LocalAccount

from tests.integration.clirunner import zg
from zgos.runtime.datadir import DataDir


def _ok(result: object) -> str:
    assert result.returncode == 0, result.stderr  # type: ignore[attr-defined]
    return str(result.stdout)  # type: ignore[attr-defined]


def _error(result: object, fragment: str) -> None:
    assert result.returncode == 1, result  # type: ignore[attr-defined]
    stderr = str(result.stderr)  # type: ignore[attr-defined]
    assert stderr.startswith("error: ") and "Traceback" not in stderr and fragment in stderr, stderr


def test_compute_cli_ledger_registry_funding_and_errors(
    devnet_dir: DataDir, new_account: LocalAccount, chain: object
) -> None:
    from tests.integration.compute.conftest import funded_account

    provider = funded_account(chain)  # type: ignore[arg-type]
    as_provider = {"ZGOS_PRIVATE_KEY": provider.key.hex()}
    as_user = {"ZGOS_PRIVATE_KEY": new_account.key.hex()}
    root = devnet_dir.root
    registered = zg(root, "compute", "provider", "register", "--url", "http://127.0.0.1:9", "--input-price", "5",
                    "--output-price", "7", "--model-hash", "0x" + "ab" * 32, env=as_provider)
    assert "registered" in _ok(registered)
    _ok(zg(root, "compute", "provider", "update", "--input-price", "6", env=as_provider))
    listed = _ok(zg(root, "compute", "providers"))
    assert provider.address in listed and "6 neuron" in listed and "7 neuron" in listed
    _ok(zg(root, "compute", "deposit", "2", env=as_user))
    _ok(zg(root, "compute", "fund", provider.address, "0.5", env=as_user))
    ledger = _ok(zg(root, "compute", "ledger", env=as_user))
    assert "available 1.5 0G" in ledger and provider.address in ledger
    requested = _ok(zg(root, "compute", "refund", provider.address, "--amount", "0.1", env=as_user))
    assert "refund of 0.1 0G requested" in requested
    _ok(zg(root, "compute", "withdraw", "1", env=as_user))
    _error(zg(root, "compute", "withdraw", "5", env=as_user), "InsufficientBalance")
    _error(zg(root, "compute", "chat", "0x" + "12" * 20, "hi", env=as_user), "has no inference service")
    _error(zg(root, "compute", "provider", "status", "--admin-url", "http://127.0.0.1:9"), "not answering")
