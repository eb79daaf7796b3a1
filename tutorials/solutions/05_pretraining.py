# %% [markdown]
# # Solutions to Lesson 05 — Pretraining the base
#
# Each cell answers one exercise of `tutorials/05_pretraining.py`, calling the library, and checks
# the answer with `assert` where a check is possible.

# %%
import json
import math
import re

import torch

import minift
from minift.course import claim, header, output_dir, pick, smoke
from minift.model import GPT
from minift.pretrain import bits_per_char, encode_stream, pretrain, stream_loss
from minift.world import corpus

torch.manual_seed(0)
base = minift.load_model("base")
model, tok = base.model.eval(), base.tokenizer
block = model.config.block_size
WORK = output_dir("05_pretraining_solutions")  # a temporary folder, outside the repository


def score(m, texts, max_windows=pick(64, 4)):
    """(nats per token, bits per character) of model ``m`` on ``texts``, as pretrain measures them."""
    stream = encode_stream(tok, texts)
    n = min(max_windows, (len(stream) - 1) // block)
    scored = stream[1: n * block + 1]
    is_eot = scored == tok.eot_id
    chars = len(tok.decode(scored[~is_eot].tolist())) + int(is_eot.sum())
    loss = stream_loss(m, stream, block, "cpu", max_windows=n)
    return loss, bits_per_char(loss, scored.numel(), chars)


# %% [markdown]
# ## Exercise 1 — Which language is harder?
#
# Held-out paragraphs (seed 10 000, as `pretrain` uses for validation), one language at a time.

# %%
header("Exercise 1: English versus French")
n = pick(800, 40)
per_language = {lang: score(model, corpus(n, seed=10_000, languages=(lang,))) for lang in ("en", "fr")}
for lang, (loss, bpc) in per_language.items():
    print(f"{lang}: {loss:.3f} nats/token, {bpc:.3f} bits/char")
harder_per_token = max(per_language, key=lambda lang: per_language[lang][0])
harder_per_char = max(per_language, key=lambda lang: per_language[lang][1])
print(f"harder per token: {harder_per_token}; harder per character: {harder_per_char}")
assert all(loss < math.log(tok.vocab_size) for loss, _ in per_language.values())

# %% [markdown]
# The two units need not agree: French words are longer and the tokenizer cuts them into more
# pieces, and the later pieces of a word are easy to guess from the first, which lowers the loss
# per *token*. Bits per character compares the *text* itself. In this world French also carries
# redundancy English lacks (articles, adjectives and verbs agree: once "les" is written, the
# plural endings are predictable), so it can come out easier per character too.

# %% [markdown]
# ## Exercise 2 — Perplexity

# %%
header("Exercise 2: perplexity = exp(loss)")
val = corpus(pick(400, 40), seed=10_000)
untrained = GPT(model.config).eval()
ppl_untrained = math.exp(score(untrained, val)[0])
ppl_base = math.exp(score(model, val)[0])
print(f"untrained: {ppl_untrained:.0f} (V = {tok.vocab_size}); base: {ppl_base:.2f}")
assert 0.8 * tok.vocab_size < ppl_untrained < 1.2 * tok.vocab_size  # a nearly uniform guess
assert ppl_base < ppl_untrained / 10
# checked by tests/test_tutorials.py
claim("perplexity_untrained_base_and_V", [ppl_untrained, ppl_base, tok.vocab_size])

# %% [markdown]
# An untrained model is as unsure as a uniform choice among all V tokens. The base hesitates
# between only a few candidates per token: the world's grammar leaves little choice.

# %% [markdown]
# ## Exercise 3 — Vocabulary and the loss

# %%
header("Exercise 3: vocab 256 versus 512, tiny preset")
runs = {}
for vocab in (256, 512):
    runs[vocab] = pretrain(WORK / f"vocab{vocab}", preset="tiny", vocab=vocab, max_steps=pick(200, 5),
                           seed=0, quiet=True)
    print(f"vocab {vocab}: {runs[vocab]['val_loss']:.3f} nats/token, {runs[vocab]['val_bpc']:.3f} bits/char")
assert runs[256]["val_loss"] < runs[512]["val_loss"]
# checked by tests/test_tutorials.py
claim("val_loss_vocab_256_and_512", [runs[256]["val_loss"], runs[512]["val_loss"]])

# %% [markdown]
# With bytes only, a token is about one character: easy to guess, so the loss per token is low,
# but there are many more tokens per text. With 512 tokens each one carries more text and is
# harder. Bits per character puts both on the same scale; which is better per character depends
# on the model and the training time, which is why `pretrain` reports bpc.

# %% [markdown]
# ## Exercise 4 — Overfitting a small text

# %%
header("Exercise 4: 40 paragraphs, 300 steps")
text_file = WORK / "small.txt"
text_file.write_text("\n\n".join(corpus(40, seed=7)), encoding="utf-8")
out = WORK / "small"
pretrain(out, preset="tiny", text_file=text_file, max_steps=pick(300, 10), seed=0, quiet=True,
         shape=dict(n_layer=4, n_head=4, n_embd=128))  # the base's shape: room to memorize
records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
train = {r["step"]: r["loss"] for r in records if r["event"] == "train"}
val_loss = {r["step"]: r["val_loss"] for r in records if r["event"] == "eval"}
print(f"{'step':>5} {'train':>7} {'val':>7}")
for step in sorted(val_loss):
    shown = f"{train[step]:7.3f}" if step in train else "      -"
    print(f"{step:>5} {shown} {val_loss[step]:7.3f}")
if not smoke():
    last = max(val_loss)
    assert train[last] < val_loss[last] - 0.3  # memorized the training text, not the language
    assert min(val_loss.values()) < val_loss[last]  # validation got worse again at the end

# %% [markdown]
# 36 training paragraphs are a few thousand tokens: the model soon sees each many times and
# learns *them* rather than the language. The training loss keeps falling while the validation
# loss stops, then rises: the signal for early stopping (Lesson 06) or for more data. (The tiny
# preset's own shape, width 32, is too small to memorize much in 300 steps: capacity matters.)

# %% [markdown]
# ## Exercise 5 — Sampling

# %%
header("Exercise 5: temperature and invented words")
invented = {}
known = {w for p in corpus(pick(20000, 500), seed=0) for w in re.findall(r"[\w']+", p.lower())}
for temperature in (0.0, 0.8, 1.5):
    torch.manual_seed(0)
    texts = [base.generate(start, max_new_tokens=40, temperature=temperature)
             for start in ("In the morning, Tom", "Le matin, Paul", "Every day, my sister")]
    words = [w for t in texts for w in re.findall(r"[\w']+", t.lower())]
    new = [w for w in words if w not in known]
    print(f"T={temperature}: {len(new)} of {len(words)} words not in the training text {sorted(set(new))[:6]}")
    print(f"   {texts[0]!r}")
    invented[temperature] = len(new) / len(words)
if not smoke():
    assert invented[1.5] > invented[0.0]

# %% [markdown]
# Greedy decoding (T = 0) picks the likeliest token every time: safe, often repetitive. Higher
# temperatures flatten the distribution: more variety, and at 1.5 the model starts to glue word
# pieces into words that do not exist.
