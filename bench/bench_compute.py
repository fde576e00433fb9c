"""Compute marketplace benchmarks (issue 4), each a ratio measured in one run:

1. settlement gas for 1 vs 1,000 requests of one user (cumulative receipt: constant), and
   gas per user when 1, 200 and 1,000 users settle in the broker's chunks (constant per user);
2. broker throughput with every check vs a bare pass-through proxy, both in front of the
   same fast stub upstream (``bench.compute_servers``; the stub is allowed here only);
3. latency of a 16-token chat completion through ``zg compute serve`` + the broker vs
   straight to the llama.cpp server (p50, p95), and time to first token when streaming;
4. what the guarded edge (``zgos.runtime.edge``) costs the broker: p50 latency of signed requests
   to two brokers of this same build in front of the stub, one started with
   ``ZGOS_BENCH_UNGUARDED=1`` (``zgos.compute.provider.app.BENCH_UNGUARDED_ENV``: its public edge
   passes everything; only this benchmark sets it). ``python -m bench.bench_compute edge`` runs
   this part alone.

``zg compute serve`` wants the install token (``<data-dir>/token``); the benchmark reads it from
the data dir the proxy was started with.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from eth_account import Account

from bench.harness import BenchChain, bench_chain, cpu_seconds, report, service_data_dir
from zgos.chain.accounts import devnet_account
from zgos.compute.contracts import ComputeContracts, execution_gas
from zgos.compute.model import DEFAULT_MODEL_ID, ensure_gemma, model_hash, model_server_argv
from zgos.compute.provider.app import BENCH_UNGUARDED_ENV
from zgos.compute.spec import settlement
from zgos.compute.spec import vouchers as v
from zgos.compute.spec.billing import Prices
from zgos.compute.tokens import TokenCounter
from zgos.compute.user.client import ComputeUser, body_with_defaults
from zgos.runtime.netutil import free_port, wait_until

PRICES = Prices(input_price=10**9, output_price=2 * 10**9)
THROUGHPUT_REQUESTS = 1000
THROUGHPUT_CONCURRENCY = 16
THROUGHPUT_USERS = 4
THROUGHPUT_ROUNDS = 5
LATENCY_RUNS = 20
STUB_LATENCY_RUNS = 100
EDGE_RUNS = 400
LATENCY_BODY = {"messages": [{"role": "user", "content": "Write one sentence about the sea."}],
                "max_tokens": 16, "temperature": 0, "seed": 7}


@contextmanager
def spawn(argv: list[str], ready_url: str, log: Path, env: dict[str, str] | None = None
          ) -> Iterator[subprocess.Popen[bytes]]:
    with open(log, "wb") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
        try:
            ok = wait_until(lambda: httpx.get(ready_url, timeout=1).status_code < 500, 120, 0.1)
            if not ok:
                raise RuntimeError(f"{argv[:4]} did not start; see {log}")
            yield process
        finally:
            process.terminate()
            process.wait(15)


def proxy_client(env: BenchChain) -> httpx.Client:
    """A client carrying the install token the proxy created in the bench data dir (harmless
    to the direct baselines, which ignore it)."""
    token = (data_dir(env) / "token").read_text().strip()
    return httpx.Client(timeout=120, headers={"authorization": f"Bearer {token}"})


def data_dir(env: BenchChain) -> Path:
    return service_data_dir(env)  # providers on 127.0.0.1: announced loopback URLs allowed


def broker_argv(env: BenchChain, upstream: str, port: int, gguf: Path, account: int) -> list[str]:
    return [sys.executable, "-m", "zgos.cli", "--data-dir", str(data_dir(env)), "compute", "provider", "serve",
            "--upstream", upstream, "--port", str(port), "--admin-port", str(free_port()), "--model-path",
            str(gguf), "--account", f"devnet:{account}", "--credit", str(10**24), "--settle-interval", "3600"]


def register(compute: ComputeContracts, account: int, url: str, gguf: Path) -> str:
    provider = devnet_account(account)
    compute.register(provider, url=url, model=DEFAULT_MODEL_ID, model_hash=model_hash(gguf), prices=PRICES,
                     signer=provider.address)
    return str(provider.address)


def ready_user(compute: ComputeContracts, index: int, provider: str, workdir: Path,
               tokens: TokenCounter | None) -> ComputeUser:
    user = ComputeUser(compute, devnet_account(index), workdir / f"user-{index}", tokens=tokens)
    compute.deposit_and_fund(user.account, provider, 10**20)
    user.acknowledge(compute.service(provider))
    return user


def settlement_gas(compute: ComputeContracts) -> None:
    provider = devnet_account(15)
    register(compute, 15, "http://127.0.0.1:1", ensure_gemma())  # no model server: only its hash is registered
    gas = []
    for index, requests in ((2, 1), (3, 1), (4, 1000)):  # the first settlement also warms the provider's slot
        user = devnet_account(index)
        compute.deposit_and_fund(user, provider.address, 10**18)
        receipt = None
        for _ in range(requests):
            receipt = v.next_receipt(receipt, user.address, provider.address, 7000 // requests)
        assert receipt is not None
        signature = v.sign_message(bytes(user.key), compute.domain, receipt)
        settled = compute.settle(provider, [(receipt, signature)])
        gas.append((settled.gas_used, execution_gas(compute.chain, settled)))
    report("settlement gas, 1,000 requests vs 1 request (one user)", gas[2][0], gas[1][0], "gas",
           goal="1.00x (constant)")
    report("  of which contract execution (without calldata bytes)", gas[2][1], gas[1][1], "gas",
           goal="1.00x (constant)")


SETTLE_CROWDS = (1, 200, 1000)


def settlement_gas_per_user(compute: ComputeContracts) -> None:
    """Fresh users (cold slots, the costliest case) each owing the provider; settled as the
    broker does (``plan_settlement`` chunks through ``settleBatch``)."""
    provider = devnet_account(16)
    register(compute, 16, "http://127.0.0.1:1", ensure_gemma())
    chunk_size = settlement.compute_chunk_size(int(compute.chain.w3.eth.get_block("latest")["gasLimit"]))
    per_user = {}
    for count in SETTLE_CROWDS:
        def ready(_: int) -> settlement.DueReceipt:
            user = Account.create()
            compute.chain.w3.provider.make_request("anvil_setBalance", [user.address, hex(10**18)])  # type: ignore[arg-type]
            compute.deposit_and_fund(user, provider.address, 10**15)
            receipt = v.Receipt(user.address.lower(), provider.address.lower(), 7000)
            return settlement.DueReceipt(receipt, v.sign_message(bytes(user.key), compute.domain, receipt), 0.0)

        with ThreadPoolExecutor(32) as pool:
            due = list(pool.map(ready, range(count)))
        gas = execution = chunks = 0
        for chunk in settlement.plan_settlement(due, chunk_size):
            settled = compute.settle_batch(provider, [(d.receipt, d.signature) for d in chunk])
            gas += settled.gas_used
            execution += execution_gas(compute.chain, settled)
            chunks += 1
        per_user[count] = (gas / count, execution / count, chunks)
        print(f"  {count} users, {chunks} chunk(s): {gas / count:,.0f} gas per user "
              f"({execution / count:,.0f} contract execution)", flush=True)
    report("settlement gas per user, 1,000 users (5 chunks) vs 200 users (1 chunk)", per_user[1000][0],
           per_user[200][0], "gas", goal="1.00x (constant)")
    report("settlement gas per user, 200 users vs 1 user (one batch's fixed cost shared)", per_user[200][0],
           per_user[1][0], "gas", goal="record")


async def _load(url: str, requests: list[tuple[bytes, dict[str, str]]]) -> float:
    queue = list(requests)
    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=THROUGHPUT_CONCURRENCY)) as client:
        async def worker() -> None:
            while queue:
                body, headers = queue.pop()
                answer = await client.post(url, content=body, headers=headers)
                if answer.status_code != 200:
                    raise RuntimeError(f"{url}: HTTP {answer.status_code} {answer.text[:200]}")

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(THROUGHPUT_CONCURRENCY)))
        return len(requests) / (time.perf_counter() - started)


def throughput(env: BenchChain, compute: ComputeContracts, gguf: Path) -> None:
    stub_port, bare_port, lean_port, broker_port = free_port(), free_port(), free_port(), free_port()
    stub = f"http://127.0.0.1:{stub_port}"
    provider = register(compute, 19, f"http://127.0.0.1:{broker_port}", gguf)
    users = [ready_user(compute, 5 + i, provider, env.workdir, None) for i in range(THROUGHPUT_USERS)]
    body = body_with_defaults({"messages": [{"role": "user", "content": "What is the capital of France?"}],
                               "max_tokens": 16}, DEFAULT_MODEL_ID)
    service = compute.service(provider)
    signed = [(body, users[i % THROUGHPUT_USERS].sign_request(service, body).headers)
              for i in range(THROUGHPUT_REQUESTS + 50)]
    bench = [sys.executable, "-m", "bench.compute_servers"]
    with spawn([*bench, "stub", str(stub_port)], stub + "/v1/models", env.workdir / "stub.log"), \
            spawn([*bench, "passthrough", str(bare_port), stub], f"http://127.0.0.1:{bare_port}/health",
                  env.workdir / "bare.log") as bare, \
            spawn([*bench, "passthrough-aiohttp", str(lean_port), stub], f"http://127.0.0.1:{lean_port}/health",
                  env.workdir / "lean.log") as lean, \
            spawn(broker_argv(env, stub, broker_port, gguf, 19), f"http://127.0.0.1:{broker_port}/health",
                  env.workdir / "broker-stub.log") as broker:
        urls = {name: f"http://127.0.0.1:{port}/v1/proxy/chat/completions"
                for name, port in (("broker", broker_port), ("bare", bare_port), ("lean", lean_port))}
        pids = {"broker": broker.pid, "bare": bare.pid, "lean": lean.pid}
        for url in urls.values():  # warm up
            asyncio.run(_load(url, signed[:50]))
        # interleaved rounds, so a load change on this shared machine hits all alike
        batch = THROUGHPUT_REQUESTS // THROUGHPUT_ROUNDS
        rates: dict[str, list[float]] = {name: [] for name in urls}
        cpu = dict.fromkeys(urls, 0.0)
        for i in range(THROUGHPUT_ROUNDS):
            requests = signed[50 + i * batch: 50 + (i + 1) * batch]
            for name, url in urls.items():
                before = cpu_seconds(pids[name])
                rates[name].append(asyncio.run(_load(url, requests)))
                cpu[name] += cpu_seconds(pids[name]) - before
        stub_overhead(env, gguf, stub, provider)
        edge_cost(env, compute, gguf, stub)
    served = batch * THROUGHPUT_ROUNDS
    ours = statistics.median(rates["broker"])
    report("broker throughput with all checks vs bare pass-through (FastAPI + httpx, stub upstream)", ours,
           statistics.median(rates["bare"]), "req/s", goal=">= 0.7x")
    report("  CPU per request, broker vs bare pass-through", cpu["broker"] / served * 1000,
           cpu["bare"] / served * 1000, "ms", goal="<= 1.43x (the same bound, load-independent)")
    report("  for reference: vs a pass-through on the broker's own client (FastAPI + aiohttp)", ours,
           statistics.median(rates["lean"]), "req/s")
    report("  CPU per request, broker vs that pass-through", cpu["broker"] / served * 1000,
           cpu["lean"] / served * 1000, "ms")


def stub_overhead(env: BenchChain, gguf: Path, stub: str, provider: str) -> None:
    """The proxy + broker's own latency, without the model's noise: both paths in front of
    the instant stub upstream, interleaved, sequential."""
    proxy_port = free_port()
    serve = [sys.executable, "-m", "zgos.cli", "--data-dir", str(data_dir(env)), "compute", "serve", "--port",
             str(proxy_port), "--tokenizer", str(gguf), "--account", "devnet:5", "--provider", provider]
    body = {**LATENCY_BODY, "model": DEFAULT_MODEL_ID}
    direct_url, proxy_url = stub + "/v1/chat/completions", f"http://127.0.0.1:{proxy_port}/v1/chat/completions"
    with spawn(serve, f"http://127.0.0.1:{proxy_port}/v1/models", env.workdir / "proxy-stub.log"), \
            proxy_client(env) as client:
        for url in (direct_url, proxy_url):
            _timed(client, url, body, False)
        direct, proxied = [], []
        for _ in range(STUB_LATENCY_RUNS):
            direct.append(_timed(client, direct_url, body, False))
            proxied.append(_timed(client, proxy_url, body, False))
    for name, q in (("p50", 0.5), ("p95", 0.95)):
        ours, base = _percentile(proxied, q) * 1000, _percentile(direct, q) * 1000
        report(f"latency {name} via zg compute serve + broker vs direct (stub upstream)", ours, base, "ms",
               goal="overhead <= 10 ms")
        print(f"  overhead {name}: {ours - base:+.1f} ms", flush=True)


def edge_cost(env: BenchChain, compute: ComputeContracts, gguf: Path, stub: str) -> None:
    """The guarded edge's cost on broker latency: two brokers of this build in front of the
    same stub, the second with its public edge off, each sent the same signed requests one at
    a time, alternating which goes first."""
    ports = {"guarded": free_port(), "guards off": free_port()}
    accounts = {"guarded": 17, "guards off": 18}
    providers = {name: register(compute, accounts[name], f"http://127.0.0.1:{ports[name]}", gguf) for name in ports}
    user = ComputeUser(compute, devnet_account(9), env.workdir / "user-9")
    for provider in providers.values():
        compute.deposit_and_fund(user.account, provider, 10**20)
        user.acknowledge(compute.service(provider))
    body = body_with_defaults({"messages": [{"role": "user", "content": "What is the capital of France?"}],
                               "max_tokens": 16}, DEFAULT_MODEL_ID)
    urls = {name: f"http://127.0.0.1:{port}/v1/proxy/chat/completions" for name, port in ports.items()}
    services = {name: compute.service(provider) for name, provider in providers.items()}
    times: dict[str, list[float]] = {name: [] for name in ports}
    cpu = dict.fromkeys(ports, 0.0)
    with spawn(broker_argv(env, stub, ports["guarded"], gguf, 17), f"http://127.0.0.1:{ports['guarded']}/health",
               env.workdir / "broker-guarded.log") as guarded_broker, \
            spawn(broker_argv(env, stub, ports["guards off"], gguf, 18),
                  f"http://127.0.0.1:{ports['guards off']}/health", env.workdir / "broker-unguarded.log",
                  env={BENCH_UNGUARDED_ENV: "1"}) as open_broker, httpx.Client(timeout=60) as client:
        pids = {"guarded": guarded_broker.pid, "guards off": open_broker.pid}
        for run in range(EDGE_RUNS + 20):
            order = list(ports) if run % 2 else list(reversed(ports))
            for name in order:
                headers = user.sign_request(services[name], body).headers  # signed outside the clock
                cpu_before = cpu_seconds(pids[name])
                started = time.perf_counter()
                answer = client.post(urls[name], content=body, headers=headers)
                elapsed = time.perf_counter() - started
                if run >= 20:
                    cpu[name] += cpu_seconds(pids[name]) - cpu_before
                if answer.status_code != 200:
                    raise RuntimeError(f"{name}: HTTP {answer.status_code} {answer.text[:200]}")
                if run >= 20:  # the first 20 warm both up
                    times[name].append(elapsed)
    guarded, unguarded = (_percentile(times[name], 0.5) * 1000 for name in ports)
    report("broker latency p50, guarded edge vs the same build with guards off (stub upstream)", guarded,
           unguarded, "ms", goal="overhead <= 0.5 ms")
    paired = statistics.median(g - u for g, u in zip(times["guarded"], times["guards off"], strict=True)) * 1000
    print(f"  overhead p50: {guarded - unguarded:+.2f} ms (paired median {paired:+.2f} ms, {EDGE_RUNS} requests each,"
          f" load {os.getloadavg()[0]:.1f})", flush=True)
    report("  broker CPU per request, guarded edge vs guards off (load-independent)",
           cpu["guarded"] / EDGE_RUNS * 1000, cpu["guards off"] / EDGE_RUNS * 1000, "ms", goal="overhead <= 0.5 ms")
    edge_cost_in_process(body, user.sign_request(services["guarded"], body).headers)


async def _edge_time_per_request(app: Any, body: bytes, headers: list[tuple[bytes, bytes]], runs: int) -> float:
    """Seconds per request of ``app`` driven straight through ASGI (no sockets, no server)."""
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
             "scheme": "http", "path": "/v1/proxy/chat/completions", "raw_path": b"/v1/proxy/chat/completions",
             "query_string": b"", "root_path": "", "headers": headers, "client": ("127.0.0.1", 5000),
             "server": ("127.0.0.1", 3080)}

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        return None

    started = time.perf_counter()
    for _ in range(runs):
        await app(dict(scope), receive, send)
    return (time.perf_counter() - started) / runs


def edge_cost_in_process(body: bytes, headers: dict[str, str]) -> None:
    """The edge's own time per chat request: an app that reads the body and answers, driven
    through ASGI with and without ``GuardedEdge(public_policy(...))``, alternating rounds."""
    from fastapi import FastAPI, Request
    from fastapi.responses import Response

    from zgos.compute.provider.app import public_policy
    from zgos.compute.provider.broker import BrokerConfig
    from zgos.runtime.edge import GuardedEdge

    inner = FastAPI()

    @inner.post("/v1/proxy/chat/completions")
    async def chat(request: Request) -> Response:
        return Response(await request.body(), media_type="application/json")

    config = BrokerConfig(upstream_url="http://127.0.0.1:1", model_id=DEFAULT_MODEL_ID, model_path=Path("unused"),
                          chat_format="gemma", db_path=Path("unused"), model_hash=b"\0" * 32)
    guarded = GuardedEdge(inner, public_policy(config))
    raw = [(k.lower().encode(), v.encode()) for k, v in
           {**headers, "host": "127.0.0.1:3080", "content-length": str(len(body))}.items()]
    rounds: dict[str, list[float]] = {"guarded": [], "bare": []}
    for _ in range(5):
        rounds["guarded"].append(asyncio.run(_edge_time_per_request(guarded, body, raw, 2000)))
        rounds["bare"].append(asyncio.run(_edge_time_per_request(inner, body, raw, 2000)))
    ours, base = (min(rounds[name]) * 1e6 for name in ("guarded", "bare"))
    report("  in process: a chat request through GuardedEdge vs the bare app (ASGI, no sockets)", ours, base,
           "µs", goal="overhead <= 500 µs")


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _timed(client: httpx.Client, url: str, body: dict[str, object], stream: bool) -> float:
    """Seconds to the whole answer, or to the first content chunk when streaming."""
    started = time.perf_counter()
    if not stream:
        answer = client.post(url, json=body)
        answer.raise_for_status()
        return time.perf_counter() - started
    with client.stream("POST", url, json={**body, "stream": True}) as answer:
        answer.raise_for_status()
        for line in answer.iter_lines():
            if line.startswith("data: {") and '"content"' in line:
                return time.perf_counter() - started
    raise RuntimeError("stream carried no content")


def latency(env: BenchChain, compute: ComputeContracts, gguf: Path) -> None:
    model_port, broker_port, proxy_port = free_port(), free_port(), free_port()
    model = f"http://127.0.0.1:{model_port}"
    provider = register(compute, 15, f"http://127.0.0.1:{broker_port}", gguf)
    user = ready_user(compute, 1, provider, env.workdir, None)
    direct_url = model + "/v1/chat/completions"
    proxy_url = f"http://127.0.0.1:{proxy_port}/v1/chat/completions"
    body = {**LATENCY_BODY, "model": DEFAULT_MODEL_ID}
    serve = [sys.executable, "-m", "zgos.cli", "--data-dir", str(data_dir(env)), "compute", "serve", "--port",
             str(proxy_port), "--tokenizer", str(gguf), "--account", "devnet:1"]
    with spawn(model_server_argv(gguf, port=model_port), model + "/v1/models", env.workdir / "model.log"), \
            spawn(broker_argv(env, model, broker_port, gguf, 15), f"http://127.0.0.1:{broker_port}/health",
                  env.workdir / "broker.log"), \
            spawn(serve, f"http://127.0.0.1:{proxy_port}/v1/models", env.workdir / "proxy.log"), \
            proxy_client(env) as client:
        for stream in (False, True):
            for url in (direct_url, proxy_url):
                _timed(client, url, body, stream)  # warm up
            direct, proxied = [], []
            for _ in range(LATENCY_RUNS):  # interleaved, so load changes hit both alike
                direct.append(_timed(client, direct_url, body, stream))
                proxied.append(_timed(client, proxy_url, body, stream))
            what = "time to first token (stream)" if stream else "16-token chat completion"
            for name, q in (("p50", 0.5), ("p95", 0.95)):
                ours, base = _percentile(proxied, q) * 1000, _percentile(direct, q) * 1000
                report(f"{what} {name} via zg compute serve + broker vs direct llama.cpp", ours, base, "ms",
                       goal="overhead <= 10 ms")
                print(f"  overhead {name}: {ours - base:+.1f} ms", flush=True)
            overheads = [p - d for p, d in zip(proxied, direct, strict=True)]
            print(f"  median paired overhead: {statistics.median(overheads) * 1000:+.1f} ms", flush=True)
    del user


def main() -> None:
    with bench_chain(block_time_s=0.2) as env:
        compute = ComputeContracts.from_deployment(env.chain, env.deployment)
        settlement_gas(compute)
        settlement_gas_per_user(compute)
        gguf = ensure_gemma()
        throughput(env, compute, gguf)
        latency(env, compute, gguf)


def edge_only() -> None:
    """``python -m bench.bench_compute edge``: only the edge's cost (chain, stub, two brokers)."""
    with bench_chain(block_time_s=0.2) as env:
        compute = ComputeContracts.from_deployment(env.chain, env.deployment)
        gguf = ensure_gemma()
        stub_port = free_port()
        stub = f"http://127.0.0.1:{stub_port}"
        with spawn([sys.executable, "-m", "bench.compute_servers", "stub", str(stub_port)], stub + "/v1/models",
                   env.workdir / "stub.log"):
            edge_cost(env, compute, gguf, stub)


if __name__ == "__main__":
    edge_only() if sys.argv[1:] == ["edge"] else main()
