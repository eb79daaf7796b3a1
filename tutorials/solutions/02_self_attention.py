# %% [markdown]
# # Solutions to Lesson 02 — Self-attention
#
# Each cell answers one exercise of `tutorials/02_self_attention.py`, calling the library, and
# checks the answer with `assert`.

# %%
import math

import torch

from minift.course import claim, header, pick
from minift.model import CausalSelfAttention, GPTConfig, KVCache

torch.manual_seed(0)
B, T, C, nh = 2, 6, 32, 4
hs = C // nh
config = GPTConfig(n_embd=C, n_head=nh, attn_impl="manual")
attn = CausalSelfAttention(config).eval()


def attention(module, x, causal=True):
    """Section 3 of the lesson as a function, with the mask optional: x (B, T, C) -> (B, T, C)."""
    Bx, Tx, Cx = x.shape
    q, k, v = (t.view(Bx, Tx, nh, hs).transpose(1, 2) for t in module.c_attn(x).split(Cx, dim=2))
    att = q @ k.transpose(-2, -1) / math.sqrt(hs)  # (B, nh, T, T)
    if causal:
        att = att.masked_fill(~torch.ones(Tx, Tx, dtype=torch.bool).tril(), float("-inf"))
    y = att.softmax(dim=-1) @ v  # (B, nh, T, hs)
    return module.c_proj(y.transpose(1, 2).reshape(Bx, Tx, Cx))


# %% [markdown]
# ## Exercise 1 — Why the mask?

# %%
header("Exercise 1: the future leaks without the mask")
x = torch.randn(B, T, C)
x_changed = x.clone()
x_changed[:, -1] = torch.randn(B, C)  # only the last token differs
with torch.no_grad():
    for causal in (True, False):
        diff = (attention(attn, x, causal)[:, 0] - attention(attn, x_changed, causal)[:, 0]).abs().max().item()
        print(f"mask {'on ' if causal else 'off'}: output at position 0 moved by {diff:.2e}")
        assert diff < 1e-6 if causal else diff > 1e-3
        claim(f"position_0_moved_mask_{'on' if causal else 'off'}", diff)  # checked by tests/test_tutorials.py
    # The library's module has the mask built in: position 0 ignores the last token.
    torch.testing.assert_close(attn(x)[:, 0], attn(x_changed)[:, 0])
print("with the mask, position 0 never sees the future; without it, it reads the answer")

# %% [markdown]
# A language model learns to predict token t + 1 at position t, for every position of a sequence
# in one forward pass. Without the mask, position t reads the tokens after it, the answer
# included: training would teach it to copy the next token, and at generation, where the future
# is not written yet, there is nothing to copy. The mask lets each position see only its past, so
# one pass trains T honest next-token predictions at once.

# %% [markdown]
# ## Exercise 2 — Why √hs?
#
# For unit-variance q and k, `q·k` is a sum of hs products of variance 1, so its standard
# deviation is √hs. Dividing by √hs brings it back to 1.

# %%
header("Exercise 2: score spread and softmax entropy")


def entropy(p):
    return -(p * p.clamp_min(1e-12).log()).sum(-1).mean().item()


n_keys = 64
print(f"{'hs':>4} {'std q.k':>8} {'std scaled':>11} {'entropy':>8} {'entropy scaled':>15}"
      f"   (uniform: {math.log(n_keys):.2f})")
results = {}
for size in (8, 64, 512):
    q, k = torch.randn(pick(256, 32), size), torch.randn(n_keys, size)
    raw = q @ k.T
    scaled = raw / math.sqrt(size)
    results[size] = (entropy(raw.softmax(-1)), entropy(scaled.softmax(-1)))
    print(f"{size:>4} {raw.std():8.2f} {scaled.std():11.2f} {results[size][0]:8.2f} {results[size][1]:15.2f}")
    # The spread of q·k is √hs: scaled, it is 1 at every width (a sample std: 1.00-1.03 measured).
    assert abs(scaled.std().item() - 1) < 0.1, (size, scaled.std())
assert results[512][0] < 0.5 < results[512][1]  # unscaled: nearly one-hot; scaled: still spread out
assert results[8][0] > results[64][0] > results[512][0]  # unscaled, the wider the head the peakier

# %% [markdown]
# Without the scale, wide heads give huge scores and the softmax becomes nearly one-hot: almost
# all weight on one key, and almost zero gradient for the others, so the head struggles to learn.

# %% [markdown]
# ## Exercise 3 — Parameter count
#
# `c_attn`: C×3C weights + 3C biases; `c_proj`: C×C + C. Total `4C² + 4C`.

# %%
header("Exercise 3: 4C^2 + 4C")
for width in (32, 128, 768):
    module = CausalSelfAttention(GPTConfig(n_embd=width, n_head=4))
    counted = sum(p.numel() for p in module.parameters())
    print(f"C={width:>4}: formula {4 * width * width + 4 * width:>10,}  counted {counted:>10,}")
    assert counted == 4 * width * width + 4 * width

# %% [markdown]
# ## Exercise 4 — One query at a time (the KV cache)

# %%
header("Exercise 4: the last position alone, with a KV cache")
x = torch.randn(B, T, C)
with torch.no_grad():
    full = attn(x)  # (B, T, C)
    cache = KVCache(config, batch_size=B, max_len=T, device="cpu", dtype=torch.float32)
    attn(x[:, :-1], cache=cache)  # the first T-1 positions fill the cache
    cache.length = T - 1  # GPT.forward_embeds advances the length after all layers; we do it here
    last = attn(x[:, -1:], cache=cache)  # one query, T keys and values
print("full call, last row:", full[0, -1, :4])
print("cached call:        ", last[0, 0, :4])
torch.testing.assert_close(last[:, 0], full[:, -1])
claim("cached_last_minus_full_last", (last[:, 0] - full[:, -1]).abs().max())  # checked by tests/test_tutorials.py

# %% [markdown]
# A past position's key and value depend only on that position's input, which never changes,
# so they can be kept. Its query is only used to compute *its own* output, which was produced
# already; only the newest position needs a query.
