# %% [markdown]
# # Lesson 02 — Self-attention: from the formula to the code, with shapes
#
# Self-attention is the one place in a GPT where positions exchange information. This lesson
# computes it by hand for one head, then for all heads at once, and proves the result equal to
# minift's `CausalSelfAttention` — both its readable path (`attn_impl="manual"`) and its fast
# path (PyTorch's fused `scaled_dot_product_attention`, `attn_impl="sdpa"`). Then it trains a
# tiny model for a few seconds and looks at what its heads attend to.
#
# **You will learn**
# - the attention formula `softmax(q kᵀ / √hs + M) v`, and the shape of every tensor in it;
# - what the causal mask `M` does and why it makes next-token training possible;
# - how `nh` heads run side by side as one `(B, nh, T, hs)` tensor;
# - how to read attention weights of a trained model, printed and as a heat map per head.
#
# **Prerequisites:** Lesson 01 (tokens); PyTorch tensors, matrix products, `softmax`.
#
# **Time:** about 45 minutes to read and run; the script runs in 30 s on 2 CPU cores (full mode,
# one thread; measured in `tutorials/TEACHING.md` section 3), a few seconds with `MINIFT_SMOKE=1`.
#
# Library code: `minift/model.py` (`CausalSelfAttention`), `minift/figures.py` (`attention_maps`) and
# `minift/plot.py` (`attention_svg`, the heat map).

# %%
import math
import time

import torch
import torch.nn.functional as F

from minift.course import claim, header, key, lesson_seed, output_dir, pick, show
from minift.figures import attention_maps, token_labels
from minift.model import GPT, CausalSelfAttention, GPTConfig
from minift.optim import AdamW, param_groups
from minift.plot import attention_svg
from minift.pretrain import encode_stream, lm_batch_loss, stream_loss, window_batches
from minift.tokenizer import Tokenizer
from minift.trainer import TrainConfig, train_stage
from minift.world import corpus

SEED = lesson_seed()  # 0 unless MINIFT_SEED says otherwise (the teacher's guide measures the spread)
torch.manual_seed(SEED)
OUT = output_dir("02_self_attention")  # the heat maps go to a temporary folder, not the repository
B, T, C, nh = 2, 6, 32, 4  # batch, sequence length, width, heads
hs = C // nh  # head size: each head works in an 8-dimensional space
config = GPTConfig(n_embd=C, n_head=nh, attn_impl="manual")
attn = CausalSelfAttention(config).eval()  # eval(): no dropout (it is 0 anyway)
x = torch.randn(B, T, C)  # stands for B sequences of T token vectors
header("Shapes")
print(f"B={B} sequences, T={T} positions, C={C} channels, nh={nh} heads of hs={hs}")
print("x:", tuple(x.shape))

# %% [markdown]
# ## 1. One head, by hand
#
# Each position's vector `x_t` (C numbers) is projected three ways:
#
# - a **query** `q_t = x_t W_q` — what this position is looking for;
# - a **key** `k_t = x_t W_k` — what this position offers;
# - a **value** `v_t = x_t W_v` — what it hands over if chosen.
#
# minift (like GPT-2) keeps the three matrices side by side in one linear layer `c_attn`,
# `C -> 3C`; we cut its output in three, and take the first `hs` channels of each for head 0.
#
#     q, k, v    (B, T, hs)
#     scores = q kᵀ / √hs                     (B, T, T)   row t: how well query t matches each key
#     weights = softmax(scores + M)           (B, T, T)   each row sums to 1
#     y = weights v                           (B, T, hs)  a weighted average of the values
#
# Dividing by `√hs` keeps the scores' spread near 1 whatever the head size, so the softmax does
# not saturate at the start of training.

# %%
header("1. One head, by hand")
qkv = x @ attn.c_attn.weight.T + attn.c_attn.bias  # (B, T, 3C): same as attn.c_attn(x)
q, k, v = qkv.split(C, dim=2)  # each (B, T, C)
q0, k0, v0 = q[..., :hs], k[..., :hs], v[..., :hs]  # head 0: the first hs channels, (B, T, hs)
scores = q0 @ k0.transpose(-2, -1) / math.sqrt(hs)  # (B, T, hs) @ (B, hs, T) -> (B, T, T)
print("q0, k0, v0:", tuple(q0.shape), " scores:", tuple(scores.shape))

# %% [markdown]
# ## 2. The causal mask
#
# When training, every position predicts the *next* token. If position 3 could look at
# position 4, it would simply read the answer. The mask `M` is 0 on and below the diagonal and
# −∞ above it: after the softmax, `e^−∞ = 0`, so a position gives zero weight to the future.

# %%
header("2. The causal mask and the softmax")
causal = torch.ones(T, T, dtype=torch.bool).tril()  # True where query t may look at key s (s <= t)
print("mask (1 = may look):\n", causal.int())
weights0 = scores.masked_fill(~causal, float("-inf")).softmax(dim=-1)  # (B, T, T)
torch.set_printoptions(precision=2, sci_mode=False)
print("attention weights of head 0, first sequence:\n", weights0[0].detach())
print("row sums:", weights0[0].sum(dim=-1).detach())
y0 = weights0 @ v0  # (B, T, T) @ (B, T, hs) -> (B, T, hs)
print("y0:", tuple(y0.shape))
assert torch.all(weights0[0].triu(diagonal=1) == 0)
claim("weight_on_the_future", weights0.triu(diagonal=1).abs().sum())  # checked by tests/test_tutorials.py

# %% [markdown]
# The first row has one choice only (position 0 sees only itself), so its weight is 1. With
# random weights and random inputs the other rows follow no pattern; training is what gives
# heads something to look for (section 5).
#
# ## 3. All heads at once: `(B, nh, T, hs)`
#
# Running `nh` heads in a Python loop would be slow. Instead, split the channel axis `C` into
# `(nh, hs)` and move the head axis next to the batch axis: every matrix product then runs over
# `(B, nh)` as if they were one big batch.
#
#     q: (B, T, C) --view--> (B, T, nh, hs) --transpose(1, 2)--> (B, nh, T, hs)
#     weights: (B, nh, T, T);  y: (B, nh, T, hs) --back--> (B, T, nh, hs) --> (B, T, C)
#
# The heads' outputs sit side by side in `C` again, and `c_proj` (C -> C) mixes them.

# %%
header("3. Multi-head: reshape to (B, nh, T, hs)")
qh = q.view(B, T, nh, hs).transpose(1, 2)  # (B, nh, T, hs)
kh = k.view(B, T, nh, hs).transpose(1, 2)
vh = v.view(B, T, nh, hs).transpose(1, 2)
print("q:", tuple(q.shape), "->", tuple(qh.shape))
assert torch.equal(qh[:, 0], q0)  # head 0 of the reshape is exactly our slice
att = (qh @ kh.transpose(-2, -1)) / math.sqrt(hs)  # (B, nh, T, T)
att = att.masked_fill(~causal, float("-inf")).softmax(dim=-1)
y = att @ vh  # (B, nh, T, hs)
y = y.transpose(1, 2).contiguous().view(B, T, C)  # (B, T, C): heads side by side again
out_by_hand = attn.c_proj(y)
print("weights:", tuple(att.shape), " output:", tuple(out_by_hand.shape))

# %% [markdown]
# ## 4. The library: the readable path and the fast path
#
# `CausalSelfAttention.forward` is the same few lines. Its `sdpa` path calls
# `F.scaled_dot_product_attention`, a fused kernel that never stores the `(T, T)` weights:
# the same numbers, faster and with less memory. We load the same weights into both modules
# and compare, up to float rounding, with `torch.testing.assert_close`.
#
# For plain causal attention the library passes `is_causal=True` rather than a (T, T) mask
# tensor: the kernel then builds the triangle itself, and on a GPU only that form lets PyTorch
# pick FlashAttention. A mask tensor is still used where it is needed: left padding in a batch
# of prompts, or several new tokens added at once after a KV cache (lesson 03).

# %%
header("4. minift's CausalSelfAttention: manual and sdpa paths")
with torch.no_grad():
    out_manual = attn(x)
    fast = CausalSelfAttention(GPTConfig(n_embd=C, n_head=nh, attn_impl="sdpa")).eval()
    fast.load_state_dict(attn.state_dict())
    out_sdpa = fast(x)
torch.testing.assert_close(out_by_hand.detach(), out_manual)
torch.testing.assert_close(out_manual, out_sdpa)
print("by hand == manual path == sdpa path")
claim("by_hand_minus_manual", (out_by_hand - out_manual).abs().max())  # checked by tests/test_tutorials.py
claim("manual_minus_sdpa", (out_manual - out_sdpa).abs().max())  # checked by tests/test_tutorials.py
# The whole of section 3, from q, k, v to the heads' outputs, is this one PyTorch call:
y_fused = F.scaled_dot_product_attention(qh, kh, vh, is_causal=True)  # (B, nh, T, hs)
torch.testing.assert_close(y_fused.transpose(1, 2).reshape(B, T, C), y)

# Timing at a more realistic size: the fused kernel avoids materialising (B, nh, T, T).
big = dict(n_embd=128, n_head=4)
slow_path = CausalSelfAttention(GPTConfig(**big, attn_impl="manual")).eval()
fast_path = CausalSelfAttention(GPTConfig(**big, attn_impl="sdpa")).eval()
fast_path.load_state_dict(slow_path.state_dict())
xb = torch.randn(8, pick(256, 32), 128)
with torch.no_grad():
    for name, module in (("manual", slow_path), ("sdpa", fast_path)):
        module(xb)  # warm-up
        t0 = time.perf_counter()
        for _ in range(pick(20, 2)):
            module(xb)
        print(f"{name:>6}: {(time.perf_counter() - t0) / pick(20, 2) * 1000:6.2f} ms per call, x {tuple(xb.shape)}")

# %% [markdown]
# ## 5. What does a trained head look at?
#
# Random weights attend almost uniformly. To see structure we train a tiny GPT (2 blocks of 4
# heads, width 64) on the generated world for a few seconds with the library's training loop,
# then recompute the attention weights of each head on one sentence. The helper below is our
# section 3 for one layer, reading the layer's own weights; we check it against the module, so
# the weights we print are the ones the model really uses, and against the library's
# `minift.figures.attention_maps`, which the heat maps below are drawn from.

# %%
header("5. Training a tiny GPT for a few seconds")
texts = corpus(pick(2000, 100), seed=0)
tok = Tokenizer.train(texts, 1024)  # whole words for most of this world
stream = encode_stream(tok, texts)
model = GPT(GPTConfig(vocab_size=tok.vocab_size, block_size=64, n_layer=2, n_head=4, n_embd=64))
steps = pick(600, 20)
optimizer = AdamW(param_groups(model, weight_decay=0.1), lr=3e-3)
train_config = TrainConfig(max_steps=steps, batch_size=16, lr=3e-3, warmup_steps=20, eval_every=steps,
                           log_every=max(1, steps // 4))
t0 = time.perf_counter()
val = encode_stream(tok, corpus(pick(200, 20), seed=1))  # held-out paragraphs
state = train_stage(model, optimizer, window_batches(stream, 64, 16), lm_batch_loss("cpu"), train_config,
                    evaluate=lambda m: {"val_loss": stream_loss(m, val, 64, "cpu")}, seed=SEED)
print(f"{model.num_parameters():,} parameters, {steps} steps in {time.perf_counter() - t0:.1f} s, "
      f"validation loss {state.last_eval['val_loss']:.2f} "
      f"(a uniform guess: ln {tok.vocab_size} = {math.log(tok.vocab_size):.2f})")
# checked by tests/test_tutorials.py
claim("val_loss_and_ln_V", [state.last_eval["val_loss"], math.log(tok.vocab_size)])
key("tiny model's validation loss (nats/token)", state.last_eval["val_loss"])  # its range over seeds: TEACHING.md


def attention_weights(block, x):
    """The (B, nh, T, T) weights of one block's attention for its input x (B, T, C)."""
    a = block.attn
    Bx, Tx, Cx = x.shape
    q, k, _ = a.c_attn(block.ln_1(x)).split(Cx, dim=2)
    q = q.view(Bx, Tx, a.n_head, Cx // a.n_head).transpose(1, 2)
    k = k.view(Bx, Tx, a.n_head, Cx // a.n_head).transpose(1, 2)
    scores = q @ k.transpose(-2, -1) / math.sqrt(Cx // a.n_head)
    return scores.masked_fill(~torch.ones(Tx, Tx, dtype=torch.bool).tril(), float("-inf")).softmax(-1)


# %%
header("5. Attention weights on one sentence")
model.eval()
sentence = "The farmer has ten sheep and ten pigs on the farm."  # choose your own, then rerun this cell
idx = torch.tensor([tok.encode(sentence)])
labels = token_labels(tok, idx[0])  # each token as text: ' farmer' keeps its space
with torch.no_grad():
    h = model.transformer.wte(idx) + model.transformer.wpe(torch.arange(idx.size(1)))  # block 0's input
    found, by_hand = [], []
    for layer, block in enumerate(model.transformer.h):
        w = attention_weights(block, h)  # (1, nh, T, T)
        by_hand.append(w[0])
        # Check: these weights reproduce the block's attention output exactly.
        a = block.attn
        vv = a.c_attn(block.ln_1(h)).split(h.size(-1), dim=2)[2]
        vv = vv.view(1, -1, a.n_head, h.size(-1) // a.n_head).transpose(1, 2)
        y_check = a.c_proj((w @ vv).transpose(1, 2).reshape(h.shape))
        torch.testing.assert_close(y_check, a(block.ln_1(h)))
        for head in range(a.n_head):
            previous = w[0, head].diagonal(offset=-1).mean().item()  # weight on the token just before
            first = w[0, head, 1:, 0].mean().item()  # weight on the very first token
            found.append((previous, layer, head, w[0, head]))
            print(f"layer {layer} head {head}: on previous token {previous:.2f}, on first token {first:.2f}")
        h = block(h)
maps = attention_maps(model, idx)  # the library's weights, (L, nh, T, T): our helper's, block by block
torch.testing.assert_close(torch.stack(by_hand), maps)
claim("attention_maps_minus_by_hand", (torch.stack(by_hand) - maps).abs().max())  # checked by tests/test_tutorials.py

previous, layer, head, w = max(found, key=lambda f: f[0])
print(f"\nlayer {layer}, head {head} (the most 'previous-token' head); row = query, column = key, x100:")
print(" " * 9 + "".join(f"{s[:6]:>7}" for s in labels))
for t, row in enumerate(w):
    print(f"{labels[t][:8]:>8} " + "".join(f"{100 * v:7.0f}" if s <= t else " " * 7 for s, v in enumerate(row)))

# %% [markdown]
# ### The heat maps: every head at a glance
#
# A table of numbers per head is hard to compare. `minift.plot.attention_svg(tokens, weights)`
# draws one layer's weights `(nh, T, T)` as a grid per head: row `t` is the query (the token that
# looks), column `s` the key (the token looked at), and the darker the cell, the larger the
# weight, on one scale from 0 (white) to 1 for every head. Each row is a softmax, so its cells sum
# to 1; the upper triangle is white, the causal mask at work. In a notebook the maps appear
# below the cell; from a terminal, open the printed files in a browser (hovering over a cell
# shows its weight).

# %%
header("5. Heat maps of every head, block by block")
cells = []
for layer, weights in enumerate(maps):
    svg = attention_svg(labels, weights, title=f"Block {layer}: which token each head looks at",
                        path=OUT / f"attention-block-{layer}.svg")
    cells.append(svg.count('<rect class="cell"'))
    show(OUT / f"attention-block-{layer}.svg", f"block {layer}")
row_sums = maps.sum(dim=-1)  # (L, nh, T): one per row of every grid
print(f"{len(maps)} blocks x {maps.size(1)} heads x {maps.size(2)} x {maps.size(3)} cells; "
      f"row sums between {row_sums.min():.6f} and {row_sums.max():.6f}")
# checked by tests/test_tutorials.py
claim("heat_map_cells_per_block_and_nh_T_T", [cells, maps.size(1) * maps.size(2) * maps.size(3)])
claim("heat_map_row_sums_min_max", [row_sums.min(), row_sums.max()])  # checked by tests/test_tutorials.py

# %% [markdown]
# What to notice (the exact numbers depend on the run; the patterns are common):
# - Heads already specialise after seconds of training. Look for weight on the diagonal just
#   below the main one: the **previous token**. Attention has no notion of order except the
#   position embeddings, and "what came just before" is the first thing worth knowing.
# - Some heads park much of their weight on the **first token**. A head with nothing useful to
#   read must still spend its weight of 1 somewhere; the first position, visible to every query,
#   serves as a "no-op" (sometimes called an *attention sink*).
# - Change `sentence` above and rerun the two cells. Which heads keep their pattern whatever the
#   words (a previous-token head keeps its diagonal), and which change with them?
# - Lesson 05 pretrains a real base model; call `attention_maps` on it and compare
#   (`minift course figures --out DIR` draws the shipped base's maps for this sentence).
#
# ## Exercises
#
# 1. **Why the mask?** Using the functional attention from section 3, remove the mask and change
#    only the *last* token of a sequence. Show that the output at position 0 changes without the
#    mask and does not change with it. Check the same property on `CausalSelfAttention`.
# 2. **Why √hs?** For random unit-variance `q` and `k`, compute the standard deviation of the
#    scores `q·k` for hs = 8, 64, 512, with and without the `1/√hs` scale, and the mean entropy
#    of the softmax rows over 64 keys. What happens to the softmax without the scale?
# 3. **Parameter count.** Show that a `CausalSelfAttention` of width C has `4C² + 4C`
#    parameters (with biases), and check it for C = 32, 128, 768.
# 4. **One query at a time (the KV cache).** Generation adds one token at a time. Run the module
#    on the first T−1 positions with a `KVCache`, then on the last position alone (same cache),
#    and show the last output equals the last row of the full T-position call. Why is it enough
#    to keep k and v, and not q?
#
# Solutions: `tutorials/solutions/02_self_attention.py`.
