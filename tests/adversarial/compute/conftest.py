"""The compute fixtures (real model server, brokers, users, proxies) for the adversarial tests."""

from tests.integration.compute.conftest import (  # noqa: F401 - re-exported fixtures
    broker,
    compute,
    gguf,
    make_user,
    model_server,
    run_proxy,
    start_broker,
    tokens,
)
