# %% [markdown]
# # Lesson 12 — Running on a GPU
#
# Everything so far ran on a laptop's CPU, and every line of minift also runs on a CUDA GPU.
# This lesson is about what changes there, why it is faster, and how to tell whether a run uses
# the machine well. It runs anywhere: on a CPU it measures what it can, and the cells that need
# CUDA print a note instead (with figures measured on a GPU for comparison).
#
# **You will learn**
# - how minift picks a device (`minift.device.resolve_device`) and what moves to it;
# - to count a training step's arithmetic (6·N + 12·L·T·C FLOPs per token) and compute the
#   *model FLOPs utilisation* (MFU) of a run (`minift.bench`);
# - number formats: float32, TF32, bfloat16, float16 — why training runs matmuls in bf16 under
#   autocast while the weights and the optimizer stay float32 (`trainer.autocast_for`);
# - the optimizer's two paths, a loop over parameters and a multi-tensor `foreach` step
#   (`minift.optim.AdamW`), proven equal;
# - `torch.compile`, pinned host memory (`Batch.pin_memory`), and the KV cache's speed-up;
# - data parallelism over several GPUs (`minift.distributed`, `torchrun`), checked by hand;
# - loading real GPT-2 weights from local files (`minift.load_gpt2`, `--base gpt2:PATH`).
#
# **Prerequisites:** lessons 02–06 (the GPT, AdamW, full fine-tuning). No GPU needed.
#
# **Time:** about 40 minutes to read and run; the script runs in 12 s on 2 CPU cores (full mode,
# one thread; measured in `tutorials/TEACHING.md` section 3), a few seconds with `MINIFT_SMOKE=1`.
#
# Library code: `minift/device.py` (`resolve_device`), `minift/bench.py` (FLOPs, MFU, timings),
# `minift/trainer.py` (`autocast_for`), `minift/optim.py` (`AdamW`'s loop and `foreach` paths),
# `minift/distributed.py` and `minift/pretrained.py` (`load_gpt2`).

# %%
import copy
import json
import os
import time

import torch

import minift
from minift import bench, distributed
from minift.course import claim, header, output_dir, pick, smoke
from minift.device import resolve_device
from minift.model import GPT, GPTConfig, lm_loss
from minift.optim import AdamW, param_groups
from minift.pretrained import write_safetensors
from minift.tasks import collate, encode_example, load_examples
from minift.trainer import autocast_for

torch.manual_seed(0)

# %% [markdown]
# ## 1. Choosing the device
#
# `resolve_device("auto")` returns `"cuda"` if PyTorch sees an NVIDIA GPU, else `"mps"` on an
# Apple GPU, else `"cpu"`. Every command takes `--device` (default `auto`). On CUDA it also turns
# on TF32 matmuls (section 3). Nothing else in the library asks which device it is on, except
# three places this lesson visits: autocast, the optimizer's fast path, and pinned batches.
#
# What lives on the device: the model's weights (`model.to(device)`), the optimizer state (made
# `zeros_like` the weights, so it follows them), and each batch (`batch.to(device)`). What stays
# on the host: the tokenizer, the data, the metrics. One rule follows: never call `.item()` or
# `float(loss)` inside the step unless you must — it makes the CPU wait for the GPU.

# %%
header("1. The device")
device = resolve_device("auto")
on_cuda = device.startswith("cuda")
print(f"PyTorch {torch.__version__}; device = {device!r}")
if on_cuda:
    props = torch.cuda.get_device_properties(device)
    print(f"  {props.name}: {props.total_memory / 2**30:.0f} GiB, compute capability {props.major}.{props.minor}, "
          f"{props.multi_processor_count} SMs; bf16 supported: {torch.cuda.is_bf16_supported()}")
    print(f"  TF32 matmuls allowed: {torch.backends.cuda.matmul.allow_tf32}")
else:
    print(f"  no CUDA GPU here: {torch.get_num_threads()} CPU threads. The CUDA-only cells below print a note.")
out = output_dir("12")

# %% [markdown]
# ## 2. Counting the arithmetic, and how much of the machine a step uses
#
# A training step multiplies matrices. Per token, each weight of a matrix takes part in one
# multiply-add (2 FLOPs) in the forward pass and two in the backward pass (the gradient for the
# input and the gradient for the weight): **6 FLOPs per weight per token**. Attention adds the
# score matrix `Q Kᵀ` and the weighted sum `A V`, which have no weights: per layer and token,
# 2·T·C FLOPs each forward, times 3 with backward, so **12·L·T·C**. For a model with
# N = L·12C² (blocks) + V·C (the head) multiplying weights (Kaplan et al., 2020; PaLM, appendix B):
#
#     FLOPs per token = 6·N + 12·L·T·C
#
# The position and token *lookups* are not matmuls, so they do not count. Then
#
#     MFU = (FLOPs per token × tokens per second) / (the machine's peak FLOP/s)
#
# A well-tuned large run reaches 40–60 % MFU on a GPU. The peak is the bf16 tensor-core figure
# on CUDA (989 TFLOP/s dense on an H100 or H200); on a CPU, minift measures its own peak: the
# float32 rate of one large matmul.

# %%
header("2. FLOPs per token, by hand")


def flops_by_hand(c: GPTConfig) -> float:
    n_matmul = c.n_layer * 12 * c.n_embd ** 2 + c.vocab_size * c.n_embd
    return 6 * n_matmul + 12 * c.n_layer * c.block_size * c.n_embd


for name, shape in (("minift base", dict(vocab_size=1026, block_size=256, n_layer=4, n_head=4, n_embd=128)),
                    ("GPT-2 124M", bench.GPT2_SHAPE)):
    config = GPTConfig(**shape)
    assert flops_by_hand(config) == bench.flops_per_token(config)
    # checked by tests/test_tutorials.py
    claim(f"flops_per_token: {name}", [flops_by_hand(config), bench.flops_per_token(config)])
    attention = 12 * config.n_layer * config.block_size * config.n_embd
    print(f"{name:>12}: {bench.flops_per_token(config) / 1e6:8.1f} MFLOP per token "
          f"(attention's share {attention / bench.flops_per_token(config):.0%})")

# %% [markdown]
# Now measure. `bench.matmul_rate` times one n×n product (2n³ FLOPs); `bench.bench_train`
# times a full step — forward, loss, backward, AdamW — on random tokens and reports tokens per
# second and MFU. On a CPU it uses a small model (4 layers, width 256, batch 8 × 128 tokens); on
# CUDA it uses GPT-2 124M's shape (batch 16 × 1024 tokens).

# %%
header("2. Measured: the machine's matmul rate and one training step")
def flops_text(x):
    return f"{x / 1e12:,.1f} TFLOP/s" if x >= 1e12 else f"{x / 1e9:,.1f} GFLOP/s"


rate = bench.matmul_rate(device, n=pick(1024, 256), repeats=pick(10, 2))
print(f"float32 matmul (TF32 on CUDA): {flops_text(rate)} on {device}")
shape = None if not smoke() else dict(vocab_size=256, block_size=32, n_layer=2, n_head=2, n_embd=64)
train = bench.bench_train(device, steps=pick(5, 1), shape=shape, batch=None if not smoke() else 2)
print(f"train step {train['config']} batch {train['batch']}:")
print(f"  {train['tokens_per_s']:,.0f} tokens/s, {train['step_seconds'] * 1000:.1f} ms/step, "
      f"{flops_text(train['model_tflops_per_s'] * 1e12)} of model arithmetic")
print(f"  vs {train['peak']} {flops_text(train['peak_tflops_per_s'] * 1e12)} -> MFU {train['utilization']:.0%}")

# %% [markdown]
# On a CPU the step reaches a good fraction of the matmul rate: everything is a matmul, and the
# CPU has few, general cores. On a *busy* machine use fewer threads: each operation splits its
# work over the threads and waits for the slowest, and a thread the system has paused to run
# another program makes every operation wait. On a shared 2-core machine running other jobs,
# this step ran at 1,200 tokens/s with 2 threads and 2,600 with `OMP_NUM_THREADS=1`. On a GPU small models use the machine badly: a (16 × 256) × (256 ×
# 256) product is over before the GPU is busy, and the time goes to launching kernels. This is
# why GPU runs use larger batches and models, and why the tools of the next sections (bf16,
# fused optimizers, compile) exist.

# %% [markdown]
# ## 3. Number formats: fp32, TF32, bf16, fp16
#
# A float is a sign, an exponent (the range) and a mantissa (the precision):
#
# | format | exponent bits | mantissa bits | largest | relative step (eps) |
# |---|---|---|---|---|
# | float32 | 8 | 23 | 3.4e38 | 1.2e-7 |
# | TF32 (matmul inputs only) | 8 | 10 | 3.4e38 | 9.8e-4 |
# | bfloat16 | 8 | 7 | 3.4e38 | 7.8e-3 |
# | float16 | 5 | 10 | 65504 | 9.8e-4 |
#
# GPU tensor cores multiply bf16 (or fp16, or TF32) inputs many times faster than float32, and
# add the products in float32. bf16 keeps float32's range, so nothing overflows and no loss
# scaling is needed (fp16 needs it); it pays in precision: about 2–3 significant digits.

# %%
header("3. What bf16 rounds away")
for dtype in (torch.float32, torch.bfloat16, torch.float16):
    info = torch.finfo(dtype)
    print(f"{str(dtype):>15}: eps {info.eps:.1e}, max {info.max:.1e}")
w = torch.tensor(1.0)
update = torch.tensor(1e-3)
print(f"1 + 0.001 in float32 = {(w + update).item():.6f};  in bf16 = {(w.bfloat16() + update.bfloat16()).item():.6f}")
# checked by tests/test_tutorials.py
claim("one_plus_0.001_in_fp32_and_bf16", [(w + update).item(), (w.bfloat16() + update.bfloat16()).item()])

# %% [markdown]
# The last line is why the **weights stay float32**: an AdamW step moves a weight by about
# `lr` = 1e-4 … 1e-3 of its size, below bf16's step of 1/128 near 1 — the update would round
# away. So minift trains under **autocast**: weights, gradients and the optimizer's moments stay
# float32; inside `with autocast_for(device):` each matmul casts its inputs to bf16 on the fly,
# while softmax, LayerNorm and the loss (`lm_loss` calls `.float()`) run in float32.
#
# `autocast_for("cuda")` is `torch.autocast("cuda", dtype=torch.bfloat16)`; on the CPU it does
# nothing (CPUs gain little from bf16). We can still *see* the rounding on a CPU with PyTorch's
# CPU autocast: the logits move by about a percent of their spread, the loss barely.

# %%
header("3. bf16 autocast: how much the numbers move")
model = GPT(GPTConfig(vocab_size=512, block_size=64, n_layer=2, n_head=4, n_embd=128)).to(device)
x = torch.randint(0, 512, (4, 64), device=device)
with torch.no_grad():
    ref = model(x)
    with torch.autocast(torch.device(device).type, dtype=torch.bfloat16):
        low = model(x)
print(f"logits dtype under autocast: {low.dtype}; weights stay {model.lm_head.weight.dtype}")
print(f"max |logit difference| {(low.float() - ref).abs().max().item():.4f}, logit std {ref.std().item():.4f}")
print(f"loss fp32 {lm_loss(ref, x).item():.5f} vs bf16 {lm_loss(low, x).item():.5f}")
print(f"the library's choice here: autocast_for({device!r}) = {type(autocast_for(device)).__name__}")

# %% [markdown]
# **TF32.** Even plain float32 matmuls can use the tensor cores if PyTorch is allowed to round
# their *inputs* to TF32 (10 mantissa bits). `resolve_device` allows it on CUDA
# (`torch.backends.cuda.matmul.allow_tf32 = True`), so any float32 matmul left outside autocast
# still runs fast. The CPU has no TF32.

# %%
header("3. TF32 and bf16 matmul rates (CUDA only)")
if on_cuda:
    n = 8192
    torch.backends.cuda.matmul.allow_tf32 = False
    fp32 = bench.matmul_rate(device, n=n)
    torch.backends.cuda.matmul.allow_tf32 = True
    tf32 = bench.matmul_rate(device, n=n)
    bf16 = bench.matmul_rate(device, n=n, dtype=torch.bfloat16)
    print(f"{n}x{n} matmul: fp32 {fp32 / 1e12:.0f}, TF32 {tf32 / 1e12:.0f}, bf16 {bf16 / 1e12:.0f} TFLOP/s")
else:
    print("skipped: no CUDA GPU (the table at the end of the lesson gives an H200's figures)")

# %% [markdown]
# ## 4. The optimizer's fast path: `foreach`
#
# `AdamW._step_loop` updates the parameters one by one: for each, about ten small operations,
# each one a separate GPU kernel launch of a few microseconds. A model with 150 parameter
# tensors launches 1500 kernels per step, mostly waiting. `AdamW._step_foreach` does the same
# arithmetic with `torch._foreach_*`, which apply one operation to a whole *list* of tensors in a
# few fused launches. `foreach=None` (the default) picks it when all parameters are on CUDA.
#
# Same arithmetic, same numbers: we step two copies of one model with the same gradients.

# %%
header("4. AdamW: loop versus foreach")
torch.manual_seed(0)
config = GPTConfig(vocab_size=512, block_size=64, n_layer=pick(4, 2), n_head=4, n_embd=pick(256, 64))
model_loop = GPT(config).to(device)
model_fast = copy.deepcopy(model_loop)
opt_loop = AdamW(param_groups(model_loop, 0.1), lr=1e-3, foreach=False)
opt_fast = AdamW(param_groups(model_fast, 0.1), lr=1e-3, foreach=True)
x = torch.randint(0, 512, (8, 64), device=device)
for step in range(3):
    lm_loss(model_loop(x), x).backward()
    for slow, fast in zip(model_loop.parameters(), model_fast.parameters()):
        fast.grad = slow.grad.clone()  # the same gradients for both: we compare the optimizers alone
    opt_loop.step()
    opt_fast.step()
    opt_loop.zero_grad(set_to_none=True)
    opt_fast.zero_grad(set_to_none=True)
difference = max((a - b).abs().max().item() for a, b in zip(model_loop.parameters(), model_fast.parameters()))
print(f"after 3 steps the largest weight difference is {difference:.2e}")
assert difference < 1e-6  # equal up to float32 rounding (fused kernels may round a last bit differently)
claim("foreach_minus_loop", difference)  # checked by tests/test_tutorials.py

for p in model_loop.parameters():  # time the optimizer step alone, with gradients in place
    p.grad = torch.randn_like(p)
for p in model_fast.parameters():
    p.grad = torch.randn_like(p)
loop_s = bench.best_time(opt_loop.step, pick(10, 2), device)
fast_s = bench.best_time(opt_fast.step, pick(10, 2), device)
n_tensors = len(list(model_loop.parameters()))
print(f"{n_tensors} parameter tensors: loop {loop_s * 1000:.2f} ms/step, foreach {fast_s * 1000:.2f} ms/step "
      f"({loop_s / fast_s:.1f}x)")

# %% [markdown]
# ## 5. `torch.compile`
#
# `torch.compile(model)` traces the forward and backward into a graph and generates fused
# kernels for runs of elementwise operations (GELU, the residual adds, LayerNorm pieces), so the
# activations make fewer round trips through memory. The first step is slow (it compiles, tens of
# seconds); later steps are faster. `minift pretrain --compile` and `minift bench --compile` use
# it. On a CPU the compiler writes C++ and needs a C++ compiler; the gain is small, so the cell
# runs there only when `MINIFT_COMPILE=1` (and on a GPU it is skipped in smoke mode).
#
# `--compile` compiles the optimizer too: `AdamW(..., compile=True)`. Even the `foreach` path of
# section 4 reads and writes every weight nine times per step (once per line of the update); for
# GPT-2 124M that is about 11 GB of memory traffic, a few milliseconds on any GPU. Compiled, the
# nine lines become a few fused kernels that read p, g, m, v once and write p, m, v once. The
# learning rate goes in as a tensor: a Python number would be baked into the compiled code, and
# a schedule that changes it every step would recompile every step (`tests/test_optim.py` checks
# that it compiles once and still equals `torch.optim.AdamW`).
#
# What the compiler cannot trace becomes a *graph break*: it compiles the code before it and
# after it as separate graphs and runs the Python in between eagerly, and where it cannot resume
# (a break inside the loop over blocks) it runs the whole function eagerly. The numbers stay
# right, so nothing fails; only the speed is lost. Two breaks minift once had, both invisible in
# its results: `bool(mask.all())` on the soft prompts' padding mask reads a tensor back to
# Python (the `.item()` rule of section 1), and `is_causal=T > 1` in the attention is, once the
# compiler makes the sequence length symbolic (after the second batch length it sees), a
# symbolic bool that SDPA refuses, which sent the whole forward back to eager. The cures: decide
# from Python numbers (the prompts' lengths, the cache's length), and skip host-side checks while
# compiling (`GPT.forward_embeds` checks positions against the block only when not). To see
# breaks, run with `TORCH_LOGS=graph_breaks`, or compile with `fullgraph=True`, which makes any
# break an error: `tests/test_model.py` compiles the model that way over three lengths, and
# `tests/test_finetune.py` counts the breaks (none) of a `--compile` stage of every strategy.
#
# A subtler cost is the *recompile*. A compiled graph is guarded by the shapes it was built for;
# fine-tuning batches are padded to their longest example, so T changes at every step, and after
# the second length dynamo builds one graph with T as a symbol. Python code that needs T's value
# undoes that: `for start in range(0, B * T, R)` in the chunked loss forced the symbol to a number,
# so every new length compiled the whole step again (at commit 0f5ab5b, `minift bench --only
# finetune --threads 2 --compile` timed 17,167 ms a step on a 2-core CPU, eager 155; after 8
# recompiles dynamo gives up and runs the step eagerly). The cure is the same rule: branch on a comparison
# (`if B * T <= R`, a guard on a range of sizes), not on the value. `TORCH_LOGS=recompiles` names
# the guard that failed; `tests/test_chunked_loss.py` counts the graphs (two for six lengths).
# With the cure (commit da904f4), the same command times 100.7 ms a step compiled against 124.4
# eager on a quiet 2-core CPU (3,020 against 2,493 graded tokens/s): compiled is now the faster.

# %%
header("5. torch.compile")
if (on_cuda and not smoke()) or os.environ.get("MINIFT_COMPILE") == "1":
    t0 = time.perf_counter()
    compiled = bench.bench_train(device, steps=pick(5, 1), compile=True, shape=shape,
                                 batch=None if not smoke() else 2)
    print(f"compiled (compile + measure took {time.perf_counter() - t0:.0f} s): "
          f"{compiled['tokens_per_s']:,.0f} tokens/s vs eager {train['tokens_per_s']:,.0f} "
          f"({compiled['tokens_per_s'] / train['tokens_per_s']:.2f}x), MFU {compiled['utilization']:.0%}")
else:
    print("skipped (set MINIFT_COMPILE=1 to run it; on a CPU it needs a C++ compiler)")

# %% [markdown]
# ## 6. Pinned memory: feeding the GPU
#
# A batch is built on the host (`collate`) and copied to the GPU. From ordinary ("pageable")
# memory the driver must first copy it into a page-locked buffer, and the copy blocks the CPU.
# From **pinned** (page-locked) memory the GPU reads directly, and `.to(device,
# non_blocking=True)` returns at once: the CPU can build the next batch while the copy runs.
# `minift.finetune` pins its batches on CUDA (`Batch.pin_memory`). A CPU-only PyTorch cannot pin.

# %%
header("6. Pinned versus pageable host memory (CUDA only)")
bundle = minift.load_model("base")
tok = bundle.tokenizer
examples = load_examples(task="translation", split="train", n=16, seed=0)
encoded = [encode_example(tok, e.prompt, e.completion, bundle.model.config.block_size) for e in examples]
batch = collate(encoded, tok.pad_id)
print(f"a batch of 16 translation pairs: input_ids and targets {tuple(batch.input_ids.shape)}, int64")
if on_cuda:
    big = torch.randn(64, 1024, 1024)  # 256 MiB (268 MB), so the copy time is measurable
    pageable = bench.best_time(lambda: big.to(device), 5, device)
    pinned_big = big.pin_memory()
    pinned = bench.best_time(lambda: pinned_big.to(device, non_blocking=True), 5, device)
    gb = big.numel() * 4 / 1e9
    print(f"256 MiB host->GPU: pageable {gb / pageable:.1f} GB/s, pinned {gb / pinned:.1f} GB/s")
    print(f"the batch, pinned: {batch.pin_memory().input_ids.is_pinned()}")
else:
    print("skipped: pinning needs a CUDA build and GPU.")

# %% [markdown]
# ## 7. Generation and the KV cache
#
# Generating token t+1 needs the keys and values of all earlier tokens. Without a cache the
# model recomputes them all for each new token — O(T²) work for T tokens; with the cache
# (lesson 02) each step computes one position — O(T). `bench.bench_generate` measures both on
# the shipped base, one sequence at a time.
#
# On a CPU the cache wins clearly. On a GPU, one sequence of a 1M-parameter model is so little
# work that each new token costs about the same with or without the cache: the time goes to
# launching dozens of small kernels per token from Python, not to arithmetic (an H200 measured
# about 520 tokens/s both ways). Batching many sequences, or a bigger model, is what makes a GPU
# pay off in generation.

# %%
header("7. Generation with and without the KV cache")
generation = bench.bench_generate(device, new_tokens=pick(128, 8))  # loads the shipped base onto the device
print(f"{generation['new_tokens']} new tokens ({generation['source']}): with cache {generation['cache']:,.0f} tokens/s, "
      f"without {generation['no_cache']:,.0f} tokens/s -> {generation['speedup']:.1f}x")

# %% [markdown]
# ## 8. Several GPUs: data parallelism
#
# `torchrun --nproc_per_node N -m minift finetune ...` starts N processes ("ranks"), one per GPU.
# Each holds the whole model. Every rank draws the *same* global batch of B rows and keeps rows
# r, r+N, r+2N, ... (`distributed.shard_rows`). After backward, `DistributedDataParallel`
# averages the gradients over ranks, so all ranks take the same step.
#
# One subtlety: the loss is a mean over *graded tokens*, and ranks grade different numbers of
# tokens. If each rank divided by its own count, the average of the ranks' gradients would weight
# tokens unequally. minift divides each rank's token-loss sum by the **global** count and
# multiplies by N, which DDP's averaging divides away:
#
#     mean over r of grad( N · sum_r / n_total ) = grad( sum over all tokens / n_total )
#
# We check it in one process: two simulated ranks, gradients averaged by hand, against one
# process on the whole batch.

# %%
header("8. Two simulated ranks equal one process")
torch.manual_seed(0)
small = GPT(GPTConfig(vocab_size=tok.vocab_size, block_size=256, n_layer=2, n_head=2, n_embd=32))
rows = list(range(len(encoded)))[:8]
for r in range(2):
    print(f"rank {r} keeps rows {distributed.shard_rows(rows, distributed.DistContext(rank=r, world_size=2))}")


def gradients(loss):
    small.zero_grad()
    loss.backward()
    return [p.grad.clone() for p in small.parameters()]


whole = collate([encoded[i] for i in rows], tok.pad_id)
one_process = gradients(lm_loss(small(whole.input_ids), whole.targets))
n_total = int((whole.targets != -100).sum())
per_rank = []
for r in range(2):
    part = collate([encoded[i] for i in distributed.shard_rows(rows, distributed.DistContext(rank=r, world_size=2))],
                   tok.pad_id)
    n_r = int((part.targets != -100).sum())
    token_sum = lm_loss(small(part.input_ids), part.targets) * n_r
    per_rank.append(gradients(token_sum * 2 / n_total))
    print(f"rank {r} grades {n_r} of {n_total} tokens")
averaged = [(a + b) / 2 for a, b in zip(*per_rank)]  # what DDP's all-reduce computes
worst = max((a - b).abs().max().item() for a, b in zip(averaged, one_process))
print(f"largest gradient difference, 2 ranks vs 1 process: {worst:.1e}")
assert worst < 1e-6
claim("two_ranks_minus_one_process", worst)  # checked by tests/test_tutorials.py

# %% [markdown]
# The real launch (NCCL between GPUs, gloo between CPU processes). Only rank 0 writes logs and
# checkpoints; `tests/test_distributed.py` runs two CPU processes and checks that they end with
# the same weights as one process.

# %%
header("8. The real launch, with torchrun")
print("torchrun --standalone --nproc_per_node 2 -m minift finetune --recipe hybrid --task translation "
      "--device cuda --out runs/ddp")
print(f"(this machine has {torch.cuda.device_count()} CUDA device(s); batch_size in a recipe is the global batch)")

# %% [markdown]
# ## 9. Real GPT-2 weights from local files
#
# A GPU makes a real pretrained model worth fine-tuning: GPT-2 124M trains at thousands of
# tokens per second on one GPU. minift reads a Hugging Face GPT-2 folder (`config.json` +
# `model.safetensors`) from disk — it never downloads — into its own `GPT`: the names are the
# same, and the four `Conv1D` weights of each block are stored (in, out) so they are transposed
# (`minift/pretrained.py` explains the file format and checks every byte offset).
#
# To see the conversion without a download, we write a GPT-2-*shaped* folder ourselves from a
# minift model — the inverse mapping, a few lines — and load it back with `minift.load_gpt2`.

# %%
header("9. A GPT-2 folder, written and read back")
folder = out / "tiny-gpt2"
folder.mkdir(parents=True, exist_ok=True)
torch.manual_seed(0)
tiny = GPT(GPTConfig(vocab_size=300, block_size=32, n_layer=2, n_head=2, n_embd=16)).eval()
conv1d = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")
hf = {}
for name, value in tiny.state_dict().items():
    if name == "lm_head.weight":
        continue  # tied: GPT-2 files store wte once
    key = name.removeprefix("transformer.")
    hf[key] = value.t().contiguous() if key.endswith(conv1d) else value  # Linear (out, in) -> Conv1D (in, out)
write_safetensors(folder / "model.safetensors", hf)
(folder / "config.json").write_text(json.dumps({"model_type": "gpt2", "vocab_size": 300, "n_positions": 32,
                                                "n_layer": 2, "n_head": 2, "n_embd": 16}))
loaded = minift.load_gpt2(folder).eval()
x = torch.randint(0, 300, (2, 32))
with torch.no_grad():
    assert torch.equal(loaded(x), tiny(x))
    claim("load_gpt2_same_logits", torch.equal(loaded(x), tiny(x)))  # checked by tests/test_tutorials.py
print(f"wrote {folder} ({(folder / 'model.safetensors').stat().st_size:,} bytes); load_gpt2 gives identical logits")

gpt2_path = os.environ.get("MINIFT_GPT2")  # a real GPT-2 folder, if you have downloaded one
if gpt2_path:
    real = minift.load_gpt2(gpt2_path)
    print(f"{gpt2_path}: {real.num_parameters() / 1e6:.1f}M parameters, {real.config}")
else:
    print("set MINIFT_GPT2=/path/to/gpt2 (a Hugging Face folder) to load the real 124M model here")
print("fine-tune it:  minift finetune --base gpt2:/path/to/gpt2 --recipe full --task qa --device cuda --out runs/gpt2-qa")

# %% [markdown]
# ## Measured on a GPU
#
# This lesson and its solutions, run on one NVIDIA H200 (PyTorch 2.11, CUDA 13.0):
#
# | what | figure |
# |---|---|
# | 8192 × 8192 matmul: fp32 / TF32 / bf16 | 51 / 403 / 748 TFLOP/s |
# | GPT-2 124M shape, batch 16 × 1024, bf16 autocast, eager | 298k tokens/s, 55 ms/step, MFU 26 % |
# | the same with `torch.compile` (compiling took about 30 s) | 334k tokens/s (1.12×), MFU 29 % |
# | the same, eager, batch 1 / 4 / 16 | MFU 4 % / 17 % / 26 % |
# | AdamW step, loop vs `foreach`: 28 / 100 / 388 parameter tensors | 6× / 10× / 13× faster |
# | 256 MiB host → GPU: pageable vs pinned | 8 vs 55 GB/s |
# | generation, base-shaped model, batch 1, with vs without KV cache | about 520 tokens/s either way |
#
# MFU 26 % eager is typical of a plain PyTorch model; fused attention kernels, larger batches
# and compilation are how large runs reach 40–60 %.
#
# Two of those levers were missing when this table was measured, and `minift bench --profile`
# is how to see what they are worth on your GPU. First, the model handed
# `scaled_dot_product_attention` a boolean mask even for plain causal attention, and a mask
# tensor rules out FlashAttention, the fastest kernel; it now passes `is_causal=True` instead
# (`tests/test_model.py` proves both give the manual path's numbers). Second, `--compile` did not
# yet fuse the optimizer update (section 5). Re-measure with
# `minift bench --device cuda --only train --compile --profile`, and `--batch 32` to see the
# effect of a larger batch.
#
# ## What changes on a GPU, in one table
#
# | | CPU | CUDA |
# |---|---|---|
# | device (`--device auto`) | `cpu` | `cuda` (`cuda:N` under torchrun) |
# | matmuls | float32 | bf16 under autocast, TF32 for the float32 rest |
# | weights, gradients, AdamW moments | float32 | float32 (unchanged) |
# | AdamW path | loop | `foreach` (multi-tensor); one compiled update with `--compile` |
# | batches | as built | pinned, copied with `non_blocking=True` |
# | `torch.compile` | optional, small gain | optional (`--compile`), fewer memory round trips |
# | several devices | gloo processes (tests) | `torchrun`, NCCL |
#
# A note on results: bf16 changes the numbers slightly, so a GPU run does not repeat a CPU run
# bit for bit. How far the metrics move has not been measured here; judge a difference against
# the spread between seeds: in the fair strategy grid
# (`data/experiments/strategies/fair/results.md`) the standard deviation between three seeds is
# 1.0–2.4 BLEU at 1000 translation pairs (`full`, `layers`, `hybrid`, `scratch`).
#
# ## Exercises
#
# 1. **Where do the FLOPs go?** For GPT-2 124M's shape, compute with `bench.flops_per_token`
#    the share of the 12·L·T·C attention term at block sizes 256, 1024 and 4096. At which block
#    size does attention cost as much as the weights?
# 2. **Batch size and speed.** Run `bench.bench_train` on your device with batch 1, 4 and 16 (and
#    the default shape). How do tokens/s and MFU change, and why?
# 3. **Updates that vanish.** Starting from w = 1.0 in bf16 and in float32, add 0.001 a thousand
#    times. Print both results. Which update sizes survive in bf16 near w = 1? Near w = 0.01?
# 4. **Uneven ranks.** Repeat section 8 with the *naive* rule — each rank divides by its own
#    token count — and show that the averaged gradients then differ from one process's.
# 5. **Loop versus foreach, by size.** Time `opt.step` for both paths on models with 2, 8 and
#    32 blocks. Does the ratio grow with the number of parameter tensors?
#
# Solutions: `tutorials/solutions/12_running_on_a_gpu.py`.
