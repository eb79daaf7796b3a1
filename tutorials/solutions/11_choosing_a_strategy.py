# %% [markdown]
# # Solutions to Lesson 11 — Choosing a strategy
#
# Each cell answers one exercise of `tutorials/11_choosing_a_strategy.py`, calling the library,
# and checks the answer with `assert` where the answer does not depend on the run.
#
# Exercise 1 needs results measured at several sizes: it uses the committed experiment
# (`data/experiments/strategies/fair/`, the folder `minift advise` reads), and only where that is missing runs exercise 4's small one
# first (`qa_experiment` below runs it once, for whichever exercise asks first).

# %%
import functools
import json
import math
import shutil

import torch

import minift
from minift import advise, experiment
from minift.course import claim, header, output_dir, pick, smoke
from minift.strategies.layers import select_parameters

torch.manual_seed(0)
out = output_dir("11-solutions") / ("smoke" if smoke() else "full")
shutil.rmtree(out, ignore_errors=True)
out.mkdir(parents=True)


@functools.cache
def qa_experiment():
    """Exercise 4's miniature experiment on qa, run the first time it is asked for: (folder, results)."""
    qa_dir = out / "qa"
    return qa_dir, experiment.run_experiment(["qa"], sizes=[pick(50, 8), pick(1000, 32)], seeds=1, out=qa_dir,
                                             max_steps=pick(100, 2), test_limit=pick(50, 3),
                                             strategies=("full", "layers", "prompt"), quiet=True)


# %% [markdown]
# ## Exercise 1 — Interpolation at the edges
#
# It needs results measured at two sizes or more: the committed experiment, or, where that is
# missing, exercise 4's miniature experiment on qa (run here, and reused by exercise 4).

# %%
header("Exercise 1: below and above the measured sizes")
committed = advise.default_results_dir()  # the fair grid, data/experiments/strategies/fair
results = advise.load_results(committed if (committed / "results.json").is_file() else qa_experiment()[0])
task = next(iter(results["results"]))
table = results["results"][task]
sizes = sorted({int(n) for cells_ in table.values() for n in cells_})
for N, end in ((max(1, sizes[0] // 2), sizes[0]), (sizes[-1] * 2, sizes[-1])):
    a = advise.advise(task, N, results=results)
    for row in a["table"]:
        assert row["predicted"] == table[row["strategy"]][str(end)]["mean"]
        # checked by tests/test_tutorials.py
        claim(f"edge: N={N}, {row['strategy']}", [row["predicted"], table[row["strategy"]][str(end)]["mean"]])
    print(f"N={N}: every prediction equals the value measured at N={end}")
    print(f"   reason: {a['reasons'][0]}")

# %% [markdown]
# ## Exercise 2 — Where does the memory go at scale?
#
# The costs of each strategy are what the experiment recorded: the trainable fraction of each
# stage, its batch, and how far down the backward pass goes. We build them here from the shipped
# base, as section 1 of the lesson did, so this exercise needs no experiment.

# %%
header("Exercise 2: memory by strategy and model size")
bundle = minift.load_model("base")
c = bundle.model.config
P0 = bundle.model.num_parameters()
model = {"params": P0, "n_layer": c.n_layer, "n_head": c.n_head, "n_embd": c.n_embd,
         "block_size": c.block_size, "vocab_size": c.vocab_size}
weights = dict(bundle.model.named_parameters())
top_half = sum(weights[n].numel() for n in select_parameters(bundle.model, top_k=c.n_layer // 2, parts=["ln_f"]))
costs = {
    "full": [{"trainable_fraction": 1.0, "total_params": P0, "batch_size": 16, "backward_fraction": 1.0}],
    "layers": [{"trainable_fraction": top_half / P0, "total_params": P0, "batch_size": 16, "backward_fraction": 0.5}],
    "prompt": [{"trainable_fraction": 16 * c.n_embd / P0, "total_params": P0, "batch_size": 16,
                "backward_fraction": 1.0}],
}
ratio = {}
for P in (1e6, 124e6, 1.5e9):
    print(f"P = {P:,.0f}")
    for name, stages in costs.items():
        m = advise.memory_bytes(stages, model, P)
        print(f"  {name:>7}: weights {m['weights'] / 1e6:9.1f}  grads {m['gradients'] / 1e6:9.1f}  "
              f"optimizer {m['optimizer'] / 1e6:9.1f}  activations {m['activations'] / 1e6:9.1f}  total {m['total'] / 1e6:9.1f} MB")
    ratio[P] = advise.memory_bytes(costs["prompt"], model, P)["total"] / advise.memory_bytes(costs["full"], model, P)["total"]
    print(f"  prompt / full = {ratio[P]:.2f}")
assert ratio[1e6] > ratio[124e6] > ratio[1.5e9]
claim("prompt_over_full_memory_1M_124M_1.5B", list(ratio.values()))  # checked by tests/test_tutorials.py
# At 1M weights the activations dominate and a prompt saves 5 %; as P grows, weights, gradients
# and AdamW state (16 bytes per trainable weight) take over: prompt / full printed 0.95, 0.59
# and 0.39, so the ratio crosses one half between 124M and 1.5B weights. A prompt keeps only the
# 4 bytes per weight of the frozen model, plus the activations, which it does not save (the
# backward pass must reach the prompt below block 0). At 1.5B the top-half `layers` strategy
# still needs more than a prompt, but less than full.

# %% [markdown]
# ## Exercise 3 — Seeds and noise
#
# One size, two strategies, two seeds: four runs.

# %%
header("Exercise 3: two seeds")
seeds_dir = out / "seeds"
agg = experiment.run_experiment(["translation"], sizes=[pick(300, 8)], seeds=2, out=seeds_dir,
                                max_steps=pick(40, 2), test_limit=pick(40, 3), strategies=("full", "prompt"),
                                quiet=True)
records = [json.loads(line) for line in (seeds_dir / "results.jsonl").read_text().splitlines()]
cells = {}
for strategy in ("full", "prompt"):
    scores = [r["score"] for r in sorted(records, key=lambda r: r["seed"]) if r["strategy"] == strategy]
    mean = sum(scores) / len(scores)
    std = math.sqrt(sum((s - mean) ** 2 for s in scores) / (len(scores) - 1))
    lib_mean, lib_std = experiment.mean_std(scores)
    cell = json.loads((seeds_dir / "results.json").read_text())["results"]["translation"][strategy][str(pick(300, 8))]
    assert math.isclose(mean, lib_mean) and math.isclose(std, lib_std)
    assert math.isclose(mean, cell["mean"]) and math.isclose(std, cell["std"], abs_tol=1e-12)
    claim(f"seeds: {strategy}", [mean, std, lib_mean, lib_std])  # checked by tests/test_tutorials.py
    cells[strategy] = (mean, std, len(scores))
    print(f"{strategy:>7}: seeds {[round(s, 2) for s in scores]} -> mean {mean:.2f}, std {std:.2f}")
(m1, s1, n1), (m2, s2, n2) = cells["full"], cells["prompt"]
se = math.sqrt(s1 ** 2 / n1 + s2 ** 2 / n2)
print(f"difference {m1 - m2:.2f}, standard error {se:.2f}: "
      f"{'larger' if abs(m1 - m2) > se else 'not larger'} than the noise")

# %% [markdown]
# ## Exercise 4 — Another task
#
# Question answering, scored by F1.

# %%
header("Exercise 4: the miniature experiment on qa")
qa_dir, qa = qa_experiment()
print((qa_dir / "results.md").read_text())
print(experiment.rule_of_thumb("qa", qa["results"]["qa"]))
f1 = {strategy: {int(n): cell["mean"] for n, cell in by_size.items()}
      for strategy, by_size in qa["results"]["qa"].items()}
if not smoke():  # the measured run below: full wins at both sizes, by 7.7 and 9.0 F1 over the next
    for N in f1["full"]:
        assert f1["full"][N] > max(f1["layers"][N], f1["prompt"][N]), f1
# One run on a 2-core CPU printed F1 25.7 / 18.0 / 13.0 (full / layers / prompt) at N=50 and
# 27.3 / 18.3 / 11.0 at N=1000: full wins at both sizes, so the rule does not hold on QA either.
# The answer words are all in the context, and a frozen (tied) embedding loses nothing — but the
# base has never seen a question, nor an answer that ends after three words. Every strategy must
# learn the task, not merely be pointed at it, and full fine-tuning learns it fastest. The rule's
# premise (the base already can, fewer free weights only guard against over-fitting) does not
# hold for this base. (With one seed, a gap of a few points is noise: exercise 3 saw two seeds of
# one setting 2 BLEU apart; the 8- to 16-point gaps here are well beyond that.)
#
# The committed fair grid (lesson 11, section 3; three seeds, each strategy trained by epochs
# with early stopping at its own tuned rate) tells a more careful story: on QA the three tie at
# N=50 (full 16.9 ± 12.4, layers 13.6 ± 8.5, prompt 10.6 ± 5.0) and at N=200, because seeds of one
# setting scatter by up to 6.5 F1 there; only at N=1000 does `full` pull clear (37.0 ± 0.9 against
# 20.9 ± 4.9 and 23.5 ± 9.5), and at N=5000 by far more (67.5 ± 3.6 against 27.0 ± 21.6 and
# 28.9 ± 8.3). A single seed ranks the three; three seeds show how often that ranking is luck.
if (committed / "results.json").is_file():  # the figures above, from the committed grid
    fair_qa = results["results"]["qa"]
    quoted = {f"{s} {n}": [fair_qa[s][n]["mean"], experiment.cell_ci(fair_qa[s][n])]
              for n in ("50", "1000", "5000") for s in ("full", "layers", "prompt")}
    claim("fair qa: full, layers, prompt at N=50, 1000 and 5000", quoted)
    claim("fair qa: winners among full/layers/prompt",
          experiment.winners(fair_qa, among=("full", "layers", "prompt")))
    print({k: f"{m:.1f} ± {ci:.1f}" for k, (m, ci) in quoted.items()})
