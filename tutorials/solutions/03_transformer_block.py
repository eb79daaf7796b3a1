# %% [markdown]
# # Solutions to Lesson 03 — The Transformer block and the GPT
#
# Each cell answers one exercise of `tutorials/03_transformer_block.py`, calling the library,
# and checks the answer with `assert`.

# %%
from dataclasses import replace

import torch

from minift.course import claim, header, pick, smoke
from minift.strategies.layers import count_parameters
from minift.model import GPT, GPTConfig, KVCache, lm_loss
from minift.optim import AdamW, param_groups
from minift.pretrain import encode_stream, window_batches
from minift.tokenizer import Tokenizer
from minift.trainer import TrainConfig, train_stage
from minift.world import corpus


def formula(V, Tmax, L, C, tied=True):
    """The lesson's parameter count (biases on)."""
    return V * C + Tmax * C + L * (12 * C * C + 13 * C) + 2 * C + (0 if tied else V * C)


# %% [markdown]
# ## Exercise 1 — GPT-2 small
#
# On the `meta` device tensors have shapes but no storage: 124 million parameters cost nothing.

# %%
header("Exercise 1: GPT-2 small")
gpt2_small = GPTConfig(vocab_size=50257, block_size=1024, n_layer=12, n_head=12, n_embd=768)
by_formula = formula(50257, 1024, 12, 768)
with torch.device("meta"):
    counted = GPT(gpt2_small).num_parameters()
print(f"formula {by_formula:,}   model {counted:,}")
assert by_formula == counted == 124_439_808
claim("gpt2_small_formula_and_model", [by_formula, counted])  # checked by tests/test_tutorials.py
print(f"of which the token embedding: {50257 * 768:,} ({50257 * 768 / counted:.0%})")

# %% [markdown]
# ## Exercise 2 — Without the residual
#
# One forward function with a switch, and the library's training loop (`train_stage` accepts
# any `loss_fn(model, batch)`), so both variants train in exactly the same way.

# %%
header("Exercise 2: training with and without the residual stream")
texts = corpus(pick(1000, 100), seed=0)
tok = Tokenizer.train(texts, 512)
stream = encode_stream(tok, texts)
val_stream = encode_stream(tok, corpus(pick(200, 50), seed=1))
counts = torch.bincount(stream, minlength=tok.vocab_size).float()
unigram = -(counts / counts.sum() * (counts / counts.sum()).clamp_min(1e-12).log()).sum().item()


def forward(model, ids, residual):
    x = model.transformer.wte(ids) + model.transformer.wpe(torch.arange(ids.size(1)))
    for block in model.transformer.h:
        if residual:
            x = block(x)  # x + attn(ln_1(x)), then x + mlp(ln_2(x))
        else:
            x = block.attn(block.ln_1(x))
            x = block.mlp(block.ln_2(x))
    return model.lm_head(model.transformer.ln_f(x))


steps = pick(150, 3)
val_x, val_y = window_batches(val_stream, 32, 32)(torch.Generator().manual_seed(1))
losses, first_grads = {}, {}
for residual in (True, False):
    torch.manual_seed(0)
    deep = GPT(GPTConfig(vocab_size=tok.vocab_size, block_size=32, n_layer=8, n_head=4, n_embd=64))
    lm_loss(forward(deep, val_x, residual)[:, :-1], val_x[:, 1:]).backward()  # gradients at init
    first_grads[residual] = [b.mlp.c_fc.weight.grad.norm().item() for b in deep.transformer.h]
    deep.zero_grad()
    state = train_stage(
        deep, AdamW(param_groups(deep, weight_decay=0.0), lr=2e-3), window_batches(stream, 32, 8),
        lambda m, batch, residual=residual: (lm_loss(forward(m, batch[0], residual), batch[1]), batch[1].numel()),
        TrainConfig(max_steps=steps, batch_size=8, lr=2e-3, warmup_steps=min(10, steps), eval_every=steps,
                    log_every=steps),
        evaluate=lambda m, residual=residual: {"val_loss": lm_loss(forward(m, val_x, residual), val_y).item()})
    losses[residual] = state.last_eval["val_loss"]
    print(f"residual={residual!s:>5}: val loss {losses[residual]:.2f} after {steps} steps; "
          f"grad norm of each block's c_fc at init:", " ".join(f"{g:.3f}" for g in first_grads[residual]))
print(f"unigram entropy (predict token frequencies, ignore the input): {unigram:.2f}")
# Not vanishing: at init, block 0's gradient without the residual is larger than with it.
assert first_grads[False][0] > first_grads[True][0], first_grads
if not smoke():
    assert losses[True] < losses[False] - 0.5
    assert losses[True] < unigram  # the residual model reads its input; measured 4.17 against 5.18

# %% [markdown]
# Without the additions the loss stalls near the unigram entropy: the model predicts frequent
# tokens whatever the input. The gradients at initialisation are *not* vanishing — the
# pre-LayerNorms rescale small activations, and their gradients with them. The trouble is that
# the output is a chain of 16 random transformations of the input, and nothing carries the
# token's identity up unchanged. With the residual stream the embedding reaches the head
# directly (the stack starts close to a bigram model) and each block only has to add a
# correction.

# %% [markdown]
# ## Exercise 3 — The cache's memory
#
# Keys and values: 2 tensors per layer, each (B, nh, max_len, hs) float32 (4 bytes).
# `bytes = 2 · L · B · nh · max_len · hs · 4 = 8 · L · B · max_len · C`.

# %%
header("Exercise 3: KV cache size")


def cache_bytes(config, batch, max_len, bytes_per_number=4):
    return 2 * config.n_layer * batch * config.n_head * max_len * (config.n_embd // config.n_head) * bytes_per_number


small = GPTConfig(vocab_size=1026, block_size=256, n_layer=4, n_head=4, n_embd=128)
cache = KVCache(small, batch_size=3, max_len=200, device="cpu", dtype=torch.float32)
real = sum(t.numel() * t.element_size() for t in cache.k + cache.v)
print(f"formula {cache_bytes(small, 3, 200):,} bytes, real KVCache {real:,} bytes")
assert real == cache_bytes(small, 3, 200)
claim("kv_cache_bytes_formula_and_real", [cache_bytes(small, 3, 200), real])  # checked by tests/test_tutorials.py
print(f"GPT-2 small, batch 8, 1024 positions: {cache_bytes(gpt2_small, 8, 1024) / 1e6:,.0f} MB "
      f"(the weights themselves: {counted * 4 / 1e6:,.0f} MB; MB = 10^6 bytes)")
assert cache_bytes(gpt2_small, 8, 1024) == 8 * 12 * 8 * 1024 * 768 == 603_979_776  # 8·L·B·max_len·C

# %% [markdown]
# ## Exercise 4 — Tying and freezing

# %%
header("Exercise 4: freezing the embedding, tied and untied")
config = GPTConfig(vocab_size=1026, block_size=256, n_layer=4, n_head=4, n_embd=128)
for tied in (True, False):
    model = GPT(replace(config, tie_weights=tied))
    model.transformer.wte.weight.requires_grad_(False)
    trainable, total = count_parameters(model)
    print(f"tied={tied!s:>5}: {trainable:,} of {total:,} trainable; head trainable: "
          f"{model.lm_head.weight.requires_grad}")
    assert model.lm_head.weight.requires_grad == (not tied)
    assert trainable == total - 1026 * 128  # only wte is frozen (tied: the head is that same matrix)

# %% [markdown]
# With tied weights the head *is* the embedding: freezing one freezes both, and the model can
# no longer change which token a vector scores highest for. Only the untied model can learn new
# output scores. Lesson 07 measures the cost on translation: the top two blocks of the tied base,
# embedding (so head) frozen, against full fine-tuning and against training from scratch.
