# %% [markdown]
# # Solutions to Lesson 10 — Evaluation: BLEU, ROUGE and EM/F1 by hand
#
# Each cell answers one exercise of `tutorials/10_evaluation.py`, calling the library, and
# checks the answer with `assert`.

# %%
import math
import shutil
from collections import Counter

import torch

import minift
from minift import metrics
from minift.course import claim, header, output_dir, pick, smoke
from minift.evaluate import evaluate_examples, teacher_forced_loss
from minift.finetune import RunOptions, run_recipe
from minift.schedule import parse_recipe
from minift.tasks import load_examples
from minift.world import SUBSETS

torch.manual_seed(0)


def ngrams(tokens, n):
    return Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))


# %% [markdown]
# ## Exercise 1 — BLEU by hand, one more time

# %%
header("Exercise 1: 'a b c d e' vs 'a b x c y'")
hyp, ref = "a b c d e".split(), "a b x c y".split()
counts = [sum((ngrams(hyp, n) & ngrams(ref, n)).values()) for n in range(1, 5)]
totals = [sum(ngrams(hyp, n).values()) for n in range(1, 5)]
p, halvings, smoothed = [], 1, 0
for c, t in zip(counts, totals):
    if c == 0:
        halvings *= 2
        smoothed += 1
        p.append(1 / (halvings * t))
    else:
        p.append(c / t)
bp = 1.0 if len(hyp) >= len(ref) else math.exp(1 - len(ref) / len(hyp))
score = 100 * bp * math.prod(p) ** 0.25
print(f"counts {counts}, totals {totals}, p {[round(x, 4) for x in p]}, BP {bp}, BLEU {score:.2f}")
d = metrics.bleu_details(["a b c d e"], ["a b x c y"])
assert d["counts"] == counts and d["totals"] == totals
assert all(math.isclose(100 * a, b) for a, b in zip(p, d["precisions"]))
assert math.isclose(score, d["score"])
print(f"{smoothed} orders needed smoothing (3-grams: 1/(2*3), 4-grams: 1/(4*2))")
assert smoothed == 2
# checked by tests/test_tutorials.py
claim("bleu_counts_totals_score_smoothed", [d["counts"], d["totals"], d["score"], smoothed])

# %% [markdown]
# ## Exercise 2 — The brevity penalty is a corpus property

# %%
header("Exercise 2: corpus BP")
hyps = ["the cat sees the dog in the big green garden today", "a dog"]
refs = ["the cat sees the dog", "the dog sleeps near the tree"]
corpus = metrics.bleu_details(hyps, refs)
alone = metrics.bleu_details(hyps[1:], refs[1:])
print(f"corpus: c = {corpus['sys_len']}, r = {corpus['ref_len']}, BP = {corpus['bp']}")
print(f"the short pair alone: c = {alone['sys_len']}, r = {alone['ref_len']}, BP = {alone['bp']:.3f}")
assert corpus["bp"] == 1.0 and alone["bp"] < 0.5
# BLEU was designed for a corpus: the long sentence's extra n-grams already lower the precisions,
# so the length surplus of one sentence may pay for the deficit of another. Per-sentence BP would
# punish every short-but-correct translation, which real translators produce too.

# %% [markdown]
# ## Exercise 3 — ROUGE-L is not ROUGE-2

# %%
header("Exercise 3: no shared word pair, but a long common subsequence")
prediction, reference = "the big cat small sat", "the cat sat"
scores = metrics.rouge_pair(prediction, reference)
print({k: round(v["f1"], 2) for k, v in scores.items()})
assert scores["rouge2"]["f1"] == 0 and scores["rougeL"]["f1"] > 50  # LCS "the cat sat": P 3/5, R 1 -> 75
claim("rouge2_and_rougeL_f1", [scores["rouge2"]["f1"], scores["rougeL"]["f1"]])  # checked by tests/test_tutorials.py

# %% [markdown]
# ## Exercise 4 — Normalization matters

# %%
header("Exercise 4: normalize_answer")
raw_equal = "The Door!" == "door"
print(f"'The Door!' vs 'door': plain equality {raw_equal}, EM {metrics.exact_match('The Door!', 'door')}")
assert not raw_equal and metrics.exact_match("The Door!", "door") == 100.0
print(f"'the' vs 'a': EM {metrics.exact_match('the', 'a')}, F1 {metrics.token_f1('the', 'a')} "
      f"(both normalize to {metrics.normalize_answer('the')!r}: equal, but no shared token)")
assert metrics.exact_match("the", "a") == 100.0 and metrics.token_f1("the", "a") == 0.0
# checked by tests/test_tutorials.py
claim("em_and_f1_of_the_vs_a", [metrics.exact_match("the", "a"), metrics.token_f1("the", "a")])

# %% [markdown]
# ## Exercise 5 — Score a different task
#
# Question answering: the same recipe as the lesson with `"task": "qa"`. The main metric is F1.

# %%
header("Exercise 5: a quick QA fine-tune")
out = output_dir("10-solutions") / ("smoke" if smoke() else "full")
out.mkdir(parents=True, exist_ok=True)
recipe = parse_recipe({
    "name": "lesson10-qa", "task": "qa",
    "stages": [{"name": "full", "strategy": "full", "examples": pick(1000, 16), "max_steps": pick(200, 3),
                "eval_every": pick(100, 3), "eval_examples": pick(32, 4), "lr": 1e-3, "warmup_steps": pick(20, 1)}],
}, source="lesson10-qa")
run_dir = out / "qa-run"
shutil.rmtree(run_dir, ignore_errors=True)
run_recipe(recipe, RunOptions(out=str(run_dir), seed=0, quiet=True, eval_limit=pick(32, 4)))
n = pick(40, 3)
test = load_examples(task="qa", split="test", n=pick(100, 6), seed=0)
print(f"{'model':>10} {'EM':>6} {'F1':>6} {'val loss':>9}")
before_after = {}
for name, bundle in (("base", minift.load_model("base")), ("fine-tuned", minift.load_model(run_dir))):
    m = evaluate_examples(bundle, test)["metrics"]
    before_after[name] = (m["f1"], teacher_forced_loss(bundle, test))
    print(f"{name:>10} {m['exact_match']:6.1f} {m['f1']:6.1f} {before_after[name][1]:9.3f}")
# The loss falls even in smoke mode's few steps (10.7 -> 3.8); F1 needs the full run (0.5 -> 34 below).
assert before_after["fine-tuned"][1] < before_after["base"][1], before_after
if not smoke():
    assert before_after["fine-tuned"][0] > before_after["base"][0], before_after
tuned = minift.load_model(run_dir)
per_kind = {}
for kind in SUBSETS["qa"]:
    examples = load_examples(task="qa", split="test", n=n, seed=0, subset=kind)
    per_kind[kind] = evaluate_examples(tuned, examples)["metrics"]["f1"]
print("F1 by question kind:", {k: round(v, 1) for k, v in per_kind.items()})
print("hardest:", min(per_kind, key=per_kind.get))
assert set(per_kind) == set(SUBSETS["qa"])
# One run on a 2-core CPU: the base scored EM 0, F1 0.5 (it goes on writing the story) with a
# validation loss of 7.1 — a short answer followed by <|endoftext|> is very unlikely to a model
# that never saw one. After 200 steps: EM 29, F1 34, loss 0.94. The hardest kind was how_many
# (F1 15): the answer is a number word that must be counted or found among several, where "who"
# (F1 55) usually names the one person in the context.
