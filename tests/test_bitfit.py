"""BitFit (minift/strategies/bitfit.py): only the bias vectors train.

Pinned here:
* what trains: exactly the bias of every nn.Linear that has one (counted here by walking the
  modules, and by the docstring's arithmetic n_layer × (3C + C + 4C + C)), plus, with
  ``bitfit_layernorm``, the gain and shift of every LayerNorm ((2 n_layer + 1) × 2C); every other
  parameter is frozen, whatever it was before; the optimizer's groups hold those tensors and
  nothing else, all with weight decay 0 whatever the stage's weight_decay says;
* the docstring's claim that the key third of c_attn's bias gets no gradient (softmax ignores a
  shift shared by all the scores of a query), against the query and value thirds, which do;
* a real two-stage run (``run_recipe`` on the tiny fixture of tests/conftest.py): a bitfit stage,
  then one with bitfit_layernorm; in each, every tensor outside the set is bit-identical to the
  stage before and every tensor in it moved; summary.json's trainable_params is the count of the
  set and optimizer_state_bytes is AdamW's two float32 moments of each (2 × 4 bytes × trainable);
* the stage defaults the docstring gives (lr 3e-2, weight_decay 0), a recipe's own value winning;
* bad input: bitfit_layernorm that is not a bool, a bitfit field in a full stage, a model without
  biases (check_against_model, and setup called directly): each a MiniftError naming the field;
  and on the command line, exit 2 with one line and no traceback, before any training.
"""
import json

import pytest
import torch
from torch import nn

import minift
from minift import finetune
from minift.bundle import ModelBundle
from minift.cli import main
from minift.errors import MiniftError
from minift.model import GPT, GPTConfig
from minift.schedule import check_against_model, make_stage, parse_recipe

C, L = 16, 3  # a small GPT built here: width 16, 3 blocks


def small_gpt(**kw) -> GPT:
    torch.manual_seed(0)
    return GPT(GPTConfig(vocab_size=40, block_size=16, n_layer=L, n_head=2, n_embd=C, **kw))


def set_up(model, **fields):
    stage = make_stage(strategy="bitfit", **fields)
    setup = stage.method.setup(stage, ModelBundle(model=model, tokenizer=None), [None] * 3, log=None, seed=0)
    return stage, setup


def linear_biases(model):
    """{name: tensor} of the bias of every nn.Linear that has one: BitFit's set, found independently."""
    return {f"{m_name}.bias": m.bias for m_name, m in model.named_modules()
            if isinstance(m, nn.Linear) and m.bias is not None}


def layernorm_params(model):
    return {f"{m_name}.{p_name}": p for m_name, m in model.named_modules() if isinstance(m, nn.LayerNorm)
            for p_name, p in m.named_parameters(recurse=False)}


@pytest.mark.parametrize("layernorm", [False, True])
def test_exactly_the_biases_train_and_their_count_is_the_arithmetic(layernorm):
    model = small_gpt()
    expected = linear_biases(model) | (layernorm_params(model) if layernorm else {})
    _, setup = set_up(model, bitfit_layernorm=layernorm)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == set(expected)
    in_groups = [p for g in setup.groups for p in g["params"]]
    assert {id(p) for p in in_groups} == {id(p) for p in expected.values()} and len(in_groups) == len(expected)
    # The docstring's arithmetic: per block c_attn 3C + attn c_proj C + c_fc 4C + mlp c_proj C;
    # with LayerNorm, gain and shift (2C) of ln_1 and ln_2 of every block and of ln_f.
    count = sum(p.numel() for p in in_groups)
    assert count == sum(p.numel() for p in expected.values())
    assert count == L * (3 * C + C + 4 * C + C) + (layernorm * (2 * L + 1) * 2 * C)
    assert setup.row_names == [None] * 3


def test_the_shipped_shape_gives_the_docstrings_counts():
    # n_embd 128, 4 blocks (the shipped base's shape): 4 × (384 + 128 + 512 + 128) = 4,608, and
    # + (4 × 2 + 1) × 2 × 128 = 2,304 with LayerNorm.
    config = GPTConfig(vocab_size=1026, block_size=256, n_layer=4, n_head=4, n_embd=128)
    for layernorm, expected in ((False, 4 * (384 + 128 + 512 + 128)), (True, 4608 + (4 * 2 + 1) * 2 * 128)):
        model = GPT(config)
        _, setup = set_up(model, bitfit_layernorm=layernorm)
        assert sum(p.numel() for g in setup.groups for p in g["params"]) == expected


def test_matrices_that_trained_before_are_frozen_and_frozen_biases_train():
    # A stage starts from whatever the last one left: here every weight frozen, except two matrices.
    model = small_gpt()
    for p in model.parameters():
        p.requires_grad_(False)
    model.transformer.h[0].mlp.c_fc.weight.requires_grad_(True)
    model.transformer.wte.weight.requires_grad_(True)
    set_up(model)
    assert {n for n, p in model.named_parameters() if p.requires_grad} == set(linear_biases(model))


def test_no_group_decays_whatever_weight_decay_says():
    # Every tensor BitFit trains is 1-D: optim.param_groups gives those weight_decay 0.
    _, setup = set_up(small_gpt(), weight_decay=0.1, bitfit_layernorm=True)
    assert setup.groups and all(g["weight_decay"] == 0.0 for g in setup.groups)


def test_stage_defaults_are_the_docstrings_and_a_recipe_value_wins():
    stage = make_stage(strategy="bitfit")
    assert (stage.lr, stage.weight_decay, stage.options.bitfit_layernorm) == (3e-2, 0.0, False)
    assert make_stage(strategy="bitfit", lr=1e-3).lr == 1e-3


@pytest.mark.parametrize("attn_impl", ["manual", "sdpa"])
def test_the_key_bias_gets_no_gradient_the_query_and_value_biases_do(attn_impl):
    model = small_gpt(attn_impl=attn_impl)
    with torch.no_grad():  # larger weights than at init, so attention is far from uniform and the
        for m in model.modules():  # query matters; nonzero biases, so q·b_k is not 0 by accident
            if isinstance(m, nn.Linear) and m.bias is not None:
                m.weight.normal_(0, 0.3)
                m.bias.normal_(0, 0.5)
    ids = torch.randint(40, (4, 12), generator=torch.Generator().manual_seed(1))
    model(ids, targets=ids).backward()
    for block in model.transformer.h:
        q, k, v = block.attn.c_attn.bias.grad.split(C)
        assert q.abs().max() > 1e-4 and v.abs().max() > 1e-4
        # Zero but for rounding (float32): five orders of magnitude below the others.
        assert k.abs().max() < 1e-5 * min(q.abs().max(), v.abs().max())


# --- a real run -----------------------------------------------------------------------------------
RECIPE = {
    "name": "bitfit-run",
    "defaults": {"strategy": "bitfit", "batch_size": 4, "max_steps": 3, "eval_every": 100, "eval_examples": 4,
                 "lr": 0.01, "warmup_steps": 0, "min_lr_ratio": 1.0, "restore_best": False,
                 "weight_decay": 0.1},  # 0.1 asked for: it must not reach any trained tensor (1-D)
    "stages": [{"name": "biases"}, {"name": "with-ln", "bitfit_layernorm": True}],
}


@pytest.fixture(scope="module")
def run(tiny_setup, tmp_path_factory):
    """(summary as read from summary.json, [base, after stage 0, after stage 1] state dicts, the base model)."""
    folder = tmp_path_factory.mktemp("bitfit")
    opts = finetune.RunOptions(out=str(folder / "run"), data=str(tiny_setup / "pairs.jsonl"),
                               base=str(tiny_setup / "base"), quiet=True, eval_limit=4)
    finetune.run_recipe(parse_recipe(RECIPE, "bitfit-run.toml"), opts)
    summary = json.loads((folder / "run" / "summary.json").read_text())
    base = minift.load_model(tiny_setup / "base").model
    states = [base.state_dict()] + [minift.load_model(folder / "run" / "stages" / f"{i}-{name}").model.state_dict()
                                    for i, name in enumerate(["biases", "with-ln"])]
    return summary, states, base


@pytest.mark.parametrize("index, layernorm", [(0, False), (1, True)])
def test_a_stage_moves_every_bias_and_not_one_bit_of_anything_else(run, index, layernorm):
    summary, states, base = run
    trained = set(linear_biases(base)) | (set(layernorm_params(base)) if layernorm else set())
    before, after = states[index], states[index + 1]
    assert set(before) == set(after)
    for name in after:
        if name in trained:
            assert not torch.equal(before[name], after[name]), f"{name} did not move"
        else:  # every matrix (and, without bitfit_layernorm, LayerNorm): bit-identical
            assert torch.equal(before[name], after[name]), f"{name} changed"
    stage = summary["stages"][index]
    n_trained = sum(before[n].numel() for n in trained)
    assert stage["strategy"] == "bitfit" and stage["steps"] == 3
    assert stage["trainable_params"] == n_trained
    assert set(stage["trainable_names"]) == trained
    assert stage["optimizer_state_bytes"] == 2 * 4 * n_trained  # AdamW: m and v, float32, per trained number


# --- bad input ------------------------------------------------------------------------------------
@pytest.mark.parametrize("fields, message", [
    ({"strategy": "bitfit", "bitfit_layernorm": 1}, r"stages\[0\]\.bitfit_layernorm must be a bool, got int 1"),
    ({"strategy": "bitfit", "bitfit_layernorm": "yes"}, r"stages\[0\]\.bitfit_layernorm must be a bool, got str"),
    ({"strategy": "full", "bitfit_layernorm": True},
     r"stages\[0\]\.bitfit_layernorm = True: only a 'bitfit' stage uses it \(this stage is 'full'\)"),
])
def test_bad_fields_are_refused_naming_the_field(fields, message):
    with pytest.raises(MiniftError, match=message):
        make_stage(**fields)


def test_a_model_without_biases_is_refused_naming_the_configs_bias_field():
    recipe = parse_recipe({"stages": [{"strategy": "full"}, {"strategy": "bitfit", "name": "b"}]}, "r.toml")
    check_against_model(recipe, GPTConfig(bias=True))  # with biases: fine
    with pytest.raises(MiniftError, match=r"^r\.toml: stages\[1\]\.strategy = 'bitfit': the model has no bias "
                                          r"vectors to train: its config has bias = False"):
        check_against_model(recipe, GPTConfig(bias=False))
    # And setup called directly (as the strategy bench does) refuses rather than train nothing.
    with pytest.raises(MiniftError, match=r"no bias vectors to train \(GPTConfig\.bias = False\)"):
        set_up(small_gpt(bias=False))


def test_the_cli_refuses_a_bad_bitfit_field_with_exit_2_and_one_line(tmp_path, capsys, monkeypatch):
    def no_training(*args, **kwargs):  # reached only if the recipe got through
        raise AssertionError("training started")

    monkeypatch.setattr(finetune, "run_recipe", no_training)
    recipe = tmp_path / "BAD.toml"
    recipe.write_text('[[stages]]\nstrategy = "bitfit"\nbitfit_layernorm = "yes"\n')
    out = tmp_path / "run"
    code = main(["finetune", "--recipe", str(recipe), "--out", str(out)])  # what `python -m minift` runs
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert code == 2 and "\n" not in err and "Traceback" not in err, err
    assert err.startswith("minift: error: ") and f"{recipe}: stages[0].bitfit_layernorm must be a bool" in err
    assert captured.out == "" and not out.exists()  # refused before any work
