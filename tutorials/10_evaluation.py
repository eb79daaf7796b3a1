# %% [markdown]
# # Lesson 10 — Evaluation: BLEU, ROUGE and EM/F1 by hand
#
# A fine-tuned model writes text. To say whether it writes *good* text we compare what it wrote
# with a human reference, and turn the comparison into one number. Each task has its number:
# **BLEU** for translation, **ROUGE** for summaries, **exact match and F1** for answers to
# questions. All three count overlapping words; they differ in *what* they count and *how* the
# counts become a score.
#
# **You will learn**
# - BLEU: the "13a" tokenization, clipped n-gram precision, the brevity penalty and the "exp"
#   smoothing, all counted by hand on a two-sentence corpus, then `minift.metrics.bleu_details`
#   proven equal;
# - ROUGE-1, ROUGE-2 and ROUGE-L: precision, recall and F1 of overlapping words, and the
#   longest common subsequence (LCS) by dynamic programming;
# - SQuAD exact match (EM) and F1, and why both first *normalize* the answer;
# - `minift.evaluate.evaluate_examples`: batched greedy decoding, then the metric, on the base
#   model and on a model fine-tuned for a minute;
# - why the validation loss and the task metric can disagree, measured on a real run.
#
# **Prerequisites:** lesson 06 (full fine-tuning: prompts, completions, the loss mask). Python's
# `collections.Counter`. The metric sections need no PyTorch at all.
#
# **Time:** about 45 minutes to read and run; the script runs in 53 s on 2 CPU cores (full mode,
# one thread; measured in `tutorials/TEACHING.md` section 3), a few seconds with `MINIFT_SMOKE=1`.
#
# Library code: `minift/metrics.py` (BLEU, ROUGE, EM/F1) and `minift/evaluate.py` (decoding and
# scoring).

# %%
import json
import math
import random
import re
import shutil
import string
from collections import Counter

import torch

import minift
from minift import metrics
from minift.course import claim, header, key, lesson_seed, output_dir, pick, show, smoke
from minift.evaluate import evaluate_examples, teacher_forced_loss
from minift.finetune import RunOptions, run_recipe
from minift.schedule import parse_recipe
from minift.tasks import load_examples

SEED = lesson_seed()  # 0 unless MINIFT_SEED says otherwise (the teacher's guide measures the spread)
random.seed(SEED)
torch.manual_seed(SEED)

# %% [markdown]
# ## 1. BLEU
#
# BLEU (Papineni et al., 2002) asks: *what fraction of the words and short phrases the model
# wrote also appear in the reference?* It is computed over a whole **corpus** (all sentences at
# once), not averaged sentence by sentence.
#
# ### 1a. Tokenization ("13a")
#
# Before counting, both sides are cut into tokens with the rules of WMT's `mteval-v13a.pl`, the
# default of sacreBLEU: punctuation is split off words, except the apostrophe (`l'école` stays
# one token), a hyphen between letters, and `.`/`,` inside numbers. Case is kept: `Le` and `le`
# are different tokens.

# %%
header("1a. 13a tokenization")
for line in ["Le chat, qui dort, n'aime pas l'eau.", "Il a 1,5 kg de pommes (rouges)!",
             "Un arc-en-ciel: 3-4 couleurs."]:
    print(f"  {line!r:40} -> {metrics.tokenize_13a(line)!r}")

# %% [markdown]
# ### 1b. Clipped n-gram precision
#
# For n = 1, 2, 3, 4, list the hypothesis' n-grams (runs of n tokens). Each one that also occurs
# in the reference is a match, but a reference n-gram can be matched **at most as often as it
# occurs there** ("clipping"). Without clipping, the hypothesis `le le le le` would score a
# perfect 1-gram precision against any reference that contains `le`.
#
# Over the corpus, add up per order: `counts[n]` (clipped matches) and `totals[n]` (hypothesis
# n-grams). The modified precision is `p_n = counts[n] / totals[n]`.

# %%
header("1b. Counting n-grams by hand")
hypotheses = ["Le chat mange le poisson.", "Il est sur la table."]
references = ["Le chat mange un poisson.", "Le livre est sur la table rouge."]


def ngrams(tokens, n):
    """Counter of the n-grams (tuples) in a token list."""
    return Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))


counts, totals = [0] * 4, [0] * 4
sys_len = ref_len = 0
for hyp, ref in zip(hypotheses, references):
    h, r = metrics.tokenize_13a(hyp).split(), metrics.tokenize_13a(ref).split()
    sys_len, ref_len = sys_len + len(h), ref_len + len(r)
    for n in range(1, 5):
        h_grams, r_grams = ngrams(h, n), ngrams(r, n)
        matched = h_grams & r_grams  # Counter '&' keeps the smaller count: that is the clipping
        counts[n - 1] += sum(matched.values())
        totals[n - 1] += sum(h_grams.values())
        if n <= 2:
            print(f"  {n}-grams of {hyp!r}: matched {sorted(' '.join(g) for g in matched.elements())}")
print("counts (clipped matches):", counts)
print("totals (hypothesis n-grams):", totals)
print("precisions p_n:", [f"{c}/{t}" for c, t in zip(counts, totals)])

# %% [markdown]
# Clipping, on the hypothesis that repeats one correct word:

# %%
header("1b. Clipping: a hypothesis that repeats one word")
spam = "le le le le le le".split()
ref_tokens = "le chat mange le poisson".split()
print(f"unclipped: {sum(c for g, c in ngrams(spam, 1).items() if g in ngrams(ref_tokens, 1))}/6,"
      f"  clipped: {sum((ngrams(spam, 1) & ngrams(ref_tokens, 1)).values())}/6")

# %% [markdown]
# ### 1c. Brevity penalty, smoothing, and the geometric mean
#
# Precision rewards saying little: the one-word hypothesis `Le` has 1-gram precision 1. So BLEU
# multiplies by a **brevity penalty** computed from the corpus lengths `c` (hypothesis tokens) and
# `r` (reference tokens):
#
#     BP = 1                  if c >= r
#     BP = exp(1 - r / c)     if c < r        (and 0 if c = 0)
#
#     BLEU = 100 · BP · (p_1 · p_2 · p_3 · p_4) ** (1/4)
#
# The geometric mean is 0 as soon as one order has no match at all, which is common for short
# sentences. sacreBLEU's default **"exp" smoothing** replaces the k-th zero order
# (k = 1, 2, ... counted from n = 1) by `1 / (2**k · totals[n])` — a small number that halves
# again for each further zero order. If *nothing* matches, BLEU stays 0.

# %%
header("1c. BP, smoothing and the score")
p, halvings = [], 1
for c, t in zip(counts, totals):
    if c == 0:
        halvings *= 2
        p.append(1 / (halvings * t))  # exp smoothing
    else:
        p.append(c / t)
bp = 1.0 if sys_len >= ref_len else math.exp(1 - ref_len / sys_len)
score = 100 * bp * math.prod(p) ** (1 / 4)
print(f"c = {sys_len} hypothesis tokens, r = {ref_len} reference tokens -> BP = {bp:.4f}")
print(f"p = {[round(x, 4) for x in p]} -> BLEU = {score:.2f}")

details = metrics.bleu_details(hypotheses, references)
assert details["counts"] == counts and details["totals"] == totals
assert math.isclose(details["bp"], bp) and math.isclose(details["score"], score)
print(f"minift.metrics.bleu_details agrees: {details['score']:.2f}")
claim("bleu_by_hand_and_library", [score, details["score"]])  # checked by tests/test_tutorials.py
claim("bleu_counts_and_totals", [details["counts"], details["totals"]])  # checked by tests/test_tutorials.py

# %% [markdown]
# Corpus BLEU is **not** the mean of sentence BLEUs: the counts are summed first. A perfect
# short sentence and a poor long one weigh by their n-grams, not one vote each. And watch the
# brevity penalty bite on a hypothesis that is precise but says too little:

# %%
header("1c. Corpus BLEU is not the mean of sentence BLEUs; the brevity penalty")
one = metrics.bleu(["Le chat mange le poisson."], ["Le chat mange un poisson."])
two = metrics.bleu(["Il est sur la table."], ["Le livre est sur la table rouge."])
print(f"sentence BLEUs {one:.2f} and {two:.2f}; their mean {(one + two) / 2:.2f}; corpus BLEU {score:.2f}")
short = metrics.bleu_details(["Le chat mange un poisson."], ["Le chat mange un poisson dans la cuisine."])
print(f"6 tokens for a 9-token reference: precisions {[round(x) for x in short['precisions']]} %, "
      f"BP = exp(1 - 9/6) = {short['bp']:.3f}, BLEU = {short['score']:.2f}")

# %% [markdown]
# ## 2. ROUGE
#
# ROUGE (Lin, 2004) is the summarization metric. Where BLEU asks for precision (is what you
# wrote in the reference?), ROUGE was born asking for **recall** (is what the reference says in
# your summary?). Today one reports the F1 of both, for each of:
#
# - **ROUGE-1**: overlapping words; **ROUGE-2**: overlapping word pairs (both clipped);
# - **ROUGE-L**: the **longest common subsequence** — words in the same order, not necessarily
#   adjacent. It rewards getting the sentence structure right without demanding exact phrases.
#
# With `m` matching units, `P = m / |prediction|`, `R = m / |reference|`,
# `F1 = 2PR / (P + R)`. Unlike BLEU, ROUGE is computed **per pair and then averaged**.
#
# Tokenization is cruder than 13a: lowercase, keep runs of `[a-z0-9]`, everything else separates.
# An accented letter is a separator too (`café` → `caf`), which is one reason ROUGE is an
# English metric here.

# %%
header("2. ROUGE by hand")
print("rouge_tokenize:", metrics.rouge_tokenize("Tom Finds A Red Ball, near the café!"))
prediction = "Tom finds a ball in the garden"
reference = "Tom finds a red ball in the park and gives it to Anna"
pred, ref = metrics.rouge_tokenize(prediction), metrics.rouge_tokenize(reference)


def prf(m, n_pred, n_ref):
    P, R = m / n_pred, m / n_ref
    return P, R, (2 * P * R / (P + R) if m else 0.0)


m1 = sum((ngrams(pred, 1) & ngrams(ref, 1)).values())
m2 = sum((ngrams(pred, 2) & ngrams(ref, 2)).values())
print(f"ROUGE-1: {m1} shared words of {len(pred)} / {len(ref)} -> P, R, F1 = "
      f"{[round(100 * x, 2) for x in prf(m1, len(pred), len(ref))]}")
print(f"ROUGE-2: {m2} shared pairs of {len(pred) - 1} / {len(ref) - 1} -> P, R, F1 = "
      f"{[round(100 * x, 2) for x in prf(m2, len(pred) - 1, len(ref) - 1)]}")

# %% [markdown]
# ### The longest common subsequence, by dynamic programming
#
# Let `L[i][j]` be the LCS length of the first `i` prediction words and the first `j` reference
# words. If word `i` equals word `j`, it extends the LCS of both prefixes without them:
# `L[i][j] = L[i-1][j-1] + 1`; otherwise drop one word from either side and keep the better:
# `L[i][j] = max(L[i-1][j], L[i][j-1])`. The table is (|pred|+1) × (|ref|+1); the answer is the
# bottom-right cell. (The library keeps only one row of it at a time.)

# %%
header("2. The longest common subsequence, by dynamic programming")
L = [[0] * (len(ref) + 1) for _ in range(len(pred) + 1)]
for i in range(1, len(pred) + 1):
    for j in range(1, len(ref) + 1):
        L[i][j] = L[i - 1][j - 1] + 1 if pred[i - 1] == ref[j - 1] else max(L[i - 1][j], L[i][j - 1])
print(" " * 8 + "".join(f"{w[:5]:>6}" for w in ref))
for i, w in enumerate(pred, start=1):
    print(f"{w[:7]:>7} " + "".join(f"{v:>6}" for v in L[i][1:]))
lcs = L[-1][-1]
assert lcs == metrics.lcs_length(pred, ref)
print(f"LCS = {lcs}; ROUGE-L P, R, F1 = {[round(100 * x, 2) for x in prf(lcs, len(pred), len(ref))]}")

library = metrics.rouge_pair(prediction, reference)
for variant, m, n_pred, n_ref in (("rouge1", m1, len(pred), len(ref)), ("rouge2", m2, len(pred) - 1, len(ref) - 1),
                                  ("rougeL", lcs, len(pred), len(ref))):
    assert math.isclose(library[variant]["f1"], 100 * prf(m, n_pred, n_ref)[2])
print("minift.metrics.rouge_pair agrees:", {k: round(v["f1"], 2) for k, v in library.items()})
claim("rouge_f1", {k: v["f1"] for k, v in library.items()})  # checked by tests/test_tutorials.py

# %% [markdown]
# Word order: ROUGE-1 cannot see it, ROUGE-2 and ROUGE-L can.

# %%
header("2. Word order: ROUGE-1 cannot see it")
print("'sat the cat' vs 'the cat sat':", {k: round(v, 2) for k, v in metrics.rouge(["sat the cat"], ["the cat sat"]).items()})

# %% [markdown]
# ## 3. Exact match and F1 (SQuAD)
#
# An extractive answer is short: "near the door", "Anna", "three". Word n-grams are too coarse a
# tool, so the SQuAD evaluation (Rajpurkar et al., 2016) first **normalizes** both strings —
# lowercase, drop punctuation, drop the articles *a*, *an*, *the*, squeeze spaces — and then
# reports
#
# - **EM**: 100 if the normalized strings are identical, else 0;
# - **F1**: the F1 of the two *bags* of normalized tokens (shared tokens counted with clipping).
#
# With several acceptable answers, each prediction takes its best score over them.

# %%
header("3. EM and F1 by hand")

def normalize(s):
    s = "".join(ch for ch in s.lower() if ch not in string.punctuation)
    s = re.sub(r"\b(a|an|the)\b", " ", s)
    return " ".join(s.split())


pairs = [("The red ball.", "red ball"), ("near the door", "Near the door"),
         ("in the garden, near the tree", "near the tree"), ("two", "three")]
for prediction, gold in pairs:
    p_tokens, g_tokens = normalize(prediction).split(), normalize(gold).split()
    shared = sum((Counter(p_tokens) & Counter(g_tokens)).values())
    em = 100.0 * (p_tokens == g_tokens)
    f1 = 100 * prf(shared, len(p_tokens), len(g_tokens))[2] if shared else 0.0
    assert normalize(prediction) == metrics.normalize_answer(prediction)
    assert em == metrics.exact_match(prediction, gold) and math.isclose(f1, metrics.token_f1(prediction, gold))
    print(f"  {prediction!r:32} vs {gold!r:16}  normalized {normalize(prediction)!r:24} EM {em:5.1f}  F1 {f1:5.1f}")
# checked by tests/test_tutorials.py
squad = claim("squad", metrics.squad([p for p, _ in pairs], [g for _, g in pairs]))
print("minift.metrics.squad agrees:", squad)
print("several gold answers, the best counts:", metrics.squad(["3"], [["three", "3"]]))

# %% [markdown]
# ## 4. Scoring a model: `evaluate_examples`
#
# A metric needs the model's *own* text. `evaluate_examples(bundle, examples)` does, in batches:
#
# 1. encode each prompt (`"English: ...\nFrench:"`), cut from the left to fit the block;
# 2. left-pad the batch to (B, T) with an attention mask, so all rows end at the same column;
# 3. decode greedily with the KV cache until `<|endoftext|>`;
# 4. score the new text against the references with the task's metric.
#
# We score the shipped base model, then a copy fine-tuned for about a minute. The base never saw
# a translation *pair* (lesson 05): it treats the prompt as the start of a story and goes on
# writing — often in English. Alongside the metric we compute the **validation loss**
# (`teacher_forced_loss`): the mean cross-entropy of the reference completion's tokens, each
# predicted from the *true* previous tokens.

# %%
header("4. The base model on held-out translation")
out = output_dir("10") / ("smoke" if smoke() else "full")
out.mkdir(parents=True, exist_ok=True)
base = minift.load_model("base")
test = load_examples(task="translation", split="test", n=pick(100, 6), seed=0)
base_report = evaluate_examples(base, test)
base_loss = teacher_forced_loss(base, test)
print(f"base: BLEU {base_report['metrics']['bleu']:.2f}, val loss {base_loss:.3f} on {base_report['n']} test pairs")
for s in base_report["samples"][:2]:
    print(f"  reference:  {s['reference']}\n  prediction: {s['prediction']}")

# %% [markdown]
# Now a short full fine-tune on 300 pairs, built as a recipe (lesson 09 explains recipes). Two
# settings matter for section 5: `eval_every` evaluates often, and `monitor = "bleu"` makes every
# evaluation *generate* and compute BLEU on 64 validation pairs, besides the loss. Early stopping
# is off (no `patience`); at the end the weights with the best BLEU are put back.

# %%
header("4. A quick fine-tune that logs both loss and BLEU")
recipe = parse_recipe({
    "name": "lesson10", "task": "translation",
    "stages": [{"name": "full", "strategy": "full", "examples": pick(300, 16), "max_steps": pick(200, 4),
                "eval_every": pick(20, 2), "eval_examples": pick(64, 4), "monitor": "bleu",
                "lr": 1e-3, "warmup_steps": pick(20, 1)}],
}, source="lesson10")
run_dir = out / "run"
shutil.rmtree(run_dir, ignore_errors=True)  # a run refuses to overwrite an earlier one: start clean
summary = run_recipe(recipe, RunOptions(out=str(run_dir), seed=SEED, quiet=True, eval_limit=pick(64, 4)))
print(f"trained {summary['stages'][0]['steps']} steps in {summary['seconds']:.0f} s; run folder {run_dir}")

tuned = minift.load_model(run_dir)
tuned_report = evaluate_examples(tuned, test, n_samples=len(test))  # keep every prediction
tuned_loss = teacher_forced_loss(tuned, test)
print(f"{'model':>10} {'BLEU':>7} {'val loss':>9}")
print(f"{'base':>10} {base_report['metrics']['bleu']:7.2f} {base_loss:9.3f}")
print(f"{'fine-tuned':>10} {tuned_report['metrics']['bleu']:7.2f} {tuned_loss:9.3f}")
# checked by tests/test_tutorials.py
claim("bleu_base_and_tuned", [base_report["metrics"]["bleu"], tuned_report["metrics"]["bleu"]])
claim("val_loss_base_and_tuned", [base_loss, tuned_loss])  # checked by tests/test_tutorials.py
for s in tuned_report["samples"][:3]:
    print(f"  English:    {s['prompt'].splitlines()[0][len('English: '):]}\n"
          f"  reference:  {s['reference']}\n  prediction: {s['prediction']}")

# %% [markdown]
# Where are the BLEU points lost? `bleu_details` gives the working: if `p_1` is high but `p_4`
# low, the words are right and the phrasing is not; if BP < 1 the model stops too early.

# %%
header("4. Where the BLEU points are lost")
predictions = [s["prediction"] for s in tuned_report["samples"]]
d = metrics.bleu_details(predictions, [e.reference for e in test])
print(f"precisions p_1..p_4 = {[round(x, 1) for x in d['precisions']]}, BP = {d['bp']:.3f} "
      f"(c = {d['sys_len']}, r = {d['ref_len']}), BLEU = {d['score']:.2f}")
assert math.isclose(d["score"], tuned_report["metrics"]["bleu"])

# %% [markdown]
# ## 5. When the loss and the metric disagree
#
# The validation loss and BLEU measure different things:
#
# - the loss is **teacher-forced**: every reference token is predicted from the *correct*
#   previous tokens. Generation feeds the model its *own* previous tokens, so one early mistake
#   derails the rest — the loss never sees that (*exposure bias*);
# - the loss punishes **confidence** on every token, including tokens greedy decoding gets right
#   anyway: as a model over-fits a small training set it grows over-confident, the loss on new
#   sentences rises, while its arg-max choices — what BLEU sees — can still improve;
# - BLEU is a step function of the arg-max; small loss changes often leave it unchanged.
#
# So the two can disagree on *when* a model is best, and early stopping on the loss can stop too
# soon. Does it happen here? Our own run, read back from its `log.jsonl` (one evaluation record
# every `eval_every` steps):

# %%
header("5. Val loss and BLEU along the run")
show(run_dir / "loss.svg", "loss chart")  # run_recipe draws the run's losses; in a notebook they appear here
evals = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
evals = [r for r in evals if r.get("event") == "eval"]
print(f"{'step':>5} {'val loss':>9} {'BLEU':>6}")
for r in evals:
    print(f"{r['step']:>5} {r['val_loss']:9.3f} {r['metrics']['bleu']:6.1f}")
by_loss = min(evals, key=lambda r: r["val_loss"])
by_bleu = max(evals, key=lambda r: r["metrics"]["bleu"])
print(f"lowest val loss at step {by_loss['step']} (BLEU {by_loss['metrics']['bleu']:.1f}); "
      f"best BLEU at step {by_bleu['step']} (val loss {by_loss['val_loss'] if by_bleu is by_loss else by_bleu['val_loss']:.3f})")
if by_bleu["step"] > by_loss["step"]:
    print("-> stopping at the loss minimum would have given up "
          f"{by_bleu['metrics']['bleu'] - by_loss['metrics']['bleu']:.1f} BLEU")
key("base BLEU (100 test pairs)", base_report["metrics"]["bleu"], asserted="below 1")
key("fine-tuned BLEU (100 test pairs)", tuned_report["metrics"]["bleu"], asserted="15–25")
key("step of the lowest validation loss", by_loss["step"], asserted="before the best-BLEU step")
key("step of the best BLEU along the run", by_bleu["step"])
key("validation loss at the last evaluation minus its lowest", evals[-1]["val_loss"] - by_loss["val_loss"],
    asserted="above 0 (it rises again)")
key("BLEU given up by stopping at the loss minimum", by_bleu["metrics"]["bleu"] - by_loss["metrics"]["bleu"],
    asserted="2–10")
if not smoke():
    # What the text below quotes. Measured (`OMP_NUM_THREADS=1 python tutorials/10_evaluation.py`,
    # seed 0, torch 2.13 CPU): base BLEU 0.11, fine-tuned 20.06; lowest validation loss at step 80
    # (BLEU 14.2), best BLEU 19.7 at step 140, the loss 1.522 at step 200. The ranges leave room
    # for another PyTorch build or thread count.
    assert base_report["metrics"]["bleu"] < 1, base_report["metrics"]["bleu"]
    assert 15 <= tuned_report["metrics"]["bleu"] <= 25, tuned_report["metrics"]["bleu"]
    assert by_bleu["step"] > by_loss["step"], (by_loss["step"], by_bleu["step"])  # the loss turns first
    assert evals[-1]["val_loss"] > by_loss["val_loss"]  # and then rises
    assert 2 <= by_bleu["metrics"]["bleu"] - by_loss["metrics"]["bleu"] <= 10, (by_loss, by_bleu)

# %% [markdown]
# What to notice. The run above prints, with one thread (seed 0; a full run asserts the key
# figures within ranges: the base under 1 BLEU, the fine-tuned model 15–25, the best BLEU after
# the lowest loss and 2–10 points above it):
#
# - the base: BLEU 0.1 on 100 test pairs, validation loss 2.12. It continued the English
#   ("sleeps near the tree."); the loss is finite because French *is* likely after "French:",
#   but greedy decoding never writes it;
# - after 200 steps on 300 pairs: BLEU 20.1, loss 1.42. The French is fluent and often about
#   something else ("Le magasin est vieux. Le soir, Max va à l'école." for "Today, Max goes to
#   the shop. The shop is pretty.") — the small-data failure, where the model has learned
#   French and not yet the mapping. `bleu_details` shows it: 1-gram precision 50 %,
#   4-gram 12 %, and a brevity penalty of 0.87 (its sentences are too short);
# - along the run, the validation loss was lowest at step 80 (1.43, BLEU 14.2) and then *rose*
#   to 1.52, while BLEU went on up to 19.7 at step 140. Stopping at the loss minimum would have
#   given up 5.5 BLEU. The model over-fits 300 pairs — over-confident on new sentences, which the
#   loss punishes — while its arg-max choices keep improving.
#
# That is why a recipe stage can set `monitor = "bleu"` (or `rougeL`, `f1`, `exact_match`): early
# stopping and "restore the best" then watch the number you care about, at the price of
# generating text at every evaluation. Note also how BLEU jumps between evaluations (16.7, 13.2,
# 19.7): 64 validation sentences are a noisy ruler, and "the best step" partly picks noise.
#
# ## Exercises
#
# 1. **BLEU by hand, one more time.** For the hypothesis `"a b c d e"` and reference
#    `"a b x c y"`, compute the clipped counts, totals, smoothed precisions, BP and BLEU with your
#    own code, and check them against `metrics.bleu_details`. How many orders needed smoothing?
# 2. **The brevity penalty is a corpus property.** Show that with two pairs — one hypothesis much
#    longer than its reference, one much shorter — the corpus BP is 1, although the short
#    sentence alone would be penalised. Why did the designers accept this?
# 3. **ROUGE-L is not ROUGE-2.** Find a prediction/reference pair with ROUGE-2 F1 = 0 but
#    ROUGE-L F1 > 50, and check it with `metrics.rouge_pair`.
# 4. **Normalization matters.** Find an answer whose EM is 0 before `normalize_answer` and 100
#    after, and one pair where EM is 100 but F1 is 0 (hint: articles only).
# 5. **Score a different task.** Fine-tune on `qa` for a minute (the same recipe with
#    `"task": "qa"`) and print EM, F1 and the validation loss before and after. Which of the five
#    question kinds (`minift.world.SUBSETS["qa"]`) is hardest? (Use `load_examples(..., subset=kind)`.)
#
# Solutions: `tutorials/solutions/10_evaluation.py`.
