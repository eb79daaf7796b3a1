# %% [markdown]
# # Solutions to Lesson 12 — Running on a GPU
#
# Each cell answers one exercise of `tutorials/12_running_on_a_gpu.py`, calling the library, and
# checks the answer with `assert` where the answer does not depend on the machine.

# %%
import copy

import torch

from minift import bench, distributed
from minift.course import claim, header, pick, smoke
from minift.device import resolve_device
from minift.model import GPT, GPTConfig, lm_loss
from minift.optim import AdamW, param_groups

torch.manual_seed(0)
device = resolve_device("auto")

# %% [markdown]
# ## Exercise 1 — Where do the FLOPs go?
#
# Attention costs 12·L·T·C per token, the weights 6·N. They are equal when T = 6N / (12·L·C)
# = N / (2·L·C).

# %%
header("Exercise 1: attention's share of the FLOPs")
shares = {}
for T in (256, 1024, 4096):
    config = GPTConfig(**{**bench.GPT2_SHAPE, "block_size": T})
    attention = 12 * config.n_layer * T * config.n_embd
    shares[T] = attention / bench.flops_per_token(config)
    print(f"T = {T:>5}: attention {shares[T]:.0%} of {bench.flops_per_token(config) / 1e6:.0f} MFLOP per token")
c = GPTConfig(**bench.GPT2_SHAPE)
n_matmul = c.n_layer * 12 * c.n_embd ** 2 + c.vocab_size * c.n_embd
break_even = n_matmul / (2 * c.n_layer * c.n_embd)
print(f"attention equals the weights at T = {break_even:,.0f} tokens")
assert shares[256] < shares[1024] < shares[4096] and 4096 < break_even < 8192
# checked by tests/test_tutorials.py
claim("attention_share_256_1024_4096_and_break_even", [shares[256], shares[1024], shares[4096], break_even])

# %% [markdown]
# ## Exercise 2 — Batch size and speed
#
# A bigger batch gives each matmul more rows, so the fixed costs (kernel launches on a GPU, thread
# start-up and the optimizer step on a CPU) are shared by more tokens: tokens/s and MFU rise until
# the machine is busy, then flatten. Measured: on one CPU thread, MFU 55 % / 76 % / 84 % at batch
# 1 / 4 / 16 (the CPU is nearly busy already at batch 1); on an H200 with GPT-2's shape, 4 % /
# 17 % / 26 % (42k / 199k / 302k tokens/s) — a GPU needs much more work in flight.

# %%
header("Exercise 2: tokens/s by batch size")
shape = None if not smoke() else dict(vocab_size=256, block_size=32, n_layer=2, n_head=2, n_embd=64)
rates = {}
for batch in pick((1, 4, 16), (1, 2)):
    r = bench.bench_train(device, steps=pick(3, 1), shape=shape, batch=batch)
    rates[batch] = r["tokens_per_s"]
    print(f"batch {batch:>2}: {r['tokens_per_s']:>10,.0f} tokens/s, MFU {r['utilization']:.0%}")

# %% [markdown]
# ## Exercise 3 — Updates that vanish

# %%
header("Exercise 3: adding 0.001 a thousand times")
for start in (1.0, 0.01):
    w32, w16 = torch.tensor(start), torch.tensor(start, dtype=torch.bfloat16)
    for _ in range(1000):
        w32 = w32 + 0.001
        w16 = w16 + torch.tensor(0.001, dtype=torch.bfloat16)
    print(f"start {start}: float32 {w32.item():.4f}, bf16 {w16.item():.4f}")
    if start == 1.0:
        assert w16.item() == 1.0 and abs(w32.item() - 2.0) < 1e-3
    else:
        assert w16.item() <= 0.5 and abs(w32.item() - 1.01) < 1e-3
# Near 1, bf16 numbers are 2**-7 = 0.0078 apart: an update under half of that (0.0039) rounds
# away. Near 0.01 they are 2**-14 = 6e-5 apart, so 0.001 survives at first -- until w reaches 0.5,
# where the spacing is 2**-8 = 0.0039 and 0.001 is again less than half a step. What matters is
# the update's size *relative* to the weight: about 1/256 or more survives, less does not.
assert torch.tensor(1.0, dtype=torch.bfloat16) + torch.tensor(0.004, dtype=torch.bfloat16) > 1.0
assert torch.tensor(1.0, dtype=torch.bfloat16) + torch.tensor(0.0038, dtype=torch.bfloat16) == 1.0

# %% [markdown]
# ## Exercise 4 — Uneven ranks

# %%
header("Exercise 4: each rank dividing by its own token count")
torch.manual_seed(0)
model = GPT(GPTConfig(vocab_size=64, block_size=16, n_layer=1, n_head=2, n_embd=16))
x = torch.randint(0, 64, (4, 16))
targets = x.clone()
targets[0, :12] = -100  # rank 0's rows (0 and 2) grade fewer tokens than rank 1's (1 and 3)
targets[2, :12] = -100


def grads(loss):
    model.zero_grad()
    loss.backward()
    return [p.grad.clone() for p in model.parameters()]


one = grads(lm_loss(model(x), targets))
naive, exact = [], []
n_total = int((targets != -100).sum())
for r in range(2):
    rows = distributed.shard_rows([0, 1, 2, 3], distributed.DistContext(rank=r, world_size=2))
    n_r = int((targets[rows] != -100).sum())
    naive.append(grads(lm_loss(model(x[rows]), targets[rows])))  # divided by its own n_r
    exact.append(grads(lm_loss(model(x[rows]), targets[rows]) * n_r * 2 / n_total))
naive_diff = max((((a + b) / 2) - g).abs().max().item() for a, b, g in zip(*naive, one))
exact_diff = max((((a + b) / 2) - g).abs().max().item() for a, b, g in zip(*exact, one))
print(f"naive rule: largest difference {naive_diff:.2e};  minift's rule: {exact_diff:.2e}")
assert naive_diff > 100 * max(exact_diff, 1e-9)
claim("naive_and_exact_rule_diff", [naive_diff, exact_diff])  # checked by tests/test_tutorials.py

# %% [markdown]
# ## Exercise 5 — Loop versus foreach, by size
#
# On a GPU the loop pays a kernel launch per operation per tensor, so its cost grows with the
# number of tensors while foreach's grows much more slowly: the ratio grows with depth. On a CPU
# there is no launch cost to save and the two take about the same time. Measured: an H200 gave
# 6x / 10x / 13x for 28 / 100 / 388 tensors; one CPU thread 1.1x–1.3x.

# %%
header("Exercise 5: optimizer step time by number of blocks")
for n_layer in pick((2, 8, 32), (1, 2)):
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=256, block_size=32, n_layer=n_layer, n_head=2, n_embd=64)).to(device)
    twin = copy.deepcopy(model)
    times = {}
    for name, m, foreach in (("loop", model, False), ("foreach", twin, True)):
        opt = AdamW(param_groups(m, 0.1), lr=1e-3, foreach=foreach)
        for p in m.parameters():
            p.grad = torch.randn_like(p)
        times[name] = bench.best_time(opt.step, pick(5, 1), device)
    tensors = len(list(model.parameters()))
    print(f"{n_layer:>2} blocks ({tensors:>3} tensors): loop {times['loop'] * 1000:7.2f} ms, "
          f"foreach {times['foreach'] * 1000:7.2f} ms, ratio {times['loop'] / times['foreach']:.1f}x")
