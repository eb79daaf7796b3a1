# %% [markdown]
# # Solutions to Lesson 07 — Specific-layer fine-tuning
#
# Each cell answers one exercise of `tutorials/07_specific_layers.py`, calling the library, and
# checks the answer with `assert` where a check is possible.

# %%
import shutil

import torch

import minift
from minift.strategies import layers as freezing
from minift.course import claim, header, output_dir, pick
from minift.finetune import RunOptions, run_recipe
from minift.model import lm_loss
from minift.optim import AdamW, param_groups
from minift.schedule import parse_recipe
from minift.tasks import collate, encode_example, load_examples

torch.manual_seed(0)
N_TRAIN = pick(1000, 24)
STEPS = pick(300, 3)  # the exercises' max_steps = 300
N_EVAL = pick(100, 8)
OUT = output_dir("07_specific_layers_solutions")


def layers_run(name, **stage):
    """Run one 'layers' stage on translation with the exercises' setup; returns (stage summary, run folder).

    The setup of Exercises 1 and 4: max_steps 300, lr 2e-3, dropout 0.1, eval_examples 64, no
    discriminative rates, 1000 training pairs, seed 0, BLEU on 100 validation pairs; ``stage`` adds what
    trains (in smoke mode the sizes shrink, as everywhere).
    """
    recipe = parse_recipe({"name": name, "task": "translation",
                           "stages": [{"strategy": "layers", "max_steps": STEPS, "lr": 2e-3, "dropout": 0.1,
                                       "eval_examples": pick(64, 8), **stage}]}, source=name)
    folder = OUT / name
    shutil.rmtree(folder, ignore_errors=True)  # run_recipe refuses to overwrite a finished run
    summary = run_recipe(recipe, RunOptions(out=str(folder), examples=N_TRAIN, seed=0, eval_limit=N_EVAL,
                                            quiet=True))
    return summary["stages"][0], folder


# %% [markdown]
# ## Exercise 1 — Which blocks?
#
# Both runs train the embeddings (so the tied head) and `ln_f`, plus two blocks: the bottom two or
# the top two. The setup is the exercise's, with no discriminative rates: every block learns at
# `lr`, so only the choice of blocks differs.

# %%
header("Exercise 1: bottom two versus top two blocks (+ embeddings, ln_f)")
bottom, _ = layers_run("bottom-two", blocks=[0, 1], parts=["embeddings", "ln_f"])
top, _ = layers_run("top-two", blocks=[-2, -1], parts=["embeddings", "ln_f"])
for name, s in (("bottom two", bottom), ("top two", top)):
    print(f"{name:<11} {s['trainable_params']:>9,} weights train, {s['seconds']:5.1f} s, "
          f"BLEU {s['metrics']['bleu']:5.1f}")
assert bottom["trainable_params"] == top["trainable_params"]  # the same number of weights either way

# %% [markdown]
# The two choices train exactly as many weights. Compare the BLEU scores (one seed: a gap of a
# few points is noise). Two things differ besides *which* features adapt: with the bottom blocks
# trainable, backward runs through the whole stack anyway (the embeddings are trainable in both),
# so neither saves time; and a change at the bottom is seen by every block above, which were
# trained on the old representation.

# %% [markdown]
# ## Exercise 2 — Gradient check
#
# Freezing does not change a gradient's value.

# %%
header("Exercise 2: the gradient of block 3, frozen neighbours or not")
base = minift.load_model("base")
model, tok = base.model.eval(), base.tokenizer
pairs = load_examples("translation", split="train", n=8, seed=0)
batch = collate([encode_example(tok, e.prompt, e.completion, model.config.block_size) for e in pairs], tok.pad_id)


def block3_grads():
    model.zero_grad(set_to_none=True)
    lm_loss(model(batch.input_ids), batch.targets).backward()
    return {n: p.grad.clone() for n, p in model.transformer.h[3].named_parameters()}


freezing.set_trainable(model, [n for n, _ in model.named_parameters()])
everything = block3_grads()
freezing.freeze_blocks(model, keep=[3])
only_block3 = block3_grads()
for name in everything:
    torch.testing.assert_close(only_block3[name], everything[name])
# checked by tests/test_tutorials.py
claim("block_3_grads_frozen_minus_all", max((only_block3[n] - everything[n]).abs().max() for n in everything))
print(f"all {len(everything)} gradients of block 3 are equal; frozen parts got none:",
      all(p.grad is None for n, p in model.named_parameters() if not n.startswith("transformer.h.3.")))

# %% [markdown]
# The loss and the path from the loss down to block 3 are the same in both cases; freezing only
# stops autograd from going further down. That is why freezing is safe to combine with anything.

# %% [markdown]
# ## Exercise 3 — Head only, untied
#
# A linear probe: the untied head is the only thing that trains.

# %%
header("Exercise 3: train only an untied head")
freezing.untie_head(model)
freezing.set_trainable(model, freezing.select_parameters(model, parts=["head"]))
trainable, total = freezing.count_parameters(model)
print(f"{trainable:,} of {total:,} weights train (V x C = {model.config.vocab_size} x {model.config.n_embd})")
wte_before = model.transformer.wte.weight.detach().clone()
head_before = model.lm_head.weight.detach().clone()
optimizer = AdamW(param_groups(model, weight_decay=0.1), lr=1e-3)
for _ in range(pick(5, 2)):
    lm_loss(model(batch.input_ids), batch.targets).backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
print("input embedding bit-identical:", torch.equal(model.transformer.wte.weight, wte_before),
      "| head moved:", not torch.equal(model.lm_head.weight, head_before))
assert trainable == model.config.vocab_size * model.config.n_embd
assert torch.equal(model.transformer.wte.weight, wte_before)
assert not torch.equal(model.lm_head.weight, head_before)
claim("wte_unchanged", torch.equal(model.transformer.wte.weight, wte_before))  # checked by tests/test_tutorials.py
claim("head_moved", not torch.equal(model.lm_head.weight, head_before))  # checked by tests/test_tutorials.py
print(freezing.describe(model).splitlines()[-1])

# %% [markdown]
# Untied, the head is a plain linear layer at the very top: backward stops right there (the
# cheapest step of Lesson 07's table), and the input embedding is untouched.

# %% [markdown]
# ## Exercise 4 — Gradual unfreezing in a recipe

# %%
header("Exercise 4: unfreeze one block every 50 steps (Exercise 1's setup otherwise)")
every = pick(50, 1)
gradual, folder = layers_run("gradual", unfreeze_every=every, parts=["embeddings", "ln_f"])
print(f"gradual unfreezing: BLEU {gradual['metrics']['bleu']:.1f} in {gradual['seconds']:.1f} s "
      f"(top two + embeddings, Exercise 1: BLEU {top['metrics']['bleu']:.1f})")
fresh = minift.load_model("base").model
unfreezer = freezing.GradualUnfreezer(fresh, every=every, parts=["embeddings", "ln_f"])
L = unfreezer.L
for step, n_blocks in unfreezer.schedule():
    block = L - n_blocks
    trained = max(0, gradual["steps"] - step)
    print(f"  block {block} trains from step {step}: {trained} steps")
# Step the unfreezer through the stage, as the trainer does, and count the steps each block trained:
# the top block every step, each one below `every` fewer (the rule the exercise states).
steps_trained = [0] * L
for step in range(gradual["steps"]):
    unfreezer(step)
    for i, blk in enumerate(fresh.transformer.h):
        steps_trained[i] += all(p.requires_grad for p in blk.parameters())
print("steps each block trained, block 0 first:", steps_trained)
assert steps_trained == [max(0, gradual["steps"] - (L - 1 - i) * every) for i in range(L)], steps_trained
# The optimizer was built over every weight that will *ever* train: here, all of them.
assert gradual["trainable_params"] == gradual["total_params"]
assert unfreezer.schedule()[0] == (0, 1)  # the top block alone (with the parts) at step 0

# %% [markdown]
# The top block trains for every step; each block below joins `every` steps later. The embeddings
# (and, tied, the head) train from step 0, as `parts` asks, so from the first step backward runs
# the whole depth; gradual unfreezing here protects the lower blocks, it does not save time.
