"""Seeded malformed traffic against the DA gRPC services (a signer and the disperser, real
servers on a real chain): random bytes, wrong wire types, truncations, huge numbers, hostile
values in well-formed messages, wrong tokens and oversized messages.

Claims: no answer is ``INTERNAL`` or ``UNKNOWN`` (every bad request is the caller's error), no
service log line carries a traceback, and both services still do their real work afterwards (a
blob is dispersed and certified). ``ZGOS_FUZZ_REQUESTS`` sets the requests per service (the
suite's 1,000 by default; ``ZGOS_FUZZ_SEED`` another corpus).
"""

from __future__ import annotations

import logging
import random
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from tests.adversarial.httpfuzz import DEFAULT_REQUESTS, fuzz_settings
from tests.integration.da.helpers import CERTIFIED, deploy_da, funded_signer, next_epoch
from zgos.chain.client import Chain
from zgos.da.client import DisperserClient, SignerClient
from zgos.da.disperser.disperser import Disperser
from zgos.da.disperser.servicer import serve_disperser
from zgos.da.proto import disperser_pb2
from zgos.da.rpc import GRPC_OPTIONS, SIGNER_LIMITS
from zgos.da.signer.signer import SignerIdentity, SignerNode, ensure_registered, serve_signer
from zgos.da.signer.store import CellStore
from zgos.da.spec.blob import MAX_BLOB_BYTES
from zgos.da.spec.encoding import Encoder
from zgos.runtime.addresses import DEVNET_POLICY
from zgos.runtime.netutil import free_port

SEED_OFFSET = 12  # this corpus's seed, past the HTTP services' ones
CLIENT_THREADS = 4  # under the signer's concurrent-call cap: every request is handled, not shed
CALL_TIMEOUT_S = 10.0
BUDGET_S = 30.0  # the whole run; the claim is "well under"
FORBIDDEN = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN}
U64_MAX = 2**64 - 1
U32_MAX = 2**32 - 1

Message = bytes
Generator = Callable[[random.Random], Message]


# --- protobuf wire encoding, written out so any field can carry any wire type -----------------


def varint(value: int) -> bytes:
    value &= (1 << 70) - 1  # negative numbers as the 10-byte two's-complement varint
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def field_varint(number: int, value: int) -> bytes:
    return varint(number << 3) + varint(value)


def field_bytes(number: int, value: bytes) -> bytes:
    return varint(number << 3 | 2) + varint(len(value)) + value


def wrong_wire(rng: random.Random, number: int) -> bytes:
    """Field ``number`` under a random wire type, with a payload that may or may not fit it."""
    wire = rng.choice([0, 1, 2, 3, 4, 5, 6, 7])
    payload = rng.randbytes(rng.choice([0, 1, 4, 8, 9]))
    if wire == 2:
        payload = varint(rng.choice([len(payload), len(payload) + 100, U64_MAX])) + payload
    return varint(number << 3 | wire) + payload


def hostile_int(rng: random.Random) -> int:
    return rng.choice([0, 1, -1, -(2**63), U32_MAX, U32_MAX + 1, U64_MAX, 2**63, rng.randrange(U64_MAX)])


def random_bytes(rng: random.Random) -> bytes:
    return rng.randbytes(rng.choice([0, 1, 3, 31, 32, 33, 200, 5000]))


def mutate(rng: random.Random, data: bytes) -> bytes:
    """A valid encoding, truncated, bit-flipped or with garbage appended."""
    kind = rng.randrange(3)
    if kind == 0 and data:
        return data[: rng.randrange(len(data))]
    if kind == 1 and data:
        flipped = bytearray(data)
        flipped[rng.randrange(len(flipped))] ^= 1 << rng.randrange(8)
        return bytes(flipped)
    return data + rng.randbytes(rng.randrange(1, 20))


def cell(rng: random.Random) -> bytes:
    parts = [field_varint(1, hostile_int(rng)), field_varint(2, hostile_int(rng)),
             field_bytes(3, rng.randbytes(rng.choice([0, 2047, 2048, 2049]))),
             field_bytes(4, rng.randbytes(rng.choice([0, 47, 48, 96])))]
    if rng.random() < 0.2:
        parts.append(wrong_wire(rng, rng.randrange(1, 5)))
    rng.shuffle(parts)
    return b"".join(parts)


def blob_id(rng: random.Random) -> bytes:
    return rng.randbytes(rng.choice([0, 1, 31, 32, 32, 33, 64]))


# --- per-method generators --------------------------------------------------------------------


def store_cells(rng: random.Random) -> Message:
    parts = [field_bytes(1, blob_id(rng)), field_varint(2, hostile_int(rng)),
             field_varint(3, rng.choice([0, 0, 1, hostile_int(rng)]))]
    parts += [field_bytes(4, cell(rng)) for _ in range(rng.randrange(0, 6))]
    if rng.random() < 0.3:
        parts.append(wrong_wire(rng, rng.randrange(1, 6)))
    return b"".join(parts)


def get_cells(rng: random.Random) -> Message:
    indices = [field_bytes(2, field_varint(1, hostile_int(rng)) + field_varint(2, hostile_int(rng)))
               for _ in range(rng.randrange(0, 8))]
    parts = [field_bytes(1, blob_id(rng)), *indices, field_varint(3, rng.choice([0, 1, 2, U64_MAX]))]
    if rng.random() < 0.3:
        parts.append(wrong_wire(rng, rng.randrange(1, 4)))
    return b"".join(parts)


def get_status(rng: random.Random) -> Message:
    return rng.choice([b"", wrong_wire(rng, rng.randrange(1, 9)), random_bytes(rng)])


def disperse_blob(rng: random.Random) -> Message:
    return rng.choice([field_bytes(1, b""), wrong_wire(rng, 1), field_varint(1, hostile_int(rng)),
                       field_bytes(1, rng.randbytes(64))])


def spends(call: Call) -> bool:
    """A dispersal the disperser would accept and pay for (sent only without the token)."""
    if call.method != "/disperser.Disperser/DisperseBlob":
        return False
    try:
        return bool(disperser_pb2.DisperseBlobRequest.FromString(call.request).data)
    except Exception:
        return False


def blob_status(rng: random.Random) -> Message:
    request_id = rng.choice([rng.randbytes(rng.randrange(0, 300)), f"{rng.randbytes(32).hex()}-{rng.randrange(U64_MAX)}".encode(),
                             b"../../etc/passwd", "\u00e9".encode(), b"\x00" * 90])
    return field_bytes(1, request_id) + (wrong_wire(rng, 2) if rng.random() < 0.3 else b"")


def retrieve_blob(rng: random.Random) -> Message:
    return (field_bytes(1, blob_id(rng)) + field_varint(2, hostile_int(rng)) + field_varint(3, hostile_int(rng))
            + (wrong_wire(rng, rng.randrange(1, 5)) if rng.random() < 0.3 else b""))


SIGNER_METHODS: dict[str, Generator] = {
    "/zgos.da.signer.Signer/StoreCells": store_cells,
    "/zgos.da.signer.Signer/GetCells": get_cells,
    "/zgos.da.signer.Signer/GetStatus": get_status,
}
DISPERSER_METHODS: dict[str, Generator] = {
    "/disperser.Disperser/DisperseBlob": disperse_blob,
    "/disperser.Disperser/GetBlobStatus": blob_status,
    "/disperser.Disperser/RetrieveBlob": retrieve_blob,
}


@dataclass(frozen=True)
class Call:
    method: str
    request: bytes
    metadata: tuple[tuple[str, str], ...] = ()


def corpus(rng: random.Random, methods: dict[str, Generator], count: int, token: str | None) -> list[Call]:
    calls = []
    names = sorted(methods)
    for _ in range(count):
        method = rng.choice(names)
        request = methods[method](rng)
        shape = rng.random()
        if shape < 0.15:
            request = random_bytes(rng)
        elif shape < 0.35:
            request = mutate(rng, request)
        metadata: tuple[tuple[str, str], ...] = ()
        if token is not None:
            metadata = rng.choice([(), (("authorization", f"Bearer {token}"),), (("authorization", "Bearer nope"),),
                                   (("authorization", "Basic " + token),), (("x-zg-token", token[:-1]),)])
        call = Call(method, request, metadata)
        if spends(call):  # a real, paid dispersal is no fuzz case: it is sent without the token
            call = Call(method, request, (("x-zg-token", token[:-1] if token else "none"),))
        calls.append(call)
    return calls


def send_all(target: str, calls: list[Call]) -> Counter[grpc.StatusCode]:
    """Every call's status code (OK included)."""
    channel = grpc.insecure_channel(target, options=GRPC_OPTIONS)
    stubs = {m: channel.unary_unary(m) for m in {c.method for c in calls}}

    def one(call: Call) -> grpc.StatusCode:
        try:
            stubs[call.method](call.request, timeout=CALL_TIMEOUT_S, metadata=call.metadata or None)
        except grpc.RpcError as exc:
            return exc.code()  # type: ignore[no-any-return]
        return grpc.StatusCode.OK

    try:
        with ThreadPoolExecutor(CLIENT_THREADS) as pool:
            return Counter(pool.map(one, calls))
    finally:
        channel.close()


def oversized(target: str, method: str, size: int) -> grpc.StatusCode:
    channel = grpc.insecure_channel(target, options=[("grpc.max_send_message_length", size + 1024)])
    try:
        channel.unary_unary(method)(field_bytes(1, bytes(size)), timeout=CALL_TIMEOUT_S)
    except grpc.RpcError as exc:
        return exc.code()  # type: ignore[no-any-return]
    finally:
        channel.close()
    return grpc.StatusCode.OK


@dataclass
class Services:
    signer_target: str
    disperser_target: str
    disperser: Disperser
    signer: SignerNode


@pytest.fixture(scope="module")
def services(chain: Chain, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    """One registered signer (the whole quorum) and a disperser on private DA contracts."""
    root: Path = tmp_path_factory.mktemp("fuzz-da")
    da = deploy_da(chain)
    keys = funded_signer(chain)
    identity = SignerIdentity(keys.account, keys.secret)
    signer_port, disperser_port = free_port(), free_port()
    ensure_registered(da, identity, f"127.0.0.1:{signer_port}", 10**18)
    node = SignerNode(da, identity, CellStore(root / "signer"))
    next_epoch(da)
    signer_server = serve_signer(node, "127.0.0.1", signer_port)
    disperser = Disperser(da, funded_signer(chain).account, Encoder(workers=0), root / "disperser", DEVNET_POLICY)
    disperser_server = serve_disperser(disperser, "127.0.0.1", disperser_port)
    yield Services(f"127.0.0.1:{signer_port}", f"127.0.0.1:{disperser_port}", disperser, node)
    disperser_server.stop(0)
    signer_server.stop(0)
    disperser.close()


def test_a_thousand_malformed_grpc_requests_per_service_get_no_internal_error_and_leave_them_healthy(
    services: Services, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str],
) -> None:
    requests, seed = fuzz_settings()
    print(f"grpc fuzz seed {seed + SEED_OFFSET}, {requests} requests per service")
    rng = random.Random(seed + SEED_OFFSET)
    started = time.monotonic()
    with caplog.at_level(logging.DEBUG):
        signer_codes = send_all(services.signer_target, corpus(rng, SIGNER_METHODS, requests, None))
        disperser_codes = send_all(services.disperser_target,
                                   corpus(rng, DISPERSER_METHODS, requests, services.disperser.token))
        too_big = [oversized(services.signer_target, "/zgos.da.signer.Signer/StoreCells", SIGNER_LIMITS.max_receive_bytes),
                   oversized(services.disperser_target, "/disperser.Disperser/DisperseBlob", MAX_BLOB_BYTES + 2**21)]
    elapsed = time.monotonic() - started
    report = f"signer {dict(signer_codes)}, disperser {dict(disperser_codes)}, oversized {too_big}, {elapsed:.1f} s"
    assert sum(signer_codes.values()) == sum(disperser_codes.values()) == requests
    assert not FORBIDDEN & (set(signer_codes) | set(disperser_codes) | set(too_big)), report
    assert too_big == [grpc.StatusCode.RESOURCE_EXHAUSTED] * 2, report
    assert grpc.StatusCode.INVALID_ARGUMENT in signer_codes and grpc.StatusCode.UNAUTHENTICATED in disperser_codes, report
    tracebacks = [r for r in caplog.records if r.exc_info or "Traceback" in r.getMessage()]
    assert not tracebacks, [r.getMessage() for r in tracebacks[:3]]
    assert "Traceback" not in capfd.readouterr().err
    assert requests > DEFAULT_REQUESTS or elapsed < BUDGET_S, report  # the CI budget, at the suite's size
    # still healthy: both answer, and a real blob goes through signer and disperser to a certificate
    with SignerClient(services.signer_target) as signer:
        assert signer.status().registered
    with DisperserClient(services.disperser_target, token=services.disperser.token) as client:
        request_id = client.disperse(b"still serving after the fuzz")
        deadline = time.monotonic() + 60
        while (reply := client.status(request_id)).status == disperser_pb2.PROCESSING:
            assert time.monotonic() < deadline, reply.reason
            time.sleep(0.1)
    assert reply.status in CERTIFIED, reply.reason
