# %% [markdown]
# # Lesson 05 — Pretraining the base: next-token prediction from scratch
#
# Before a model can be fine-tuned it must know the language. This lesson pretrains a small GPT
# on the generated English/French world, exactly as `data/base` was made, only shorter, and then
# looks at the shipped base model: its validation loss, and what it writes in each language.
#
# **You will learn**
# - what the pretraining text is (monolingual English and French paragraphs, *no* translations);
# - how a stream of tokens becomes training pairs `x`, `y`, and the shape of each;
# - why an untrained model's loss is `ln V`, and what the loss means in nats per token;
# - why we also report **bits per character**, which does not depend on the tokenizer;
# - how fast the validation loss falls in a minute and a half of training on a laptop CPU;
# - what the shipped base can and cannot do (continue a story: yes; translate: not yet).
#
# **Prerequisites:** Lessons 01–04 (tokenizer, attention, the GPT block, AdamW and schedules).
#
# **Time:** about 40 minutes to read and run; the script runs in 3.5 min on 2 CPU cores (full
# mode, one thread; most of it the short pretraining run; measured in `tutorials/TEACHING.md`
# section 3), a few seconds with `MINIFT_SMOKE=1`.
#
# Library code: `minift/pretrain.py` (the whole recipe), `minift/trainer.py` (the loop),
# `minift/world/` (the text).

# %%
import dataclasses
import json
import math
import time

import torch
import torch.nn.functional as F

import minift
from minift.course import claim, header, key, lesson_seed, output_dir, pick, show
from minift.model import GPT, lm_loss
from minift.pretrain import (PRESETS, bits_per_char, corpus_texts, encode_stream, pretrain, stream_loss,
                             window_batches)
from minift.tokenizer import Tokenizer
from minift.world import corpus

SEED = lesson_seed()  # 0 unless MINIFT_SEED says otherwise (the teacher's guide measures the spread)
torch.manual_seed(SEED)
PRESET = pick("base", "tiny")  # the shipped model's recipe; smoke mode uses the tiny one
STEPS = pick(300, 20)  # the base preset trains 1800 steps; we do a sixth
OUT = output_dir("05_pretraining")  # a temporary folder, outside the repository
spec = PRESETS[PRESET]
print(f"preset {PRESET!r}: {spec.model.n_layer} layers, width {spec.model.n_embd}, "
      f"block {spec.model.block_size}, vocab {spec.vocab}, {spec.paragraphs:,} paragraphs")

# %% [markdown]
# ## 1. The text: a small world, in two languages
#
# `minift.world.corpus(n, seed)` writes `n` paragraphs: little stories (people, animals, food,
# places) and kitchen recipes, each paragraph in English *or* in French, drawn independently.
# The two languages share a world but never a paragraph: there are **no translation pairs** in
# the pretraining text. Whatever the base learns about translating, it must learn in Lesson 06.
#
# `corpus_texts` is what `pretrain` uses: the training paragraphs (seed 0), and a validation set
# drawn with another seed, minus any paragraph that also occurs in training.

# %%
header("1. The corpus")
train_texts, val_texts = corpus_texts(spec, seed=0)
n_chars = sum(map(len, train_texts))
print(f"train: {len(train_texts):,} paragraphs, {n_chars:,} characters; validation: {len(val_texts):,} paragraphs")
print("English:", corpus(1, seed=3, languages=("en",))[0])
print("French: ", corpus(1, seed=3, languages=("fr",))[0])

# %% [markdown]
# ## 2. The tokenizer: characters per token
#
# The tokenizer is trained on the training paragraphs (Lesson 01). With 1024 tokens, common words
# of both languages become single tokens, so one token stands for several characters.

# %%
header("2. Tokenizer")
tok = Tokenizer.train(train_texts, spec.vocab)
val_text = "\n".join(val_texts)
chars_per_token = len(val_text) / len(tok.encode(val_text))
print(f"{tok}: {chars_per_token:.2f} characters per token on validation text")
for sentence in ("The little cat sleeps in the garden.", "Le petit chat dort dans le jardin."):
    pieces = [p.decode("utf-8", errors="replace") for p in tok.decode_tokens(tok.encode(sentence))]
    print(f"  {len(pieces):>2} tokens: {pieces}")

# %% [markdown]
# ## 3. The objective: predict the next token, everywhere at once
#
# All paragraphs are tokenized and joined into one long **stream**, each followed by
# `<|endoftext|>` so the model learns where a text ends. A training example is a random window of
# `T + 1` consecutive tokens; the model reads the first `T` and must predict, at every position,
# the token that comes next:
#
#     stream   (N,)                            every paragraph's tokens, then <|endoftext|>
#     x        = stream[i : i + T]     (B, T)  B random windows
#     y        = stream[i+1 : i+T+1]   (B, T)  the same windows, shifted one to the left
#     logits   = model(x)              (B, T, V)
#     loss     = mean over B·T positions of  −log softmax(logits)[y]
#
# One window is T training examples in one, since the causal mask (Lesson 02) stops position `t`
# from seeing `x[t+1:]`. `window_batches` draws the windows with the trainer's random generator.

# %%
header("3. From a stream of tokens to (x, y)")
stream = encode_stream(tok, train_texts)
T, B = spec.model.block_size, spec.train.batch_size
draw = window_batches(stream, T, B)
x, y = draw(torch.Generator().manual_seed(0))
print(f"stream {tuple(stream.shape)} tokens, {n_chars / len(stream):.2f} characters per token")
print(f"x {tuple(x.shape)}   y {tuple(y.shape)}   (B={B} windows of T={T} tokens)")
assert torch.equal(x[:, 1:], y[:, :-1])  # y is x shifted by one
for t in range(6):
    seen = b"".join(tok.decode_tokens(x[0, : t + 1].tolist())).decode("utf-8", errors="replace")
    target = b"".join(tok.decode_tokens([int(y[0, t])])).decode("utf-8", errors="replace")
    print(f"  t={t}: reads {seen[-40:]!r:<44} must predict {target!r}")

# %% [markdown]
# ### The loss of a model that knows nothing
#
# A freshly initialized GPT gives nearly equal scores to every token, so its softmax is nearly
# uniform over the `V` tokens and the loss is `−log(1/V) = ln V`. With `V = 1026` (1024 + the two
# special tokens) that is 6.93 nats. Any number below that is something learned.
#
# `lm_loss` is PyTorch's cross-entropy over the flattened `(B·T, V)` logits, ignoring targets
# marked `-100` (none here; Lesson 06 uses them). We check it against the one-line definition.

# %%
header("3b. The loss at initialization")
model = GPT(dataclasses.replace(spec.model, vocab_size=tok.vocab_size))  # fresh random weights
with torch.no_grad():
    logits = model(x)  # (B, T, V)
    loss = lm_loss(logits, y)
    by_hand = -F.log_softmax(logits, dim=-1).gather(-1, y[..., None]).mean()
print(f"logits {tuple(logits.shape)}; loss {loss:.4f} nats/token; ln V = ln {tok.vocab_size} = "
      f"{math.log(tok.vocab_size):.4f}")
assert torch.allclose(loss, by_hand, atol=1e-5)
assert abs(float(loss) - math.log(tok.vocab_size)) < 0.1
claim("init_loss_and_ln_V", [loss, math.log(tok.vocab_size)])  # checked by tests/test_tutorials.py

# %% [markdown]
# ## 4. Bits per character
#
# Nats per token depend on the tokenizer: a bigger vocabulary makes fewer, longer tokens, each
# harder to guess, so the loss per token goes up while the model may be just as good. Dividing by
# `ln 2` gives bits, and multiplying by tokens per character gives a number about the *text*:
#
#     bpc = loss / ln 2 × (tokens / characters)
#
# It is the size the model could compress the text to, in bits per character (arithmetic coding
# turns a probability p into −log2 p bits). Plain 8-bit text is 8 bpc; gzip gets English to about
# 2.5–3; good language models on real English, about 1. A model that knows nothing spends
# log2 V ≈ 10 bits on every token, so its bpc is 10 divided by the characters per token.

# %%
header("4. Bits per character at initialization")
# The characters a stream stands for: the text, plus one paragraph break per <|endoftext|>.
print(f"{float(loss):.3f} nats/token = {bits_per_char(float(loss), len(stream), n_chars + len(train_texts)):.3f} "
      f"bits/char")

# %% [markdown]
# ## 5. Train
#
# `pretrain` is the whole recipe in one function: corpus, tokenizer, stream, model, AdamW with
# warmup and cosine decay, `trainer.train_stage`, a validation evaluation every `eval_every`
# steps, and a checkpoint. The `base` preset trains 1800 steps of 16 × 256 tokens; we train
# 300 (about a minute on 2 idle cores; the cosine schedule is shortened to fit). Progress lines
# appear as it trains: the loss, the learning rate, the tokens per second, the time left.

# %%
header(f"5. Pretraining for {STEPS} steps")
t0 = time.perf_counter()
summary = pretrain(OUT, preset=PRESET, max_steps=STEPS, seed=SEED)
print(f"{summary['parameters']:,} parameters; {summary['tokens_seen']:,} tokens seen in "
      f"{summary['seconds']:.0f} s of training ({summary['tokens_seen'] / summary['seconds']:,.0f} tokens/s); "
      f"{time.perf_counter() - t0:.0f} s in all")

records = [json.loads(line) for line in (OUT / "log.jsonl").read_text().splitlines()]
print(f"\n{'step':>6}  {'val loss':>9}  {'val bpc':>8}")
for r in records:
    if r["event"] == "eval":
        print(f"{r['step']:>6}  {r['metrics']['val_loss']:>9.3f}  {r['metrics']['val_bpc']:>8.3f}")
# checked by tests/test_tutorials.py
claim("val_loss_at_each_eval", [r["metrics"]["val_loss"] for r in records if r["event"] == "eval"])
key("short run: final validation loss", [r["metrics"]["val_loss"] for r in records if r["event"] == "eval"][-1])
print(f"train loss every {spec.train.log_every} steps:",
      " ".join(f"{r['loss']:.2f}" for r in records if r["event"] == "train"))
print("run folder:", OUT, "->", sorted(p.name for p in OUT.iterdir()))
show(OUT / "loss.svg", "loss chart")  # pretrain draws it; in a notebook it appears here

# %% [markdown]
# What to notice: the loss falls steeply in the first hundred steps (the model learns which
# tokens are frequent, then which follow which), then more slowly. It is still falling at the end.
# The shipped base (below) went on for 1800 steps, and its validation loss kept falling all the
# way, by less and less: 1.408 at step 300, 1.043 at step 900, 0.930 at step 1800
# (`data/base/log.jsonl`, written by `minift pretrain --preset base --out data/base --seed 0`).
#
# The bits per character end far below the ~1 bpc of good models on real English: this world is
# generated by a small grammar, so once the model knows the grammar, most of the text is
# predictable. The loss chart above (`loss.svg` in the run folder; from a terminal, open the
# printed path in a browser) shows both curves: the training loss at every logged step, raw and
# smoothed, and the validation loss at each evaluation.

# %% [markdown]
# ## 6. The shipped base
#
# `data/base/model.pt` was made by the full `base` preset: 1800 steps, about seven minutes on two
# cores. `minift.load_model("base")` returns a `ModelBundle` (the GPT, its tokenizer, any soft
# prompts, and `meta`: how it was trained and the validation loss it reached). We score it again
# on the validation text with `stream_loss`, the function `pretrain` uses, and check we get the
# number in its `meta`.

# %%
header("6. The shipped base model")
base = minift.load_model("base")
meta = base.meta
print(f"{base.model.num_parameters():,} parameters, {meta['steps']} steps, {meta['tokens_seen']:,} tokens, "
      f"{meta['seconds']:.0f} s; meta val_loss {meta['val_loss']:.4f}, val_bpc {meta['val_bpc']:.4f}")

block = base.model.config.block_size
val_stream = encode_stream(base.tokenizer, val_texts)
n_windows = min(64, (len(val_stream) - 1) // block)
scored = val_stream[1: n_windows * block + 1]  # the targets of the windows stream_loss scores
# Characters those targets stand for; each <|endoftext|> stands for one paragraph break.
is_eot = scored == base.tokenizer.eot_id
scored_chars = len(base.tokenizer.decode(scored[~is_eot].tolist())) + int(is_eot.sum())
base_loss = stream_loss(base.model.eval(), val_stream, block, "cpu", max_windows=n_windows)
base_bpc = bits_per_char(base_loss, scored.numel(), scored_chars)
print(f"scored again: val_loss {base_loss:.4f} nats/token, {base_bpc:.4f} bits/char "
      f"over {scored.numel():,} tokens")
if PRESET == "base":  # the same validation text as the one the base was scored on
    assert abs(base_loss - meta["val_loss"]) < 1e-3

print(f"\n{'model':<28}{'steps':>6}{'val loss':>10}{'val bpc':>9}")
print(f"{'ours, ' + PRESET + ' preset':<28}{summary['steps']:>6}{summary['val_loss']:>10.3f}{summary['val_bpc']:>9.3f}")
print(f"{'shipped base':<28}{meta['steps']:>6}{meta['val_loss']:>10.3f}{meta['val_bpc']:>9.3f}")
claim("val_loss_ours_and_base", [summary["val_loss"], base_loss])  # checked by tests/test_tutorials.py

# %% [markdown]
# ## 7. What the base writes
#
# Greedy decoding (always the most likely token) from the start of a sentence, in each language,
# for our short run and for the shipped base. `load_model(OUT)` reads our run folder the same way.
# Look for the short run's mistakes (misspelled or invented words, agreement errors) that the
# base no longer makes. Then a prompt in the format Lesson 06 fine-tunes on: an English sentence
# and `French:`. The base has seen English and French, never one next to the other, so it does
# not translate.

# %%
header("7. Continuations")
ours = minift.load_model(OUT)
for start in ("In the morning, Tom", "Today, my sister", "Le matin, Paul", "Ce matin, ma sœur"):
    print(f"{start!r}")
    print(f"   ours: {ours.generate(start, max_new_tokens=30)!r}")
    print(f"   base: {base.generate(start, max_new_tokens=30)!r}")
print("\nEnglish: the dog eats a red apple.\\nFrench: ->",
      repr(base.generate("English: the dog eats a red apple.\nFrench:", max_new_tokens=20)))

# %% [markdown]
# ## 8. Reproducing `data/base`
#
# The shipped base is one command away:
#
#     minift pretrain --preset base --out runs/base      # about 7 minutes on 2 idle CPU cores
#
# The same command trains on your own text: `minift pretrain --text book.txt --out runs/mine`
# (the file is split 90/10 into train and validation paragraphs; the loss is reported in nats per
# token and in bits per character, so runs with different tokenizers can be compared).
#
# ## Exercises
#
# 1. **Which language is harder?** Score the shipped base with `stream_loss` on English-only and
#    French-only validation paragraphs (`corpus(n, seed=10_000, languages=("fr",))`). Compare
#    nats per token and bits per character. Which one does the model find harder, and do the two
#    units agree?
# 2. **Perplexity.** `exp(loss)` is the *perplexity*: the model is as unsure as a uniform choice
#    among that many tokens. Compute it for the untrained model and for the base. How does the
#    first compare with `V`?
# 3. **Vocabulary and the loss.** Pretrain the `tiny` preset twice, with `vocab=256` (bytes only)
#    and `vocab=512`, same steps. Which has the lower loss per token? Which has the lower bits per
#    character? Explain why the two rankings can differ.
# 4. **Overfitting a small text.** Write 40 paragraphs to a file and pretrain on it
#    (`text_file=`) for 300 steps, with the `tiny` preset's schedule and the base's shape
#    (`shape=dict(n_layer=4, n_head=4, n_embd=128)`). Read the train and validation losses from
#    `log.jsonl`: when does the validation loss stop following the training loss?
# 5. **Sampling.** Generate from the base at temperature 0, 0.8 and 1.5 (`base.generate(...,
#    temperature=t)`, after `torch.manual_seed`). How many of the generated words are not in the
#    training text?
#
# Solutions: `tutorials/solutions/05_pretraining.py`.
