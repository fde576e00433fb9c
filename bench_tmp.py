import sys, traceback
from bench.harness import bench_chain
from bench import bench_compute as bc
from zgos.compute.ledger import ComputeContracts
from zgos.compute.model import ensure_gemma

with bench_chain(block_time_s=0.2) as env:
    compute = ComputeContracts.from_deployment(env.chain, env.deployment)
    gguf = ensure_gemma()
    try:
        for part in sys.argv[1:]:
            if part == "throughput": bc.throughput(env, compute, gguf)
            if part == "latency": bc.latency(env, compute, gguf)
            if part == "gas": bc.settlement_gas(compute); bc.settlement_gas_per_user(compute)
    except Exception:
        traceback.print_exc()
        for log in env.workdir.glob("*.log"):
            print("==", log); print(log.read_text()[-3000:])
