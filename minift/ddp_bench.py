"""``minift bench --only ddp``: what data parallelism costs in communication.

Two ways to spend 2 CPU cores on one training step with a global batch of B sequences:

    one process, 2 threads        each matmul is split between the cores
    two processes (gloo), 1 each  each process takes B/2 sequences; DDP all-reduces the gradients

If communication were free the second would take about as long as the first. The ratio
(two processes ÷ one process, time per step) measures what the all-reduce and the process overhead
cost; the target on CPU is at most 1.3. The worker is this module run under torchrun; the parent
times only the steps (not the start-up) and reads each worker's JSON line.

A third way has no communication at all: two *independent* runs, one process and one thread each,
each with the whole batch of B — how ``minift demo`` trains its tasks side by side. Both start
timing at the same moment (``--start-at``, after their warm-up), so their timed steps overlap.
Their steps per second together, divided by the one two-thread process's, is what running side by
side gains (2 would be perfect; 1, nothing).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import torch

SHAPE = dict(vocab_size=1026, block_size=128, n_layer=4, n_head=4, n_embd=128)
GLOBAL_BATCH = 16


def worker(steps: int, start_at: float | None = None) -> None:
    """One rank (or the single process): time `steps` DDP training steps, print JSON on rank 0."""
    from minift import distributed
    from minift.model import GPT, GPTConfig, lm_loss
    from minift.optim import AdamW, param_groups

    ctx, device = distributed.init_from_env("cpu")
    torch.manual_seed(0)
    model = GPT(GPTConfig(**SHAPE))
    optimizer = AdamW(param_groups(model, 0.1), lr=1e-4)
    module = distributed.wrap(model, ctx, device)
    g = torch.Generator().manual_seed(1)
    x = torch.randint(0, SHAPE["vocab_size"], (GLOBAL_BATCH, SHAPE["block_size"]), generator=g)
    y = torch.randint(0, SHAPE["vocab_size"], (GLOBAL_BATCH, SHAPE["block_size"]), generator=g)
    rows = distributed.shard_rows(list(range(GLOBAL_BATCH)), ctx)
    x, y = x[rows], y[rows]

    def step():
        lm_loss(module(x), y).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    step()  # warm-up (DDP builds its buckets on the first backward)
    if start_at is not None:  # independent runs: every one starts timing at the same moment
        time.sleep(max(0.0, start_at - time.time()))
    distributed.barrier(ctx)
    t = time.perf_counter()
    for _ in range(steps):
        step()
    distributed.barrier(ctx)
    seconds = (time.perf_counter() - t) / steps
    if ctx.is_main:
        print(json.dumps({"world_size": ctx.world_size, "threads": torch.get_num_threads(),
                          "step_seconds": seconds}), flush=True)
    distributed.shutdown(ctx)


def run(cmd, env) -> dict:
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    if result.returncode != 0:
        raise RuntimeError(result.stderr[-2000:])
    return json.loads(result.stdout.strip().splitlines()[-1])


def bench_ddp(steps: int = 10) -> dict:
    base = [sys.executable, "-m", "minift.ddp_bench", "--steps", str(steps)]
    single = run(base, dict(os.environ, OMP_NUM_THREADS="2"))
    double = run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes", "1",
                  "--nproc_per_node", "2", "-m", "minift.ddp_bench", "--steps", str(steps)],
                 dict(os.environ, OMP_NUM_THREADS="1"))
    side = side_by_side(max(steps, 30))
    gain = side_by_side_gain(single["step_seconds"], side)
    return {"shape": SHAPE, "global_batch": GLOBAL_BATCH, "one_process_2_threads_s": single["step_seconds"],
            "two_processes_1_thread_s": double["step_seconds"],
            "ratio": double["step_seconds"] / single["step_seconds"],
            "independent_1_thread_s": side,
            "side_by_side_gain": gain}


def side_by_side_gain(single_s: float, side_s: list[float]) -> float:
    """Steps per second of the independent runs together over one process's: sum(1/t_i) / (1/t_single)."""
    return sum(1 / t for t in side_s) * single_s


def side_by_side(steps: int, delay: float = 15.0) -> list[float]:
    """Seconds per step of two independent one-thread runs timed over the same moments."""
    start_at = time.time() + delay  # time enough for both to import torch and warm up
    command = [sys.executable, "-m", "minift.ddp_bench", "--steps", str(steps), "--start-at", f"{start_at:.3f}"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    procs = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for _ in range(2)]
    out = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=600)
        if p.returncode != 0:
            raise RuntimeError(stderr[-2000:])
        out.append(json.loads(stdout.strip().splitlines()[-1])["step_seconds"])
    return out


if __name__ == "__main__":
    steps = int(sys.argv[sys.argv.index("--steps") + 1]) if "--steps" in sys.argv else 10
    start = float(sys.argv[sys.argv.index("--start-at") + 1]) if "--start-at" in sys.argv else None
    worker(steps, start)
