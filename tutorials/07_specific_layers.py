# %% [markdown]
# # Lesson 07 — Specific-layer fine-tuning: choosing what trains
#
# Full fine-tuning (Lesson 06) moves every weight. Often only part of the network needs to move:
# the top blocks, which hold the most task-like features, while the lower blocks keep the general
# knowledge of the language. This lesson freezes and unfreezes parts of the base by name, proves
# what that does to the weights, the gradients and the cost of a step, and ends with the trap of a
# tied head: train the top blocks with the embedding frozen and the model cannot change which words
# it writes. It costs BLEU against full fine-tuning; it does not fall to the level of no
# pretraining at all (Section 8 measures all of these).
#
# **You will learn**
# - to read a model part by part (`freezing.describe`) and freeze all but the top blocks;
# - that a frozen weight gets no gradient and no optimizer state, and does not move at all;
# - why backward *stops* at the lowest trainable block, and what that saves (memory, time);
# - the **weight-tying trap**: with a tied head, freezing the embedding freezes the output layer;
# - ULMFiT's gentler tools: **discriminative learning rates** and **gradual unfreezing**;
# - how the `layers` recipe compares with full fine-tuning and with training from scratch.
#
# **Prerequisites:** Lesson 06 (fine-tuning with a recipe), Lesson 03 (the GPT's parts).
#
# **Time:** about 45 minutes to read and run; the script runs in 4.0 min on 2 CPU cores (full
# mode, one thread; most of it the four fine-tuning runs of Section 8; measured in
# `tutorials/TEACHING.md` section 3), a few seconds with `MINIFT_SMOKE=1`.
#
# Library code: `minift/strategies/layers.py` (every function used here, imported as `freezing`),
# `minift/strategy_bench.py` (the cost of each strategy), `minift/recipes/layers.toml`.

# %%
import copy
import shutil

import torch

import minift
from minift.strategies import layers as freezing
from minift.course import claim, header, key, lesson_seed, output_dir, pick, show, smoke
from minift.finetune import RunOptions, run_recipe
from minift.model import lm_loss
from minift.optim import AdamW, optimizer_state_bytes, param_groups
from minift.plot import unfreezing_svg
from minift.schedule import load_recipe, parse_recipe
from minift.strategy_bench import bench_strategies, print_strategies, saved_activation_bytes
from minift.tasks import collate, encode_example, load_examples

SEED = lesson_seed()  # 0 unless MINIFT_SEED says otherwise (the teacher's guide measures the spread)
torch.manual_seed(SEED)
N_TRAIN = pick(1000, 24)  # the same data and steps as Lesson 06, to compare
STEPS = pick(300, 3)
N_EVAL = pick(100, 8)
OUT = output_dir("07_specific_layers")
base = minift.load_model("base")
model = base.model
tok, block = base.tokenizer, model.config.block_size

# %% [markdown]
# ## 1. The model, part by part
#
# `describe` lists the parts a GPT is made of: the token embedding `wte`, the position embedding
# `wpe`, the blocks, the final LayerNorm `ln_f`, and the head. Here every part trains. Note the
# line about the head: it *is* the token embedding (Section 5).

# %%
header("1. describe(model): everything trains")
print(freezing.describe(model))

# %% [markdown]
# ## 2. Freezing all but the top blocks
#
# Freezing is one flag per weight, `requires_grad = False`. `freeze_blocks(model, keep=[-2, -1])`
# sets it by name: the top two blocks train, everything else is frozen. It returns the names that
# train, which is what a test or a recipe can check.

# %%
header("2. Train only the top two blocks")
names = freezing.freeze_blocks(model, keep=[-2, -1])
print(freezing.describe(model))
trainable, total = freezing.count_parameters(model)
print(f"\n{len(names)} tensors train, e.g. {names[0]} ... {names[-1]}")

# %% [markdown]
# ## 3. Frozen weights do not move
#
# We take three optimizer steps on a batch of translation pairs and compare every weight with a
# copy taken before. A frozen weight gets no gradient (`p.grad is None`), so `AdamW` skips it: no moment
# is created for it, no step and no weight decay touch it. (Had we built the optimizer over *all*
# weights, decay would still skip them, since AdamW only updates weights that have a gradient; but
# `param_groups` only hands it the trainable ones anyway.)

# %%
header("3. Three steps, then: which weights moved?")
examples = load_examples("translation", split="train", n=16, seed=0)
batch = collate([encode_example(tok, e.prompt, e.completion, block) for e in examples], tok.pad_id)
before = {n: p.detach().clone() for n, p in model.named_parameters()}
optimizer = AdamW(param_groups(model, weight_decay=0.1), lr=1e-3)
model.train()
for step in range(3):
    loss = lm_loss(model(batch.input_ids), batch.targets)
    loss.backward()
    if step == 0:
        no_grad = [n for n, p in model.named_parameters() if p.grad is None]
        print(f"after backward: {len(no_grad)} tensors have no gradient, e.g. {no_grad[:3]}")
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
moved = [n for n, p in model.named_parameters() if not torch.equal(p, before[n])]
print(f"{len(moved)} tensors moved; all of them trainable: {set(moved) == set(names)}")
print(f"optimizer state: {optimizer_state_bytes(optimizer):,} bytes = 2 x 4 bytes x {trainable:,} trainable weights")
assert set(moved) == set(names)
assert optimizer_state_bytes(optimizer) == 8 * trainable
claim("moved_and_trainable_tensors", [sorted(moved), sorted(names)])  # checked by tests/test_tutorials.py
claim("state_bytes_and_trainable", [optimizer_state_bytes(optimizer), trainable])  # checked by tests/test_tutorials.py
with torch.no_grad():  # put the base back for the next sections
    for n, p in model.named_parameters():
        p.copy_(before[n])

# %% [markdown]
# ## 4. Backward stops at the lowest trainable block
#
# Autograd records an operation only if one of its inputs requires a gradient. The embeddings and
# blocks 0 and 1 are frozen, so their outputs are plain tensors: the graph *begins* at block 2.
# A forward hook on each block shows it. Backward then walks down to block 2 and stops, and the
# activations inside the frozen blocks are not even saved for it.
#
# We count the bytes autograd saves for backward (with `saved_tensors_hooks`, as
# `strategy_bench.saved_activation_bytes` does), for the same batch with everything trainable and
# with the top two blocks only, in MB (10^6 bytes, the unit the whole course uses).

# %%
header("4. Where the graph begins, and what backward has to keep")
hooks = [blk.register_forward_hook(lambda mod, inp, out, i=i: print(f"  block {i} output requires_grad: "
                                                                      f"{out.requires_grad}"))
         for i, blk in enumerate(model.transformer.h)]
with torch.enable_grad():
    model(batch.input_ids[:1])
for h in hooks:
    h.remove()


def forward_loss():
    return lm_loss(model(batch.input_ids), batch.targets)


freezing.set_trainable(model, [n for n, _ in model.named_parameters()])  # everything trains
saved_full = saved_activation_bytes(forward_loss)
freezing.freeze_blocks(model, keep=[-2, -1])
saved_top = saved_activation_bytes(forward_loss)
print(f"everything trainable: {saved_full / 1e6:6.2f} MB of activations saved for backward")  # MB = 10^6 bytes
print(f"top two blocks:       {saved_top / 1e6:6.2f} MB ({saved_top / saved_full:.2f}x)")
assert saved_top < saved_full
claim("saved_bytes_top_two_and_full", [saved_top, saved_full])  # checked by tests/test_tutorials.py

# %% [markdown]
# Fewer saved activations also means less backward work. `bench_strategies` times one training step
# (forward, backward, AdamW) for several strategies on a model of the base's shape, and counts the
# memory a step holds on the CPU: weights + gradients + optimizer state + saved activations (in MB,
# 10^6 bytes, as everywhere in the course). Every figure is also a ratio to full fine-tuning.

# %%
header("4b. The cost of a step, per strategy")
shape = pick(dict(vocab_size=model.config.vocab_size, block_size=block, n_layer=model.config.n_layer,
                  n_head=model.config.n_head, n_embd=model.config.n_embd),
             dict(vocab_size=256, block_size=48, n_layer=4, n_head=2, n_embd=32))
rows = bench_strategies(steps=pick(5, 1), shape=shape, batch=pick(8, 2))
print_strategies(rows)

# %% [markdown]
# What to notice: the cost of a step follows the depth backward has to reach, not the number of
# trainable weights. The top quarter and the untied head stop backward near the top and cost a
# fraction of a full step; a soft prompt (Lesson 08) has the fewest weights of all, but it sits
# *below* block 0, so backward must cross every block to reach it. The optimizer state follows
# the trainable weights exactly (2 floats each).
#
# ## 5. The weight-tying trap
#
# GPT-2 (and our base) uses **one matrix** for the token embedding (`wte`, tokens → vectors) and
# the output head (`lm_head`, vectors → scores for each token). They are the same Python object:
# freezing "the embeddings" freezes the head, so the model can no longer change *which words it
# writes*; and training "the head" trains the embedding at the bottom, so backward has to walk
# down through every block to reach it.
#
# Section 8 measures what this costs on translation: the `layers` recipe as shipped (top two
# blocks and `ln_f`; embedding, so head, frozen), the same with the embedding trainable, full
# fine-tuning, and the full recipe from random weights.

# %%
header("5. Tied head: one matrix, two names")
print("lm_head.weight is transformer.wte.weight:", model.lm_head.weight is model.transformer.wte.weight)
freezing.freeze_blocks(model, keep=[-2, -1])
print("top two blocks only -> head trains?", model.lm_head.weight.requires_grad)
print('parts=["head"] selects:', freezing.select_parameters(model, parts=["head"]))
freezing.set_trainable(model, freezing.select_parameters(model, parts=["head"]))
print("\n'head only' with a tied head:")
print(freezing.describe(model))

# %% [markdown]
# `untie_head` gives the head its own copy of the matrix. Now "head" and "wte" are separate
# choices: the top blocks and the head can train while the input embedding stays as it was, and
# backward still stops at the lowest trainable block. The price: `V × C` more weights.

# %%
header("5b. untie_head")
untied = copy.deepcopy(model)
freezing.untie_head(untied)
freezing.freeze_blocks(untied, keep=[-2, -1], parts=["head"])
print(freezing.describe(untied))
extra = untied.num_parameters() - model.num_parameters()
print(f"\nuntying added {extra:,} weights = V x C = {model.config.vocab_size} x {model.config.n_embd}")
assert extra == model.config.vocab_size * model.config.n_embd
assert not untied.transformer.wte.weight.requires_grad and untied.lm_head.weight.requires_grad
# checked by tests/test_tutorials.py
claim("untied_extra_and_VC", [extra, model.config.vocab_size * model.config.n_embd])

# %% [markdown]
# ## 6. Discriminative learning rates (ULMFiT)
#
# Instead of all-or-nothing, every block can learn at its own rate: the top block at `lr`, each
# block below at the rate of the one above divided by 2.6 (Howard & Ruder 2018), so block `i` of
# `L` gets `lr × 2.6^-(L-1-i)`. The embeddings, below block 0, get `lr × 2.6^-L`, except a *tied*
# `wte`, which is also the head, the top of the model: it gets the full rate.
# `discriminative_lr_scales` gives the multipliers; `param_groups` turns them into optimizer
# groups.

# %%
header("6. Discriminative rates, lr = 2e-3, factor 2.6")
freezing.set_trainable(model, [n for n, _ in model.named_parameters()])
scales = freezing.discriminative_lr_scales(model, factor=2.6)
print(f"{'part':<10}{'scale':>8}{'lr':>10}")
for label, prefix in ([("wte", "transformer.wte."), ("wpe", "transformer.wpe.")]
                      + [(f"block {i}", f"transformer.h.{i}.") for i in range(model.config.n_layer)]
                      + [("ln_f", "transformer.ln_f.")]):
    scale = next(v for n, v in scales.items() if n.startswith(prefix))
    print(f"{label:<10}{scale:>8.3f}{2e-3 * scale:>10.2e}")
groups = param_groups(model, weight_decay=0.1, lr=2e-3, lr_scales=scales)
print(f"param_groups: {len(groups)} optimizer groups, one per (weight decay, scale) pair")
assert {round(g["lr"] / g["lr_scale"], 12) for g in groups} == {2e-3}

# %% [markdown]
# ## 7. Gradual unfreezing (ULMFiT)
#
# Start with only the top block trainable, then unfreeze one more block below every `every` steps.
# The top adapts first while the layers under it still hold still, and the lower layers join once
# the top has stopped sending them large, random gradients. `GradualUnfreezer` is the trainer's
# `before_step` hook; the optimizer is built once over every weight that will *ever* train, and
# AdamW skips those that have no gradient yet.

# %%
header("7. Gradual unfreezing every 50 steps (+ ln_f from the start)")
unfreezer = freezing.GradualUnfreezer(model, every=50, parts=["ln_f"])
print("schedule (step, top blocks trainable):", unfreezer.schedule())
for step in (0, 49, 50, 100, 150):
    unfreezer(step)
    print(f"  step {step:>3}: {freezing.count_parameters(model)[0]:>9,} weights train, "
          f"{freezing.describe(model).splitlines()[-1]}")

# Step the unfreezer through a 300-step stage, as the trainer would, and note when each block first trains.
first_step = {}
for step in range(300):
    unfreezer(step)
    for i, blk in enumerate(model.transformer.h):
        if i not in first_step and all(p.requires_grad for p in blk.parameters()):
            first_step[i] = step
print("first step each block trains:", {f"block {i}": first_step[i] for i in sorted(first_step)})
unfreezing_svg(unfreezer.schedule(), unfreezer.L, 300, parts=unfreezer.parts, path=OUT / "unfreezing.svg")
show(OUT / "unfreezing.svg", "timeline")  # one row per block: grey while frozen, coloured once it trains
claim("first_trained_step_per_block", first_step)  # checked by tests/test_tutorials.py

# %% [markdown]
# What to notice: the timeline reads top to bottom like the model. `ln_f` and the top block train
# from step 0; each block below joins 50 steps after the one above, so in a 300-step stage block 0
# trains only for the last 150 steps. The chart is drawn from `unfreezer.schedule()`, and the
# steps printed above come from stepping the unfreezer itself: the two agree.

# %% [markdown]
# ## 8. The `layers` recipe against full fine-tuning
#
# `recipes/layers.toml` trains the top half of the blocks and `ln_f`, with discriminative rates.
# Its embedding is frozen, and so, tied, is its head: exactly the trap of Section 5. We run it as
# shipped, and once more with `parts = ["embeddings", "ln_f"]` (the tied head then trains too),
# and compare both with full fine-tuning on the same data and steps as Lesson 06, and with the
# floor: the full recipe from random weights (`base="scratch"`: the base's shape and tokenizer,
# fresh weights), which says what pretraining is worth.

# %%
header("8. layers versus full, same data and steps")
layers = load_recipe("layers")
doc = {"name": "layers+embeddings", "task": "translation",
       "stages": [{"strategy": "layers", "top_fraction": 0.5, "parts": ["embeddings", "ln_f"],
                   "discriminative": 2.6, "max_steps": 300, "lr": 2e-3, "dropout": 0.1}]}
with_embeddings = parse_recipe(doc, source="lesson 07")
results = {}
runs = {"full": load_recipe("full"), "layers (as shipped)": layers, "layers + embeddings": with_embeddings,
        "scratch (full recipe)": load_recipe("full")}
for recipe in runs.values():
    recipe.stages[0].eval_examples = pick(64, 8)  # the validation-loss set (64 is the default)
for k, (folder, (name, recipe)) in enumerate(zip(("full", "layers", "layers-embeddings", "scratch"), runs.items())):
    run = OUT / folder
    shutil.rmtree(run, ignore_errors=True)  # run_recipe refuses to overwrite a finished run
    print(f"run {k + 1} of {len(runs)}: {name}, {STEPS} steps ...", flush=True)  # about a minute each
    results[name] = run_recipe(recipe, RunOptions(out=str(run), task="translation", examples=N_TRAIN,
                                                  max_steps=STEPS, seed=SEED, eval_limit=N_EVAL, quiet=True,
                                                  base="scratch" if name.startswith("scratch") else None))
    bleu_now = results[name]["stages"][0]["metrics"]["bleu"]
    print(f"  done in {results[name]['seconds']:.0f} s: BLEU {bleu_now:.1f}", flush=True)
print(f"\n{'strategy':<22}{'trainable':>11}{'opt. state':>12}{'seconds':>9}{'BLEU':>7}")
print(f"{'base (before)':<22}{'':>11}{'':>12}{'':>9}{results['full']['before']['bleu']:>7.1f}")
for name, summary in results.items():
    s = summary["stages"][0]
    print(f"{name:<22}{s['trainable_params']:>11,}{s['optimizer_state_bytes'] / 1e6:>9.2f} MB"  # MB = 10^6 bytes
          f"{s['seconds']:>9.1f}{s['metrics']['bleu']:>7.1f}")
bleu = {name: summary["stages"][0]["metrics"]["bleu"] for name, summary in results.items()}
full, frozen, unfrozen, scratch = (bleu[k] for k in runs)
key("BLEU full", full, asserted="15–24")
key("BLEU layers as shipped", frozen, asserted="10–18, above scratch, below full")
key("BLEU layers + embeddings", unfrozen, asserted="above layers as shipped")
key("BLEU scratch", scratch, asserted="3–12")
if full != frozen:
    key("share of the gap layers -> full won back by the embedding", (unfrozen - frozen) / (full - frozen))
if not smoke():
    # What the text below says. Measured (`OMP_NUM_THREADS=1 python tutorials/07_specific_layers.py`,
    # seed 0, torch 2.13 CPU): full 19.0, layers as shipped 13.9, layers + embeddings 17.6, scratch
    # 8.7 BLEU. The ranges leave room for another PyTorch build or thread count.
    assert scratch < frozen < full, bleu  # the trap costs BLEU, and stays above no pretraining
    assert frozen < unfrozen, bleu  # training the embedding wins some of the gap back (how much varies: the prose)
    assert 15 <= full <= 24 and 10 <= frozen <= 18 and 3 <= scratch <= 12, bleu
sample = results["layers (as shipped)"]["stages"][0]["samples"][0]
print(f"\nlayers (as shipped) writes: {sample['prediction']}\nreference:                  {sample['reference']}")

# %% [markdown]
# What to notice: with the head frozen, the top blocks can only re-use the base's existing word
# scores; the run costs less per step but translates worse than full fine-tuning (the run above
# prints about 14 against 19 BLEU). Letting the (tied) embedding train brings part of the gap back
# (about 17.6), at the price of a backward pass through every block. How much is not stable:
# over seeds 0, 1 and 2 (`minift course ranges --seeds 0,1,2`, `tutorials/TEACHING.md` section 2)
# it won back 72%, 112% and 41% of the gap. Yet the frozen head does not fall to the floor: the same steps from
# random weights give about 9 BLEU (5.2 to 8.7 over the three seeds). The pretrained blocks are
# worth more than the word mapping they cannot change. A full run of this lesson asserts this
# order, and that the embedding wins some of the gap back.
#
# One seed is one sample. The fair strategy grid (`data/experiments/strategies/fair/results.md`,
# made by the command at its top; budgets that grow with N) ran `layers`, `full` and `scratch`
# over three seeds: at 1000 pairs `layers` is below `full` (29.2 ± 3.4 against 42.0 ± 2.4 BLEU on
# 200 test pairs, mean ± 95% half-width over three seeds), but `scratch`, given the steps,
# reaches 34.8 ± 6.0 and ties both; at 200 pairs `layers` and `full` tie (11.5 ± 3.9, 13.5 ± 2.9).
#
# ## Exercises
#
# 1. **Which blocks?** Run two `layers` stages that differ only in their blocks: the *bottom* two
#    (`blocks = [0, 1]`) and the top two (`blocks = [-2, -1]`), each with
#    `parts = ["embeddings", "ln_f"]`, `max_steps = 300`, `lr = 2e-3`, `dropout = 0.1`,
#    `eval_examples = 64` and the other fields at their defaults — in particular *no*
#    `discriminative` rates (with them a bottom block would learn 2.6³ ≈ 18x slower than a top one,
#    and the comparison would measure the rates, not the blocks). Train on Section 8's data
#    (`RunOptions(examples=1000, seed=0, eval_limit=100)`: 1000 translation pairs, BLEU on 100
#    validation pairs). Compare the two BLEU scores. Which half matters more for this task?
# 2. **Gradient check.** Freeze everything but block 3 and run one backward pass. Show that the
#    gradient of block 3 is the same as in a fully trainable model (freezing changes *which*
#    gradients are computed, never their values).
# 3. **Head only, untied.** Untie the head and train only it (a *linear probe*). How many weights
#    train? Is the input embedding bit-identical afterwards?
# 4. **Gradual unfreezing in a recipe.** Run a `layers` stage with `unfreeze_every = 50` and
#    `parts = ["embeddings", "ln_f"]`, and otherwise Exercise 1's setup (`max_steps = 300`,
#    `lr = 2e-3`, `dropout = 0.1`, `eval_examples = 64`, no discriminative rates, the same data and
#    seed). It needs no `blocks`: gradual unfreezing starts with the top block and adds the next
#    one below every 50 steps. Compare its BLEU with Exercise 1's top-two run. How many steps did
#    each block train?
#
# Solutions: `tutorials/solutions/07_specific_layers.py`.
