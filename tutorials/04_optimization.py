# %% [markdown]
# # Lesson 04 — Optimization: AdamW versus Adam + L2, L1, dropout, learning-rate schedules
#
# Every later lesson trains something with the same few tools: the AdamW optimizer, a learning
# rate that warms up and then decays, gradient clipping and, sometimes, dropout. This lesson takes
# each apart on problems small enough to see every number.
#
# **You will learn**
# - one AdamW step, line by line, and that minift's `AdamW` and `torch.optim.AdamW` agree with it;
# - why weight decay under Adam is *not* the same as an L2 penalty, on a regression you can read;
# - why an L1 penalty sets useless weights to (nearly) zero while L2 and weight decay only shrink them;
# - what dropout does to training and validation loss when data is scarce;
# - the warmup + cosine schedule `lr_at`, printed and drawn;
# - what gradient clipping changes (the length of the step) and what it keeps (the direction).
#
# **Prerequisites:** Lesson 03 (a GPT and its loss); gradient descent and `loss.backward()`.
#
# **Time:** about 45 minutes to read and run; the script runs in 28 s on 2 CPU cores (full mode,
# one thread; measured in `tutorials/TEACHING.md` section 3), a few seconds with `MINIFT_SMOKE=1`.
#
# Library code: `minift/optim.py` (`AdamW`, `SGD`, `l2_penalty`, `l1_penalty`, `lr_at`,
# `clip_grad_norm`, `param_groups`) and `minift/trainer.py` (`train_stage`, the loop every lesson uses).

# %%
import math

import torch

from minift.course import claim, header, key, lesson_seed, output_dir, pick, show, smoke
from minift.model import GPT, GPTConfig
from minift.optim import SGD, AdamW, clip_grad_norm, l2_penalty, lr_at, param_groups
from minift.plot import line_chart, lr_schedule_svg
from minift.pretrain import encode_stream, lm_batch_loss, stream_loss, window_batches
from minift.tokenizer import Tokenizer
from minift.trainer import TrainConfig, train_stage
from minift.world import corpus

SEED = lesson_seed()  # 0 unless MINIFT_SEED says otherwise (the teacher's guide measures the spread)
torch.manual_seed(SEED)
OUT = output_dir("04_optimization")  # charts go to a temporary folder, not the repository
torch.set_printoptions(precision=5, sci_mode=False)

# %% [markdown]
# ## 1. One AdamW step, by hand
#
# For a parameter `p` with gradient `g` (same shape), step count `t = 1, 2, ...`, all elementwise:
#
#     p     = p · (1 − lr · wd)                  decoupled weight decay: shrink first
#     m     = β1 · m + (1 − β1) · g              running mean of gradients       (shape of p)
#     v     = β2 · v + (1 − β2) · g²             running mean of squared gradients (shape of p)
#     m̂, v̂  = m / (1 − β1ᵗ), v / (1 − β2ᵗ)       undo the bias of starting m, v at zero
#     p     = p − lr · m̂ / (√v̂ + ε)
#
# Dividing by `√v̂` gives every weight a step of about `lr`, whatever the scale of its gradient.
# We run three steps by hand, with `minift.optim.AdamW` and with `torch.optim.AdamW`, from the
# same start on the same loss.

# %%
header("1. AdamW by hand versus minift versus torch")
lr, betas, eps, wd = 0.1, (0.9, 0.999), 1e-8, 0.1
start = torch.tensor([1.0, -2.0, 0.5, 3.0])
target = torch.tensor([0.0, 1.0, 2.0, 3.0])


def loss_of(p):
    return ((p - target) ** 2 * torch.tensor([1.0, 10.0, 0.1, 1.0])).sum()  # very different gradient scales


p_hand = start.clone()
m, v = torch.zeros(4), torch.zeros(4)
p_minift = start.clone().requires_grad_()
p_torch = start.clone().requires_grad_()
ours = AdamW([p_minift], lr=lr, betas=betas, eps=eps, weight_decay=wd)
theirs = torch.optim.AdamW([p_torch], lr=lr, betas=betas, eps=eps, weight_decay=wd)
for t in range(1, 4):
    p = p_hand.clone().requires_grad_()
    loss_of(p).backward()
    g = p.grad
    p_hand = p_hand * (1 - lr * wd)
    m = betas[0] * m + (1 - betas[0]) * g
    v = betas[1] * v + (1 - betas[1]) * g**2
    m_hat, v_hat = m / (1 - betas[0] ** t), v / (1 - betas[1] ** t)
    move = lr * m_hat / (v_hat.sqrt() + eps)
    p_hand = p_hand - move
    if t == 1:
        print("gradient at step 1:", g, "\nAdam's move at step 1:", move, "(each ±lr, whatever |g| was)")
    for param, optimizer in ((p_minift, ours), (p_torch, theirs)):
        optimizer.zero_grad()
        loss_of(param).backward()
        optimizer.step()
    print(f"step {t}: by hand {p_hand}\n        minift  {p_minift.detach()}\n        torch   {p_torch.detach()}")
    torch.testing.assert_close(p_minift.detach(), p_hand)
    torch.testing.assert_close(p_torch.detach(), p_hand)
# checked by tests/test_tutorials.py
claim("adamw_minift_and_torch_minus_hand", [(p_minift - p_hand).abs().max(), (p_torch - p_hand).abs().max()])

# %% [markdown]
# ## 2. Adam + L2 is not AdamW
#
# An **L2 penalty** adds `½ λ ‖θ‖²` to the loss, so `λ θ` joins the gradient *before* Adam sees
# it — and Adam divides the whole gradient by `√v̂`. A weight whose data gradient is large gets
# a large `v̂`, and its pull towards zero is divided by it: weights are decayed unevenly, tangled
# with their gradient history. **AdamW** applies the pull directly, `θ ← θ(1 − lr·wd)`: every
# weight shrinks by the same fraction each step (Loshchilov & Hutter).
#
# A linear regression makes the difference visible: six features with scales 10, 1 and 0.1
# (so their gradients differ a hundredfold), each with a true weight sized so that every
# feature contributes about as much to `y`. We fit it three ways.

# %%
header("2. Adam + L2 versus AdamW on a linear regression")
n, d = 256, 6
scales = torch.tensor([10.0, 10.0, 1.0, 1.0, 0.1, 0.1])
w_true = torch.tensor([0.3, -0.3, 1.0, -1.0, 3.0, -3.0])
X = torch.randn(n, d) * scales  # (n, d)
y = X @ w_true + 0.1 * torch.randn(n)  # (n,)
steps = pick(1000, 50)


def fit(l2=0.0, weight_decay=0.0):
    w = torch.zeros(d, requires_grad=True)
    optimizer = AdamW([w], lr=0.02, weight_decay=weight_decay)  # weight_decay=0: plain Adam
    for _ in range(steps):
        loss = ((X @ w - y) ** 2).mean() + l2_penalty([w], l2)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return w.detach(), ((X @ w - y) ** 2).mean().item()


fits = {"no regularization": fit(), "Adam + L2 (λ=1)": fit(l2=1.0), "AdamW (wd=1)": fit(weight_decay=1.0)}
print(f"{'feature scale':>14} {'true w':>7}" + "".join(f"{name:>20}" for name in fits))
for i in range(d):
    print(f"{scales[i]:>14.1f} {w_true[i]:>7.1f}" + "".join(f"{w[i]:>20.3f}" for w, _ in fits.values()))
print(f"{'‖w‖':>22}" + "".join(f"{w.norm():>20.3f}" for w, _ in fits.values()))
print(f"{'train MSE':>22}" + "".join(f"{mse:>20.3f}" for _, mse in fits.values()))
(w_l2, _), (w_adamw, _) = fits["Adam + L2 (λ=1)"], fits["AdamW (wd=1)"]
key("Adam + L2: max |w| of the weak features", w_l2[4:].abs().max(), asserted="below 0.2")
key("AdamW: min |w| of the weak features", w_adamw[4:].abs().min(), asserted="above 0.8 (and every weight below 1.1)")
if not smoke():  # the claims of the text below, checked
    assert w_l2[4:].abs().max() < 0.2 < 0.8 < w_adamw[4:].abs().min()  # L2 crushes the weak features
    assert w_adamw.abs().max() < 1.1  # AdamW caps every weight near 1/wd

# l2_penalty is exactly the coupled L2 of torch.optim.Adam(weight_decay=...): check a few steps.
w1, w2 = torch.zeros(d, requires_grad=True), torch.zeros(d, requires_grad=True)
adam_l2 = AdamW([w1], lr=0.02, weight_decay=0.0)
torch_adam = torch.optim.Adam([w2], lr=0.02, weight_decay=1.0)
for _ in range(5):
    for w, optimizer, penalty in ((w1, adam_l2, 1.0), (w2, torch_adam, 0.0)):
        optimizer.zero_grad()
        (((X @ w - y) ** 2).mean() + l2_penalty([w], penalty)).backward()
        optimizer.step()
torch.testing.assert_close(w1, w2)
claim("adam_l2_minus_torch_adam", (w1 - w2).abs().max())  # checked by tests/test_tutorials.py
print("Adam + l2_penalty == torch.optim.Adam(weight_decay=λ): checked")

# %% [markdown]
# What to notice:
# - **Adam + L2** ends at the ridge-regression answer: the weights of the *small-scale* features
#   (weak data gradients) are crushed towards 0, while the large-scale ones barely move.
# - **AdamW** leaves small weights alone and caps the *large* ones: a weight stops growing where
#   the shrink `lr·wd·|w|` equals Adam's step of about `lr`, i.e. near `|w| ≈ 1/wd`.
# - Same strength on paper, different models. That is why minift (like GPT-2's training) uses
#   AdamW, and why `trainer.TrainConfig` keeps `weight_decay` and `l2` as separate knobs.
#
# ## 3. L1 versus L2 versus decoupled decay: which weights end at zero?
#
# An **L1 penalty** adds `λ Σ|w|` to the loss. Its gradient is `λ · sign(w)`: a pull of the same
# size however small the weight already is (autograd gives `sign(0) = 0` at exactly zero). L2's
# pull, `λ w`, fades as the weight shrinks, and decoupled decay removes a fixed *fraction*
# `lr · wd` of the weight each step: both shrink a weight in proportion to its size, so neither
# ever brings one to zero. L1 moves every weight by the same amount towards zero, so a weight
# whose data gradient is weaker than `λ` goes all the way: L1 *selects* features.
#
# The problem: 60 features, of which only the first 5 matter, and only 100 examples, so the
# 55 irrelevant ones can fit noise. We fit a linear model four ways with `train_stage`, the
# library's own loop, its knobs `TrainConfig.l1`, `TrainConfig.l2` and `weight_decay`:
# `minift.optim.SGD` (momentum 0.9) with no penalty, with L1 and with L2, and `AdamW` with
# decoupled decay. The trainer puts L1 on the *matrices* only (the weights that decay), not on
# the bias. The rate follows a cosine down to 0 (`min_lr_ratio=0`), for a reason the exercises
# explore. Then we count the weights that end near zero, `|w| < 1e-3`.

# %%
header("3. L1 versus L2 versus decoupled decay: weights near zero")
n, d, relevant = 100, 60, 5
data = torch.Generator().manual_seed(0)  # its own generator: the same data however the cells ran
X = torch.randn(n, d, generator=data)  # (n, d)
w_true = torch.zeros(d)
w_true[:relevant] = torch.tensor([2.0, -1.5, 1.0, -0.7, 0.5])
y = X @ w_true + 0.5 * torch.randn(n, generator=data)  # (n,)
steps = pick(1000, 200)
NEAR_ZERO = 1e-3


def fit_linear(optimizer_name, lr, weight_decay=0.0, **penalty):
    torch.manual_seed(SEED + 1)
    model = torch.nn.Linear(d, 1)  # weight (1, d): a matrix, so it decays and L1 acts on it
    groups = param_groups(model, weight_decay)
    if optimizer_name == "sgd":
        optimizer = SGD(groups, lr=lr, momentum=0.9)
    else:
        optimizer = AdamW(groups, lr=lr)
    config = TrainConfig(max_steps=steps, batch_size=n, lr=lr, warmup_steps=0, min_lr_ratio=0.0,
                         weight_decay=weight_decay, grad_clip=0.0, eval_every=steps, log_every=steps,
                         restore_best=False, **penalty)
    train_stage(model, optimizer, lambda generator: None,  # every step sees the whole data set
                lambda m, batch: (((m(X).squeeze(1) - y) ** 2).mean(), n), config, seed=SEED)
    return model.weight.detach().flatten(), ((model(X).squeeze(1) - y) ** 2).mean().item()


regularized = {
    "SGD, none": fit_linear("sgd", 0.05),
    "SGD + L1 (λ=0.1)": fit_linear("sgd", 0.05, l1=0.1),
    "SGD + L2 (λ=0.1)": fit_linear("sgd", 0.05, l2=0.1),
    "AdamW (wd=0.1)": fit_linear("adamw", 0.02, weight_decay=0.1),
}
near_zero = {name: int((w.abs() < NEAR_ZERO).sum()) for name, (w, _) in regularized.items()}
for name, count in near_zero.items():
    key(f"weights below 1e-3: {name}", count, asserted="the most of the four" if "L1" in name else None)
print(f"{'':>18} {f'|w| < {NEAR_ZERO:g}':>12} {f'max |w|, the {d - relevant} irrelevant':>27} {'train MSE':>10}   "
      f"the 5 relevant weights (true: {[round(v, 1) for v in w_true[:relevant].tolist()]})")
for name, (w, mse) in regularized.items():
    print(f"{name:>18} {near_zero[name]:>12} {w[relevant:].abs().max():>27.4f} {mse:>10.3f}   "
          f"{[round(v, 2) for v in w[:relevant].tolist()]}")
# The claims of the text, checked (they hold at the smoke run's size too): L1 ends with the most
# weights near zero, and none of them is a weight that matters.
assert near_zero["SGD + L1 (λ=0.1)"] > max(v for k, v in near_zero.items() if k != "SGD + L1 (λ=0.1)")
w_l1, w_none = regularized["SGD + L1 (λ=0.1)"][0][:relevant], regularized["SGD, none"][0][:relevant]
assert (w_l1.abs() > 0.1).all() and (w_l1.abs() < w_none.abs()).all()  # kept, each a little smaller

# %% [markdown]
# What to notice:
# - **L1** leaves most of the 55 irrelevant weights near zero and keeps the 5 that matter, each a
#   little smaller than without a penalty (L1 shrinks by a constant, not a fraction).
# - **L2** and **decoupled decay** shrink the weights and zero (almost) none of them: the irrelevant
#   weights stay small but not zero, each still fitting some of the noise (compare the largest of
#   them with L1's).
# - Under SGD, an L2 penalty and SGD's `weight_decay` are the same thing: both add `λw` to the
#   gradient (without momentum, `w ← w − lr(g + λw)`); only under Adam does "decoupled" make the
#   difference of section 2.
# - The counts depend on the threshold `1e-3`: L1's near-zero weights are not *exactly* zero, they
#   jitter around it by a step that the decaying rate shrinks (exercise 5).
#
# ## 4. Dropout against overfitting
#
# Dropout zeroes a random fraction `p` of activations during training (and scales the rest by
# `1/(1−p)`), so no unit can rely on one particular other unit. At evaluation it is off. We train
# the same tiny GPT on only 40 paragraphs, with dropout 0 and 0.2, and watch the *training*
# loss and the *validation* loss (held-out paragraphs).

# %%
header("4. Dropout: train and validation loss on a tiny data set")
tok = Tokenizer.train(corpus(pick(2000, 200), seed=0), 512)
train_stream = encode_stream(tok, corpus(40, seed=0))
val_stream = encode_stream(tok, corpus(pick(200, 40), seed=1))
print(f"train: {len(train_stream):,} tokens; validation: {len(val_stream):,} tokens")
steps = pick(600, 4)
curves = {}
for dropout in (0.0, 0.2):
    torch.manual_seed(SEED)
    model = GPT(GPTConfig(vocab_size=tok.vocab_size, block_size=32, n_layer=2, n_head=4, n_embd=64,
                          dropout=dropout))
    history = []

    def evaluate(m):
        windows = pick(64, 4)  # up to 64 windows of 32 tokens from each stream
        losses = (stream_loss(m, train_stream, 32, "cpu", max_windows=windows),
                  stream_loss(m, val_stream, 32, "cpu", max_windows=windows))
        history.append(losses)
        return {"train_loss": losses[0], "val_loss": losses[1]}

    config = TrainConfig(max_steps=steps, batch_size=16, lr=3e-3, warmup_steps=min(20, steps), weight_decay=0.0,
                         eval_every=max(2, steps // 6), log_every=steps, restore_best=False)
    train_stage(model, AdamW(param_groups(model, 0.0), lr=config.lr), window_batches(train_stream, 32, 16),
                lm_batch_loss("cpu"), config, evaluate=evaluate, seed=SEED)
    curves[dropout] = history
    print(f"dropout {dropout}: (train, validation) loss at each evaluation:")
    print("   ", "  ".join(f"({a:.2f}, {b:.2f})" for a, b in history))
eval_steps = [0] + [min(steps, i * max(2, steps // 6)) for i in range(1, len(curves[0.0]))]
series = [{"name": f"{split}, dropout {p}", "x": eval_steps, "y": [h[k] for h in curves[p]],
           "style": "solid" if k == 0 else "dashed", "color": "#0072B2" if p == 0 else "#D55E00", "markers": True}
          for p in curves for k, split in enumerate(("train", "validation"))]
line_chart(series, title="Dropout on 40 paragraphs", xlabel="step", ylabel="loss (nats/token)",
           path=OUT / "dropout.svg")
show(OUT / "dropout.svg")  # in a notebook the chart appears here; from a terminal, open the path
key("dropout 0.0: final validation loss", curves[0.0][-1][1])
key("dropout 0.2: final validation loss", curves[0.2][-1][1], asserted="below dropout 0.0's")
if not smoke():
    assert curves[0.2][-1][1] < curves[0.0][-1][1]  # validation loss at the end: lower with dropout

# %% [markdown]
# What to notice (in the chart above, or at the path printed): without dropout the training loss
# falls towards zero while the validation loss, after its minimum, climbs steadily — the model
# is memorising its 40 paragraphs. With dropout the training loss stays higher (the model is
# handicapped while it trains), and the validation loss climbs much more slowly: dropout does
# not stop overfitting, it delays it. With plenty of data there is little to gain, and minift's
# base model trains with dropout 0.
#
# ## 5. The learning-rate schedule: warmup, then cosine
#
# At the start, Adam's `v̂` is estimated from a handful of gradients and the weights are random:
# big steps are risky, so the rate **warms up** linearly. Then it follows half a **cosine** down
# to `min_lr_ratio · max_lr`: large steps while far from a minimum, small ones to settle.
# `lr_at(step, max_lr, warmup_steps, total_steps, min_lr_ratio)` is the whole schedule;
# `train_stage` calls it before every step, with a stage's `max_steps` as `total_steps`.
# `minift.plot.lr_schedule_svg` draws it for any stages (a recipe's, or dicts as below), calling
# `lr_at` exactly as the trainer does; `overlay=True` starts them all at step 0 to compare.

# %%
header("5. lr_at: warmup + cosine")
max_lr, warmup, total = 1e-3, 10, 110
for step in (0, 4, 9, 10, 35, 60, 85, 110, 200):
    print(f"step {step:>3}: lr {lr_at(step, max_lr, warmup, total):.2e}")
lr_schedule_svg([{"name": f"min_lr_ratio {r}", "lr": max_lr, "warmup_steps": warmup, "max_steps": total,
                  "min_lr_ratio": r} for r in (0.1, 0.0)], overlay=True, after=20, path=OUT / "schedule.svg")
show(OUT / "schedule.svg")
assert math.isclose(lr_at(60, max_lr, warmup, total), 5.5e-4)  # halfway: the mean of max and min
# checked by tests/test_tutorials.py
claim("lr_at", {s: lr_at(s, max_lr, warmup, total) for s in (0, 4, 9, 10, 35, 60, 85, 110, 200)})

# %% [markdown]
# ## 6. Gradient clipping
#
# One unlucky batch can produce a huge gradient and throw the weights far away. Clipping
# measures the *global* norm of all gradients, `‖g‖ = √(Σ ‖g_i‖²)`, and if it exceeds `max_norm`
# multiplies every gradient by `max_norm / ‖g‖`: the step keeps its direction, only its length
# is capped. We compare `clip_grad_norm` with PyTorch's `clip_grad_norm_`.

# %%
header("6. clip_grad_norm")
model = GPT(GPTConfig(vocab_size=tok.vocab_size, block_size=32, n_layer=2, n_head=4, n_embd=64))
x, y = window_batches(train_stream, 32, 8)(torch.Generator().manual_seed(0))
lm_batch_loss("cpu")(model, (x, y))[0].mul(100.0).backward()  # an exaggerated loss: large gradients
params = [p for p in model.parameters() if p.grad is not None]
before = torch.cat([p.grad.flatten() for p in params])
copies = [p.grad.clone() for p in params]
norm = clip_grad_norm(params, max_norm=1.0)
after = torch.cat([p.grad.flatten() for p in params])
# torch's version clips the .grad of the parameters it is given: give it holders of the copies.
holders = [torch.nn.Parameter(torch.zeros_like(g)) for g in copies]
for holder, g in zip(holders, copies):
    holder.grad = g
torch_norm = torch.nn.utils.clip_grad_norm_(holders, max_norm=1.0)
torch.testing.assert_close(after, torch.cat([h.grad.flatten() for h in holders]))
cosine = torch.nn.functional.cosine_similarity(before, after, dim=0)
print(f"norm before {norm:.2f} (torch: {torch_norm:.2f}), after {after.norm():.4f}; "
      f"cosine(before, after) = {cosine:.4f}")
claim("norm_before_after_and_cosine", [norm, after.norm(), cosine])  # checked by tests/test_tutorials.py

# %% [markdown]
# ## Exercises
#
# 1. **Bias correction.** Repeat section 1 without dividing by `1 − β1ᵗ` and `1 − β2ᵗ`. How big
#    is the first step now, compared with `lr`? Why does the corrected first step move every
#    weight by almost exactly `lr`?
# 2. **What decays?** `param_groups(model, weight_decay=0.1)` gives matrices decay and the
#    rest none. For the lesson's GPT, list which parameters land in the no-decay group and count
#    their elements. Why would decaying LayerNorm gains towards 0 be a bad idea?
# 3. **A schedule to order.** Find the `min_lr_ratio` for which the learning rate halfway
#    through the cosine is 60 % of `max_lr`, and check it with `lr_at`.
# 4. **Inverted dropout.** Show that `nn.Dropout(0.2)` in training mode keeps the mean of a
#    large tensor of ones near 1 (how?), and that in eval mode it is the identity.
# 5. **L1 at a constant rate.** Refit section 3's SGD + L1 with `min_lr_ratio=1.0` (no decay).
#    How many weights end below `1e-3` now, and how large are the irrelevant ones typically (their
#    median `|w|`)? Why does a subgradient step not land on zero? Do the same with Adam + L1
#    (`AdamW` with `weight_decay=0` and `l1=0.1`), at a constant and at a decaying rate.
#
# Solutions: `tutorials/solutions/04_optimization.py`.
