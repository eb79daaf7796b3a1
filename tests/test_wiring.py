"""Recipe -> strategy wiring: each layers-stage field of a recipe takes effect in a real stage.

One tiny recipe (tiny base of tests/conftest.py, 2 blocks, tied head) runs through
``finetune.run_recipe``, one stage per knob: ``discriminative``, ``unfreeze_every``,
``top_fraction``, ``blocks``, ``parts`` and ``untie_head``. For each stage the test looks at what the
optimizer was really given (its groups, their lr_scale and the rate each group steps with, which
parameters had a gradient at each step; ``finetune.AdamW`` is swapped for a recording subclass) and
at which weights moved (each stage's checkpoint against the one before it, the first against the
base). Expected sets and rates come from the field's meaning in schedule.py / freezing.py.

The schedule is flat (no warmup, min_lr_ratio = 1) and weight decay is 0, so every group steps at
exactly lr * lr_scale and a weight moves only if it had a gradient; restore_best = false keeps the
trained weights (with so few steps the starting point could otherwise be "best" and come back).

A second recipe wires the optimizer fields: ``optimizer = "sgd"`` gives minift's SGD with the
``momentum`` asked for (0.9 when left out), its coupled decay on matrices only, one float32 buffer
per trainable weight in summary.json (none without momentum), discriminative rates stepped as
lr * lr_scale * gradient, and ``l1`` handed to the trainer.

Last, ``finetune.setup_strategy`` called directly on a fresh tiny bundle (no training): top_k and
top_fraction (at least one block), gradual unfreezing's step-0 set and hook, discriminative rates,
and for prompt stages which soft prompts exist and train (earlier ones kept frozen; a stage that
trains the model drops them), how each starts (its init and text, seed + i), that it is moved to the
model's device, and which prompt each training row gets (its subset's, or the only one).
"""
import dataclasses
import json

import pytest
import torch

import minift
from minift import finetune
from minift.schedule import load_recipe

LR = 0.01
RECIPE = f"""
name = "wiring"
[defaults]
strategy = "layers"
batch_size = 4
max_steps = 2
eval_every = 100
eval_examples = 4
lr = {LR}
warmup_steps = 0
min_lr_ratio = 1.0
weight_decay = 0.0
restore_best = false

[[stages]]        # 0: ULMFiT rates, factor 2: block 1 at lr, block 0 at lr / 2, wpe (below block 0) at lr / 4
name = "disc"
blocks = [0, 1]
parts = ["wpe"]
discriminative = 2.0
max_steps = 1     # one Adam step moves every weight with a gradient by lr * scale: visible in the weights

[[stages]]        # 1: gradual unfreezing: steps 0-1 the top block (+ ln_f), from step 2 both blocks
name = "gradual"
parts = ["ln_f"]
unfreeze_every = 2
max_steps = 3

[[stages]]        # 2: the top half of 2 blocks = block 1 (+ ln_f)
name = "frac"
top_fraction = 0.5
parts = ["ln_f"]

[[stages]]        # 3: a block by index, the bottom one (+ ln_f)
name = "blocks"
blocks = [0]
parts = ["ln_f"]

[[stages]]        # 4: named parts: embeddings = wte + wpe (wte IS the tied head), with the top block
name = "parts"
blocks = [-1]
parts = ["embeddings"]

[[stages]]        # 5: a linear probe: the head gets its own copy and trains alone, wte stays put
name = "probe"
untie_head = true
parts = ["head"]
"""
STAGES = ["disc", "gradual", "frac", "blocks", "parts", "probe"]


class RecordingAdamW(finetune.AdamW):
    """finetune's AdamW, recording its groups and, at every step, each group's rate and who has a grad."""

    made: list = []

    def __init__(self, params, *args, **kwargs):
        super().__init__(params, *args, **kwargs)
        self.groups = [(list(g["names"]), g["lr_scale"]) for g in self.param_groups]
        self.steps = []  # per step: ([lr of each group], sorted names whose grad is not None)
        RecordingAdamW.made.append(self)

    def step(self, closure=None):
        with_grad = sorted(n for g in self.param_groups for n, p in zip(g["names"], g["params"])
                           if p.grad is not None)
        self.steps.append(([g["lr"] for g in self.param_groups], with_grad))
        return super().step(closure)


@pytest.fixture(scope="module")
def run(tiny_setup, tmp_path_factory):
    """(summary, optimizers by stage name, state dicts by stage name with "base" first)."""
    folder = tmp_path_factory.mktemp("wiring")
    (folder / "r.toml").write_text(RECIPE)
    RecordingAdamW.made = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(finetune, "AdamW", RecordingAdamW)
        opts = finetune.RunOptions(out=str(folder / "run"), data=str(tiny_setup / "pairs.jsonl"),
                                   base=str(tiny_setup / "base"), quiet=True, eval_limit=4)
        summary = finetune.run_recipe(load_recipe(folder / "r.toml"), opts)
    assert [s["name"] for s in summary["stages"]] == STAGES
    optimizers = dict(zip(STAGES, RecordingAdamW.made, strict=True))
    weights = {"base": minift.load_model(tiny_setup / "base").model.state_dict()}
    for i, name in enumerate(STAGES):
        weights[name] = minift.load_model(folder / "run" / "stages" / f"{i}-{name}").model.state_dict()
    return summary, optimizers, weights


def stage_summary(run, name):
    return next(s for s in run[0]["stages"] if s["name"] == name)


def moved(run, name):
    """Names of the weights that differ between this stage's checkpoint and the previous one."""
    previous = (["base"] + STAGES)[STAGES.index(name)]
    before, after = run[2][previous], run[2][name]
    return {k for k in after if k not in before or not torch.equal(before[k], after[k])}


def block(i):
    """Every parameter name of block i of the tiny model (2 heads, width 32, biases)."""
    return {f"transformer.h.{i}.{n}" for n in ("ln_1.weight", "ln_1.bias", "attn.c_attn.weight", "attn.c_attn.bias",
                                                "attn.c_proj.weight", "attn.c_proj.bias", "ln_2.weight", "ln_2.bias",
                                                "mlp.c_fc.weight", "mlp.c_fc.bias", "mlp.c_proj.weight",
                                                "mlp.c_proj.bias")}


LN_F = {"transformer.ln_f.weight", "transformer.ln_f.bias"}
WTE, WPE, HEAD = "transformer.wte.weight", "transformer.wpe.weight", "lm_head.weight"


def test_the_block_names_match_the_model(run):
    # Guard for the hand-written sets below: they are the model's real parameter names.
    names = set(run[2]["base"])
    assert block(0) | block(1) | LN_F | {WTE, WPE, HEAD} == names


def test_discriminative_gives_each_block_its_rate_and_the_weights_move_by_it(run):
    optimizer = run[1]["disc"]
    scale = {n: s for names, s in optimizer.groups for n in names}
    # Block i of L = 2 gets 2 ** -(L - 1 - i); wpe, below block 0, gets 2 ** -L.
    assert scale == {**{n: 1.0 for n in block(1)}, **{n: 0.5 for n in block(0)}, WPE: 0.25}
    (lrs, _), = optimizer.steps
    names = [names for names, _ in optimizer.groups]
    for group_names, lr in zip(names, lrs):
        assert lr == pytest.approx(LR * scale[group_names[0]], rel=1e-12)  # 0.01, 0.005, 0.0025
    # The rates reach the weights: Adam's first step moves each weight by lr * g / (|g| + eps), so
    # the largest change in a tensor is its rate (every tensor here has gradients far above eps).
    after, before = run[2]["disc"], run[2]["base"]
    for name, s in scale.items():
        assert (after[name] - before[name]).abs().max().item() == pytest.approx(LR * s, rel=1e-3), name
    assert moved(run, "disc") == block(0) | block(1) | {WPE}
    # And the next stage, which asks for no discriminative rates, steps every group at lr.
    assert {s for _, s in run[1]["gradual"].groups} == {1.0}
    assert all(lr == LR for lrs, _ in run[1]["gradual"].steps for lr in lrs)


def test_unfreeze_every_trains_the_top_block_first_then_the_next_one_down(run):
    optimizer = run[1]["gradual"]
    # The optimizer holds every weight that will ever train (GradualUnfreezer.all_names) ...
    assert {n for names, _ in optimizer.groups for n in names} == block(0) | block(1) | LN_F
    # ... but at steps 0 and 1 only the top block (and ln_f) has gradients; at step 2 block 0 joins.
    assert [set(grads) for _, grads in optimizer.steps] == [block(1) | LN_F, block(1) | LN_F,
                                                             block(0) | block(1) | LN_F]
    assert moved(run, "gradual") == block(0) | block(1) | LN_F
    assert set(stage_summary(run, "gradual")["trainable_names"]) == block(0) | block(1) | LN_F


def test_top_fraction_trains_the_top_share_of_the_blocks(run):
    # round(2 * 0.5) = 1 block, counted from the top: block 1.
    assert set(stage_summary(run, "frac")["trainable_names"]) == block(1) | LN_F
    assert {n for names, _ in run[1]["frac"].groups for n in names} == block(1) | LN_F
    assert moved(run, "frac") == block(1) | LN_F


def test_blocks_trains_exactly_the_listed_blocks(run):
    assert set(stage_summary(run, "blocks")["trainable_names"]) == block(0) | LN_F
    assert all(set(grads) == block(0) | LN_F for _, grads in run[1]["blocks"].steps)
    assert moved(run, "blocks") == block(0) | LN_F


def test_parts_adds_the_named_parts_and_a_tied_head_moves_with_wte(run):
    assert set(stage_summary(run, "parts")["trainable_names"]) == block(1) | {WTE, WPE}
    # lm_head.weight IS wte (tied): it moves although "head" was not asked for; ln_f stays.
    assert moved(run, "parts") == block(1) | {WTE, WPE, HEAD}


def test_untie_head_lets_the_head_train_alone_and_leaves_wte_bit_identical(run):
    summary = stage_summary(run, "probe")
    assert summary["trainable_names"] == [HEAD]
    assert [names for names, _ in run[1]["probe"].groups] == [[HEAD]]
    assert moved(run, "probe") == {HEAD}  # wte, the old tied copy, did not move
    before, after = run[2]["parts"], run[2]["probe"]
    assert not torch.equal(after[HEAD], after[WTE]) and torch.equal(after[WTE], before[WTE])


# --- optimizer = "sgd" ------------------------------------------------------------------------------

SGD_RECIPE = f"""
name = "sgd-wiring"
[defaults]
optimizer = "sgd"
batch_size = 4
max_steps = 2
eval_every = 100
eval_examples = 4
lr = {LR}
warmup_steps = 0
min_lr_ratio = 1.0
restore_best = false

[[stages]]        # 0: momentum given, coupled decay, L1 on
name = "heavy"
strategy = "full"
momentum = 0.8
weight_decay = 0.05
l1 = 0.001

[[stages]]        # 1: momentum left out (0.9); ULMFiT rates; one step, no decay
name = "rates"
strategy = "layers"
blocks = [0, 1]
discriminative = 2.0
weight_decay = 0.0
max_steps = 1

[[stages]]        # 2: plain gradient descent on soft prompts: no optimizer state at all
name = "plain"
strategy = "prompt"
momentum = 0.0
prompt_tokens = 2
"""
SGD_STAGES = ["heavy", "rates", "plain"]


class RecordingSGD(finetune.SGD):
    """finetune's SGD, recording the gradient and weight of every parameter at each step."""

    made: list = []

    def __init__(self, params, *args, **kwargs):
        super().__init__(params, *args, **kwargs)
        self.steps = []  # per step: {name: (grad, weight before the step)}
        RecordingSGD.made.append(self)

    def step(self, closure=None):
        self.steps.append({n: (p.grad.clone(), p.detach().clone()) for g in self.param_groups
                           for n, p in zip(g["names"], g["params"]) if p.grad is not None})
        return super().step(closure)


@pytest.fixture(scope="module")
def sgd_run(tiny_setup, tmp_path_factory):
    """(summary, optimizers by stage name, the TrainConfig each stage trained with, state dicts by stage)."""
    folder = tmp_path_factory.mktemp("sgd")
    (folder / "r.toml").write_text(SGD_RECIPE)
    RecordingSGD.made = []
    configs = []
    real_train_stage = finetune.train_stage

    def recording_train_stage(model, optimizer, batches, loss_fn, config, **kwargs):
        configs.append(config)
        return real_train_stage(model, optimizer, batches, loss_fn, config, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(finetune, "SGD", RecordingSGD)
        mp.setattr(finetune, "train_stage", recording_train_stage)
        opts = finetune.RunOptions(out=str(folder / "run"), data=str(tiny_setup / "pairs.jsonl"),
                                   base=str(tiny_setup / "base"), quiet=True, eval_limit=4)
        finetune.run_recipe(load_recipe(folder / "r.toml"), opts)
    summary = json.loads((folder / "run" / "summary.json").read_text())  # what the run left on disk
    weights = {name: minift.load_model(folder / "run" / "stages" / f"{i}-{name}").model.state_dict()
               for i, name in enumerate(SGD_STAGES)}
    return (summary, dict(zip(SGD_STAGES, RecordingSGD.made, strict=True)),
            dict(zip(SGD_STAGES, configs, strict=True)), weights)


def test_an_sgd_stage_gets_minifts_sgd_with_its_momentum_decay_on_matrices_and_l1(sgd_run):
    summary, optimizers, configs, _ = sgd_run
    heavy = optimizers["heavy"]
    assert isinstance(heavy, minift.optim.SGD)
    assert {g["momentum"] for g in heavy.param_groups} == {0.8}
    for g in heavy.param_groups:  # coupled decay on the matrices, none on biases and LayerNorm
        assert g["weight_decay"] == (0.05 if all(p.dim() >= 2 for p in g["params"]) else 0.0)
    assert {g["weight_decay"] for g in heavy.param_groups} == {0.05, 0.0}
    assert configs["heavy"].l1 == 0.001 and configs["rates"].l1 == 0.0
    assert {g["momentum"] for g in optimizers["rates"].param_groups} == {0.9}  # left out: SGD_MOMENTUM
    assert {g["momentum"] for g in optimizers["plain"].param_groups} == {0.0}
    assert [s["optimizer"] for s in summary["stages"]] == ["sgd"] * 3


def test_sgd_state_in_the_summary_is_one_float32_buffer_per_trainable_weight(sgd_run):
    stages = {s["name"]: s for s in sgd_run[0]["stages"]}
    for name in ("heavy", "rates"):
        assert stages[name]["optimizer_state_bytes"] == 4 * stages[name]["trainable_params"] > 0, name
    assert stages["plain"]["optimizer_state_bytes"] == 0  # momentum 0: no buffer


def test_sgd_steps_each_weight_by_lr_times_its_scale_times_its_gradient(sgd_run):
    _, optimizers, _, weights = sgd_run
    optimizer = optimizers["rates"]
    scale = {n: g["lr_scale"] for g in optimizer.param_groups for n in g["names"]}
    assert scale == {**{n: 1.0 for n in block(1)}, **{n: 0.5 for n in block(0)}}
    (seen,) = optimizer.steps  # one step: the buffer is the gradient itself, no decay
    assert set(seen) == set(scale) and max((LR * scale[n] * g).abs().max().item() for n, (g, _) in seen.items()) > 1e-4
    before, after = weights["heavy"], weights["rates"]
    for name, (grad, weight) in seen.items():
        torch.testing.assert_close(weight, before[name])
        torch.testing.assert_close(after[name], before[name] - LR * scale[name] * grad, rtol=0, atol=1e-7)


# --- setup_strategy, called directly -----------------------------------------------------------------
# What a stage's strategy leaves behind before any step: which weights require a gradient, the
# optimizer groups and their rates, the gradual-unfreezing hook, and for a prompt stage which soft
# prompts exist, which of them train, how each starts, and which prompt each training row gets.

@pytest.fixture
def fresh(tiny_setup):
    """(a fresh tiny bundle, the fixture's examples: subsets x and y alternate)."""
    from minift.tasks import load_examples

    return minift.load_model(tiny_setup / "base"), load_examples(data=tiny_setup / "pairs.jsonl")


def setup(stage_fields, bundle, examples, seed=0):
    from minift.schedule import make_stage
    from minift.trainer import RunLog

    module, s = finetune.setup_strategy(make_stage(**stage_fields), bundle, examples, RunLog(None, quiet=True), seed)
    return module, s.groups, s.before_step, s.row_names


def requires_grad(model):
    return {n for n, p in model.named_parameters() if p.requires_grad}


def group_names(groups):
    return {n for g in groups for n in g["names"]}


@pytest.mark.parametrize("fields,expected", [
    ({"top_k": 1, "parts": ["ln_f"]}, block(1) | LN_F),
    ({"top_fraction": 0.5}, block(1)),                      # round(2 * 0.5) = 1 block, from the top
    ({"top_fraction": 0.2}, block(1)),                      # round(0.4) = 0, but at least one block
    ({"top_fraction": 1.0, "parts": ["wpe"]}, block(0) | block(1) | {WPE}),
])
def test_setup_top_k_and_top_fraction_train_the_top_blocks(fresh, fields, expected):
    bundle, examples = fresh
    module, groups, before_step, rows = setup({"strategy": "layers", **fields}, bundle, examples)
    assert requires_grad(bundle.model) == expected and group_names(groups) == expected
    assert before_step is None and rows == [None] * len(examples)


def test_setup_gradual_unfreezing_starts_at_the_top_block_and_hands_back_its_hook(fresh):
    bundle, examples = fresh
    _, groups, before_step, _ = setup({"strategy": "layers", "unfreeze_every": 1, "parts": ["ln_f"]}, bundle, examples)
    # The optimizer holds every weight that will ever train; before step 0 only the top block and ln_f do.
    assert group_names(groups) == block(0) | block(1) | LN_F
    assert requires_grad(bundle.model) == block(1) | LN_F
    before_step(1)  # every = 1: at step 1 the next block down joins
    assert requires_grad(bundle.model) == block(0) | block(1) | LN_F


def test_setup_discriminative_rates_scale_each_block(fresh):
    bundle, examples = fresh
    _, groups, _, _ = setup({"strategy": "layers", "blocks": [0, 1], "discriminative": 2.0}, bundle, examples)
    scale = {n: g["lr_scale"] for g in groups for n in g["names"]}
    assert scale == {**{n: 1.0 for n in block(1)}, **{n: 0.5 for n in block(0)}}  # 2 ** -(L - 1 - i)


def test_setup_a_prompt_stage_keeps_earlier_prompts_frozen_and_trains_its_own(fresh):
    from minift.strategies.prompt import SoftPrompt

    bundle, examples = fresh
    model, tok, width = bundle.model, bundle.tokenizer, bundle.model.config.n_embd
    old = SoftPrompt(2, width, init="random", seed=5)
    bundle.prompts["old"] = old
    old_weight = old.weight.detach().clone()
    module, groups, before_step, rows = setup(
        {"strategy": "prompt", "prompts": ["x"], "prompt_tokens": 3, "prompt_init": "text", "prompt_text": "le chat"},
        bundle, examples)
    # The base is frozen, the old prompt still exists (a prompt stage changes no weight below it) but
    # does not train; the stage's one prompt trains, started from the embeddings of its text.
    assert sorted(bundle.prompts) == ["old", "x"] and sorted(module.prompts) == ["old", "x"]
    assert requires_grad(model) == set() and before_step is None
    assert not old.weight.requires_grad and torch.equal(old.weight, old_weight)
    assert bundle.prompts["x"].weight.requires_grad
    assert [names for g in groups for names in g["names"]] == ["prompts.x.weight"]
    by_hand = SoftPrompt(3, width, init="text", model=model, tokenizer=tok, text="le chat")
    assert torch.equal(bundle.prompts["x"].weight, by_hand.weight)
    # One prompt: every row gets it, whatever its subset (x and y alternate here).
    assert {e.subset for e in examples} == {"x", "y"} and rows == ["x"] * len(examples)


def test_setup_a_stage_that_trains_the_model_drops_the_stale_prompts(fresh):
    from minift.strategies.prompt import SoftPrompt

    bundle, examples = fresh
    bundle.prompts["old"] = SoftPrompt(2, bundle.model.config.n_embd, init="random")
    module, _, _, _ = setup({"strategy": "full"}, bundle, examples)
    assert bundle.prompts == {} and len(module.prompts) == 0
    assert requires_grad(bundle.model) == set(dict(bundle.model.named_parameters()))


def test_setup_several_prompts_start_from_their_own_seeds_on_the_models_device_and_rows_follow_subsets(
        fresh, monkeypatch):
    from minift.strategies import prompt as prompt_tuning

    bundle, examples = fresh
    examples = examples[:4] + [dataclasses.replace(examples[4], subset="z")]  # z: a subset with no prompt
    moved_to = []

    class Recording(prompt_tuning.SoftPrompt):
        def to(self, *args, **kwargs):
            moved_to.append(args)
            return super().to(*args, **kwargs)

    monkeypatch.setattr(prompt_tuning, "SoftPrompt", Recording)
    _, groups, _, rows = setup({"strategy": "prompt", "prompts": ["x", "y"], "prompt_tokens": 3}, bundle, examples,
                               seed=7)
    assert rows == [e.subset for e in examples[:4]] + [None]
    assert group_names(groups) == {"prompts.x.weight", "prompts.y.weight"}
    # Prompt i starts from seed + i (vocab init): distinct prompts, each reproducible.
    width = bundle.model.config.n_embd
    for i, name in enumerate(["x", "y"]):
        by_hand = prompt_tuning.SoftPrompt(3, width, init="vocab", model=bundle.model, tokenizer=bundle.tokenizer,
                                           seed=7 + i)
        assert torch.equal(bundle.prompts[name].weight, by_hand.weight), name
    assert not torch.equal(bundle.prompts["x"].weight, bundle.prompts["y"].weight)
    # Each prompt is put where the model's embeddings are (a prompt on the CPU would fail on a GPU).
    assert moved_to == [(bundle.model.transformer.wte.weight.device,)] * 2


def test_stage_optimizer_takes_the_stages_rate_decay_and_momentum():
    from minift.schedule import Stage

    w, b = torch.nn.Parameter(torch.ones(2, 2)), torch.nn.Parameter(torch.ones(2))
    for kind, cls in (("adamw", minift.optim.AdamW), ("sgd", minift.optim.SGD)):
        stage = Stage(optimizer=kind, lr=0.003, weight_decay=0.2)
        # A group without its own weight_decay gets the stage's; param_groups' own (0 on a bias) wins.
        bare = finetune.stage_optimizer([{"params": [w]}], stage)
        assert type(bare) is cls and bare.param_groups[0]["lr"] == 0.003, kind
        assert bare.param_groups[0]["weight_decay"] == 0.2, kind
        built = finetune.stage_optimizer(minift.optim.param_groups([("w", w), ("b", b)], 0.2), stage)
        assert {g["names"][0]: g["weight_decay"] for g in built.param_groups} == {"w": 0.2, "b": 0.0}, kind
    sgd = finetune.stage_optimizer([{"params": [w]}], Stage(optimizer="sgd", momentum=0.5))
    assert sgd.param_groups[0]["momentum"] == 0.5
    assert finetune.stage_optimizer([{"params": [w]}], Stage(optimizer="sgd")).param_groups[0]["momentum"] == 0.9


def test_stage_optimizer_fuses_adamws_update_only_when_asked(monkeypatch):  # no "c-o-m-p-i-l-e" in the name: see tests/mutation.py DESELECT
    from minift.schedule import Stage

    compiled = []
    monkeypatch.setattr(torch, "compile", lambda fn, *a, **k: compiled.append(fn.__name__) or fn)
    w = torch.nn.Parameter(torch.ones(2, 2))
    finetune.stage_optimizer([{"params": [w]}], Stage())
    finetune.stage_optimizer([{"params": [w]}], Stage(optimizer="sgd"), compile=True)  # SGD's loop stays eager
    assert compiled == []
    finetune.stage_optimizer([{"params": [w]}], Stage(), compile=True)
    assert compiled == ["_adamw_compiled"]
