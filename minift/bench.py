"""``minift bench``: how fast is it, and how close to what the machine can do?

Speed is measured here, never in timed tests. Each section prints a table and returns numbers
that can be saved with ``--json``.

train        Tokens per second of a full training step (forward, cross-entropy, backward, AdamW)
             and its *model FLOPs utilisation*: the useful arithmetic done per second divided by
             the machine's own measured float32 matmul rate (CPU), or the bf16 peak (CUDA).
             Useful arithmetic per token, the usual count (Kaplan et al.; PaLM appendix B):
                 6·N  (N = parameters that multiply: forward 2N, backward 4N)
               + 12·L·T·C  (attention scores QKᵀ and the weighted sum AV, forward + backward)
             ``--profile`` adds torch.profiler's table of the costliest operations (of the same,
             already compiled step), the place to start when the utilization is low; ``--batch``
             changes the batch (default 16 on CUDA). The step computes the loss as training does,
             chunked from the hidden states (``minift/loss.py``); ``--loss full`` times the old
             path (all logits, cast to float32) for comparison. On CUDA it also reports the
             allocator's peak memory.
loss         The head and the cross-entropy alone, forward + backward, at the train shape: the
             full float32 logits (``lm_loss``) against the chunked loss (``--chunk-rows``, a comma
             list). Measured: the bytes autograd saves for backward (``saved_tensors_hooks``,
             besides h and W themselves), and on CUDA the allocator's peak above what was
             allocated before; the CPU has no such counter, so there the peak is N/A and the
             analytic size of the float32 logits and of one chunk are given instead.
finetune     The full recipe's fine-tuning step on real batches of a generated task's training split
             (``--task``, default translation; ``--base``, default the shipped base), right-padded
             as a stage pads them: step time, graded tokens/s (targets != -100), all tokens/s
             (non-padding inputs), padded positions/s (B·T) and the padding fraction, in one table
             beside the train row (finetune_bench.py).
generate     Generated tokens per second with and without the KV cache (256 new tokens).
strategies   Per fine-tuning strategy: step time, peak memory, trainable parameters and optimizer
             state, each also as a ratio to full fine-tuning (strategy_bench.py).
ddp          Two gloo processes with one thread each against one process with two threads, at the
             same global batch: what the gradient all-reduce costs (ddp_bench.py); and two
             independent one-thread runs side by side, their steps/s together against the one
             two-thread process's (what ``minift demo`` gains by training its tasks side by side).

Tutorial 12 (running on a GPU) reads these numbers.
"""
from __future__ import annotations

import sys

import torch

from minift.errors import MiniftError
from minift.model import GPT, GPTConfig, lm_loss
from minift.optim import AdamW, param_groups
from minift.timing import GPT2_SHAPE, TRAIN_BATCH, TRAIN_SHAPE, best_time, sync

# The configuration issue #2 asks about: n_layer=4, n_head=4, n_embd=256, block 128, batch 8, vocab 2048.
SECTIONS = ("train", "finetune", "loss", "generate", "strategies", "ddp")
BF16_PEAK = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L4": 121e12, "A10": 125e12, "4090": 165e12}


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


LOSSES = ("chunked", "full")


def train_step_fn(model, optimizer, x, y, device, loss="chunked"):
    from minift.trainer import autocast_for

    if loss not in LOSSES:
        raise MiniftError(f"--loss must be one of {', '.join(LOSSES)}, got {loss!r}")

    def step():
        with autocast_for(device):
            # chunked: what training does (minift/loss.py); full: every logit, cast to float32.
            value = model(x, targets=y) if loss == "chunked" else lm_loss(model(x), y)
        value.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def build_train_step(device="cpu", compile=False, shape=None, batch=None, loss="chunked"):
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
    return train_step_fn(module, optimizer, x, y, device, loss), config, batch


def bench_train(device="cpu", steps=10, compile=False, shape=None, batch=None, loss="chunked",
                profile_rows: int | None = None) -> dict:
    """Time the training step; ``profile_rows`` adds the profiler's table of that same step."""
    step, config, batch = build_train_step(device, compile, shape, batch, loss)
    shape = {k: getattr(config, k) for k in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd")}
    cuda = torch.device(device).type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    step()  # compile / warm up outside the timing
    seconds = best_time(step, steps, device)
    peak = torch.cuda.max_memory_allocated() if cuda else None
    tokens = batch * config.block_size
    achieved = flops_per_token(config) * tokens / seconds
    result = {"config": shape, "batch": batch, "device": str(device), "threads": torch.get_num_threads(),
              "compile": compile, "loss": loss, "step_seconds": seconds, "tokens_per_s": tokens / seconds,
              "peak_memory_bytes": peak}
    if cuda:
        name = torch.cuda.get_device_name()
        peak = next((v for k, v in BF16_PEAK.items() if k in name), None)
        peak_name = f"bf16 dense peak of {name}" if peak else "measured bf16 matmul rate"
        peak = peak or matmul_rate(device, n=8192, dtype=torch.bfloat16)
    else:
        peak = matmul_rate(device)
        peak_name = "measured float32 matmul rate"
    result.update({"model_tflops_per_s": achieved / 1e12, "peak_tflops_per_s": peak / 1e12, "peak": peak_name,
                   "utilization": achieved / peak})
    if profile_rows:
        result["profile"] = profile_train(device, step=step, rows=profile_rows)
    return result


def profile_train(device="cpu", compile=False, batch=None, steps=3, rows=20, step=None) -> str:
    """Where a training step's time goes: torch.profiler's table of the costliest operations.

    Sorted by time spent in the operation itself (not its children), on the GPU when there is one:
    that is the list to read when the utilization is low (which kernels, how many launches).
    ``step``: profile this ready step (already compiled and warm) instead of building one.
    """
    from torch.profiler import ProfilerActivity, profile

    cuda = torch.device(device).type == "cuda"
    warmups = 1
    if step is None:
        step, _, _ = build_train_step(device, compile, batch=batch)
        warmups = 2
    for _ in range(warmups):  # compile, pick kernels, fill the allocator's cache: not what we measure
        step()
    sync(device)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=activities) as prof:
        for _ in range(steps):
            step()
        sync(device)
    key = "self_device_time_total" if cuda else "self_cpu_time_total"
    return prof.key_averages().table(sort_by=key, row_limit=rows)


def saved_bytes(fn, exclude=()) -> int:
    """(bytes of the distinct tensors autograd saves while ``fn`` runs, besides the storages of
    ``exclude``; what ``fn`` returned)."""
    skip = {(t.untyped_storage().data_ptr(), t.device) for t in exclude}
    seen = {}

    def pack(t):
        key = (t.untyped_storage().data_ptr(), t.device)
        if key not in skip:
            seen[key] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    return sum(seen.values()), out


def bench_loss(device="cpu", steps=10, shape=None, batch=None, chunk_rows=None) -> dict:
    """The head + cross-entropy alone, forward and backward: full float32 logits against chunks.

    h (N, C) stands for ln_f's output (float32, as under autocast), W (V, C) for the tied head.
    Under bf16 autocast on CUDA, as in training. Returns the shape, the analytic logit bytes and,
    per variant, the loss value, the bytes saved for backward, the CUDA peak (None on CPU), the
    time of one forward + backward and the largest gradient difference from the full loss.
    """
    import torch.nn.functional as F

    from minift.loss import CHUNK_ROWS, linear_cross_entropy
    from minift.trainer import autocast_for

    cuda = torch.device(device).type == "cuda"
    shape = dict(shape or (GPT2_SHAPE if cuda else TRAIN_SHAPE))
    if batch is None:
        batch = 16 if cuda else TRAIN_BATCH
    if batch < 1:
        raise MiniftError(f"--batch must be >= 1, got {batch}")
    chunk_rows = list(chunk_rows or [CHUNK_ROWS])
    if any(r < 1 for r in chunk_rows):
        raise MiniftError(f"--chunk-rows must be >= 1, got {','.join(map(str, chunk_rows))}")
    N, C, V = batch * shape["block_size"], shape["n_embd"], shape["vocab_size"]
    g = torch.Generator().manual_seed(0)
    h = torch.randn(N, C, generator=g).to(device).requires_grad_(True)
    w = (torch.randn(V, C, generator=g) * 0.02).to(device).requires_grad_(True)
    y = torch.randint(0, V, (N,), generator=g).to(device)

    def variant(rows):
        if rows is None:
            return lambda: lm_loss(F.linear(h, w), y)  # (N, V) logits, then .float() in lm_loss
        return lambda: linear_cross_entropy(h, w, y, chunk_rows=rows)

    def fwd_bwd(loss_fn):
        h.grad = w.grad = None
        with autocast_for(device):
            value = loss_fn()
        value.backward()
        return value

    results, reference = [], None
    for rows in [None] + chunk_rows:
        loss_fn = variant(rows)
        h.grad = w.grad = None
        with autocast_for(device):
            saved, value = saved_bytes(loss_fn, exclude=(h, w))
        value.backward()
        grads = (h.grad.detach().clone(), w.grad.detach().clone())
        if reference is None:
            reference = grads
        diff = max(float((a - b).abs().max()) for a, b in zip(grads, reference))
        del grads
        peak = None
        if cuda:
            h.grad = w.grad = None
            torch.cuda.synchronize()
            torch.cuda.empty_cache()
            before = torch.cuda.memory_allocated()
            torch.cuda.reset_peak_memory_stats()
            fwd_bwd(loss_fn)
            torch.cuda.synchronize()
            peak = torch.cuda.max_memory_allocated() - before
        seconds = best_time(lambda: fwd_bwd(loss_fn), steps, device)
        results.append({"loss": "full" if rows is None else "chunked", "chunk_rows": rows, "value": float(value.detach()),
                        "saved_bytes": saved, "peak_bytes": peak, "seconds": seconds, "grad_max_diff": diff})
    return {"config": shape, "batch": batch, "rows": N, "device": str(device),
            "logits_fp32_bytes": N * V * 4, "chunk_fp32_bytes": {r: min(r, N) * V * 4 for r in chunk_rows},
            "peak": "CUDA allocator peak above the inputs" if cuda else "N/A on CPU (no allocator counter)",
            "variants": results}


def print_loss(r: dict) -> None:
    from minift.tables import print_table

    print(f"loss        head + cross-entropy, forward + backward, N = {r['batch']} x {r['config']['block_size']} "
          f"= {r['rows']:,} rows, V = {r['config']['vocab_size']:,}, C = {r['config']['n_embd']} on {r['device']}")
    # MB = 10**6 bytes, as everywhere in minift (advise --memory, the lessons, the strategy bench).
    print(f"  float32 logits would be {r['logits_fp32_bytes'] / 1e6:,.1f} MB; peak: {r['peak']}")
    table = [{"loss": v["loss"], "chunk rows": v["chunk_rows"], "value": v["value"],
              "saved MB": v["saved_bytes"] / 1e6,
              "peak MB": None if v["peak_bytes"] is None else v["peak_bytes"] / 1e6,
              "ms": v["seconds"] * 1000, "max grad diff": v["grad_max_diff"]} for v in r["variants"]]
    print_table(table, list(table[0]))


def bench_generate(device="cpu", new_tokens=256, batch=1, model=None) -> dict:
    """Generation speed with and without the KV cache, on the shipped base when it is present."""
    source = "random weights, base shape"
    if model is None:
        try:
            from minift.bundle import load_model

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
    sections = (args.only or "train,finetune,generate,strategies,ddp").split(",")
    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown:
        raise MiniftError(f"--only: unknown section {unknown[0]!r}; choose from {', '.join(SECTIONS)}")
    if args.json:
        from minift.io import usable_file

        usable_file(args.json, "--json file")  # before the measurements, not after them
    task = getattr(args, "task", None)
    if task is not None:  # before any section runs: a typo must not cost a long bench
        from minift.finetune_bench import check_task

        check_task(task)
    buckets, examples = getattr(args, "length_buckets", 1), getattr(args, "examples", None)
    if buckets < 1 or (examples is not None and examples < 1):  # before any section: not after a long one
        raise MiniftError(f"--length-buckets and --examples must be >= 1, got {buckets} and {examples}")
    results = {}
    batch = getattr(args, "batch", None)
    if "train" in sections:
        r = bench_train(device, steps=args.steps, compile=args.compile, batch=batch,
                        loss=getattr(args, "loss", None) or "chunked",
                        profile_rows=20 if getattr(args, "profile", False) else None)
        results["train"] = r
        print(f"train step  {r['config']} batch {r['batch']} on {r['device']} ({r['threads']} threads"
              f"{', compiled' if r['compile'] else ''}, {r['loss']} loss)")
        print(f"  {r['tokens_per_s']:,.0f} tokens/s, {r['step_seconds'] * 1000:.1f} ms/step"
              + ("" if r["peak_memory_bytes"] is None else f", peak memory {r['peak_memory_bytes'] / 2**30:.2f} GiB"))
        print(f"  model FLOPs {r['model_tflops_per_s'] * 1000:.1f} GFLOP/s vs {r['peak']} "
              f"{r['peak_tflops_per_s'] * 1000:.1f} GFLOP/s: utilization {r['utilization']:.0%}")
        if "profile" in r:
            print(r["profile"])
    if "finetune" in sections:
        from minift.finetune_bench import DEFAULT_TASK, bench_finetune, print_finetune

        r = bench_finetune(device, steps=args.steps, task=task or DEFAULT_TASK,
                           base=getattr(args, "base", None) or "base", batch=batch, compile=args.compile,
                           examples=getattr(args, "examples", None), length_buckets=getattr(args, "length_buckets", 1))
        results["finetune"] = r
        print_finetune(r, results.get("train"))
    if "loss" in sections:
        rows = getattr(args, "chunk_rows", None)
        try:
            rows = [int(v) for v in rows.split(",")] if rows else None
        except ValueError:
            raise MiniftError(f"--chunk-rows must be a comma list of integers, got {args.chunk_rows!r}") from None
        r = bench_loss(device, steps=args.steps, batch=batch, chunk_rows=rows)
        results["loss"] = r
        print_loss(r)
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
        each = ", ".join(f"{t * 1000:.1f}" for t in r["independent_1_thread_s"])
        print(f"  2 independent processes x 1 thread, batch {r['global_batch']} each: {each} ms/step; together "
              f"{r['side_by_side_gain']:.2f}x the steps/s of 1 process x 2 threads (how minift demo runs its tasks)")
    if args.json:
        from minift.io import atomic_write_json

        atomic_write_json(args.json, results)
    return results
