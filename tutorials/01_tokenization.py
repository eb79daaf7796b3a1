# %% [markdown]
# # Lesson 01 — Tokenization: BPE by hand, then tiktoken
#
# A language model reads integers, not letters. This lesson builds the tokenizer that turns text
# into those integers: **byte-level byte-pair encoding (BPE)**, the scheme of GPT-2.
#
# **You will learn**
# - why text is first *pre-split* into word-like pieces (GPT-2's regex);
# - how one BPE merge works, by counting pairs and merging by hand — then that the library's
#   fast trainer (`minift.tokenizer.train_bpe`) makes exactly the same merges;
# - how a trained tokenizer encodes a word, step by step (`Tokenizer.explain`);
# - why minift hands the encoding to `tiktoken` (Rust) once the merges are learned;
# - that byte-level BPE round-trips any Unicode text, and how vocabulary size trades
#   sequence length against table size.
#
# **Prerequisites:** Python (dicts, `collections.Counter`), UTF-8 as bytes. No PyTorch yet.
#
# **Time:** about 30 minutes to read and run; the script runs in 1 s on 2 CPU cores (full mode,
# one thread; measured in `tutorials/TEACHING.md` section 3), a few seconds with `MINIFT_SMOKE=1`.
#
# Run it top to bottom with `python tutorials/01_tokenization.py`, or cell by cell in VS Code,
# PyCharm or Jupyter (jupytext).
#
# Library code: `minift/tokenizer.py` (`train_bpe`, `merge_pair`, `Tokenizer`).

# %%
import time
from collections import Counter

from minift.course import claim, header, pick
from minift.tokenizer import Tokenizer, count_words, merge_pair, split_words, train_bpe
from minift.world import corpus

N_PARAGRAPHS = pick(3000, 200)  # the whole lesson shrinks under MINIFT_SMOKE=1
texts = corpus(N_PARAGRAPHS, seed=0)  # the generated English/French world (deterministic)
held_out = corpus(pick(500, 50), seed=1)  # other paragraphs, to measure on text not trained on
header("The text we learn from")
print(f"{len(texts)} paragraphs, {sum(map(len, texts)):,} characters. The first three:")
for paragraph in texts[:3]:
    print("  ", paragraph)

# %% [markdown]
# ## 1. Pre-splitting: where merges may not cross
#
# Before any merging, GPT-2 cuts text into pieces with a regular expression: contractions
# (`'s`, `'t`, ...), an optional space followed by letters, an optional space followed by digits,
# an optional space followed by other symbols, and runs of whitespace. The space is kept at the
# *front* of the next word, so `" cat"` and `"cat"` are different pieces.
#
# BPE merges never cross a piece boundary. Without the split, the most frequent pairs would glue
# words to their neighbours (`"e t"`, `"s a"`), wasting the vocabulary on accidents of word order.

# %%
header("1. Pre-splitting with the GPT-2 regex")
sentence = "Hugo's cat doesn't like 3 apples, l'école!"
print(split_words(sentence))

# %% [markdown]
# Because merges stay inside pieces, training only needs to know *which* pieces occur and how
# often: our 380,000 characters hold only about a thousand distinct pieces. `count_words`
# counts them (as UTF-8 bytes). Everything below works on this small table, never on the raw text.

# %%
header("1. Counting the distinct pieces")
words = count_words(texts)
print(f"{sum(words.values()):,} pieces, but only {len(words):,} distinct ones. Most frequent:")
for word, n in words.most_common(8):
    print(f"  {word!r:>12}  {n:>7,}")

# %% [markdown]
# ## 2. One merge, by hand
#
# Start with every piece as its list of single bytes. Count each pair of neighbours, weighted by
# how often the piece occurs. The most frequent pair `(a, b)` becomes a new token `a + b`; ties go
# to the pair whose bytes sort first. Then rewrite every piece, replacing `a, b` by `a + b`.

# %%
header("2. Counting pairs and merging, by hand")
pieces = {tuple(bytes([b]) for b in word): n for word, n in words.items()}


def count_pairs(pieces):
    pairs = Counter()
    for piece, n in pieces.items():
        for pair in zip(piece, piece[1:]):
            pairs[pair] += n
    return pairs


pairs = count_pairs(pieces)
best = min(pairs, key=lambda pair: (-pairs[pair], pair))  # most frequent; ties: smallest bytes
print("most frequent pairs:", [(a + b, n) for (a, b), n in pairs.most_common(5)])
print("first merge:", best, "->", best[0] + best[1])

# The merge itself, written out for one piece:
piece = [bytes([b]) for b in b" the"]  # any piece will do; " the" is a frequent one
merged, i = [], 0
while i < len(piece):
    if i + 1 < len(piece) and (piece[i], piece[i + 1]) == best:
        merged.append(piece[i] + piece[i + 1])
        i += 2
    else:
        merged.append(piece[i])
        i += 1
print(f"{piece} -> {merged}")
assert merged == merge_pair(piece, *best)  # the library's merge_pair does the same

# %% [markdown]
# Repeat *count, pick, merge* and you have BPE training. Our loop recounts every pair after each
# merge, which is simple and slow. The library's `train_bpe` only updates the counts of pieces
# that changed and keeps candidates in a heap; it must still pick exactly the same merges.
# Token ids ("ranks"): the 256 single bytes are 0–255, then merge number *k* gets id 255 + *k*.

# %%
header("2. Many merges by hand versus train_bpe")
n_merges = pick(20, 5)
hand_merges = []
for _ in range(n_merges):
    pairs = count_pairs(pieces)
    a, b = min(pairs, key=lambda pair: (-pairs[pair], pair))
    hand_merges.append(a + b)
    pieces = {tuple(merge_pair(list(p), a, b)): n for p, n in pieces.items()}

ranks = train_bpe(texts, 256 + n_merges)
library_merges = sorted(ranks, key=ranks.get)[256:]
print("hand:   ", hand_merges[:10], "...")
print("library:", library_merges[:10], "...")
assert hand_merges == library_merges
claim("hand_merges_equal_library", hand_merges == library_merges)  # checked by tests/test_tutorials.py
print(f"the first {n_merges} merges agree")

# %% [markdown]
# ## 3. A real tokenizer, and one word step by step
#
# `Tokenizer.train(texts, vocab_size)` learns `vocab_size - 256` merges and adds two special
# tokens on top: `<|endoftext|>` (between documents) and `<|pad|>` (filler in batches). So
# `vocab_size` 1024 gives an embedding table of 1026 rows.
#
# To encode a new piece, BPE *replays* the merges: start from bytes and repeatedly merge the
# neighbouring pair that was learned *earliest* (lowest rank). `explain` returns every step.

# %%
header("3. Training a 1024-token tokenizer")
t0 = time.perf_counter()
tok = Tokenizer.train(texts, 1024)
print(f"{tok}  trained in {time.perf_counter() - t0:.2f} s")
print("special tokens:", tok.special_tokens)
longest = sorted(tok.mergeable_ranks, key=len, reverse=True)[:8]
print("some of the longest tokens:", [t.decode("utf-8", errors="replace") for t in longest])

word = " grenouille"  # French for frog: rare enough to need several merges
for step, parts in enumerate(tok.explain(word)):
    print(f"  step {step:>2}: {[p.decode('utf-8', errors='replace') for p in parts]}")
ids = tok.encode(word)
print(f"encode({word!r}) = {ids} -> pieces {tok.decode_tokens(ids)}")
assert [tok.mergeable_ranks[p] for p in tok.explain(word)[-1]] == ids

# %% [markdown]
# ## 4. Why tiktoken?
#
# The merge loop in `explain` is plain Python: for each piece, scan all neighbouring pairs, merge
# the best, repeat. It is the definition, and it is slow. `tiktoken` runs the same algorithm in
# Rust. We encode the held-out text both ways, check the ids are identical, and time them.

# %%
header("4. The Python merge loop versus tiktoken")
text = "\n".join(held_out)


def encode_python(tok, text):
    ids = []
    for piece in tok.split(text):
        ids += [tok.mergeable_ranks[part] for part in tok.explain(piece)[-1]]
    return ids


t0 = time.perf_counter()
slow = encode_python(tok, text)
t_python = time.perf_counter() - t0
t0 = time.perf_counter()
fast = tok.encode(text)
t_tiktoken = time.perf_counter() - t0
assert slow == fast
claim("tiktoken_equals_python_loop", slow == fast)  # checked by tests/test_tutorials.py
print(f"{len(text):,} characters -> {len(fast):,} tokens, the same ids both ways")
print(f"python loop {t_python * 1000:8.1f} ms")
print(f"tiktoken    {t_tiktoken * 1000:8.1f} ms   ({t_python / max(t_tiktoken, 1e-9):.0f}x faster)")

# %% [markdown]
# ## 5. Any text at all: the byte-level round trip
#
# Our corpus has no Japanese and no emoji, yet nothing is "unknown": every string is a sequence
# of bytes and every byte is a token. Unseen characters simply cost more tokens. A single token
# may even hold *part* of a character (one byte of a 3-byte UTF-8 sequence); decoding it alone
# shows U+FFFD (�), decoding the whole sequence restores the text.

# %%
header("5. Unicode round trip")
samples = ["Le chat mange une pomme.", "Ça coûte 3 € — naïve façade", "東京で🙂を見た"]
for sample in samples:
    ids = tok.encode(sample)
    assert tok.decode(ids) == sample
    print(f"{len(sample):>3} chars -> {len(ids):>3} tokens, round trip ok: {sample}")
claim("round_trips", [tok.decode(tok.encode(s)) == s for s in samples])  # checked by tests/test_tutorials.py
ids = tok.encode("🙂")
print("🙂 is the bytes", "🙂".encode("utf-8"), "-> tokens", tok.decode_tokens(ids),
      "-> alone they decode to", [tok.decode([i]) for i in ids])

# %% [markdown]
# ## 6. Vocabulary size: fewer, longer tokens
#
# A bigger vocabulary means each token covers more characters, so a sequence of `block_size`
# tokens sees more text, but the embedding table (vocab × width) grows. We measure
# *characters per token* on held-out text for three sizes.

# %%
header("6. Characters per token versus vocabulary size")
print(f"{'vocab':>6}  {'tokens':>8}  {'chars/token':>11}")
rates = []
for vocab in (256, 512, 1024):
    t = Tokenizer.train(texts, vocab)
    n = len(t.encode(text))
    rates.append(len(text) / n)
    print(f"{vocab:>6}  {n:>8,}  {rates[-1]:>11.2f}")
assert rates[0] < 1 < rates[1] < rates[2]  # bytes only: slightly under 1 (é is two bytes)
claim("chars_per_token_at_256_512_1024", rates)  # checked by tests/test_tutorials.py

# %% [markdown]
# What to notice: with 256 tokens (bytes only) one token is one character (a bit less, because
# `é` is two bytes). Each doubling of the vocabulary buys fewer extra characters per token:
# the common words are already whole tokens, and the rest of the vocabulary goes to rarer ones.
#
# ## Exercises
#
# 1. **English or French?** Train a 1024-token tokenizer on the mixed corpus, then measure
#    characters per token on held-out English only and French only
#    (`corpus(n, seed, languages=("en",))`). Which compresses better, and why might it?
# 2. **Decode by hand.** Decoding is concatenating the bytes of each token and reading them as
#    UTF-8. Write it with `tok.decode_tokens` and check it equals `tok.decode` on a sentence with
#    accents and an emoji.
# 3. **Why pre-split?** Train with the pattern `r"[^\n]+"` (one piece per line) instead of the
#    GPT-2 regex. Find learned tokens that contain a space in the middle (they span two words).
#    How many are there among the 1024? How many with the GPT-2 pattern?
# 4. **How early was a word learned?** For the pieces `" the"`, `" le"`, `" grenouille"`, print
#    their rank (id) if they are single tokens, and how many steps `explain` takes for each.
#    What does a low rank tell you about a token?
#
# Solutions: `tutorials/solutions/01_tokenization.py`.
