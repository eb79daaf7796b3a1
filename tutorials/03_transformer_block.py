# %% [markdown]
# # Lesson 03 — The Transformer block and the GPT
#
# Lesson 02 built attention. A GPT is attention plus three more small pieces — LayerNorm, an MLP
# and the residual stream — stacked into blocks, with embeddings below and a head on top. This
# lesson writes each piece line by line, checks it against `minift.model`, counts the parameters
# by hand, and generates text with and without the KV cache.
#
# **You will learn**
# - what LayerNorm and the MLP compute, with shapes;
# - the residual stream: `x = x + attn(ln_1(x))`, `x = x + mlp(ln_2(x))` (pre-LayerNorm);
# - how the GPT turns token ids `(B, T)` into next-token scores `(B, T, V)`;
# - the parameter count `V·C + T_max·C + L·(12C² + 13C) + 2C`, and what weight tying saves;
# - why generation with a KV cache gives the same tokens, faster.
#
# **Prerequisites:** Lessons 01 and 02.
#
# **Time:** about 45 minutes to read and run; the script runs in 7 s on 2 CPU cores (full mode,
# one thread; measured in `tutorials/TEACHING.md` section 3), a few seconds with `MINIFT_SMOKE=1`.
#
# Library code: `minift/model.py` (`MLP`, `Block`, `GPT`, `KVCache`, `lm_loss`).

# %%
import math
import time
from dataclasses import replace

import torch
import torch.nn.functional as F

from minift.course import claim, header, lesson_seed, pick
from minift.model import GPT, GPTConfig, lm_loss
from minift.tokenizer import Tokenizer
from minift.world import corpus

SEED = lesson_seed()  # 0 unless MINIFT_SEED says otherwise (the teacher's guide measures the spread)
torch.manual_seed(SEED)
tok = Tokenizer.train(corpus(pick(2000, 200), seed=0), 1024)
config = GPTConfig(vocab_size=tok.vocab_size, block_size=256, n_layer=4, n_head=4, n_embd=128)
model = GPT(config).eval()  # the shape of minift's "base" model, with random weights
block = model.transformer.h[0]
B, T, C = 2, 8, config.n_embd
x = torch.randn(B, T, C)
header("The model")
print(config)

# %% [markdown]
# ## 1. LayerNorm
#
# For each position separately, LayerNorm subtracts the mean of its C numbers and divides by
# their standard deviation, then applies a learned gain `γ` and shift `β` (C each):
#
#     y = (x − mean(x)) / √(var(x) + ε) · γ + β        x, y: (B, T, C); mean, var over C
#
# It keeps the numbers entering attention and the MLP at a steady scale, whatever the residual
# stream has grown to.

# %%
header("1. LayerNorm by hand")
ln = block.ln_1
mean = x.mean(dim=-1, keepdim=True)  # (B, T, 1)
var = x.var(dim=-1, keepdim=True, unbiased=False)  # (B, T, 1): the population variance
y_hand = (x - mean) / torch.sqrt(var + ln.eps) * ln.weight + ln.bias  # (B, T, C)
torch.testing.assert_close(y_hand, ln(x))
print(f"before: mean {x[0, 0].mean():+.3f}, std {x[0, 0].std(unbiased=False):.3f}  (one position)")
print(f"after:  mean {y_hand[0, 0].mean():+.3f}, std {y_hand[0, 0].std(unbiased=False):.3f}  (γ = 1, β = 0 at init)")

# %% [markdown]
# ## 2. The MLP
#
# Attention moves information *between* positions; the MLP then works on each position alone:
# widen to 4C, apply GELU (a smooth ReLU; GPT-2 uses its tanh approximation), narrow back to C.
#
#     h = GELU(x W_fc + b_fc)      (B, T, 4C)
#     y = h W_proj + b_proj        (B, T, C)

# %%
header("2. The MLP by hand")
mlp = block.mlp
h = x @ mlp.c_fc.weight.T + mlp.c_fc.bias  # (B, T, 4C)
h = 0.5 * h * (1 + torch.tanh(math.sqrt(2 / math.pi) * (h + 0.044715 * h**3)))  # GELU, tanh form
y_mlp = h @ mlp.c_proj.weight.T + mlp.c_proj.bias  # (B, T, C)
torch.testing.assert_close(y_mlp, mlp(x))
torch.testing.assert_close(F.gelu(torch.linspace(-3, 3, 7), approximate="tanh"),
                           mlp.gelu(torch.linspace(-3, 3, 7)))
print("hidden:", tuple(h.shape), " output:", tuple(y_mlp.shape))

# %% [markdown]
# ## 3. The residual stream and the Block
#
# A block does not *replace* its input; it *adds* to it. Think of `x` as a stream flowing up
# through the stack: each sub-layer reads a normalised copy, computes something, and adds it
# back. If a block has nothing to contribute its branches can output ~0 and `x` passes through
# unchanged, and gradients flow straight down the additions to the lowest layers.
#
#     x = x + attn(ln_1(x))        "talk": gather information from earlier positions
#     x = x + mlp(ln_2(x))         "think": process it, position by position
#
# Each block adds to the stream, so it grows with depth. GPT-2's initialisation keeps that in
# check: the output projections of both branches (`c_proj`) start with std `0.02/√(2L)`, so the
# sum of 2L branches has the same size whatever L. Watch the last number of each line below.

# %%
header("3. One block, line by line")
with torch.no_grad():
    stream = x + block.attn(block.ln_1(x))
    stream = stream + block.mlp(block.ln_2(stream))
    torch.testing.assert_close(stream, block(x))
print("block(x) equals the two lines above")

# How big is the stream as it climbs the stack? Real token embeddings this time, at two depths.
ids = torch.tensor([tok.encode(text)[:T] for text in corpus(B, seed=1)])  # (B, T) token ids
with torch.no_grad():
    for n_layer in pick((4, 12), (2, 3)):
        deep = GPT(replace(config, n_layer=n_layer)).eval()
        stream = deep.transformer.wte(ids) + deep.transformer.wpe(torch.arange(T))
        norms = [stream.norm(dim=-1).mean().item()]  # mean length of a position's vector
        for layer in deep.transformer.h:
            stream = layer(stream)
            norms.append(stream.norm(dim=-1).mean().item())
        print(f"L={n_layer:>2}: |stream| after embedding, then each block:", " ".join(f"{n:.2f}" for n in norms))

# %% [markdown]
# ## 4. The whole GPT
#
#     idx (B, T) integers
#     x = wte[idx] + wpe[0..T−1]        (B, T, C)   what the token is + where it is
#     x = block_L(... block_1(x))       (B, T, C)
#     logits = ln_f(x) @ wteᵀ           (B, T, V)   a score for every possible next token
#
# Trained with cross-entropy between `logits[:, t]` and the token at `t + 1`. At initialisation
# the model knows nothing, so it should spread its bets evenly: the loss is about `ln V`.

# %%
header("4. The GPT forward pass by hand")
with torch.no_grad():
    x = model.transformer.wte(ids) + model.transformer.wpe(torch.arange(T))  # (B, T, C) + (T, C)
    for layer in model.transformer.h:
        x = layer(x)
    logits = model.lm_head(model.transformer.ln_f(x))  # (B, T, V)
    torch.testing.assert_close(logits, model(ids))
    claim("forward_by_hand_minus_model", (logits - model(ids)).abs().max())  # checked by tests/test_tutorials.py
    loss = lm_loss(logits[:, :-1], ids[:, 1:])  # predict token t+1 from positions 0..t
print("ids:", tuple(ids.shape), "-> logits:", tuple(logits.shape))
print(f"loss at init {loss:.3f}  vs  ln V = ln {config.vocab_size} = {math.log(config.vocab_size):.3f}")
claim("init_loss_and_ln_V", [loss, math.log(config.vocab_size)])  # checked by tests/test_tutorials.py

# %% [markdown]
# ## 5. Counting the parameters by hand
#
# With C = n_embd, V = vocab_size, T_max = block_size, L = n_layer, and biases on:
#
# | part | parameters |
# |---|---|
# | token embedding `wte` | V·C |
# | position embedding `wpe` | T_max·C |
# | per block: `ln_1`, `ln_2` | 2C + 2C |
# | per block: attention `c_attn` (C→3C), `c_proj` (C→C) | 3C² + 3C + C² + C |
# | per block: MLP `c_fc` (C→4C), `c_proj` (4C→C) | 4C² + 4C + 4C² + C |
# | final `ln_f` | 2C |
# | head `lm_head` | 0 when tied to `wte` (else V·C) |
#
# A block is therefore `12C² + 13C`: the C² terms dominate, so width costs quadratically.

# %%
header("5. Parameter count: formula versus model.num_parameters()")
V, Tmax, L = config.vocab_size, config.block_size, config.n_layer
parts = {"wte": V * C, "wpe": Tmax * C, f"{L} blocks": L * (12 * C * C + 13 * C), "ln_f": 2 * C, "lm_head (tied)": 0}
for name, n in parts.items():
    print(f"  {name:>16}: {n:>9,}")
print(f"  {'formula':>16}: {sum(parts.values()):>9,}")
print(f"  {'the model':>16}: {model.num_parameters():>9,}")
assert sum(parts.values()) == model.num_parameters()
# checked by tests/test_tutorials.py
claim("parameters_formula_and_model", [sum(parts.values()), model.num_parameters()])

# %% [markdown]
# ## 6. Weight tying
#
# The head turns a vector into a score per token; the embedding turns a token into a vector.
# GPT-2 uses *one* matrix for both: `lm_head.weight` **is** `wte.weight` (the same tensor, not a
# copy). It saves V·C parameters, and it has a consequence for fine-tuning that lesson 07 meets:
# freezing the embedding also freezes the head.

# %%
header("6. Weight tying")
print("lm_head.weight is wte.weight:", model.lm_head.weight is model.transformer.wte.weight)
untied = GPT(replace(config, tie_weights=False))
extra = untied.num_parameters() - model.num_parameters()
print(f"untied model: {untied.num_parameters():,} parameters, {extra:,} more = V·C = {V * C:,}")
assert extra == V * C
claim("untied_extra_and_VC", [extra, V * C])  # checked by tests/test_tutorials.py
names = [name for name, _ in model.named_parameters()]
print("named_parameters lists the shared matrix once:", "lm_head.weight" not in names)

# %% [markdown]
# ## 7. Generation, with and without the KV cache
#
# `generate` appends one token at a time. Without a cache, each step re-runs the whole sequence.
# With a `KVCache`, the keys and values of past positions are kept, and each step feeds only the
# newest token (lesson 02, exercise 4). Same arithmetic, so the same tokens — we check that for
# greedy decoding and for sampling with the same random generator.
#
# The weights are random, so the text is nonsense; lesson 05 pretrains them.

# %%
header("7. Generation with and without the KV cache")
prompt = torch.tensor([tok.encode("The farmer has")])
new_tokens = pick(200, 5)
results = {}
for use_cache in (False, True):
    t0 = time.perf_counter()
    greedy = model.generate(prompt, new_tokens, temperature=0.0, use_cache=use_cache)
    seconds = time.perf_counter() - t0
    sampled = model.generate(prompt, new_tokens, temperature=1.0, top_k=50, use_cache=use_cache,
                             generator=torch.Generator().manual_seed(0))
    results[use_cache] = (greedy, sampled, seconds)
    print(f"use_cache={use_cache!s:>5}: {new_tokens} tokens in {seconds:.2f} s "
          f"({new_tokens / seconds:,.0f} tokens/s)")
assert torch.equal(results[False][0], results[True][0])
assert torch.equal(results[False][1], results[True][1])
# checked by tests/test_tutorials.py
claim("same_tokens_with_cache", [torch.equal(results[False][i], results[True][i]) for i in (0, 1)])
print(f"same tokens both ways; the cache is {results[False][2] / results[True][2]:.1f}x faster here")
print("sampled text:", repr(tok.decode(results[True][1][0])[:160]))

# %% [markdown]
# What to notice: the longer the generation, the bigger the gain. Without the cache step *n*
# processes *n* positions (O(n²) work in total); with it, one position attending to *n* cached
# keys. `minift bench` measures the same thing on your machine.
#
# ## Exercises
#
# 1. **GPT-2 small.** Use the formula to count the parameters of GPT-2 small (V = 50257,
#    T_max = 1024, L = 12, C = 768, tied). Check with `GPT(...).num_parameters()` — build it
#    under `with torch.device("meta"):` so no memory is allocated.
# 2. **Without the residual.** Build an 8-layer model and train it for 150 steps twice (with
#    `train_stage`, which takes any `loss_fn`): once with the blocks as they are, once running
#    them *without* the additions (`x = attn(ln_1(x)); x = mlp(ln_2(x))`). Compare the final
#    losses with the unigram entropy of the text (the loss of predicting token frequencies
#    only). Is the gradient vanishing at initialisation? Print each block's gradient norm.
# 3. **The cache's memory.** Write the size in bytes of a `KVCache` (keys and values, every
#    layer, float32) as a formula in L, B, nh, max_len and hs; check it against a real
#    `KVCache`, then compute it for GPT-2 small with batch 8 and 1024 positions.
# 4. **Tying and freezing.** Freeze the token embedding (`wte.weight.requires_grad_(False)`) in
#    a tied and an untied model. Count the trainable parameters in each. Which one can still
#    learn new output scores for its tokens?
#
# Solutions: `tutorials/solutions/03_transformer_block.py`.
