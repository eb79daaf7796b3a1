"""Soft prompts on a frozen tiny GPT: what trains, mixed-prompt batches, generation, files."""
import math
from types import SimpleNamespace

import pytest
import torch

from minift.errors import MiniftError
from minift.model import GPT, GPTConfig
from minift.optim import AdamW, optimizer_state_bytes
from minift.strategies.prompt import (SoftPrompt, build_prefix, check_budget, forward_with_prompts,
                                  freeze_base, load_prompt, prompt_loss_fn, save_prompt)
from minift.tokenizer import Tokenizer
from minift.trainer import TrainConfig, train_stage

TEXT = "the cat sleeps. le chat dort. the dog runs. le chien court. " * 20


@pytest.fixture(scope="module")
def tok():
    return Tokenizer.train(TEXT, 256 + 30)  # 286 ordinary ids, then eot 286 and pad 287


def tiny(vocab_size=288, seed=0, **kw):
    torch.manual_seed(seed)
    cfg = dict(vocab_size=vocab_size, block_size=32, n_layer=2, n_head=2, n_embd=64)
    cfg.update(kw)
    return GPT(GPTConfig(**cfg)).eval()


def two_prompts(model):
    return {"a": SoftPrompt(3, 64, init="random", model=model, seed=1),
            "b": SoftPrompt(5, 64, init="random", model=model, seed=2)}


# --- initialisation -------------------------------------------------------------------------------
def test_vocab_init_draws_each_ordinary_token_once_and_never_a_special_one(tok):
    model = tiny()
    wte = model.transformer.wte.weight.detach()
    prompt = SoftPrompt(286, 64, init="vocab", model=model, tokenizer=tok, seed=3)
    # Which row of wte is each prompt vector? (random rows are all distinct)
    ids = torch.cdist(prompt.weight.detach(), wte).argmin(dim=1)
    torch.testing.assert_close(prompt.weight.detach(), wte[ids], atol=0, rtol=0)
    assert sorted(ids.tolist()) == list(range(286))  # all ordinary ids, no repeats, no eot (286) / pad (287)


def test_vocab_init_is_seeded():
    model = tiny()
    one = SoftPrompt(8, 64, model=model, seed=5).weight
    assert torch.equal(one, SoftPrompt(8, 64, model=model, seed=5).weight)
    assert not torch.equal(one, SoftPrompt(8, 64, model=model, seed=6).weight)


def test_text_init_repeats_the_embeddings_of_the_text_tokens(tok):
    model = tiny()
    ids = tok.encode("the cat")
    assert len(ids) == 2
    prompt = SoftPrompt(5, 64, init="text", model=model, tokenizer=tok, text="the cat")
    expected = model.transformer.wte.weight.detach()[[ids[0], ids[1], ids[0], ids[1], ids[0]]]
    torch.testing.assert_close(prompt.weight.detach(), expected, atol=0, rtol=0)
    cut = SoftPrompt(1, 64, init="text", model=model, tokenizer=tok, text="the cat")
    torch.testing.assert_close(cut.weight.detach(), expected[:1], atol=0, rtol=0)


def test_random_init_matches_the_scale_of_the_token_embeddings():
    model = tiny()
    std = float(model.transformer.wte.weight.detach().std())
    weight = SoftPrompt(64, 64, init="random", model=model).weight.detach()
    assert abs(float(weight.std()) - std) < 0.1 * std
    assert float(weight.abs().max()) <= math.sqrt(3) * std


@pytest.mark.parametrize("kwargs, words", [
    (dict(n_tokens=0, n_embd=64, init="random"), "n_tokens"),
    (dict(n_tokens=4, n_embd=64, init="zeros"), "vocab, text, random"),
    (dict(n_tokens=4, n_embd=64, init="vocab"), "needs model"),
    (dict(n_tokens=4, n_embd=64, init="text", text="hi"), "needs model and tokenizer"),
    (dict(n_tokens=4, n_embd=32, init="random", model="tiny"), "n_embd"),
])
def test_bad_prompt_settings_are_user_errors(kwargs, words):
    if kwargs.get("model") == "tiny":
        kwargs["model"] = tiny()
    with pytest.raises(MiniftError, match=words):
        SoftPrompt(**kwargs)


# --- training touches only the prompt ---------------------------------------------------------
def test_training_moves_only_the_prompt_and_adam_keeps_only_its_moments():
    model = tiny()
    freeze_base(model)
    assert sum(p.requires_grad for p in model.parameters()) == 0
    before = {k: v.clone() for k, v in model.state_dict().items()}
    prompt = SoftPrompt(8, 64, init="random", model=model)
    start = prompt.weight.detach().clone()
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 286, (4, 12), generator=g)
    targets = torch.roll(ids, -1, 1)
    targets[:, :4] = -100  # only the "completion" is graded
    batch = SimpleNamespace(input_ids=ids, targets=targets, attention_mask=torch.ones(4, 12, dtype=torch.bool),
                            prompt_names=["style"] * 4)
    loss_fn = prompt_loss_fn({"style": prompt})
    loss0, n = loss_fn(model, batch)
    assert n == 4 * 8
    optimizer = AdamW([prompt.weight], lr=0.1, weight_decay=0.0)
    train_stage(model, optimizer, lambda gen: batch, loss_fn,
                TrainConfig(max_steps=15, lr=0.1, warmup_steps=0, eval_every=100, log_every=100, weight_decay=0.0))
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key
    assert float((prompt.weight.detach() - start).abs().max()) > 0.05  # lr 0.1 moved it
    assert float(loss_fn(model, batch)[0].detach()) < float(loss0.detach()) - 0.03  # 5.684 -> 5.606 measured
    assert optimizer_state_bytes(optimizer) == 8 * 64 * 2 * 4  # m and v of P×C float32, nothing else


def test_a_batch_without_prompt_names_uses_the_only_prompt():
    model = tiny()
    prompt = SoftPrompt(4, 64, init="random", model=model)
    ids = torch.randint(0, 286, (2, 6))
    batch = {"input_ids": ids, "targets": ids, "attention_mask": None, "prompt_names": []}
    named = dict(batch, prompt_names=["p", "p"])
    unnamed_loss, named_loss = (prompt_loss_fn({"p": prompt})(model, b)[0].detach() for b in (batch, named))
    assert float(unnamed_loss) == float(named_loss)
    with pytest.raises(MiniftError, match="name one per row"):
        prompt_loss_fn({"p": prompt, "q": prompt})(model, batch)


# --- forward ----------------------------------------------------------------------------------
def test_forward_with_prompts_equals_concatenating_by_hand_and_dropping_the_prompt_positions():
    model = tiny()
    prompt = SoftPrompt(6, 64, init="random", model=model)
    ids = torch.randint(0, 286, (3, 10))
    with torch.no_grad():
        got = forward_with_prompts(model, {"p": prompt}, ids, ["p"] * 3)
        by_hand = model.forward_embeds(torch.cat([prompt(3), model.embed(ids)], 1))[:, 6:]
    assert got.shape == (3, 10, 288)
    torch.testing.assert_close(got, by_hand, atol=1e-6, rtol=0)


def test_each_row_of_a_mixed_batch_reads_as_it_would_alone():
    model = tiny()
    prompts = two_prompts(model)
    names = ["a", "b", None, "a"]
    lengths = [9, 5, 7, 3]
    ids = torch.randint(0, 286, (4, 9))
    mask = torch.arange(9)[None, :] < torch.tensor(lengths)[:, None]  # right padding
    ids = ids.masked_fill(~mask, 287)
    with torch.no_grad():
        mixed = forward_with_prompts(model, prompts, ids, names, mask)
        for row, (name, n) in enumerate(zip(names, lengths)):
            alone = forward_with_prompts(model, prompts, ids[row:row + 1, :n], [name])[0]
            torch.testing.assert_close(mixed[row, :n], alone, atol=1e-5, rtol=0)
        torch.testing.assert_close(mixed[2, :7], model(ids[2:3, :7])[0], atol=1e-5, rtol=0)


def test_gradients_reach_only_the_prompt_a_row_uses():
    model = tiny()
    freeze_base(model)
    prompts = two_prompts(model)
    logits = forward_with_prompts(model, prompts, torch.randint(0, 286, (3, 6)), ["a", "b", None])
    logits[1].sum().backward()  # only row 1, which uses "b"
    assert torch.count_nonzero(prompts["a"].weight.grad) == 0
    assert torch.count_nonzero(prompts["b"].weight.grad) == 5 * 64


def test_build_prefix_right_aligns_each_prompt_and_masks_the_rest():
    model = tiny()
    prompts = two_prompts(model)
    prefix, mask = build_prefix(prompts, ["a", None, "b"])
    assert prefix.shape == (3, 5, 64)
    assert mask.tolist() == [[False, False, True, True, True], [False] * 5, [True] * 5]
    torch.testing.assert_close(prefix[0, 2:], prompts["a"].weight.detach(), atol=0, rtol=0)
    assert torch.count_nonzero(prefix[0, :2]) == 0 and torch.count_nonzero(prefix[1]) == 0
    same, same_mask = build_prefix(prompts, ["b", "b"])
    assert same.shape == (2, 5, 64) and same_mask is None
    assert build_prefix(prompts, [None, None]) == (None, None)
    with pytest.raises(MiniftError, match="'c'; known prompts: a, b"):
        build_prefix(prompts, ["a", "c"])


# --- generation ---------------------------------------------------------------------------------
def test_generation_with_a_prompt_is_the_same_with_and_without_the_cache():
    model = tiny()
    prompt = SoftPrompt(6, 64, init="random", model=model)
    ids = torch.randint(0, 286, (2, 5))
    prefix, mask = build_prefix({"p": prompt}, ["p", "p"])
    cached = model.generate(ids, 12, temperature=0.0, use_cache=True, prefix_embeds=prefix, prefix_mask=mask)
    plain = model.generate(ids, 12, temperature=0.0, use_cache=False, prefix_embeds=prefix, prefix_mask=mask)
    assert cached.shape == (2, 17)
    assert torch.equal(cached, plain)
    no_prompt = model.generate(ids, 12, temperature=0.0)
    assert not torch.equal(cached, no_prompt)  # the prompt does change what is written


@pytest.mark.parametrize("use_cache", [True, False])
def test_a_mixed_prompt_batch_generates_per_row_what_each_row_generates_alone(use_cache):
    model = tiny()
    prompts = two_prompts(model)
    names, lengths = ["b", None, "a"], [4, 6, 2]
    raw = torch.randint(0, 286, (3, 6))
    attention = torch.arange(6)[None, :] >= 6 - torch.tensor(lengths)[:, None]  # left padding
    ids = raw.masked_fill(~attention, 287)
    prefix, mask = build_prefix(prompts, names)
    out = model.generate(ids, 10, temperature=0.0, use_cache=use_cache, prefix_embeds=prefix,
                         attention_mask=attention, prefix_mask=mask)
    for row, (name, n) in enumerate(zip(names, lengths)):
        alone_prefix, _ = build_prefix(prompts, [name])
        alone = model.generate(ids[row:row + 1, 6 - n:], 10, temperature=0.0, use_cache=use_cache,
                               prefix_embeds=alone_prefix)
        assert out[row, 6:].tolist() == alone[0, n:].tolist(), (row, name)


# --- the block budget -------------------------------------------------------------------------
def test_the_prompt_takes_its_positions_out_of_the_block():
    model = tiny()  # block_size 32
    assert check_budget(model, 8) == 24
    assert check_budget(model, 31) == 1
    with pytest.raises(MiniftError, match="a prompt of 32 vectors leaves no room in block_size 32"):
        check_budget(model, 32)
    prompt = SoftPrompt(8, 64, init="random", model=model)
    forward_with_prompts(model, {"p": prompt}, torch.zeros(1, 24, dtype=torch.long), ["p"])  # 8 + 24 fits
    with pytest.raises(ValueError, match="beyond block_size"):
        forward_with_prompts(model, {"p": prompt}, torch.zeros(1, 25, dtype=torch.long), ["p"])


def test_a_mixed_batch_only_needs_each_row_to_fit_the_block():
    model = tiny()  # block_size 32
    prompts = two_prompts(model)  # a: 3 vectors, b: 5
    ids = torch.randint(0, 286, (2, 29))
    mask = torch.ones(2, 29, dtype=torch.bool)
    mask[1, 27:] = False  # row "b" has 27 tokens: 5 + 27 = 32 fits, though Pmax + T = 34 does not
    with torch.no_grad():
        mixed = forward_with_prompts(model, prompts, ids, ["a", "b"], mask)
        alone = forward_with_prompts(model, prompts, ids[1:, :27], ["b"])
    torch.testing.assert_close(mixed[1, :27], alone[0], atol=1e-5, rtol=0)


# --- files --------------------------------------------------------------------------------------
def test_save_and_load_round_trip_in_a_few_kilobytes(tmp_path):
    model = tiny()
    prompt = SoftPrompt(8, 64, init="vocab", model=model)
    path = tmp_path / "prompts" / "formal.pt"
    save_prompt(path, prompt, model, "formal", meta={"steps": 15})
    size = path.stat().st_size
    assert size < 16 * 1024  # 8×64 float32 = 2048 bytes of numbers plus the zip wrapping
    loaded = load_prompt(path, model)
    assert torch.equal(loaded.weight, prompt.weight)
    assert (loaded.n_tokens, loaded.n_embd, loaded.init, loaded.name, loaded.meta) == (8, 64, "vocab", "formal",
                                                                                      {"steps": 15})
    assert list(tmp_path.joinpath("prompts").iterdir()) == [path]  # no temp file left behind


def test_a_prompt_refuses_another_base_model(tmp_path):
    model, other = tiny(seed=0), tiny(seed=1)
    path = tmp_path / "p.pt"
    save_prompt(path, SoftPrompt(4, 64, init="random", model=model), model, "p")
    with pytest.raises(MiniftError, match=r"p\.pt: this soft prompt was trained on base [0-9a-f]{16}, not on this model"):
        load_prompt(path, other)
    with pytest.raises(MiniftError, match="width 64, this model has n_embd 32"):
        load_prompt(path, tiny(n_embd=32))


def test_broken_prompt_files_are_named(tmp_path):
    model = tiny()
    path = tmp_path / "p.pt"
    save_prompt(path, SoftPrompt(4, 64, init="random", model=model), model, "p")
    path.write_bytes(path.read_bytes()[:200])  # truncated mid-write by something else
    with pytest.raises(MiniftError, match=r"p\.pt: not a readable soft prompt file"):
        load_prompt(path, model)
    other = tmp_path / "other.pt"
    torch.save({"format": "minift-checkpoint"}, other)
    with pytest.raises(MiniftError, match=r"other\.pt: not a soft prompt file"):
        load_prompt(other, model)
    with pytest.raises(MiniftError, match=r"missing\.pt: no such soft prompt file"):
        load_prompt(tmp_path / "missing.pt", model)
