"""LoRA (minift/strategies/lora.py): y = W x + b + (alpha/r) · B (A dropout(x)), W frozen, A and B trained.

Pinned here, against references computed in the test (the base model's own logits, torch's own
matmul for W + (alpha/r) B A, parameter counts by hand on the tiny model of tests/conftest.py:
2 blocks, width 32, biases):

* step 0: the wrapped model's logits are bit-identical to the base's (B = 0), A is uniform on
  ±1/√in as nn.Linear's own weight, and B still gets a gradient;
* a real stage (``finetune.run_recipe`` on the tiny fixture): only A and B are in the optimizer,
  only they get gradients, every base weight is bit-identical before the merge; after it the
  run's ``model.pt`` has exactly the base's keys and shapes, the targeted weights are W + (alpha/r) B A
  of the stage's own A and B, and every other weight is the base's; ``trainable_params`` is the
  arithmetic r·in + out·r per wrapped layer;
* the merged model's logits equal the unmerged one's to 1e-5;
* ``adapter.pt`` merges onto the base it was trained on to the run's model, and is refused on
  another base (one line naming the file and both fingerprints);
* greedy generation with and without the KV cache gives the same tokens on a wrapped model;
* blocks / top_k / top_fraction limit which blocks are wrapped;
* every bad field is one MiniftError naming it (and through the CLI, exit 2 without a traceback);
* a killed LoRA stage resumes (its resume point holds the wrapped module's keys) to the weights
  of a run never killed; and a wrapped model compiles (torch.compile, fullgraph, aot_eager) to
  eager's loss and A/B gradients.
"""
import copy
import json
import math
import subprocess
import sys

import pytest
import torch

import minift
from minift import finetune
from minift.checkpoint import fingerprint
from minift.errors import MiniftError
from minift.model import GPTConfig
from minift.schedule import check_against_model, make_stage, parse_recipe
from minift.strategies import lora
from minift.strategies.lora import load_adapter, merge_lora

RANK, ALPHA = 4, 8.0  # scale alpha / r = 2, so a merge that forgets the scale is caught
TARGETS = ["attn.c_attn", "mlp.c_proj"]
RECIPE = {
    "name": "tiny-lora",
    "stages": [{
        "name": "adapt", "strategy": "lora", "lora_rank": RANK, "lora_alpha": ALPHA, "lora_dropout": 0.1,
        "lora_targets": TARGETS, "max_steps": 4, "eval_every": 2, "batch_size": 4, "eval_examples": 2,
        "lr": 0.01, "warmup_steps": 0, "weight_decay": 0.0,
        # restore_best = false keeps the trained A and B (with 4 steps the start, B = 0, could be "best").
        "restore_best": False,
    }],
}


def options(tiny_setup, out, **kw):
    return finetune.RunOptions(out=str(out), data=str(tiny_setup / "pairs.jsonl"), base=str(tiny_setup / "base"),
                               quiet=True, eval_limit=2, seed=5, **kw)


def ids_of(bundle, text="the cat sees the dog. le chat voit le"):
    return torch.tensor([bundle.tokenizer.encode(text)])


def randomize_B(wrapped, seed=0, std=0.3):
    """B as training might leave it (it starts at zero, which would make every check below trivial)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in wrapped.values():
            layer.lora_B.copy_(torch.randn(layer.lora_B.shape, generator=g) * std)


@pytest.fixture(scope="module")
def lora_run(tiny_setup, tmp_path_factory):
    """The tiny recipe run once; the strategy's finish is spied on to see the model before the merge."""
    out = tmp_path_factory.mktemp("lora") / "run"
    seen = {}
    real_finish = lora.STRATEGY.finish

    def spy(stage, bundle, setup, folder):
        model = bundle.model
        seen["weights"] = {k: v.detach().clone() for k, v in model.state_dict().items()}
        seen["requires_grad"] = sorted(n for n, p in model.named_parameters() if p.requires_grad)
        return real_finish(stage, bundle, setup, folder)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(lora.STRATEGY, "finish", spy)
        summary = finetune.run_recipe(parse_recipe(copy.deepcopy(RECIPE), "<lora test>"), options(tiny_setup, out))
    return {"summary": summary, "out": out, **seen}


# --- step 0 ----------------------------------------------------------------------------------------

def test_at_step_0_the_wrapped_model_gives_bit_identical_logits_to_the_base(tiny_setup):
    bundle = minift.load_model(tiny_setup / "base")
    model = bundle.model.eval()
    ids = ids_of(bundle)
    with torch.no_grad():
        reference = model(ids)
    stage = make_stage(strategy="lora", lora_rank=RANK, lora_alpha=ALPHA, lora_dropout=0.2,
                       lora_targets=["attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"])
    lora.STRATEGY.setup(stage, bundle, [None] * 3, None, seed=0)
    assert len(lora.wrapped_layers(model)) == 8  # every target of both blocks
    with torch.no_grad():
        assert torch.equal(model(ids), reference)


def test_A_starts_as_nn_linear_would_and_B_at_zero_so_B_gets_a_gradient(tiny_setup):
    bundle = minift.load_model(tiny_setup / "base")
    wrapped = lora.add_lora(bundle.model, ["mlp.c_proj"], [0], RANK, ALPHA, seed=3)
    layer = wrapped["transformer.h.0.mlp.c_proj"]  # 128 -> 32
    # nn.Linear(in, out) draws its weight uniform on ±1/√in (Kaiming-uniform with a = √5).
    bound = 1 / math.sqrt(layer.base.in_features)
    A = layer.lora_A.detach()
    assert layer.lora_A.shape == (RANK, 128) and layer.lora_B.shape == (32, RANK)
    assert float(A.abs().max()) <= bound and float(A.abs().max()) > 0.95 * bound
    assert float(A.std()) == pytest.approx(bound / math.sqrt(3), rel=0.15)  # uniform(±b): std b/√3
    assert torch.equal(layer.lora_B, torch.zeros(32, RANK))
    assert layer.scale == ALPHA / RANK
    bundle.model(ids_of(bundle)).sum().backward()
    assert layer.lora_B.grad is not None and float(layer.lora_B.grad.abs().sum()) > 0
    assert layer.base.weight.grad is None  # frozen


# --- a real stage ----------------------------------------------------------------------------------

def test_during_the_stage_only_A_and_B_train_and_every_base_weight_stays_bit_identical(lora_run, tiny_setup):
    base = minift.load_model(tiny_setup / "base").model.state_dict()
    wrapped = [f"transformer.h.{i}.{t}" for i in (0, 1) for t in TARGETS]
    expected = sorted(f"{n}.{w}" for n in wrapped for w in ("lora_A", "lora_B"))
    stage = lora_run["summary"]["stages"][0]
    assert sorted(stage["trainable_names"]) == expected  # the optimizer's groups
    assert lora_run["requires_grad"] == expected  # nothing else could get a gradient
    before_merge = lora_run["weights"]
    for key, value in base.items():
        local = key
        for n in wrapped:  # the wrapped layer's own weights now live under NAME.base.
            if key.startswith(n + "."):
                local = f"{n}.base.{key[len(n) + 1:]}"
        assert torch.equal(before_merge[local], value), key
    for n in wrapped:  # and B did train (else the merge below would prove nothing)
        assert float(before_merge[f"{n}.lora_B"].abs().sum()) > 0, n


def test_the_merged_model_pt_is_the_base_plus_scale_B_A_with_the_base_keys_and_shapes(lora_run, tiny_setup):
    base = minift.load_model(tiny_setup / "base").model.state_dict()
    run = minift.load_model(lora_run["out"]).model.state_dict()
    assert list(run) == list(base) and all(run[k].shape == base[k].shape for k in base)
    before = lora_run["weights"]
    scale = ALPHA / RANK
    for key in base:
        layer = key.removesuffix(".weight")
        if layer.split(".", 3)[-1] in TARGETS and key.endswith(".weight"):
            merged = base[key] + scale * (before[f"{layer}.lora_B"] @ before[f"{layer}.lora_A"])
            torch.testing.assert_close(run[key], merged, rtol=0, atol=1e-6)
            assert not torch.equal(run[key], base[key]), key
        else:  # every other weight, the targeted layers' biases too
            assert torch.equal(run[key], base[key]), key


def test_trainable_params_in_summary_is_the_arithmetic(lora_run):
    # Tiny model, width C = 32, rank 4, two blocks:
    #   attn.c_attn 32 -> 96:   4·32 + 96·4  = 128 + 384 = 512
    #   mlp.c_proj  128 -> 32:  4·128 + 32·4 = 512 + 128 = 640
    #   per block 1,152; two blocks 2,304
    summary = json.loads((lora_run["out"] / "summary.json").read_text())
    stage = summary["stages"][0]
    assert stage["trainable_params"] == 2304
    assert stage["optimizer_state_bytes"] == 2304 * 2 * 4  # AdamW: two float32 moments each
    assert (stage["lora_rank"], stage["lora_alpha"]) == (RANK, ALPHA)


def test_the_adapter_merges_onto_its_base_to_the_run_model_and_is_refused_on_another(lora_run, tiny_setup):
    path = lora_run["out"] / "stages" / "0-adapt" / "adapter.pt"
    assert lora_run["summary"]["stages"][0]["adapter"] == str(path)
    bundle = minift.load_model(tiny_setup / "base")
    base_print = fingerprint(bundle.model)
    facts = load_adapter(path, bundle.model)
    assert facts["rank"] == RANK and facts["alpha"] == ALPHA and facts["targets"] == TARGETS
    assert facts["blocks"] == [0, 1] and facts["fingerprint"] == base_print
    run = minift.load_model(lora_run["out"])
    ids = ids_of(bundle)
    with torch.no_grad():
        assert torch.equal(bundle.model.eval()(ids), run.model.eval()(ids))
    # The file holds the adapter alone: A and B of each wrapped layer, nothing of the base.
    payload = torch.load(path, weights_only=True)
    assert sum(t.numel() for ab in payload["layers"].values() for t in ab.values()) == 2304

    other = minift.load_model(tiny_setup / "base").model
    with torch.no_grad():
        other.transformer.wte.weight[0, 0] += 1e-3  # any other weights at all
    with pytest.raises(MiniftError) as info:
        load_adapter(path, other)
    message = str(info.value)
    assert message.startswith(f"{path}: ") and "\n" not in message
    assert base_print in message and fingerprint(other) in message


def test_merged_logits_equal_the_unmerged_ones(tiny_setup):
    bundle = minift.load_model(tiny_setup / "base")
    model = bundle.model.eval()
    ids = ids_of(bundle)
    with torch.no_grad():
        base_logits = model(ids)
    wrapped = lora.add_lora(model, ["attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"], [0, 1], RANK, ALPHA)
    randomize_B(wrapped)
    with torch.no_grad():
        unmerged = model(ids)
        merge_lora(model)
        merged = model(ids)
    assert not lora.wrapped_layers(model)
    assert all(type(model.get_submodule(n)) is torch.nn.Linear for n in wrapped)
    assert float((unmerged - base_logits).abs().max()) > 1e-2  # the adapter does change the logits
    torch.testing.assert_close(merged, unmerged, rtol=0, atol=1e-5)


def test_generation_with_and_without_the_kv_cache_gives_the_same_tokens(tiny_setup):
    bundle = minift.load_model(tiny_setup / "base")
    model = bundle.model.eval()
    ids = ids_of(bundle, "the cat sees")
    plain = model.generate(ids, 12, temperature=0.0, use_cache=False)
    wrapped = lora.add_lora(model, ["attn.c_attn", "mlp.c_fc"], [0, 1], RANK, ALPHA, dropout=0.5)
    randomize_B(wrapped, std=1.0)
    cached = model.generate(ids, 12, temperature=0.0, use_cache=True)
    uncached = model.generate(ids, 12, temperature=0.0, use_cache=False)
    assert torch.equal(cached, uncached)
    assert not torch.equal(cached, plain)  # the adapter is in the path


def test_blocks_top_k_and_top_fraction_limit_the_wrapped_blocks(tiny_setup):
    cases = [({}, [0, 1]), ({"blocks": [0]}, [0]), ({"blocks": [-1]}, [1]), ({"top_k": 1}, [1]),
             ({"top_fraction": 0.5}, [1]), ({"blocks": [0], "top_k": 1}, [0, 1])]
    for fields, blocks in cases:
        bundle = minift.load_model(tiny_setup / "base")
        setup = lora.STRATEGY.setup(make_stage(strategy="lora", lora_rank=2, **fields), bundle, [None], None, seed=0)
        names = sorted(lora.wrapped_layers(bundle.model))
        assert names == sorted(f"transformer.h.{i}.{t}" for i in blocks for t in ("attn.c_attn", "attn.c_proj")), fields
        assert setup.state["blocks"] == blocks
        assert sorted(n for g in setup.groups for n in g["names"]) == sorted(
            f"{n}.{w}" for n in names for w in ("lora_A", "lora_B"))


# --- bad input ---------------------------------------------------------------------------------------

ALLOWED = "allowed: attn.c_attn, attn.c_proj, mlp.c_fc, mlp.c_proj"


@pytest.mark.parametrize("fields, message", [
    ({"lora_rank": 0}, r"stages\[0\]\.lora_rank = 0: must be >= 1$"),
    ({"lora_alpha": 0}, r"stages\[0\]\.lora_alpha = 0\.0: must be > 0"),
    ({"lora_alpha": -2.0}, r"stages\[0\]\.lora_alpha = -2\.0: must be > 0"),
    ({"lora_dropout": 1.0}, r"stages\[0\]\.lora_dropout = 1\.0: must be in \[0, 1\)$"),
    ({"lora_targets": ["attn.q"]}, r"stages\[0\]\.lora_targets = \['attn\.q'\]: 'attn\.q' is not a linear layer "
                                   r"of a block; " + ALLOWED.replace(".", r"\.") + "$"),
    ({"lora_targets": []}, r"stages\[0\]\.lora_targets = \[\]: name at least one layer; "),
    ({"lora_targets": ["mlp.c_fc", "mlp.c_fc"]}, r"lora_targets = .*: a layer is named twice$"),
    ({"lora_targets": "attn.c_attn"}, r"stages\[0\]\.lora_targets must be a list"),
    ({"lora_rank": 2.5}, r"stages\[0\]\.lora_rank must be an int"),
    ({"top_k": 0}, r"stages\[0\]\.top_k = 0: must be >= 1$"),
    ({"blocks": ["top"]}, r"stages\[0\]\.blocks = \['top'\]: 'top' is not a block index"),
])
def test_bad_lora_fields_are_one_line_naming_the_field(fields, message):
    with pytest.raises(MiniftError, match=message) as info:
        make_stage(strategy="lora", **fields)
    assert "\n" not in str(info.value)


def test_a_lora_field_in_a_full_stage_is_refused():
    with pytest.raises(MiniftError, match=r"stages\[0\]\.lora_rank = 8: only a 'lora' stage uses it "
                                          r"\(this stage is 'full'\)$"):
        make_stage(strategy="full", lora_rank=8)


@pytest.mark.parametrize("fields, message", [
    # The tiny model is 32 wide: every target's smaller dimension is 32.
    ({"lora_rank": 33}, r"stages\[0\]\.lora_rank = 33: must be <= 32, the smaller dimension of attn\.c_attn "
                        r"\(32 -> 96\) in this model$"),
    ({"lora_rank": 40, "lora_targets": ["mlp.c_proj"]}, r"lora_rank = 40: must be <= 32, the smaller dimension "
                                                        r"of mlp\.c_proj \(128 -> 32\)"),
    ({"blocks": [2]}, r"stages\[0\]\.blocks = \[2\]: block 2 is outside the model: it has 2 blocks"),
    ({"blocks": [-3]}, r"stages\[0\]\.blocks = \[-3\]: block -3 is outside the model"),
    ({"top_k": 3}, r"stages\[0\]\.top_k = 3: the model has 2 blocks"),
])
def test_what_does_not_fit_the_model_is_refused_naming_the_field(fields, message):
    recipe = parse_recipe({"stages": [{"strategy": "lora", **fields}]}, "r.toml")
    with pytest.raises(MiniftError, match=message):
        check_against_model(recipe, GPTConfig(vocab_size=50, block_size=16, n_layer=2, n_head=2, n_embd=32))
    # A rank equal to the smaller dimension fits.
    check_against_model(parse_recipe({"stages": [{"strategy": "lora", "lora_rank": 32}]}, "r.toml"),
                        GPTConfig(vocab_size=50, block_size=16, n_layer=2, n_head=2, n_embd=32))


def test_the_cli_refuses_a_rank_too_large_for_the_base_with_exit_2_before_training(tiny_setup, tmp_path):
    bad = tmp_path / "BAD.toml"
    bad.write_text('[[stages]]\nstrategy = "lora"\nlora_rank = 64\n')
    result = subprocess.run([sys.executable, "-m", "minift", "finetune", "--recipe", str(bad), "--out",
                             str(tmp_path / "run"), "--base", str(tiny_setup / "base"), "--data",
                             str(tiny_setup / "pairs.jsonl"), "--quiet"], capture_output=True, text=True)
    err = result.stderr.strip()
    assert result.returncode == 2 and "Traceback" not in err and "\n" not in err, err
    assert f"{bad}: stages[0].lora_rank = 64: must be <= 32" in err
    assert not (tmp_path / "run" / "stages").exists()  # nothing trained


# --- resume and compile ------------------------------------------------------------------------------

class Killed(BaseException):
    """Stands for the process dying: nothing after it runs."""


def test_a_killed_lora_stage_resumes_to_the_weights_of_a_run_never_killed(lora_run, tiny_setup, tmp_path,
                                                                          monkeypatch):
    real_save = finetune.atomic_torch_save
    points = []

    def dying_save(path, obj):
        real_save(path, obj)
        points.append(obj)
        raise Killed()  # right after the first resume point, at step 2 of 4

    monkeypatch.setattr(finetune, "atomic_torch_save", dying_save)
    with pytest.raises(Killed):
        finetune.run_recipe(parse_recipe(copy.deepcopy(RECIPE), "<lora test>"), options(tiny_setup, tmp_path / "run"))
    monkeypatch.setattr(finetune, "atomic_torch_save", real_save)
    (point,) = points
    assert point["train_state"]["step"] == 2
    assert "gpt.transformer.h.0.attn.c_attn.lora_B" in point["train_state"]["model_weights"]  # the wrapped keys
    starts = []
    real_train_stage = finetune.train_stage

    def spy(*args, **kwargs):
        starts.append(kwargs["state"] and kwargs["state"].step)
        return real_train_stage(*args, **kwargs)

    monkeypatch.setattr(finetune, "train_stage", spy)
    finetune.run_recipe(parse_recipe(copy.deepcopy(RECIPE), "<lora test>"),
                        options(tiny_setup, tmp_path / "run", resume=True))
    assert starts == [2]  # it continued the stage, not started it again
    straight = minift.load_model(lora_run["out"]).model.state_dict()
    resumed = minift.load_model(tmp_path / "run").model.state_dict()
    assert straight.keys() == resumed.keys() and all(torch.equal(straight[k], resumed[k]) for k in straight)
    a = torch.load(lora_run["out"] / "stages" / "0-adapt" / "adapter.pt", weights_only=True)["layers"]
    b = torch.load(tmp_path / "run" / "stages" / "0-adapt" / "adapter.pt", weights_only=True)["layers"]
    assert a.keys() == b.keys() and all(torch.equal(a[n][w], b[n][w]) for n in a for w in ("A", "B"))


def test_a_wrapped_model_compiles_into_one_graph_with_eager_logits_and_gradients(tiny_setup):
    """torch.compile with fullgraph=True (any graph break is an error) and the aot_eager backend
    (dynamo and AOT autograd trace it, no C++ is generated: seconds, not minutes). ``--compile``
    itself is wired strategy-blind (tests/test_finetune.py); this proves LoRALinear traces."""
    bundle = minift.load_model(tiny_setup / "base")
    model = bundle.model.train()
    wrapped = lora.add_lora(model, ["attn.c_attn", "mlp.c_fc"], [0, 1], RANK, ALPHA)
    randomize_B(wrapped)
    ids = ids_of(bundle)

    def loss_and_grads(module):
        for layer in wrapped.values():
            layer.lora_A.grad = layer.lora_B.grad = None
        loss = module(ids).float().logsumexp(-1).mean()
        loss.backward()
        return loss.detach(), [p.grad.clone() for layer in wrapped.values() for p in (layer.lora_A, layer.lora_B)]

    eager_loss, eager_grads = loss_and_grads(model)
    compiled_loss, compiled_grads = loss_and_grads(torch.compile(model, backend="aot_eager", fullgraph=True))
    torch.testing.assert_close(compiled_loss, eager_loss)
    for a, b in zip(eager_grads, compiled_grads, strict=True):
        torch.testing.assert_close(b, a)
