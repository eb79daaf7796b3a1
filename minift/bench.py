"""``minift bench``: how fast is it, and how close to what the machine can do?

Speed is measured here, never in timed tests. Each section prints a table and returns numbers
that can be saved with ``--json``.

train        Tokens per second of a full training step (forward, cross-entropy, backward, AdamW)
             and its *model FLOPs utilisation*: the useful arithmetic done per second divided by
             the machine's own measured float32 matmul rate (CPU), or the bf16 peak (CUDA).
             Useful arithmetic per token, the usual count (Kaplan et al.; PaLM appendix B):
                 6·N  (N = parameters that multiply: forward 2N, backward 4N)
               + 12·L·T·C  (attention scores QKᵀ and the weighted sum AV, forward + backward)
             ``--profile`` adds torch.profiler's table of the costliest operations, the place to
             start when the utilization is low; ``--batch`` changes the batch (default 16 on CUDA).
generate     Generated tokens per second with and without the KV cache (256 new tokens).
strategies   Per fine-tuning strategy: step time, peak memory, trainable parameters and optimizer
             state, each also as a ratio to full fine-tuning (strategy_bench.py).
ddp          Two gloo processes with one thread each against one process with two threads, at the
             same global batch: what the gradient all-reduce costs (ddp_bench.py).

Tutorial 12 (running on a GPU) reads these numbers.
"""
from __future__ import annotations

import json
import sys
import time

import torch

from minift.errors import MiniftError
from minift.model import GPT, GPTConfig, lm_loss
from minift.optim import AdamW, param_groups

# The configuration issue #2 asks about: n_layer=4, n_head=4, n_embd=256, block 128, batch 8, vocab 2048.
TRAIN_SHAPE = dict(vocab_size=2048, block_size=128, n_layer=4, n_head=4, n_embd=256)
TRAIN_BATCH = 8
# GPT-2-124M shaped fine-tuning for CUDA (issue #6): block 1024.
GPT2_SHAPE = dict(vocab_size=50304, block_size=1024, n_layer=12, n_head=12, n_embd=768)
BF16_PEAK = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L4": 121e12, "A10": 125e12, "4090": 165e12}


def sync(device):
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def best_time(fn, repeats: int, device) -> float:
    """The fastest of ``repeats`` runs (the least disturbed by other work on the machine)."""
    fn()  # warm-up: first calls allocate and pick kernels
    sync(device)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t)
    return min(times)


def matmul_rate(device="cpu", n: int = 1024, repeats: int = 10, dtype=torch.float32) -> float:
    """The machine's measured dense matmul rate in FLOP/s (2·n³ per n×n product)."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    return 2 * n ** 3 / best_time(lambda: a @ b, repeats, device)


def flops_per_token(config: GPTConfig) -> float:
    """Training FLOPs per token: 6·N (matmul parameters) + 12·L·T·C (attention)."""
    C, L, T, V = config.n_embd, config.n_layer, config.block_size, config.vocab_size
    per_block = 12 * C * C  # c_attn 3C², c_proj C², c_fc 4C², mlp c_proj 4C²
    n_matmul = L * per_block + V * C  # the blocks and the (tied) head
    return 6 * n_matmul + 12 * L * T * C


def train_step_fn(model, optimizer, x, y, device):
    from minift.trainer import autocast_for

    def step():
        with autocast_for(device):
            loss = lm_loss(model(x), y)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def build_train_step(device="cpu", compile=False, shape=None, batch=None):
    """A ready training step for the bench shape: (step, config, batch)."""
    shape = shape or (GPT2_SHAPE if torch.device(device).type == "cuda" else TRAIN_SHAPE)
    if batch is None:
        batch = 16 if torch.device(device).type == "cuda" else TRAIN_BATCH
    if batch < 1:
        raise MiniftError(f"--batch must be >= 1, got {batch}")
    torch.manual_seed(0)
    config = GPTConfig(**shape)
    model = GPT(config).to(device)
    optimizer = AdamW(param_groups(model, 0.1), lr=1e-4, compile=compile)  # the update fused too
    module = torch.compile(model) if compile else model
    x = torch.randint(0, config.vocab_size, (batch, config.block_size), device=device)
    y = torch.randint(0, config.vocab_size, (batch, config.block_size), device=device)
    return train_step_fn(module, optimizer, x, y, device), config, batch


def bench_train(device="cpu", steps=10, compile=False, shape=None, batch=None) -> dict:
    step, config, batch = build_train_step(device, compile, shape, batch)
    shape = {k: getattr(config, k) for k in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd")}
    step()  # compile / warm up outside the timing
    seconds = best_time(step, steps, device)
    tokens = batch * config.block_size
    achieved = flops_per_token(config) * tokens / seconds
    if torch.device(device).type == "cuda":
        name = torch.cuda.get_device_name()
        peak = next((v for k, v in BF16_PEAK.items() if k in name), None)
        peak_name = f"bf16 dense peak of {name}" if peak else "measured bf16 matmul rate"
        peak = peak or matmul_rate(device, n=8192, dtype=torch.bfloat16)
    else:
        peak = matmul_rate(device)
        peak_name = "measured float32 matmul rate"
    return {
        "config": shape, "batch": batch, "device": str(device), "threads": torch.get_num_threads(),
        "compile": compile, "step_seconds": seconds, "tokens_per_s": tokens / seconds,
        "model_tflops_per_s": achieved / 1e12, "peak_tflops_per_s": peak / 1e12, "peak": peak_name,
        "utilization": achieved / peak,
    }


def profile_train(device="cpu", compile=False, batch=None, steps=3, rows=20) -> str:
    """Where a training step's time goes: torch.profiler's table of the costliest operations.

    Sorted by time spent in the operation itself (not its children), on the GPU when there is one:
    that is the list to read when the utilization is low (which kernels, how many launches).
    """
    from torch.profiler import ProfilerActivity, profile

    cuda = torch.device(device).type == "cuda"
    step, _, _ = build_train_step(device, compile, batch=batch)
    for _ in range(2):  # compile, pick kernels, fill the allocator's cache: not what we measure
        step()
    sync(device)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=activities) as prof:
        for _ in range(steps):
            step()
        sync(device)
    key = "self_device_time_total" if cuda else "self_cpu_time_total"
    return prof.key_averages().table(sort_by=key, row_limit=rows)


def bench_generate(device="cpu", new_tokens=256, batch=1, model=None) -> dict:
    """Generation speed with and without the KV cache, on the shipped base when it is present."""
    source = "random weights, base shape"
    if model is None:
        try:
            from minift.checkpoint import load_model

            model = load_model("base", device=device).model
            source = "shipped base model"
        except Exception:
            torch.manual_seed(0)
            model = GPT(GPTConfig(vocab_size=1026, block_size=512, n_layer=4, n_head=4, n_embd=128)).to(device)
    model.eval()
    prompt_len = 8
    new_tokens = min(new_tokens, model.config.block_size - prompt_len)
    idx = torch.randint(0, model.config.vocab_size, (batch, prompt_len), device=device)
    out = {"source": source, "new_tokens": new_tokens, "batch": batch}
    for use_cache in (True, False):
        seconds = best_time(lambda: model.generate(idx, new_tokens, temperature=0.0, use_cache=use_cache), 2, device)
        out["cache" if use_cache else "no_cache"] = batch * new_tokens / seconds
    out["speedup"] = out["cache"] / out["no_cache"]
    return out


def run_bench(args) -> dict:
    from minift.device import resolve_device

    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    sections = (args.only or "train,generate,strategies,ddp").split(",")
    results = {}
    if "train" in sections:
        batch = getattr(args, "batch", None)
        r = bench_train(device, steps=args.steps, compile=args.compile, batch=batch)
        results["train"] = r
        print(f"train step  {r['config']} batch {r['batch']} on {r['device']} ({r['threads']} threads"
              f"{', compiled' if r['compile'] else ''})")
        print(f"  {r['tokens_per_s']:,.0f} tokens/s, {r['step_seconds'] * 1000:.1f} ms/step")
        print(f"  model FLOPs {r['model_tflops_per_s'] * 1000:.1f} GFLOP/s vs {r['peak']} "
              f"{r['peak_tflops_per_s'] * 1000:.1f} GFLOP/s: utilization {r['utilization']:.0%}")
        if getattr(args, "profile", False):
            print(profile_train(device, compile=args.compile, batch=batch))
    if "generate" in sections:
        r = bench_generate(device)
        results["generate"] = r
        print(f"generate    {r['new_tokens']} new tokens, {r['source']}")
        print(f"  with KV cache {r['cache']:,.0f} tokens/s, without {r['no_cache']:,.0f} tokens/s: "
              f"{r['speedup']:.1f}x")
    if "strategies" in sections:
        try:
            from minift.strategy_bench import bench_strategies, print_strategies
        except ImportError:
            print("strategies  (not available yet)", file=sys.stderr)
        else:
            r = bench_strategies(device, steps=args.steps)
            results["strategies"] = r
            print_strategies(r)
    if "ddp" in sections:
        from minift.ddp_bench import bench_ddp

        r = bench_ddp(steps=args.steps)
        results["ddp"] = r
        print(f"ddp         global batch {r['global_batch']}, {r['shape']}")
        print(f"  1 process x 2 threads {r['one_process_2_threads_s'] * 1000:.1f} ms/step, "
              f"2 processes (gloo) x 1 thread {r['two_processes_1_thread_s'] * 1000:.1f} ms/step: "
              f"ratio {r['ratio']:.2f}")
    if args.json:
        from minift.io import atomic_write_json

        atomic_write_json(args.json, results)
    return results
