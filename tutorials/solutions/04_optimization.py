# %% [markdown]
# # Solutions to Lesson 04 — Optimization
#
# Each cell answers one exercise of `tutorials/04_optimization.py`, calling the library, and
# checks the answer with `assert`.

# %%
import math

import torch
from torch import nn

from minift.course import claim, header, pick
from minift.model import GPT, GPTConfig
from minift.optim import SGD, AdamW, lr_at, param_groups
from minift.trainer import TrainConfig, train_stage

torch.manual_seed(0)

# %% [markdown]
# ## Exercise 1 — Bias correction
#
# At step 1, `m = (1 − β1) g` and `v = (1 − β2) g²`. Uncorrected,
# `m / √v = (1 − β1)/√(1 − β2) · sign(g)`, which is `0.1 / 0.0316 ≈ 3.16` for the default
# betas: the first step is three times `lr`. Corrected, `m̂ = g` and `v̂ = g²`, so
# `m̂ / √v̂ = sign(g)`: exactly `lr` (up to `ε`).

# %%
header("Exercise 1: the first step with and without bias correction")
lr, (beta1, beta2), eps = 0.1, (0.9, 0.999), 1e-8
g = torch.tensor([2.0, -60.0, -0.3])
m, v = (1 - beta1) * g, (1 - beta2) * g**2
uncorrected = lr * m / (v.sqrt() + eps)
corrected = lr * (m / (1 - beta1)) / ((v / (1 - beta2)).sqrt() + eps)
print("uncorrected first move:", uncorrected)
print("corrected first move:  ", corrected)
torch.testing.assert_close(uncorrected.abs(), torch.full((3,), lr * (1 - beta1) / math.sqrt(1 - beta2)))
torch.testing.assert_close(corrected.abs(), torch.full((3,), lr))

# The library agrees with the corrected version: one AdamW step (no decay) from zero.
p = torch.zeros(3, requires_grad=True)
optimizer = AdamW([p], lr=lr, weight_decay=0.0)
p.grad = g.clone()
optimizer.step()
torch.testing.assert_close(p.detach(), -corrected)
# checked by tests/test_tutorials.py
claim("first_move_uncorrected_corrected_library", [uncorrected.abs(), corrected.abs(), p.detach().abs()])

# %% [markdown]
# ## Exercise 2 — What decays?

# %%
header("Exercise 2: the no-decay group of a GPT")
model = GPT(GPTConfig(vocab_size=514, block_size=32, n_layer=2, n_head=4, n_embd=64))
groups = param_groups(model, weight_decay=0.1)
for group in groups:
    n = sum(p.numel() for p in group["params"])
    print(f"weight_decay={group['weight_decay']}: {len(group['params'])} tensors, {n:,} numbers")
no_decay = next(g for g in groups if g["weight_decay"] == 0.0)
print("no decay:", no_decay["names"][:6], "...")
assert all(p.dim() < 2 for p in no_decay["params"])
assert all(name.endswith("bias") or ".ln_" in name or name.startswith("transformer.ln_f")
           for name in no_decay["names"])
# By hand: per block ln_1 and ln_2 (2C each) and the biases of c_attn (3C), attn.c_proj (C), c_fc (4C)
# and mlp.c_proj (C) — the 13C of lesson 03's 12C² + 13C — and ln_f's 2C: 2 · 13 · 64 + 2 · 64 = 1,792.
C_, L_ = model.config.n_embd, model.config.n_layer
assert sum(p.numel() for p in no_decay["params"]) == L_ * 13 * C_ + 2 * C_ == 1792

# %% [markdown]
# A LayerNorm gain `γ` sets the scale of the normalised activations. Pulling it towards 0 does
# not make the model simpler, it silences the layer's output; biases are likewise shifts, not
# capacity. Decay is meant for the big matrices, where small weights mean a smoother function.

# %% [markdown]
# ## Exercise 3 — A schedule to order
#
# Halfway through the cosine, `cos(π/2) = 0`, so `lr = min + ½(max − min) = max · (1 + r)/2`.
# For 60 %: `(1 + r)/2 = 0.6`, so `r = 0.2`.

# %%
header("Exercise 3: min_lr_ratio for 60% at halfway")
ratio = 2 * 0.6 - 1
halfway = lr_at(60, 1e-3, warmup_steps=10, total_steps=110, min_lr_ratio=ratio)
print(f"min_lr_ratio {ratio:.1f}: lr halfway {halfway:.2e}")
assert math.isclose(halfway, 0.6e-3)
claim("halfway_lr_at_ratio", [halfway, ratio])  # checked by tests/test_tutorials.py

# %% [markdown]
# ## Exercise 4 — Inverted dropout

# %%
header("Exercise 4: dropout keeps the mean")
dropout = nn.Dropout(0.2)
ones = torch.ones(1_000_000)
dropped = dropout.train()(ones)
kept = dropped[dropped != 0]
print(f"zeroed: {(dropped == 0).float().mean():.3f}; kept values are {kept.unique().tolist()}; "
      f"mean {dropped.mean():.4f}")
assert abs((dropped == 0).float().mean().item() - 0.2) < 0.01
torch.testing.assert_close(kept, torch.full_like(kept, 1 / 0.8))
assert abs(dropped.mean().item() - 1.0) < 0.01
assert torch.equal(dropout.eval()(ones), ones)
claim("dropout_zeroed_and_mean", [(dropped == 0).float().mean(), dropped.mean()])  # checked by tests/test_tutorials.py

# %% [markdown]
# The kept values are scaled by `1/(1 − p) = 1.25` during training, so the expected value of
# every activation is unchanged and nothing needs rescaling at evaluation, where dropout simply
# passes its input through.

# %% [markdown]
# ## Exercise 5 — L1 at a constant rate
#
# The L1 step is `lr · λ · sign(w)` (times Adam's rescaling under Adam): the same size however
# close the weight is to zero. A weight closer to zero than one step does not stop there, it
# crosses it, and the next step pulls it back: it jitters around zero by about one step. Only
# a weight that is *exactly* 0 stops (`sign(0) = 0`), and a float never lands there by chance.
# With the cosine going to 0 the steps shrink to nothing at the end, so the jitter dies out and
# the weights settle near zero; at a constant rate they keep hovering, mostly above `1e-3`.
# Adam + L1 does the same: its step on such a weight is about `lr · sign(w)`, whatever `λ`.

# %%
header("Exercise 5: L1 at a constant and at a decaying rate")
n, d, relevant = 100, 60, 5
data = torch.Generator().manual_seed(0)  # the data of the lesson's section 3
X = torch.randn(n, d, generator=data)
w_true = torch.zeros(d)
w_true[:relevant] = torch.tensor([2.0, -1.5, 1.0, -0.7, 0.5])
y = X @ w_true + 0.5 * torch.randn(n, generator=data)
steps = pick(1000, 200)


def fit_l1(optimizer_name, lr, min_lr_ratio):
    torch.manual_seed(1)
    model = nn.Linear(d, 1)
    groups = param_groups(model, 0.0)
    optimizer = SGD(groups, lr=lr, momentum=0.9) if optimizer_name == "sgd" else AdamW(groups, lr=lr, weight_decay=0.0)
    config = TrainConfig(max_steps=steps, batch_size=n, lr=lr, warmup_steps=0, min_lr_ratio=min_lr_ratio,
                         weight_decay=0.0, l1=0.1, grad_clip=0.0, eval_every=steps, log_every=steps,
                         restore_best=False)
    train_stage(model, optimizer, lambda generator: None, lambda m, b: (((m(X).squeeze(1) - y) ** 2).mean(), n),
                config)
    w = model.weight.detach().flatten()
    return int((w.abs() < 1e-3).sum()), w[relevant:].abs().median().item()


results = {}
for name, lr in (("sgd", 0.05), ("adam", 0.02)):
    for schedule, ratio in (("cosine to 0", 0.0), ("constant", 1.0)):
        results[name, schedule] = fit_l1(name, lr, ratio)
        count, median = results[name, schedule]
        print(f"{name:>4} + L1, rate {schedule:>11}: {count:>2} weights below 1e-3; "
              f"median |w| of the {d - relevant} irrelevant {median:.1e}")
for name in ("sgd", "adam"):
    assert results[name, "constant"][0] < results[name, "cosine to 0"][0]  # fewer settle without decay
    assert results[name, "constant"][1] > 1e-3 > results[name, "cosine to 0"][1]  # they hover above 1e-3
