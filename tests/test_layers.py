"""Tests for minift.freezing: what trains, what stays bit-identical, and where backward stops."""
import torch
import torch.nn.functional as F
import pytest

from minift.errors import MiniftError
from minift.strategies.layers import (GradualUnfreezer, count_parameters, describe, discriminative_lr_scales,
                             freeze_blocks, resolve_blocks, select_parameters, set_trainable,
                             trainable_names, untie_head)
from minift.model import GPT, GPTConfig
from minift.optim import AdamW, param_groups, set_lr
from minift.trainer import TrainConfig, train_stage

V, T, L, C = 50, 16, 4, 16
# One block by hand: ln_1, c_attn (C -> 3C), attn c_proj (C -> C), ln_2, c_fc (C -> 4C), mlp c_proj (4C -> C).
BLOCK = 2 * C + (C * 3 * C + 3 * C) + (C * C + C) + 2 * C + (C * 4 * C + 4 * C) + (4 * C * C + C)
TOTAL = V * C + T * C + L * BLOCK + 2 * C  # wte (= the tied head), wpe, blocks, ln_f


def tiny_gpt(seed=0, **overrides):
    torch.manual_seed(seed)
    return GPT(GPTConfig(**{**dict(vocab_size=V, block_size=T, n_layer=L, n_head=2, n_embd=C), **overrides}))


def random_batch(generator):
    x = torch.randint(0, V, (4, 12), generator=generator)
    return x, torch.randint(0, V, (4, 12), generator=generator)


def lm_loss(model, batch):
    x, y = batch
    return F.cross_entropy(model(x).view(-1, V), y.view(-1)), y.numel()


def train(model, steps=5, lr=1e-2, weight_decay=0.1):
    optimizer = AdamW(param_groups(model, weight_decay=weight_decay), lr=lr)
    g = torch.Generator().manual_seed(1)
    for _ in range(steps):
        lm_loss(model, random_batch(g))[0].backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return optimizer


def weights(model):
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def blocks_of(names):
    return sorted({int(n.split(".")[2]) for n in names if n.startswith("transformer.h.")})


def test_frozen_blocks_do_not_move():
    model = tiny_gpt()
    names = freeze_blocks(model, keep=[-1])
    before = weights(model)
    optimizer = train(model, steps=5, weight_decay=0.1)  # decay > 0: a frozen tensor must not even shrink
    in_optimizer = {id(p) for g in optimizer.param_groups for p in g["params"]}
    for name, p in model.named_parameters():
        if name in names:
            assert p.requires_grad and id(p) in in_optimizer
            assert not torch.equal(p, before[name]), name
        else:
            assert not p.requires_grad and id(p) not in in_optimizer
            assert torch.equal(p, before[name]), name
    assert blocks_of(names) == [3] and len(names) == 12


def block_outputs_require_grad(model):
    """Run forward + backward; return, per block, whether its output is part of the autograd graph."""
    seen = []
    hooks = [b.register_forward_hook(lambda m, i, out: seen.append(out.requires_grad))
             for b in model.transformer.h]
    lm_loss(model, random_batch(torch.Generator().manual_seed(0)))[0].backward()
    for h in hooks:
        h.remove()
    return seen


def test_backward_stops_below_the_lowest_trainable_block():
    model = tiny_gpt()
    freeze_blocks(model, keep=[-1])
    # Blocks 0..2 run outside the graph: no gradient is ever computed for their activations.
    assert block_outputs_require_grad(model) == [False, False, False, True]
    for name, p in model.named_parameters():
        assert (p.grad is not None) == name.startswith("transformer.h.3."), name


def test_training_the_tied_head_backpropagates_through_every_block():
    model = tiny_gpt()
    freeze_blocks(model, keep=[-1], parts=["head"])  # the tied head is wte, at the very bottom
    assert block_outputs_require_grad(model) == [True, True, True, True]
    assert model.transformer.h[0].attn.c_attn.weight.grad is None  # traversed, but still frozen
    untied = tiny_gpt()
    untie_head(untied)
    freeze_blocks(untied, keep=[], parts=["head"])  # a real linear probe: no block in the graph
    assert block_outputs_require_grad(untied) == [False] * L


def saved_tensor_count(model):
    """How many tensors autograd keeps for backward during one forward pass."""
    count = [0]

    def pack(t):
        count[0] += 1
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        lm_loss(model, random_batch(torch.Generator().manual_seed(0)))
    return count[0]


def test_each_frozen_block_saves_the_same_activations():
    model = tiny_gpt()
    counts = []
    for k in range(1, L + 1):
        set_trainable(model, select_parameters(model, top_k=k))
        counts.append(saved_tensor_count(model))
    steps = [b - a for a, b in zip(counts, counts[1:])]
    assert steps[0] > 0 and steps[1:] == [steps[0]] * (L - 2), counts


def test_select_parameters_by_blocks_top_k_and_parts():
    model = tiny_gpt()
    assert blocks_of(select_parameters(model, blocks=[-1, 0])) == [0, 3]
    assert len(select_parameters(model, blocks=[-1, 0, 3])) == 24  # duplicates counted once
    assert blocks_of(select_parameters(model, top_k=2)) == [2, 3]
    assert select_parameters(model, parts=["ln_f"]) == ["transformer.ln_f.weight", "transformer.ln_f.bias"]
    assert select_parameters(model, parts="ln_f") == ["transformer.ln_f.weight", "transformer.ln_f.bias"]
    assert select_parameters(model, parts=["embeddings"]) == ["transformer.wte.weight", "transformer.wpe.weight"]
    # Tied: the head IS the embedding, so "head" selects transformer.wte.weight.
    assert select_parameters(model, parts=["head"]) == ["transformer.wte.weight"]
    untie_head(model)
    assert select_parameters(model, parts=["head"]) == ["lm_head.weight"]
    assert resolve_blocks(model, [-1, 0, 3, -4]) == [0, 3]


def test_mistakes_name_the_field_and_what_is_allowed():
    model = tiny_gpt()
    with pytest.raises(MiniftError, match=r"^block index 7 is outside the model: it has 4 blocks "
                                          r"\(0\.\.3, or -4\.\.-1\)$"):
        select_parameters(model, blocks=[7])
    with pytest.raises(MiniftError, match=r"block index -5 is outside"):
        freeze_blocks(model, keep=[-5])
    with pytest.raises(MiniftError, match=r"^unknown part 'mlp': parts are embeddings, wte, wpe, ln_f, head$"):
        select_parameters(model, parts=["mlp"])
    with pytest.raises(MiniftError, match=r"top_k must be an integer 0\.\.4"):
        select_parameters(model, top_k=5)
    with pytest.raises(MiniftError, match=r"unknown parameter name 'transformer.h.9.ln_1.weight'"):
        set_trainable(model, ["transformer.h.9.ln_1.weight"])
    with pytest.raises(MiniftError, match=r"factor must be a finite number > 0, got 0"):
        discriminative_lr_scales(model, factor=0)
    with pytest.raises(MiniftError, match=r"every must be an integer >= 1"):
        GradualUnfreezer(model, every=0)
    with pytest.raises(MiniftError, match=r"start=0 with no parts"):
        GradualUnfreezer(model, every=2, start=0)


def test_count_parameters_matches_a_hand_count():
    model = tiny_gpt()
    assert BLOCK == 3280 and TOTAL == 14208
    assert count_parameters(model) == (TOTAL, TOTAL)  # tied head counted once
    freeze_blocks(model, keep=[-1], parts=["ln_f"])
    assert count_parameters(model) == (BLOCK + 2 * C, TOTAL)
    freeze_blocks(model, keep=[-1], parts=["ln_f", "head"])
    assert count_parameters(model) == (BLOCK + 2 * C + V * C, TOTAL)
    set_trainable(model, ["lm_head.weight"])  # the tied alias names the same tensor as wte
    assert trainable_names(model) == ["transformer.wte.weight"]
    untie_head(model)
    assert count_parameters(model) == (2 * V * C, TOTAL + V * C)  # the copy inherits "trainable"


def test_untie_head_lets_a_linear_probe_leave_the_embedding_alone():
    model = tiny_gpt()
    x = torch.randint(0, V, (2, 8), generator=torch.Generator().manual_seed(3))
    logits_tied = model(x).detach()
    untie_head(model)
    head, wte = model.lm_head.weight, model.transformer.wte.weight
    assert head is not wte and torch.equal(head, wte)
    assert model.config.tie_weights is False
    assert torch.equal(model(x), logits_tied)  # same function, now two matrices
    untie_head(model)
    assert model.lm_head.weight is head  # already untied: no-op
    assert freeze_blocks(model, keep=[], parts=["head"]) == ["lm_head.weight"]
    wte_before, head_before = wte.detach().clone(), head.detach().clone()
    train(model, steps=5, weight_decay=0.1)
    assert torch.equal(model.transformer.wte.weight, wte_before)
    assert (model.lm_head.weight - head_before).abs().max() > 1e-3


def test_discriminative_lr_scales_follow_ulmfit():
    model = tiny_gpt()
    everything = [n for n, _ in model.named_parameters()]
    scales = discriminative_lr_scales(model, factor=2.6, names=everything)
    assert scales["transformer.h.3.mlp.c_fc.weight"] == 1.0
    assert scales["transformer.h.2.attn.c_attn.bias"] == pytest.approx(1 / 2.6)  # 0.3846
    assert scales["transformer.h.1.ln_1.weight"] == pytest.approx(1 / 6.76)  # 0.1479
    assert scales["transformer.h.0.mlp.c_proj.weight"] == pytest.approx(1 / 17.576)  # 0.05690
    assert scales["transformer.wpe.weight"] == pytest.approx(1 / 45.6976)  # 0.02188
    assert scales["transformer.ln_f.weight"] == 1.0
    assert scales["transformer.wte.weight"] == 1.0  # tied: it is also the head, at the top
    untie_head(model)
    untied = discriminative_lr_scales(model, names=[n for n, _ in model.named_parameters()])
    assert untied["transformer.wte.weight"] == pytest.approx(1 / 45.6976)
    assert untied["lm_head.weight"] == 1.0
    freeze_blocks(model, keep=[0, -1])
    assert set(discriminative_lr_scales(model)) == set(trainable_names(model))  # default: trainable only

    model = tiny_gpt()
    scales = discriminative_lr_scales(model, names=everything)
    optimizer = AdamW(param_groups(model, weight_decay=0.1, lr_scales=scales), lr=1e-3)
    # 5 scales (1 for the top block, ln_f and tied wte; 4 below) x decay or not, but wpe has no bias.
    assert len(optimizer.param_groups) == 9
    set_lr(optimizer, 2e-3)
    for group in optimizer.param_groups:
        for name in group["names"]:
            assert group["lr"] == pytest.approx(2e-3 * scales[name]), name


def test_gradual_unfreezer_schedule():
    model = tiny_gpt()
    unfreezer = GradualUnfreezer(model, every=3, parts=["ln_f"])
    assert unfreezer.schedule() == [(0, 1), (3, 2), (6, 3), (9, 4)]
    expected = {0: [3], 2: [3], 3: [2, 3], 5: [2, 3], 6: [1, 2, 3], 8: [1, 2, 3], 9: [0, 1, 2, 3], 100: [0, 1, 2, 3]}
    for step, blocks in expected.items():
        unfreezer(step)
        assert blocks_of(trainable_names(model)) == blocks, step
        assert trainable_names(model) == unfreezer.current_names(step)
        assert "transformer.ln_f.weight" in trainable_names(model)  # parts train from step 0
    assert GradualUnfreezer(model, every=2, start=3).schedule() == [(0, 3), (2, 4)]


def test_gradual_unfreezer_blocks_move_only_after_their_turn():
    model = tiny_gpt()
    unfreezer = GradualUnfreezer(model, every=3)
    groups = unfreezer.param_groups(weight_decay=0.1)
    assert sorted(n for g in groups for n in g["names"]) == sorted(unfreezer.all_names())
    assert trainable_names(model) == unfreezer.current_names(0)  # back to step 0 after building groups
    initial = weights(model)
    at_step = {}

    def before_step(step):  # snapshot the weights as they are when step `step` begins
        at_step[step] = weights(model)
        unfreezer(step)

    config = TrainConfig(max_steps=12, lr=1e-2, warmup_steps=0, weight_decay=0.1,
                         eval_every=1000, log_every=1000)
    train_stage(model, AdamW(groups, lr=1e-2), random_batch, lm_loss, config, before_step=before_step)
    final = weights(model)
    for block, unfrozen_at in [(3, 0), (2, 3), (1, 6), (0, 9)]:
        name = f"transformer.h.{block}.mlp.c_fc.weight"
        assert torch.equal(at_step[unfrozen_at][name], initial[name]), block  # still untouched then
        assert not torch.equal(at_step[unfrozen_at + 1][name], initial[name]), block  # moves at once
        assert not torch.equal(final[name], initial[name])
    for name in ("transformer.wte.weight", "transformer.wpe.weight"):
        assert torch.equal(final[name], initial[name])  # never in the schedule: never moves


def test_describe_shows_what_trains_and_the_tie():
    model = tiny_gpt()
    freeze_blocks(model, keep=[-1], parts=["ln_f"])
    lines = describe(model).splitlines()
    row = {line[:18].strip(): line.split() for line in lines}
    assert row["block 3"][-3:] == ["trainable", "3,280", "3,280"]
    assert row["block 0"][-3:] == ["frozen", "0", "3,280"]
    assert row["wte = head (tied)"][-3:] == ["frozen", "0", "800"]
    assert row["all"][1:3] == ["3,312", "14,208"] and "(23.3%" in row["all"]
    assert any(line.startswith("note: the head is tied to the embedding") for line in lines)
    assert lines[-1] == "backward stops at block 3: blocks 0..2 run forward only"
    untie_head(model)
    freeze_blocks(model, keep=[], parts=["wpe"])
    text = describe(model)
    assert "tied" not in text and text.splitlines()[-1].startswith("backward goes down to the embeddings")


@pytest.mark.parametrize("keep, floor", [
    ([0, 3], "backward stops at block 0"),  # nothing below block 0: no "blocks 0..-1"
    ([1], "backward stops at block 1: block 0 runs forward only"),  # one block is not a range "0..0"
    ([2, 3], "backward stops at block 2: blocks 0..1 run forward only"),
    ([], "backward stops above the blocks: every block runs forward only"),
])
def test_describe_names_the_blocks_below_the_lowest_trainable_one(keep, floor):
    model = tiny_gpt()  # four blocks
    freeze_blocks(model, keep=keep, parts=["ln_f"])
    assert describe(model).splitlines()[-1] == floor
