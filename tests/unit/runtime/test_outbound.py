"""The outbound guard against real misbehaving servers on 127.0.0.1: slow bodies, endless bodies,
redirect loops, refused addresses; and the address rule as a property."""

from __future__ import annotations

import ipaddress
import time

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.adversarial.hostile_http import (
    HostileServer,
    endless_body,
    json_answer,
    redirect_loop,
    redirect_to,
    tarpit,
)
from zgos.runtime.addresses import (
    DEVNET_POLICY,
    GLOBAL,
    LINK_LOCAL,
    LOOPBACK,
    PRIVATE,
    AddressPolicy,
    compute_address_class,
)
from zgos.runtime.netutil import JsonRpcUnreachable, call_jsonrpc
from zgos.runtime.outbound import (
    AddressRefused,
    DeadlineExceeded,
    EncodedResponseRefused,
    OutboundClient,
    ResponseTooLarge,
    pin_target,
    within,
)

CAP = 256 * 1024
# A deadline is met within scheduling noise; the machine is shared and loaded.
SLACK_S = 0.75


def test_a_slow_body_is_cut_at_the_total_deadline_not_per_read() -> None:
    with HostileServer(tarpit(interval_s=0.2)) as server, OutboundClient(DEVNET_POLICY, deadline_s=1.0) as http:
        started = time.monotonic()
        with pytest.raises(DeadlineExceeded, match="1 s deadline"):
            http.get(server.url)
        elapsed = time.monotonic() - started
    assert 1.0 <= elapsed < 1.0 + SLACK_S, elapsed
    assert server.bytes_sent > 0, "the server was sending, every read returned in time"


def test_a_per_call_timeout_is_the_total_time_of_that_call() -> None:
    with HostileServer(tarpit(interval_s=0.1)) as server, OutboundClient(DEVNET_POLICY, deadline_s=30) as http:
        started = time.monotonic()
        with pytest.raises(DeadlineExceeded):
            http.get(server.url, timeout=0.5)
        assert time.monotonic() - started < 0.5 + SLACK_S


def test_within_bounds_a_sequence_of_calls_by_one_deadline() -> None:
    with HostileServer(tarpit(interval_s=0.1)) as slow, HostileServer(json_answer({"ok": 1})) as fast, \
            OutboundClient(DEVNET_POLICY, deadline_s=30) as http:
        started = time.monotonic()
        with within(1.0), pytest.raises(DeadlineExceeded):
            assert http.get(fast.url).json() == {"ok": 1}
            http.get(slow.url)
        assert time.monotonic() - started < 1.0 + SLACK_S


def test_an_endless_body_is_cut_at_the_size_cap() -> None:
    with HostileServer(endless_body()) as server, \
            OutboundClient(DEVNET_POLICY, deadline_s=20, max_response_bytes=CAP) as http:
        started = time.monotonic()
        with pytest.raises(ResponseTooLarge, match="262,144-byte cap"):
            http.get(server.url)
        assert time.monotonic() - started < 5, "cut by the cap, long before the deadline"
    # what the server pushed: the cap plus what socket buffers absorbed, never unbounded
    assert server.bytes_sent < CAP + 16 * 1024 * 1024


def test_a_declared_oversized_body_is_refused_before_reading_it() -> None:
    with (HostileServer(endless_body(content_length=10 * CAP)) as server,
          OutboundClient(DEVNET_POLICY, max_response_bytes=CAP) as http,
          pytest.raises(ResponseTooLarge, match="2,621,440 bytes is larger")):
        http.get(server.url)


def test_a_compressed_answer_is_refused() -> None:
    with (HostileServer(json_answer({"a": 1}, "Content-Encoding: gzip\r\n")) as server,
          OutboundClient(DEVNET_POLICY) as http, pytest.raises(EncodedResponseRefused, match="gzip")):
        http.get(server.url)


def test_a_redirect_loop_stops_after_the_redirect_limit() -> None:
    with (HostileServer(redirect_loop) as server, OutboundClient(DEVNET_POLICY, max_redirects=3) as http,
          pytest.raises(httpx.TooManyRedirects)):
        http.post(server.url + "/rpc", json={"x": 1})
    assert len(server.requests) == 4, "the first request and three redirects"


def test_a_redirect_to_a_refused_address_is_refused() -> None:
    with (HostileServer(redirect_to("http://169.254.169.254/latest/meta-data/")) as server,
          OutboundClient(DEVNET_POLICY) as http,
          pytest.raises(AddressRefused, match=r"169\.254\.169\.254 is a link-local address")):
        http.get(server.url)


def test_private_and_loopback_addresses_are_refused_unless_allowed() -> None:
    with HostileServer(json_answer({"ok": 1})) as server, OutboundClient(AddressPolicy()) as strict:
        with pytest.raises(AddressRefused, match=r"127\.0\.0\.1 is a loopback address"):
            strict.get(server.url)
        with pytest.raises(AddressRefused, match=r"resolve|loopback"):  # the name is resolved, then checked
            strict.get(f"http://localhost:{server.port}")
        for url in ("http://10.1.2.3:80", "http://192.168.1.1", "http://[fd00::1]:80", "http://100.64.0.1"):
            with pytest.raises(AddressRefused, match="private address"):
                strict.get(url)
        with pytest.raises(AddressRefused, match="unspecified"):
            strict.get("http://0.0.0.0:80")
        with pytest.raises(AddressRefused, match="loopback"):
            strict.get(f"http://[::ffff:127.0.0.1]:{server.port}")
        assert len(server.requests) == 0, "nothing refused ever reached the server"
        with OutboundClient(DEVNET_POLICY) as devnet:
            assert devnet.get(server.url).json() == {"ok": 1}


def test_call_jsonrpc_reports_the_guard_s_reason() -> None:
    with (HostileServer(endless_body()) as server, OutboundClient(DEVNET_POLICY, max_response_bytes=CAP) as http,
          pytest.raises(JsonRpcUnreachable, match="cap")):
        call_jsonrpc(http, server.url, "zgs_getStatus")
    with OutboundClient(AddressPolicy()) as strict, pytest.raises(JsonRpcUnreachable, match="loopback address"):
        call_jsonrpc(strict, "http://127.0.0.1:9", "zgs_getStatus")


def test_policy_words_parse_and_unknown_words_are_refused() -> None:
    assert AddressPolicy.parse("loopback, private") == AddressPolicy(allow_loopback=True, allow_private=True)
    assert AddressPolicy.parse("") == AddressPolicy.parse("none") == AddressPolicy()
    with pytest.raises(ValueError, match="unknown address class 'lan'"):
        AddressPolicy.parse("loopback,lan")


ipv4 = st.integers(0, 2**32 - 1).map(ipaddress.IPv4Address)


@given(ipv4)
def test_an_ipv4_address_mapped_into_ipv6_keeps_its_class(address: ipaddress.IPv4Address) -> None:
    mapped = ipaddress.IPv6Address(f"::ffff:{address}")
    nat64 = ipaddress.IPv6Address(f"64:ff9b::{address}")
    assert compute_address_class(mapped) == compute_address_class(nat64) == compute_address_class(address)


@given(ipv4, st.booleans(), st.booleans(), st.booleans())
def test_a_policy_allows_exactly_global_addresses_and_the_classes_it_opens(
    address: ipaddress.IPv4Address, loopback: bool, private: bool, link_local: bool,
) -> None:
    policy = AddressPolicy(loopback, private, link_local)
    opened = {GLOBAL} | {c for c, on in ((LOOPBACK, loopback), (PRIVATE, private), (LINK_LOCAL, link_local)) if on}
    assert (policy.refusal(address) is None) == (compute_address_class(address) in opened)


def test_well_known_addresses_have_the_expected_class() -> None:
    expected = {"127.0.0.1": LOOPBACK, "::1": LOOPBACK, "10.0.0.1": PRIVATE, "172.16.0.1": PRIVATE,
                "192.168.0.1": PRIVATE, "fd12::1": PRIVATE, "100.64.1.1": PRIVATE, "169.254.169.254": LINK_LOCAL,
                "fe80::1": LINK_LOCAL, "8.8.8.8": GLOBAL, "2606:4700::1111": GLOBAL, "0.0.0.0": "unspecified",
                "224.0.0.1": "multicast", "240.0.0.1": "reserved"}
    for text, kind in expected.items():
        assert compute_address_class(ipaddress.ip_address(text)) == kind, text


def test_a_grpc_target_is_pinned_to_an_address_the_policy_allows() -> None:
    """A DA signer's announced ``host:port`` is resolved and checked once; the connection then goes
    to the checked address, never to what a second lookup would say."""
    assert pin_target("localhost:7000", DEVNET_POLICY) in ("127.0.0.1:7000", "[::1]:7000")
    assert pin_target("[::1]:7000", DEVNET_POLICY) == "[::1]:7000"
    with pytest.raises(AddressRefused, match="loopback"):
        pin_target("127.0.0.1:7000", AddressPolicy())
    with pytest.raises(AddressRefused, match="private"):
        pin_target("10.1.2.3:7000", DEVNET_POLICY)
    for bad in ("7000", "host:", "host:port"):
        with pytest.raises(httpx.ConnectError, match="not host:port"):
            pin_target(bad, DEVNET_POLICY)
