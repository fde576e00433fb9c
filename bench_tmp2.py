import asyncio, subprocess, sys, time
from pathlib import Path
from bench.harness import bench_chain
from bench import bench_compute as bc
from zgos.compute.ledger import ComputeContracts
from zgos.compute.model import ensure_gemma, DEFAULT_MODEL_ID
from zgos.compute.user.client import body_with_defaults
from zgos.netutil import free_port

PYSPY = "/tmp/billing/pyspy/x/py_spy-0.4.3.data/scripts/py-spy"
with bench_chain(block_time_s=0.2) as env:
    compute = ComputeContracts.from_deployment(env.chain, env.deployment)
    gguf = ensure_gemma()
    stub_port, broker_port = free_port(), free_port()
    stub = f"http://127.0.0.1:{stub_port}"
    provider = bc.register(compute, 19, f"http://127.0.0.1:{broker_port}", gguf)
    users = [bc.ready_user(compute, 5 + i, provider, env.workdir, None) for i in range(4)]
    body = body_with_defaults({"messages": [{"role": "user", "content": "What is the capital of France?"}], "max_tokens": 16}, DEFAULT_MODEL_ID)
    service = compute.service(provider)
    signed = [(body, users[i % 4].sign_request(service, body).headers) for i in range(3000)]
    bench = [sys.executable, "-m", "bench.compute_servers"]
    with bc.spawn([*bench, "stub", str(stub_port)], stub + "/v1/models", env.workdir / "stub.log"), \
            bc.spawn(bc.broker_argv(env, stub, broker_port, gguf, 19), f"http://127.0.0.1:{broker_port}/health", env.workdir / "b.log") as broker:
        url = f"http://127.0.0.1:{broker_port}/v1/proxy/chat/completions"
        asyncio.run(bc._load(url, signed[:100]))
        spy = subprocess.Popen([PYSPY, "record", "-p", str(broker.pid), "-o", "/tmp/billing/profile.txt", "-f", "raw", "-r", "500", "-d", "25"])
        time.sleep(1)
        before = bc.cpu_seconds(broker.pid)
        n = 0
        t = time.time()
        while time.time() - t < 22:
            asyncio.run(bc._load(url, signed[100 + n: 100 + n + 200])); n += 200
        print("cpu/req ms", (bc.cpu_seconds(broker.pid) - before) / n * 1000, "n", n)
        spy.wait()
