# %% [markdown]
# # Solutions to Lesson 08 — Prompt tuning
#
# Each cell answers one exercise of `tutorials/08_prompt_tuning.py`, calling the library, and
# checks the answer with `assert` where a check is possible. All exercises start from one model
# fine-tuned in full on summarization (both styles mixed), as in Section 5 of the lesson.

# %%
import shutil

import torch

import minift
from minift.course import claim, header, output_dir, pick, smoke
from minift.errors import MiniftError
from minift.evaluate import evaluate_examples
from minift.finetune import RunOptions, run_recipe
from minift.strategies.prompt import load_prompt
from minift.schedule import parse_recipe
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
# ## Exercise 1 — How long a prompt?

# %%
header("Exercise 1: P = 4 versus P = 32")
prompt_runs = {}
for P in (4, 32):
    prompt_runs[P] = run(f"prompt-{P}", {"strategy": "prompt", "prompt_tokens": P, "max_steps": PROMPT_STEPS},
                         base=str(full_dir))
    print(f"P = {P:>2}: {P * 2 * minift.load_model(full_dir).model.config.n_embd:>6,} weights (two prompts), "
          f"style accuracy {style_accuracy(prompt_runs[P]):5.1f}%")

# %% [markdown]
# Choosing between two styles is one bit of information per example: even 4 vectors are enough
# to carry it. Longer prompts give more room (Lester et al. saw gains up to about 20 tokens on
# harder tasks) but also take positions out of the block.

# %% [markdown]
# ## Exercise 2 — Starting from words

# %%
header("Exercise 2: the headline prompt from 'Headline:' versus from random words")
few = pick(15, 2)
starts = {}
for init in ("vocab", "text"):
    stage = {"strategy": "prompt", "data": "headline", "prompts": ["headline"], "prompt_tokens": 4,
             "max_steps": few, "warmup_steps": 2, "prompt_init": init}
    if init == "text":
        stage["prompt_text"] = "Headline:"
    starts[init] = style_accuracy(run(f"init-{init}", stage, base=str(full_dir)), styles=["headline"])
    print(f"init {init:<5}: headlines in headline style after {few} steps: {starts[init]:5.1f}%")

# %% [markdown]
# `data = "headline"` trains on that subset only, and `prompts = ["headline"]` names the one
# prompt to train. A start from real words is a start the model can read; a random-vocabulary
# start is readable too, only meaningless. Compare the two numbers: on this small task, a few
# steps of training usually matter more than the start.

# %% [markdown]
# ## Exercise 3 — Weight decay on a prompt

# %%
header("Exercise 3: weight decay 0.5 on the prompt")
decayed = run("decay", {"strategy": "prompt", "prompt_tokens": 4, "max_steps": PROMPT_STEPS, "weight_decay": 0.5},
              base=str(full_dir))
wte = minift.load_model(full_dir).model.transformer.wte.weight.detach()
token_norm = float(wte.norm(dim=1).mean())
print(f"mean vector length: real tokens {token_norm:.3f}; prompt without decay {prompt_norm(prompt_runs[4]):.3f}; "
      f"with decay 0.5 {prompt_norm(decayed):.3f}; style accuracy with decay {style_accuracy(decayed):.1f}%")
if not smoke():
    assert prompt_norm(decayed) < prompt_norm(prompt_runs[4])

# %% [markdown]
# Decoupled decay multiplies every vector by `1 − lr·wd` each step: at lr 0.1 and wd 0.5 that is
# 5 % per step, so the prompt is pulled towards the zero vector, which is no token the model has
# ever read. The gradient has to fight the decay all the time, which is why prompts train with
# `weight_decay = 0`. Note also how long the undecayed prompt vectors grow: several times a real
# token's length. A soft prompt need not look like any word; it only has to steer the model.

# %% [markdown]
# ## Exercise 4 — A stale prompt

# %%
header("Exercise 4: the base moved; the prompt refuses")
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
