# %% [markdown]
# # Solutions to Lesson 01 — Tokenization
#
# Each cell answers one exercise of `tutorials/01_tokenization.py`, calling the library, and
# checks the answer with `assert` where a check is possible.

# %%
from minift.course import claim, header, pick
from minift.tokenizer import Tokenizer
from minift.world import corpus

texts = corpus(pick(3000, 200), seed=0)
tok = Tokenizer.train(texts, 1024)

# %% [markdown]
# ## Exercise 1 — English or French?
#
# Held-out text in one language at a time (seed 1 was not used for training).

# %%
header("Exercise 1: characters per token, English versus French")
rates = {}
for lang in ("en", "fr"):
    text = "\n".join(corpus(pick(500, 50), seed=1, languages=(lang,)))
    rates[lang] = len(text) / len(tok.encode(text))
    print(f"{lang}: {rates[lang]:.2f} characters per token")
assert all(rate > 2 for rate in rates.values())  # both far better than bytes (about 1)
claim("chars_per_token_en_fr", rates)  # checked by tests/test_tutorials.py

# %% [markdown]
# Both languages share the 768 merges. French words are longer and carry accents (two bytes in
# UTF-8) and elisions (`l'`, `n'`), and its forms vary more (`petit, petite, petits, petites`),
# so the same budget covers less of it. Which one wins here depends on the corpus; the print
# above is the answer for this one.

# %% [markdown]
# ## Exercise 2 — Decode by hand

# %%
header("Exercise 2: decoding = concatenating bytes, then UTF-8")
sentence = "Élodie a vu un éléphant 🐘 à Paris."
ids = tok.encode(sentence)
by_hand = b"".join(tok.decode_tokens(ids)).decode("utf-8", errors="replace")
print(by_hand)
assert by_hand == tok.decode(ids) == sentence

# %% [markdown]
# ## Exercise 3 — Why pre-split?
#
# With one piece per line, merges may cross word boundaries: a token can end in the middle of
# one word and start another. We count tokens with a space that is not the first byte.

# %%
header("Exercise 3: tokens spanning two words")


def spanning(tokenizer):
    return [t for t in tokenizer.mergeable_ranks if b" " in t[1:]]


# Whole paragraphs are long "words", so training is slower: a third of the text is enough here.
unsplit = Tokenizer.train(texts[:pick(1000, 100)], pick(1024, 400), pattern=r"[^\n]+")
with_regex = spanning(tok)
without = spanning(unsplit)
print(f"GPT-2 regex: {len(with_regex)} tokens span words")
print(f"one piece per line: {len(without)} tokens span words, e.g.",
      [t.decode("utf-8", errors="replace") for t in sorted(without, key=len, reverse=True)[:8]])
assert len(with_regex) == 0 and len(without) > 0
claim("spanning_tokens_with_and_without_regex", [len(with_regex), len(without)])  # checked by tests/test_tutorials.py

# %% [markdown]
# The unsplit tokenizer spends its vocabulary on frequent *phrases* of this small world
# (`"ne peut pas trouver"`, `". In the morning, "`) and on word ends glued to a space. The same
# word then has many tokenizations depending on its neighbours, and the model must learn each
# variant separately; on real, varied text such phrase tokens would be wasted.

# %% [markdown]
# ## Exercise 4 — How early was a word learned?

# %%
header("Exercise 4: rank and number of merge steps")
for piece in (" the", " le", " grenouille"):
    steps = tok.explain(piece)
    last = steps[-1]
    rank = tok.mergeable_ranks.get(piece.encode("utf-8"))
    print(f"{piece!r:>14}: {len(steps) - 1} merge steps -> {len(last)} token(s); "
          f"rank {rank if rank is not None else '(not a single token)'}")
    assert (rank is not None) == (len(last) == 1)
assert tok.mergeable_ranks[b" the"] < tok.mergeable_ranks[b" le"]  # " the" is the more frequent

# %% [markdown]
# A low rank means an early merge, and BPE merges the most frequent pair first: the lower the
# rank, the more frequent the token (more exactly, the pair that formed it) was in training.
