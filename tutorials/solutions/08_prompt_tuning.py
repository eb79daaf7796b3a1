# %% [markdown]
# # Solutions to Lesson 08 — Parameter-efficient fine-tuning: soft prompts, prefixes, LoRA, BitFit
#
# Each cell answers one exercise of `tutorials/08_prompt_tuning.py`, calling the library, and
# checks the answer with `assert` where a check is possible. Exercises 1–3 start from one model
# fine-tuned in full on summarization (both styles mixed), as in Section 5 of the lesson;
# exercises 4 and 5 start from the base, on translation, as in Sections 10–12.

# %%
import json
import shutil

import torch

import minift
from minift.course import claim, header, output_dir, pick, smoke
from minift.errors import MiniftError
from minift.evaluate import evaluate_examples
from minift.finetune import RunOptions, run_recipe
from minift.strategies.bitfit import bias_names
from minift.strategies.lora import target_shapes
from minift.strategies.prompt import load_prompt
from minift.schedule import load_recipe, parse_recipe
from minift.tasks import load_examples
from minift.world import SUBSETS

torch.manual_seed(0)
N_TRAIN = pick(800, 24)
N_EVAL = pick(30, 4)
PROMPT_STEPS = pick(100, 3)
OUT = output_dir("08_prompt_tuning_solutions")
val = {style: load_examples("summarization", split="val", n=N_EVAL, seed=0, subset=style)
       for style in SUBSETS["summarization"]}


def run(name, stage, base="base"):
    """Run one stage on summarization from ``base``; returns the run folder."""
    stage = {"eval_examples": pick(64, 8), **stage}  # the validation-loss set (64 is the default)
    recipe = parse_recipe({"name": name, "task": "summarization", "stages": [stage]}, source=name)
    folder = OUT / name
    shutil.rmtree(folder, ignore_errors=True)  # run_recipe refuses to overwrite a finished run
    run_recipe(recipe, RunOptions(out=str(folder), base=base, examples=N_TRAIN, seed=0, eval_limit=N_EVAL,
                                  quiet=True))
    return folder


def style_of(text):
    """'headline' (every word capitalized, no full stop), 'sentence' (ends with one), or None."""
    words = text.split()
    if words and not text.endswith(".") and all(w[0].isupper() or not w[0].isalpha() for w in words):
        return "headline"
    return "sentence" if words and text.endswith(".") else None


def style_accuracy(folder, styles=SUBSETS["summarization"]):
    """Percent of outputs in the asked style, each style's examples using its own prompt."""
    bundle = minift.load_model(folder)
    right = total = 0
    for style in styles:
        examples = val[style]
        report = evaluate_examples(bundle, examples, prompt_names=style, n_samples=len(examples))
        right += sum(style_of(s["prediction"].strip()) == style for s in report["samples"])
        total += len(examples)
    return 100 * right / total


def prompt_norm(folder):
    """Mean length of the prompt vectors of a run (both styles)."""
    prompts = minift.load_model(folder).prompts.values()
    return float(torch.cat([p.weight.detach() for p in prompts]).norm(dim=1).mean())


header("The starting point: full fine-tuning on both styles")
full_dir = run("full", {"strategy": "full", "max_steps": pick(200, 3), "lr": 1e-3, "dropout": 0.1})
print("full-tuned model in", full_dir)

# %% [markdown]
# ## Exercise 1 — How long a prompt, and where to start it?
#
# ### (a) P = 4 against P = 32

# %%
header("Exercise 1(a): P = 4 versus P = 32")
prompt_runs = {}
n_embd = minift.load_model(full_dir).model.config.n_embd


def trained_numbers(folder):
    """The stage's trainable_params, as summary.json records it."""
    return json.loads((folder / "summary.json").read_text())["stages"][0]["trainable_params"]


for P in (4, 32):
    prompt_runs[P] = run(f"prompt-{P}", {"strategy": "prompt", "prompt_tokens": P, "max_steps": PROMPT_STEPS},
                         base=str(full_dir))
    print(f"P = {P:>2}: {P * 2 * n_embd:>6,} weights (two prompts), "
          f"style accuracy {style_accuracy(prompt_runs[P]):5.1f}%")
    # One (P, C) prompt per style, and nothing else trained: 2 · P · C numbers.
    prompts = minift.load_model(prompt_runs[P]).prompts
    assert sorted(prompts) == sorted(SUBSETS["summarization"])
    assert all(tuple(p.weight.shape) == (P, n_embd) for p in prompts.values())
    assert trained_numbers(prompt_runs[P]) == 2 * P * n_embd

# %% [markdown]
# Choosing between two styles is one bit of information per example: even 4 vectors are enough
# to carry it. Longer prompts give more room (Lester et al. saw gains up to about 20 tokens on
# harder tasks) but also take positions out of the block.

# %% [markdown]
# ### (b) Starting from words

# %%
header("Exercise 1(b): the headline prompt from 'Headline:' versus from random words")
few = pick(15, 2)
starts = {}
for init in ("vocab", "text"):
    stage = {"strategy": "prompt", "data": "headline", "prompts": ["headline"], "prompt_tokens": 4,
             "max_steps": few, "warmup_steps": 2, "prompt_init": init}
    if init == "text":
        stage["prompt_text"] = "Headline:"
    folder = run(f"init-{init}", stage, base=str(full_dir))
    starts[init] = style_accuracy(folder, styles=["headline"])
    print(f"init {init:<5}: headlines in headline style after {few} steps: {starts[init]:5.1f}%")
    # The headline prompt alone trained (4 · C numbers); the start is the only difference.
    assert sorted(minift.load_model(folder).prompts) == ["headline"] and trained_numbers(folder) == 4 * n_embd

# %% [markdown]
# `data = "headline"` trains on that subset only, and `prompts = ["headline"]` names the one
# prompt to train. A start from real words is a start the model can read; a random-vocabulary
# start is readable too, only meaningless. Compare the two numbers: on this small task, a few
# steps of training usually matter more than the start.

# %% [markdown]
# ## Exercise 2 — Weight decay on a prompt

# %%
header("Exercise 2: weight decay 0.5 on the prompt")
decayed = run("decay", {"strategy": "prompt", "prompt_tokens": 4, "max_steps": PROMPT_STEPS, "weight_decay": 0.5},
              base=str(full_dir))
wte = minift.load_model(full_dir).model.transformer.wte.weight.detach()
token_norm = float(wte.norm(dim=1).mean())
print(f"mean vector length: real tokens {token_norm:.3f}; prompt without decay {prompt_norm(prompt_runs[4]):.3f}; "
      f"with decay 0.5 {prompt_norm(decayed):.3f}; style accuracy with decay {style_accuracy(decayed):.1f}%")
if not smoke():
    assert prompt_norm(decayed) < prompt_norm(prompt_runs[4])
    assert prompt_norm(prompt_runs[4]) > token_norm  # undecayed, the prompt outgrows a real token (below)

# %% [markdown]
# Decoupled decay multiplies every vector by `1 − lr·wd` each step: at lr 0.1 and wd 0.5 that is
# 5 % per step, so the prompt is pulled towards the zero vector, which is no token the model has
# ever read. The gradient has to fight the decay all the time, which is why prompts train with
# `weight_decay = 0`. Note also how long the undecayed prompt vectors grow: several times a real
# token's length. A soft prompt need not look like any word; it only has to steer the model.

# %% [markdown]
# ## Exercise 3 — A stale prompt

# %%
header("Exercise 3: the base moved; the prompt refuses")
# restore_best = false: keep the last weights even if the validation loss did not improve, so the
# model has surely moved (putting back the step-0 weights would give the very same base).
more = run("full-more", {"strategy": "full", "max_steps": pick(10, 2), "lr": 1e-3, "restore_best": False},
           base=str(full_dir))
moved_model = minift.load_model(more).model
prompt_file = prompt_runs[4] / "prompts" / "headline.pt"
try:
    load_prompt(prompt_file, moved_model)
    refused = False
except MiniftError as error:
    refused = True
    print("refused:", error)
assert refused
claim("stale_prompt_refused", refused)  # checked by tests/test_tutorials.py
assert load_prompt(prompt_file, minift.load_model(prompt_runs[4]).model) is not None  # its own base: fine

# %% [markdown]
# The prompt was tuned to what *those* weights do with its vectors. After a few more steps of
# fine-tuning, every layer reads them a little differently; the prompt might still half work, or
# not at all, and nothing would say so. The fingerprint turns that silent drift into an error.
# (`run_recipe` likewise drops a model's prompts when a later stage trains its weights.)


# %% [markdown]
# ## Exercises 4–5 — LoRA and BitFit on translation
#
# One helper runs a built-in recipe from the base with a few fields changed, on the same data and
# steps for every run, and returns the stage's record from `summary.json`.

# %%
header("Exercises 4-5: the runs")
TR_TRAIN, TR_STEPS = pick(1000, 24), pick(100, 3)
base = minift.load_model("base").model
config, C = base.config, base.config.n_embd
shapes = target_shapes(config)  # (in, out) of each layer LoRA may wrap, read off the model's own code
print("LoRA targets, (in, out):", shapes)


def run_translation(name, recipe_name, **fields):
    recipe = load_recipe(recipe_name)
    stage = recipe.stages[0]
    for key, value in fields.items():
        setattr(stage.options, key, value)  # a strategy's own fields live in stage.options
    stage.max_steps, stage.eval_examples = TR_STEPS, pick(64, 4)
    # Keep the last weights, not the best: the questions are what each setting trains and moves,
    # and a short run whose validation loss never beat step 0 would put the base back.
    stage.restore_best = False
    folder = OUT / name
    shutil.rmtree(folder, ignore_errors=True)
    run_recipe(recipe, RunOptions(out=str(folder), task="translation", examples=TR_TRAIN, seed=0,
                                  eval_limit=pick(64, 4), quiet=True))
    s = json.loads((folder / "summary.json").read_text())["stages"][0]
    print(f"  {name:<16} {s['trainable_params']:>7,} numbers train; BLEU {s['metrics']['bleu']:5.1f}")
    return folder, s


def lora_count(rank, targets):
    """r·in + out·r for every wrapped layer, in every block."""
    return config.n_layer * sum(rank * shapes[t][0] + shapes[t][1] * rank for t in targets)


# lora_alpha stays the recipe's 8 whatever the rank, as Hu et al. kept it: the scale alpha/r is 8, 1, 0.5.
lora = {rank: run_translation(f"lora-attention-r{rank}", "lora", lora_rank=rank) for rank in (1, 8, 16)}
mlp_dir, mlp = run_translation("lora-mlp-r8", "lora", lora_targets=["mlp.c_fc", "mlp.c_proj"])
bitfit_dir, bitfit = run_translation("bitfit", "bitfit")
bitfit_ln_dir, bitfit_ln = run_translation("bitfit-layernorm", "bitfit", bitfit_layernorm=True)

# %% [markdown]
# ## Exercise 4 — Where and how big a LoRA
#
# ### (a) On the MLP instead of the attention

# %%
header("Exercise 4(a): the MLP's layers against the attention's")
attention = ["attn.c_attn", "attn.c_proj"]
mlp_by_hand = lora_count(8, ["mlp.c_fc", "mlp.c_proj"])
print(f"MLP: 4 blocks x (8·128 + 512·8 + 8·512 + 128·8) = {mlp_by_hand:,}; summary.json: {mlp['trainable_params']:,}")
print(f"attention: 4 blocks x (8·128 + 384·8 + 8·128 + 128·8) = {lora_count(8, attention):,}; "
      f"summary.json: {lora[8][1]['trainable_params']:,}")
print(f"BLEU after {TR_STEPS} steps: MLP {mlp['metrics']['bleu']:.1f}, attention {lora[8][1]['metrics']['bleu']:.1f}")
assert mlp["trainable_params"] == mlp_by_hand and lora[8][1]["trainable_params"] == lora_count(8, attention)
claim("mlp_lora_count_by_hand_and_run", [mlp_by_hand, mlp["trainable_params"]])  # checked by tests/test_tutorials.py
if not smoke():
    # What the text below says (seed 0, torch 2.13 CPU, one thread: MLP 5.8, attention 5.4 BLEU).
    both = [mlp["metrics"]["bleu"], lora[8][1]["metrics"]["bleu"]]
    assert all(2 <= b <= 10 for b in both) and abs(both[0] - both[1]) < 3, both

# %% [markdown]
# The MLP's two layers are wider (128 → 512 → 128), so the same rank trains 40,960 numbers
# against the attention's 24,576. The count grows with in + out, not with in · out: a layer
# four times as large costs LoRA only a little more. Which place learns more depends on the task.
# Here the two came out close (5.8 BLEU on the MLP, 5.4 on the attention, after 100 steps; a full
# run asserts both within 2–10 and less than 3 apart): one seed is one sample, and at this budget
# where the update sits matters less than how little of the model it can change.

# %% [markdown]
# ### (b) Rank 1 against rank 16

# %%
header("Exercise 4(b): lora_rank 1, 8 and 16 on the attention")
counts = {}
for rank, (folder, s) in lora.items():
    adapter = folder / "stages" / "0-lora" / "adapter.pt"
    counts[rank] = [lora_count(rank, attention), s["trainable_params"]]
    print(f"rank {rank:>2}: {s['trainable_params']:>6,} numbers (24·C·r = {24 * C * rank:,}), adapter.pt "
          f"{adapter.stat().st_size:>7,} bytes, BLEU {s['metrics']['bleu']:5.1f}")
    assert counts[rank][0] == counts[rank][1] == 24 * C * rank
claim("attention_lora_count_by_rank", counts)  # checked by tests/test_tutorials.py
if not smoke():
    # What the text below says (seed 0, torch 2.13 CPU, one thread: rank 1, 8, 16 gave 4.8, 5.4, 4.1 BLEU).
    by_rank = [s["metrics"]["bleu"] for _, s in lora.values()]
    assert all(2 <= b <= 10 for b in by_rank) and max(by_rank) - min(by_rank) < 3, by_rank

# %% [markdown]
# Per block the attention's two layers give r·(128 + 384) + r·(128 + 128) = 768·r numbers,
# 24·C·r for 4 blocks: the count, the optimizer state and the adapter file all grow linearly in r
# (the file carries a few KB of names and facts besides). BLEU did not follow: 4.8, 5.4 and 4.1
# for rank 1, 8 and 16 (a full run asserts all three within 2–10 and less than 3 apart), so rank 1,
# with 16 times fewer numbers than rank 16, did as well. Hu et al. saw the same on GPT-3, where a
# rank as low as 1 was competitive: the update a task needs has a low intrinsic rank. On this
# model and budget the rank is not what limits LoRA; the steps and the frozen vocabulary are
# (Lesson 08, Section 12).

# %% [markdown]
# ## Exercise 5 — BitFit with LayerNorm

# %%
header("Exercise 5: bitfit_layernorm = true")
n_ln = (2 * config.n_layer + 1) * 2 * C  # γ and β (C each) of ln_1 and ln_2 per block, and ln_f
names = bias_names(base, layernorm=True)
by_hand = bitfit["trainable_params"] + n_ln
print(f"biases {bitfit['trainable_params']:,} + LayerNorm (4 x 2 + 1) x 2 x 128 = {n_ln:,} -> {by_hand:,}; "
      f"summary.json: {bitfit_ln['trainable_params']:,}")
state, tuned = base.state_dict(), minift.load_model(bitfit_ln_dir).model.state_dict()
moved = sorted(n for n in state if not torch.equal(state[n], tuned[n]))
print(f"{len(moved)} tensors moved, all biases or LayerNorm gains: {set(moved) <= set(names)}; "
      f"LayerNorm tensors among them: {sum('ln_' in n for n in moved)}")
print(f"BLEU: biases only {bitfit['metrics']['bleu']:.1f}, with LayerNorm {bitfit_ln['metrics']['bleu']:.1f}")
assert bitfit_ln["trainable_params"] == by_hand == sum(dict(base.named_parameters())[n].numel() for n in names)
assert set(moved) <= set(names)
claim("bitfit_layernorm_count_and_moved", [bitfit_ln["trainable_params"], moved])  # checked by tests/test_tutorials.py
if not smoke():
    # What the text below says (seed 0, torch 2.13 CPU, one thread: 4.7 and 5.1 BLEU).
    both = [bitfit["metrics"]["bleu"], bitfit_ln["metrics"]["bleu"]]
    assert all(2 <= b <= 10 for b in both) and abs(both[0] - both[1]) < 3, both

# %% [markdown]
# A LayerNorm's gain γ rescales every feature of the normalised vector and its β shifts it; with
# them BitFit can now also *scale* activations, not only shift them, for 2,304 more numbers
# (6,912 in all, 0.72% of the model). BLEU moved from 4.7 to 5.1 (a full run asserts both within
# 2–10 and less than 3 apart): a little more freedom, a difference inside the noise of one seed,
# at the same price per step (backward crosses every block either way).
