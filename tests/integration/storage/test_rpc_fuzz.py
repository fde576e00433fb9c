"""Malformed JSON, unknown methods, wrong parameter types: always a JSON-RPC error object,
never a 5xx or a crash (hypothesis, well over 1,000 cases in total)."""

from __future__ import annotations

import json

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.integration.storage.conftest import RunningNode
from zgos.runtime.jsonrpc import Caller

FUZZ = settings(max_examples=500, deadline=None, suppress_health_check=list(HealthCheck))

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | st.text(max_size=80),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)


JSON = {"content-type": "application/json"}


def methods(node: RunningNode) -> list[str]:
    return [m for m in node.server.methods if m != "admin_shutdown"]


def check_answer(response: httpx.Response) -> None:
    assert response.status_code in (200, 204), response.status_code
    if response.status_code == 200:
        answer = response.json()
        items = answer if isinstance(answer, list) else [answer]
        for item in items:
            assert item["jsonrpc"] == "2.0"
            assert ("result" in item) != ("error" in item)
            if "error" in item:
                assert isinstance(item["error"]["code"], int) and item["error"]["message"]


def test_rpc_fuzz_never_crashes_the_node(storage_node: RunningNode) -> None:
    names = methods(storage_node)
    assert len([n for n in names if n.startswith("zgs_")]) == 15
    names += ["eth_chainId", "zgs_nope", ""]
    with httpx.Client(headers={"Authorization": f"Bearer {storage_node.token}"}) as http:  # the operator's client

        @FUZZ
        @given(st.sampled_from(names), st.lists(json_values, max_size=4) | json_values, st.one_of(st.integers(), st.text(max_size=5), st.none()))
        def method_calls(method: str, params: object, request_id: object) -> None:
            body = {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}
            check_answer(http.post(storage_node.url, content=json.dumps(body), headers=JSON))

        @FUZZ
        @given(st.binary(max_size=200) | json_values.map(lambda v: json.dumps(v).encode()))
        def raw_bodies(body: bytes) -> None:
            check_answer(http.post(storage_node.url, content=body, headers=JSON))

        @settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
        @given(st.lists(st.fixed_dictionaries({"jsonrpc": st.just("2.0"), "id": st.integers(0, 9), "method": st.sampled_from(names), "params": st.lists(json_values, max_size=3)}), min_size=1, max_size=5))
        def batches(batch: list[dict[str, object]]) -> None:
            check_answer(http.post(storage_node.url, content=json.dumps(batch), headers=JSON))

        method_calls()
        raw_bodies()
        batches()
        status = http.post(storage_node.url, json={"jsonrpc": "2.0", "id": 1, "method": "zgs_getStatus"}).json()
        assert status["result"]["networkIdentity"]["chainId"] > 0


def test_unknown_method_and_bad_params_get_standard_codes(storage_node: RunningNode) -> None:
    def call(body: object) -> dict:
        return httpx.post(storage_node.url, content=json.dumps(body), headers=JSON).json()

    assert call({"jsonrpc": "2.0", "id": 1, "method": "zgs_nope"})["error"]["code"] == -32601
    assert call({"jsonrpc": "2.0", "id": 1, "method": "zgs_getFileInfoByTxSeq", "params": ["x"]})["error"]["code"] == -32602
    assert httpx.post(storage_node.url, content=b"{oops", headers=JSON).json()["error"]["code"] == -32700
    assert call({"id": 1, "method": "zgs_getStatus"})["error"]["code"] == -32600


def test_admin_methods_answer_only_localhost(storage_node: RunningNode) -> None:
    server = storage_node.server.front.server
    body = b'{"jsonrpc":"2.0","id":1,"method":"admin_getSyncInfo"}'
    operator = {"host": storage_node.url.removeprefix("http://"), "authorization": f"Bearer {storage_node.token}"}
    remote = server.handle(body, Caller("10.1.2.3", operator))
    assert remote.status == 403 and "only served to localhost" in json.loads(remote.body)["error"]
    local = json.loads(server.handle(body, Caller("127.0.0.1", operator)).body)
    assert "syncedBlock" in local["result"]


def test_oversized_and_lengthless_bodies_get_4xx(storage_node: RunningNode) -> None:
    import socket
    from urllib.parse import urlparse

    url = urlparse(storage_node.url)
    with socket.create_connection((url.hostname, url.port)) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 999999999999\r\n\r\n")
        assert b" 413 " in sock.recv(200)
    with socket.create_connection((url.hostname, url.port)) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert b" 411 " in sock.recv(200)


def test_fast_path_rejects_bad_requests_with_4xx(storage_node: RunningNode) -> None:
    url = storage_node.url
    raw = {"content-type": "application/octet-stream"}
    assert httpx.put(f"{url}/zgos/v1/segment/0/0", content=b"x" * 256, headers=raw).status_code in (400, 404)
    assert httpx.put(f"{url}/zgos/v1/segment/0/0", content=b"x" * 256).status_code == 415
    assert httpx.put(f"{url}/nowhere", content=b"{}", headers=JSON).status_code == 404
    assert httpx.get(f"{url}/zgos/v1/segment/424242/0").status_code == 404
    assert httpx.delete(f"{url}/").status_code == 405
    bad_headers = {**raw, "X-Zg-Root": "0x" + "11" * 32, "X-Zg-File-Size": "abc", "X-Zg-Proof": "{"}
    response = httpx.put(f"{url}/zgos/v1/segment/0/0", content=b"x" * 256, headers=bad_headers)
    assert 400 <= response.status_code < 500 and "error" in response.json()
