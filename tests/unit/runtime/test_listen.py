"""Where a service listens and what it announces (``zgos.runtime.listen``), and who may call
its admin methods from another host (``LocalAccess.remote``)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from zgos.core.errors import ConfigError
from zgos.runtime.access import LocalAccess
from zgos.runtime.jsonrpc import Caller, JsonRpcServer
from zgos.runtime.listen import (
    compute_host_header,
    compute_public_url,
    is_wildcard,
    validate_public_url,
)


def test_a_service_announces_its_bind_address_unless_told_its_public_url() -> None:
    assert compute_public_url("10.0.0.2", 5678, None) == "http://10.0.0.2:5678"
    assert compute_public_url("::1", 5678, None) == "http://[::1]:5678"
    assert compute_public_url("0.0.0.0", 5678, "https://node.example.org/") == "https://node.example.org"


@pytest.mark.parametrize("host", ["0.0.0.0", "::", ""])
def test_a_wildcard_bind_without_a_public_url_is_refused_with_the_fix(host: str) -> None:
    assert is_wildcard(host)
    with pytest.raises(ConfigError) as caught:
        compute_public_url(host, 5678, None)
    assert "--public-url" in str(caught.value.hint)


@pytest.mark.parametrize("url", ["node:5678", "ftp://x:1", "http://0.0.0.0:5678", "http://x:99999", "http://"])
def test_a_public_url_other_hosts_cannot_dial_is_refused(url: str) -> None:
    with pytest.raises(ConfigError):
        validate_public_url(url)


@given(st.sampled_from(["10.0.0.2", "node.example.org", "192.0.2.7"]), st.integers(1, 65535))
def test_the_host_header_of_an_announced_url_is_what_its_callers_send(host: str, port: int) -> None:
    assert compute_host_header(f"http://{host}:{port}/rpc") == f"{host}:{port}"
    assert compute_host_header(f"https://{host}") == f"{host}:443"


ADMIN_CALL = b'{"jsonrpc":"2.0","id":1,"method":"admin_x"}'


def _server(access: LocalAccess) -> JsonRpcServer:
    return JsonRpcServer({"admin_x": lambda params: "ok"}, is_local=lambda m: m.startswith("admin_"), access=access)


def test_admin_methods_answer_another_hosts_caller_only_with_remote_admin_and_the_token() -> None:
    public = "http://10.0.0.2:5678"
    headers = {"host": "10.0.0.2:5678", "authorization": "Bearer T"}
    local_only = _server(LocalAccess.for_listener("T", "0.0.0.0", 5678, public_url=public))
    refused = local_only.handle(ADMIN_CALL, Caller("10.0.0.9", headers))
    assert refused.status == 403 and "--remote-admin" in json.loads(refused.body)["error"]
    remote = _server(LocalAccess.for_listener("T", "0.0.0.0", 5678, public_url=public, remote=True))
    assert json.loads(remote.handle(ADMIN_CALL, Caller("10.0.0.9", headers)).body)["result"] == "ok"
    wrong_token = remote.handle(ADMIN_CALL, Caller("10.0.0.9", {**headers, "authorization": "Bearer X"}))
    assert wrong_token.status == 401
    rebound = remote.handle(ADMIN_CALL, Caller("10.0.0.9", {**headers, "host": "evil.example:5678"}))
    assert rebound.status == 403
