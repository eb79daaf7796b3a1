"""Prefix tuning (minift/strategies/prefix.py) and the model's key/value prefix door.

What it pins:
* a row with a prefix equals the attention formula written out by hand (its keys and values
  before the text's at every layer, every query seeing all of them; the text at positions 0..T-1,
  so it may fill the whole block), with both attention paths;
* one batch may mix rows with two different prefixes, a soft prompt and nothing: each row reads
  exactly as it would alone, in training's forward and in generation, and generation gives the same
  tokens with and without the KV cache (the cache holds the prefix, written once);
* a prefix acts at every layer (changing any one layer's prefix changes the output), a soft prompt
  only at the input (it IS the prefix the frozen model computes from its P vectors), and the
  trainable counts are n_layer·2·P·C against P·C;
* the block budget: a prefix reserves no positions when examples are encoded (a soft prompt P);
* a real stage (run_recipe, tests/conftest.py's tiny base) leaves the base bit-identical, trains
  the prefixes and saves them; ``prefix_reparameterize`` trains through the MLP and keeps only the
  plain prefix (same logits once the MLP is dropped, no MLP in the file);
* files round-trip, refuse another base, and bad recipe fields are one-line errors naming the field.
"""
import math

import pytest
import torch

import minift
from minift import evaluate, finetune
from minift.errors import MiniftError
from minift.model import GPT, GPTConfig
from minift.strategies.prefix import (FORMAT, HIDDEN, STRATEGY, KVPrefix, load_prefix, load_state,
                                      model_keys_values, save_prefix, start_prefix)
from minift.strategies.prompt import SoftPrompt, build_prefix, build_prefix_kv, forward_with_prompts, save_prompt

V, BLOCK, L, NH, C = 50, 16, 3, 2, 16


def tiny(attn_impl="sdpa", seed=0):
    torch.manual_seed(seed)
    return GPT(GPTConfig(vocab_size=V, block_size=BLOCK, n_layer=L, n_head=NH, n_embd=C, attn_impl=attn_impl)).eval()


def prefixes(model):
    """Two prefixes of different lengths (3 and 5 slots) and a soft prompt of 4 vectors."""
    return {"a": KVPrefix(3, L, C, seed=1), "b": KVPrefix(5, L, C, seed=2),
            "s": SoftPrompt(4, C, init="random", model=model, seed=3)}


def naive_logits(model, x, prefix=None):
    """One row, straight from the formula: x (T, C) input embeddings at positions 0..T-1; prefix
    (n_layer, 2, P, C) or None. At layer l, query t scores the P prefix keys and text keys 0..t."""
    T = x.size(0)
    h = x + model.transformer.wpe.weight[:T]  # the text starts at position 0: the prefix takes none
    hs = C // NH
    for layer, block in enumerate(model.transformer.h):
        q, k, v = block.attn.c_attn(block.ln_1(h)).split(C, dim=1)  # (T, C) each
        if prefix is not None:
            k, v = torch.cat([prefix[layer, 0], k]), torch.cat([prefix[layer, 1], v])
        P = k.size(0) - T
        out = torch.zeros(T, C)
        for head in range(NH):
            sl = slice(head * hs, (head + 1) * hs)
            for t in range(T):
                keys = range(P + t + 1)  # every prefix key, then the text's up to t
                scores = torch.stack([q[t, sl] @ k[s, sl] / math.sqrt(hs) for s in keys])
                w = torch.softmax(scores, 0)
                out[t, sl] = sum(w[i] * v[s, sl] for i, s in enumerate(keys))
        h = h + block.attn.c_proj(out)
        h = h + block.mlp(block.ln_2(h))
    return model.lm_head(model.transformer.ln_f(h))


# --- the attention with a prefix --------------------------------------------------------------------
@pytest.mark.parametrize("impl", ["sdpa", "manual"])
def test_a_prefix_row_equals_the_formula_with_the_text_at_positions_from_0_filling_the_block(impl):
    model = tiny(impl)
    states = prefixes(model)
    ids = torch.randint(0, V, (1, BLOCK))  # the whole block: a prefix takes none of its positions
    with torch.no_grad():
        for name in ("a", "b"):
            got = forward_with_prompts(model, states, ids, [name])[0]
            expected = naive_logits(model, model.embed(ids)[0], states[name].prefix())
            torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("impl", ["sdpa", "manual"])
def test_each_row_of_a_mixed_batch_reads_as_the_formula_gives_it_alone(impl):
    model = tiny(impl)
    states = prefixes(model)
    names = ["a", "b", None, "s", "a"]
    lengths = [7, 4, 6, 5, 2]
    ids = torch.randint(0, V, (5, 7))
    mask = torch.arange(7)[None, :] < torch.tensor(lengths)[:, None]  # right padding, as training's batches
    with torch.no_grad():
        mixed = forward_with_prompts(model, states, ids.masked_fill(~mask, 0), names, mask)
        for row, (name, n) in enumerate(zip(names, lengths)):
            x = model.embed(ids[row, :n])
            if name == "s":  # a soft prompt's vectors come first and take positions 0..3
                expected = naive_logits(model, torch.cat([states["s"].weight, x]))[4:]
            else:
                expected = naive_logits(model, x, None if name is None else states[name].prefix())
            torch.testing.assert_close(mixed[row, :n], expected, atol=1e-5, rtol=1e-5, msg=f"row {row} ({name})")


def test_a_cache_holding_a_prefix_reads_as_the_prefix_given_and_numbers_the_text_from_0():
    from minift.model import KVCache

    model = tiny()
    layers = [(k[None], v[None]) for k, v in KVPrefix(3, L, C, seed=1).layer_kv(NH)]
    ids = torch.randint(0, V, (1, 7))
    with torch.no_grad():
        given = model.forward_embeds(model.embed(ids), prefix_kv=layers)  # default positions: 0..6
        cache = KVCache(model.config, 1, 3 + BLOCK, ids.device, torch.float32)
        cache.add_prefix(layers)
        first = model.forward_embeds(model.embed(ids[:, :4]), cache=cache)  # default positions 0..3, not 3..6
        rest = model.forward_embeds(model.embed(ids[:, 4:]), cache=cache)
    torch.testing.assert_close(torch.cat([first, rest], 1), given, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="empty cache"):
        cache.add_prefix(layers)


def test_build_prefix_kv_right_aligns_each_prefix_in_heads_and_masks_the_rest():
    model = tiny()
    states = prefixes(model)
    kv, mask = build_prefix_kv(states, ["a", None, "b", "s"], NH)
    assert len(kv) == L and kv[0][0].shape == (4, NH, 5, C // NH)
    expected_mask = torch.tensor([[False, False, True, True, True], [False] * 5, [True] * 5, [False] * 5])
    assert torch.equal(mask, expected_mask)
    for layer in range(L):
        for j, part in enumerate(("keys", "values")):
            # Row 0: prefix a's 3 slots at the right end; its (3, C) rows split into NH heads of C/NH.
            by_hand = states["a"].weight[layer, j].view(3, NH, C // NH).transpose(0, 1)
            assert torch.equal(kv[layer][j][0, :, 2:], by_hand), (layer, part)
            assert torch.equal(kv[layer][j][2], states["b"].weight[layer, j].view(5, NH, C // NH).transpose(0, 1))
    assert build_prefix_kv(states, ["s", None], NH) == (None, None)  # no row has a prefix
    assert build_prefix(states, ["a", "b"]) == (None, None)  # a prefix is not a soft prompt


# --- generation -----------------------------------------------------------------------------------------
def generate(model, states, ids, names, mask, use_cache, steps=14):
    prefix, prefix_mask = build_prefix(states, names)
    kv, kv_mask = build_prefix_kv(states, names, NH)
    return model.generate(ids, steps, temperature=0.0, use_cache=use_cache, prefix_embeds=prefix,
                          prefix_mask=prefix_mask, prefix_kv=kv, prefix_kv_mask=kv_mask, attention_mask=mask)


@pytest.mark.parametrize("impl", ["sdpa", "manual"])
def test_generation_is_the_same_with_and_without_the_cache_and_each_row_as_alone(impl):
    model = tiny(impl)
    with torch.no_grad():  # sharper weights: a random tiny model's greedy tokens hardly depend on attention
        for name, p in model.named_parameters():
            if p.dim() == 2 and not name.startswith(("transformer.wte", "transformer.wpe")):
                p.mul_(5)
    # Scale the prefixes up, so that they change what is generated (checked below).
    states = {n: KVPrefix(p, L, C, start=torch.randn(L, 2, p, C, generator=torch.Generator().manual_seed(p)) * 3)
              for n, p in (("a", 3), ("b", 5))}
    names = ["a", None, "b", "a"]
    lengths = [6, 3, 5, 1]
    ids = torch.randint(0, V, (4, 6))
    mask = torch.arange(6)[None, :] >= 6 - torch.tensor(lengths)[:, None]  # left padding, as generation's
    ids = ids.masked_fill(~mask, 0)
    # 6 + 14 tokens outgrow the block of 16: the last steps re-run a window, passing the prefix again.
    cached = generate(model, states, ids, names, mask, use_cache=True)
    uncached = generate(model, states, ids, names, mask, use_cache=False)
    assert torch.equal(cached, uncached)
    for row, (name, n) in enumerate(zip(names, lengths)):
        alone = generate(model, states, ids[row:row + 1, 6 - n:], [name], None, use_cache=True)
        assert torch.equal(alone[0], cached[row, 6 - n:]), row
    plain = model.generate(ids[:1], 14, temperature=0.0)
    assert not torch.equal(plain[0], cached[0])  # the prefix matters: the test could see a dropped one


def test_generate_text_gives_each_row_its_prefix(tiny_setup):
    bundle = minift.load_model(tiny_setup / "base")
    cfg = bundle.model.config
    bundle.prompts["x"] = KVPrefix(4, cfg.n_layer, cfg.n_embd, start=torch.randn(cfg.n_layer, 2, 4, cfg.n_embd) * 3)
    texts = ["the cat sees the", "the dog sees the"]
    mixed = evaluate.generate_text(bundle, texts, 8, prompt_names=["x", None])
    assert mixed == [evaluate.generate_text(bundle, [texts[0]], 8, ["x"])[0],
                     evaluate.generate_text(bundle, [texts[1]], 8, [None])[0]]
    assert mixed[0] != evaluate.generate_text(bundle, [texts[0]], 8, [None])[0]  # the prefix was used


# --- a prefix acts at every layer, a soft prompt at the input -------------------------------------------
def test_changing_any_one_layers_prefix_changes_the_output():
    model = tiny()
    g = torch.Generator().manual_seed(0)
    prefix = KVPrefix(3, L, C, start=torch.randn(L, 2, 3, C, generator=g))  # keys and values of a real scale
    ids = torch.randint(0, V, (1, 6))
    with torch.no_grad():
        before = forward_with_prompts(model, {"p": prefix}, ids, ["p"])
        for layer in range(L):
            for j in range(2):  # its keys, then its values
                changed = KVPrefix(3, L, C, start=prefix.weight.detach().clone())
                changed.weight[layer, j] += torch.randn(3, C, generator=g)
                after = forward_with_prompts(model, {"p": changed}, ids, ["p"])
                # The top layer's prefix as much as the bottom one's: every layer reads its own. (A
                # random tiny model's queries are small, so new keys move the output less than new
                # values do: 4e-3 against 7e-2 here, both far above rounding, ~1e-7.)
                assert (after - before).abs().max() > 1e-3, (layer, j)


def test_a_soft_prompt_is_the_prefix_the_frozen_model_computes_from_its_vectors():
    """What prompt tuning can reach is what its P input vectors make at each layer; a prefix sets
    every layer's keys and values freely. So a soft prompt equals the prefix of the keys and values
    the frozen model computes for its vectors (with the text at the positions after them)."""
    model = tiny()
    prompt = SoftPrompt(4, C, init="random", model=model, seed=3)
    ids = torch.randint(0, V, (1, 6))
    kv = model_keys_values(model, prompt.weight.detach())  # (L, 2, P, C)
    assert kv.shape == (L, 2, 4, C)
    as_prefix = KVPrefix(4, L, C, start=kv)
    with torch.no_grad():
        via_prompt = forward_with_prompts(model, {"s": prompt}, ids, ["s"])
        layers = [(k[None], v[None]) for k, v in as_prefix.layer_kv(NH)]
        via_prefix = model.forward_embeds(model.embed(ids), positions=torch.arange(4, 10), prefix_kv=layers)
    torch.testing.assert_close(via_prefix, via_prompt, atol=1e-5, rtol=1e-5)


def test_a_prefix_trains_n_layer_2_P_C_numbers_and_a_prompt_P_C(tiny_setup):
    from minift.schedule import make_stage
    from minift.tasks import load_examples
    from minift.trainer import RunLog

    examples = load_examples(data=tiny_setup / "pairs.jsonl")
    counts = {}
    for strategy, fields in (("prompt", {"prompt_tokens": 4, "prompts": ["x"]}),
                             ("prefix", {"prefix_tokens": 4, "prefixes": ["x"]})):
        bundle = minift.load_model(tiny_setup / "base")
        bundle.prompts["old"] = SoftPrompt(2, bundle.model.config.n_embd, init="random")  # earlier: rides along
        _, setup = finetune.setup_strategy(make_stage(strategy=strategy, **fields), bundle, examples,
                                           RunLog(None, quiet=True), 0)
        counts[strategy] = sum(p.numel() for g in setup.groups for p in g["params"])
        assert not any(p.requires_grad for p in bundle.model.parameters())  # the base is frozen in both
    cfg = bundle.model.config  # the tiny base: 2 layers, width 32
    assert counts == {"prompt": 4 * cfg.n_embd, "prefix": cfg.n_layer * 2 * 4 * cfg.n_embd}


def test_the_docstrings_arithmetic_for_the_shipped_base():
    base = minift.load_model("base").model.config
    assert (base.n_layer, base.n_embd) == (4, 128)
    assert KVPrefix(16, base.n_layer, base.n_embd).weight.numel() == 4 * 2 * 16 * 128 == 16_384
    assert SoftPrompt(16, base.n_embd, init="random").weight.numel() == 16 * 128 == 2_048


# --- the block budget -----------------------------------------------------------------------------------
def test_encoding_reserves_no_positions_for_a_prefix_and_P_for_a_soft_prompt(tiny_setup, monkeypatch):
    from minift.tasks import load_examples

    bundle = minift.load_model(tiny_setup / "base")
    cfg = bundle.model.config
    bundle.prompts = {"x": KVPrefix(5, cfg.n_layer, cfg.n_embd), "y": SoftPrompt(3, cfg.n_embd, init="random")}
    examples = load_examples(data=tiny_setup / "pairs.jsonl")[:4]
    limits = []
    real = finetune.encode_example

    def recording(tok, prompt, completion, block, **kw):
        limits.append(block)
        return real(tok, prompt, completion, block, **kw)

    monkeypatch.setattr(finetune, "encode_example", recording)
    monkeypatch.setattr(evaluate, "encode_example", recording)
    for names, room in ((["x"] * 4, cfg.block_size), (["y"] * 4, cfg.block_size - 3)):
        limits.clear()
        finetune.encode_stage_examples(bundle, examples, names)
        evaluate.teacher_forced_loss(bundle, examples, prompt_names=names)
        assert limits == [room] * 8, names


# --- a real stage -------------------------------------------------------------------------------------
RECIPE = """
name = "prefix"
[defaults]
strategy = "prefix"
prefix_tokens = 4
max_steps = 4
batch_size = 8
warmup_steps = 0
eval_every = 4
eval_examples = 4
restore_best = false

[[stages]]        # 0: one plain prefix per subset (x, y)
name = "plain"

[[stages]]        # 1: x again, through the MLP; y rides along, frozen
name = "mlp"
prefix_reparameterize = true
prefixes = ["x"]
lr = 0.01
"""


@pytest.fixture(scope="module")
def run(tiny_setup, tmp_path_factory):
    from minift.schedule import load_recipe

    folder = tmp_path_factory.mktemp("prefix")
    (folder / "r.toml").write_text(RECIPE)
    opts = finetune.RunOptions(out=str(folder / "run"), data=str(tiny_setup / "pairs.jsonl"),
                               base=str(tiny_setup / "base"), quiet=True, eval_limit=4)
    summary = finetune.run_recipe(load_recipe(folder / "r.toml"), opts)
    return summary, folder / "run"


def stage_seed(summary, index):
    """The seed finetune.run_stage gives stage ``index``'s setup (prefix i of a stage starts from it + i)."""
    return summary["seed"] * 1000 + index


def test_a_prefix_stage_leaves_the_base_bit_identical_and_trains_its_prefixes(run, tiny_setup):
    summary, out = run
    base = minift.load_model(tiny_setup / "base")
    cfg = base.model.config
    for i, name in enumerate(["plain", "mlp"]):
        stage = minift.load_model(out / "stages" / f"{i}-{name}")
        for key, value in base.model.state_dict().items():
            assert torch.equal(stage.model.state_dict()[key], value), (name, key)
    plain = minift.load_model(out / "stages" / "0-plain")
    assert sorted(plain.prompts) == ["x", "y"] and {p.kind for p in plain.prompts.values()} == {"layers"}
    assert summary["stages"][0]["trainable_params"] == 2 * cfg.n_layer * 2 * 4 * cfg.n_embd
    for i, name in enumerate(["x", "y"]):  # wanted_names sorts the subsets: x is prefix 0, y prefix 1
        start = start_prefix(base.model, 4, False, tokenizer=base.tokenizer, seed=stage_seed(summary, 0) + i)
        assert not torch.equal(plain.prompts[name].weight, start.weight), name  # it trained


def test_reparameterize_trains_the_mlp_and_the_stage_keeps_only_the_plain_prefix(run, tiny_setup):
    summary, out = run
    base = minift.load_model(tiny_setup / "base")
    cfg = base.model.config
    P, Cb, Lb = 4, cfg.n_embd, cfg.n_layer
    mlp_numbers = P * Cb + (Cb * HIDDEN + HIDDEN) + (HIDDEN * Lb * 2 * Cb + Lb * 2 * Cb)
    assert summary["stages"][1]["trainable_params"] == mlp_numbers  # E, Linear(C, 512), Linear(512, L·2·C)
    payload = torch.load(out / "stages" / "1-mlp" / "prompts" / "x.pt", weights_only=True)
    assert payload["format"] == FORMAT and payload["weight"].shape == (Lb, 2, P, Cb)
    assert not any(isinstance(v, dict) and v for k, v in payload.items() if k != "meta")  # no state dict of an MLP
    after = minift.load_model(out / "stages" / "1-mlp")
    start = start_prefix(base.model, P, True, tokenizer=base.tokenizer, seed=stage_seed(summary, 1))
    with torch.no_grad():
        assert not torch.equal(after.prompts["x"].weight, start.prefix())  # trained through the MLP
    y_before = minift.load_model(out / "stages" / "0-plain").prompts["y"].weight
    assert torch.equal(after.prompts["y"].weight, y_before)  # not this stage's: frozen
    final = minift.load_model(out)
    assert torch.equal(final.prompts["x"].weight, after.prompts["x"].weight)


def test_finish_drops_the_mlp_and_the_logits_stay_the_same(tiny_setup):
    from minift.schedule import make_stage
    from minift.tasks import load_examples
    from minift.trainer import RunLog

    bundle = minift.load_model(tiny_setup / "base")
    examples = load_examples(data=tiny_setup / "pairs.jsonl")
    stage = make_stage(strategy="prefix", prefix_tokens=4, prefix_reparameterize=True, prefixes=["x"])
    _, setup = finetune.setup_strategy(stage, bundle, examples, RunLog(None, quiet=True), 0)
    prefix = bundle.prompts["x"]
    assert prefix.reparameterized and prefix.weight is None
    ids = torch.randint(0, bundle.model.config.vocab_size, (2, 9))
    with torch.no_grad():
        before = forward_with_prompts(bundle.model, bundle.prompts, ids, ["x", "x"])
    STRATEGY.finish(stage, bundle, setup, None)
    cfg = bundle.model.config
    assert [(n, tuple(p.shape)) for n, p in prefix.named_parameters()] == [("weight", (cfg.n_layer, 2, 4, cfg.n_embd))]
    with torch.no_grad():
        after = forward_with_prompts(bundle.model, bundle.prompts, ids, ["x", "x"])
    torch.testing.assert_close(after, before, atol=1e-6, rtol=0)


# --- files ----------------------------------------------------------------------------------------------
def test_save_and_load_round_trip_and_dispatch_by_format(tmp_path):
    model = tiny()
    prefix = KVPrefix(3, L, C, seed=4)
    save_prefix(tmp_path / "p.pt", prefix, model, "news")
    loaded = load_prefix(tmp_path / "p.pt", model)
    assert torch.equal(loaded.weight, prefix.weight) and loaded.name == "news" and loaded.kind == "layers"
    save_prompt(tmp_path / "s.pt", SoftPrompt(2, C, init="random"), model, "style")
    assert isinstance(load_state(tmp_path / "p.pt", model), KVPrefix)
    assert isinstance(load_state(tmp_path / "s.pt", model), SoftPrompt)


def test_a_prefix_refuses_another_base_in_one_line_naming_the_file(tmp_path):
    save_prefix(tmp_path / "p.pt", KVPrefix(3, L, C), tiny(seed=0), "news")
    with pytest.raises(MiniftError) as err:
        load_prefix(tmp_path / "p.pt", tiny(seed=1))  # same shape, other weights
    message = str(err.value)
    assert "\n" not in message and str(tmp_path / "p.pt") in message and "trained on base" in message
    with pytest.raises(MiniftError, match="prefix is for 3 layers of width 16"):
        model = GPT(GPTConfig(vocab_size=V, block_size=BLOCK, n_layer=2, n_head=NH, n_embd=C))
        load_prefix(tmp_path / "p.pt", model)


# --- bad input ------------------------------------------------------------------------------------------
def test_bad_prefix_fields_are_one_line_errors_naming_the_field():
    from minift.schedule import check_against_model, make_stage, parse_recipe

    with pytest.raises(MiniftError, match=r"^<stage>: stages\[0\].prefix_tokens = 0: must be >= 1$"):
        make_stage(strategy="prefix", prefix_tokens=0)
    recipe = parse_recipe({"stages": [{"strategy": "prefix", "prefix_tokens": BLOCK}]}, "r.toml")
    with pytest.raises(MiniftError, match=r"^r.toml: stages\[0\].prefix_tokens = 16: a prefix must be shorter "
                                          r"than the block \(16\)"):
        check_against_model(recipe, tiny().config)
    check_against_model(parse_recipe({"stages": [{"strategy": "prefix", "prefix_tokens": BLOCK - 1}]}, "r.toml"),
                        tiny().config)  # one less fits
    with pytest.raises(MiniftError, match=r"stages\[0\].prefix_reparameterize = True: only a 'prefix' stage uses it "
                                          r"\(this stage is 'full'\)"):
        make_stage(strategy="full", prefix_reparameterize=True)


def test_the_cli_refuses_a_bad_prefix_field_with_exit_2_before_training(tmp_path, capsys, monkeypatch):
    from minift.cli import main

    def no_training(*args, **kwargs):  # reached only if the recipe got through
        raise AssertionError("training started")

    monkeypatch.setattr(finetune, "run_recipe", no_training)
    recipe = tmp_path / "bad.toml"
    recipe.write_text('[[stages]]\nstrategy = "prefix"\nprefix_tokens = 0\n')
    code = main(["finetune", "--recipe", str(recipe), "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err == f"minift: error: {recipe}: stages[0].prefix_tokens = 0: must be >= 1"
    assert not (tmp_path / "run").exists()
