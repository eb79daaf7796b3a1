"""Tests for minift.optim: AdamW and SGD against PyTorch's, L2 versus decoupled decay, L1, schedules, clipping.

SGD is held to torch.optim.SGD over 30 steps for each combination of momentum, dampening, coupled
weight decay and Nesterov, with groups of their own rates, and through set_lr with lr_scale; its
first steps are also worked by hand. l1_penalty is checked by value and by gradient (sign(w), 0 at 0).
"""
import copy
import io
import math

import pytest
import torch
from torch import nn

from minift.errors import MiniftError
from minift.optim import (SGD, AdamW, clip_grad_norm, decayed, l1_penalty, l2_penalty, lr_at,
                          optimizer_state_bytes, param_groups, set_lr)


def make_mlp_params(dtype, seed=0):
    """A two-layer MLP as bare tensors, plus one parameter the loss never touches (grad stays None)."""
    g = torch.Generator().manual_seed(seed)
    shapes = {"w1": (8, 16), "b1": (16,), "w2": (16, 4), "b2": (4,), "unused": (3, 3)}
    return {name: (torch.randn(*shape, generator=g, dtype=dtype) * 0.5).requires_grad_()
            for name, shape in shapes.items()}


def mlp_loss(p, dtype):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(32, 8, generator=g, dtype=dtype)
    y = torch.randn(32, 4, generator=g, dtype=dtype)
    return ((torch.tanh(x @ p["w1"] + p["b1"]) @ p["w2"] + p["b2"] - y) ** 2).mean()


def two_groups(p):
    # Matrices decay and learn fast; biases do not decay and learn slower.
    return [{"params": [p["w1"], p["w2"], p["unused"]], "lr": 1e-2, "weight_decay": 0.1},
            {"params": [p["b1"], p["b2"]], "lr": 3e-3, "weight_decay": 0.0}]


def train(optimizer_factory, dtype, steps, l2=0.0, seed=0):
    p = make_mlp_params(dtype, seed)
    opt = optimizer_factory(p)
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        loss = mlp_loss(p, dtype)
        if l2:  # "unused" is left out: torch.optim.Adam never decays a parameter without a gradient
            loss = loss + l2_penalty([t for k, t in p.items() if k != "unused"], l2)
        loss.backward()
        opt.step()
    return p, opt


TOLERANCE = {torch.float32: 1e-6, torch.float64: 1e-12}  # float64 agrees to ~1e-16; tighter catches more


def relative_error(ours: dict, reference: dict) -> float:
    """Largest, over parameters, of ||ours - ref|| / ||ref||."""
    return max(((ours[k] - reference[k]).norm() / reference[k].norm()).item() for k in reference)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("foreach", [False, True])
def test_adamw_matches_torch_adamw_after_100_steps(dtype, foreach):
    ours, _ = train(lambda p: AdamW(two_groups(p), foreach=foreach), dtype, 100)
    ref, _ = train(lambda p: torch.optim.AdamW(two_groups(p), foreach=foreach), dtype, 100)
    assert relative_error(ours, ref) <= TOLERANCE[dtype]
    # The weights really moved (by far more than the tolerance), so the comparison means something.
    start = make_mlp_params(dtype)
    assert relative_error(start, ref) > 1e-2


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_foreach_path_equals_loop_path(dtype):
    loop, _ = train(lambda p: AdamW(two_groups(p), foreach=False), dtype, 100)
    fast, _ = train(lambda p: AdamW(two_groups(p), foreach=True), dtype, 100)
    assert relative_error(fast, loop) <= TOLERANCE[dtype]  # bit-identical on CPU today


def test_compiled_path_equals_torch_adamw_and_compiles_once_while_the_rate_changes():
    """--compile's fused update: same numbers, and a changing rate must not trigger a recompile."""
    import torch._dynamo

    def decaying(opt):  # the rate changes every step, as under a schedule
        step = opt.step

        def step_and_decay():
            step()
            for g in opt.param_groups:
                g["lr"] *= 0.97
        opt.step = step_and_decay
        return opt

    torch._dynamo.reset()
    with torch._dynamo.config.patch(error_on_recompile=True):
        fused, opt = train(lambda p: decaying(AdamW(two_groups(p), compile=True)), torch.float32, 30)
    ref, _ = train(lambda p: decaying(torch.optim.AdamW(two_groups(p), foreach=False)), torch.float32, 30)
    assert relative_error(fused, ref) <= 1e-6
    assert relative_error(make_mlp_params(torch.float32), ref) > 1e-2  # the weights did move
    assert p_untouched(fused) and fused["unused"] not in opt.state


def p_untouched(p) -> bool:
    return torch.equal(p["unused"], make_mlp_params(torch.float32)["unused"])


def test_params_without_grad_are_not_touched_and_get_no_state():
    p, opt = train(lambda p: AdamW(two_groups(p)), torch.float32, 3)
    assert torch.equal(p["unused"], make_mlp_params(torch.float32)["unused"])  # not even decayed
    assert p["unused"] not in opt.state


def test_first_step_hand_worked():
    # p = 1, g = 0.5, lr = 0.1, wd = 0.1:  p -> 1 * (1 - 0.01) = 0.99;  m_hat = 0.5, v_hat = 0.25,
    # so the Adam step is lr * 0.5 / (0.5 + eps) = 0.1 (minus a hair for eps):  p -> 0.89.
    p = torch.tensor([1.0], dtype=torch.float64, requires_grad=True)
    p.grad = torch.tensor([0.5], dtype=torch.float64)
    AdamW([p], lr=0.1, weight_decay=0.1, eps=1e-8).step()
    assert p.item() == pytest.approx(0.99 - 0.1 * 0.5 / (0.5 + 1e-8), abs=1e-15)
    assert p.item() == pytest.approx(0.89, abs=1e-8)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_adamw_without_decay_plus_l2_penalty_equals_torch_adam_weight_decay(dtype):
    w = 0.05
    ours, _ = train(lambda p: AdamW(list(p.values()), lr=1e-2, weight_decay=0.0), dtype, 100, l2=w)
    ref, _ = train(lambda p: torch.optim.Adam(list(p.values()), lr=1e-2, weight_decay=w, foreach=False), dtype, 100)
    assert relative_error(ours, ref) <= TOLERANCE[dtype]


def test_decoupled_decay_differs_from_adam_plus_l2():
    # Same strength (lr * wd per step in both cases for SGD), yet different weights under Adam,
    # because the L2 pull is divided by sqrt(v_hat) per weight and the decoupled one is not.
    w = 0.05
    decoupled, _ = train(lambda p: AdamW(list(p.values()), lr=1e-2, weight_decay=w), torch.float64, 100)
    coupled, _ = train(lambda p: torch.optim.Adam(list(p.values()), lr=1e-2, weight_decay=w), torch.float64, 100)
    assert relative_error(decoupled, coupled) > 1e-3


def test_l2_penalty_value_counts_trainable_and_tied_params_once():
    a = torch.tensor([1.0, 2.0], requires_grad=True)   # ||a||^2 = 5
    b = torch.tensor([[3.0]], requires_grad=True)      # ||b||^2 = 9
    frozen = torch.tensor([10.0])
    assert l2_penalty([a, b, a, frozen], 0.2).item() == pytest.approx(0.5 * 0.2 * 14)


def assert_round_trip_continues_exactly(factory):
    """20 steps at once = 10 steps, torch.save/load of weights and optimizer state, 10 more (bit for bit)."""
    straight, _ = train(factory, torch.float32, 20)
    first, opt = train(factory, torch.float32, 10)
    buffer = io.BytesIO()  # through torch.save/load as a checkpoint would, weights_only included
    torch.save({"params": {k: v.detach() for k, v in first.items()}, "optim": opt.state_dict()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)
    resumed = {k: v.clone().requires_grad_() for k, v in saved["params"].items()}
    opt = factory(resumed)
    opt.load_state_dict(saved["optim"])  # the moments / momentum buffers come back, or step 11 would differ
    for _ in range(10):
        opt.zero_grad(set_to_none=True)
        mlp_loss(resumed, torch.float32).backward()
        opt.step()
    for k in straight:
        assert torch.equal(resumed[k], straight[k]), k


@pytest.mark.parametrize("foreach", [False, True])
def test_state_dict_round_trip_continues_exactly(foreach):
    assert_round_trip_continues_exactly(lambda p: AdamW(two_groups(p), foreach=foreach))


@pytest.mark.parametrize("fraction", [0.1, 0.9, 1.1, 100.0])
def test_clip_grad_norm_matches_torch(fraction):
    # max_norm is set relative to the true norm, so both sides of the cap (and near it) are covered.
    torch.manual_seed(0)
    ours = [torch.randn(5, 3, requires_grad=True), torch.randn(7, requires_grad=True),
            torch.randn(2, requires_grad=True)]
    ref = [t.detach().clone().requires_grad_() for t in ours]
    for t, r in zip(ours, ref):
        t.grad = torch.randn_like(t) * 2
        r.grad = t.grad.clone()
    ours[2].grad = ref[2].grad = None  # missing gradients are skipped
    before = [t.grad.clone() for t in ours[:2]]
    true_norm = math.sqrt(sum((g.double() ** 2).sum().item() for g in before))
    max_norm = fraction * true_norm

    norm = clip_grad_norm(ours, max_norm)
    ref_norm = torch.nn.utils.clip_grad_norm_(ref, max_norm)

    assert norm == pytest.approx(ref_norm.item(), rel=1e-6)
    assert norm == pytest.approx(true_norm, rel=1e-6)  # the value before clipping
    for t, r in zip(ours[:2], ref[:2]):
        torch.testing.assert_close(t.grad, r.grad, rtol=1e-6, atol=0)
    norm_after = math.sqrt(sum((t.grad.double() ** 2).sum().item() for t in ours[:2]))
    if fraction < 1:
        assert norm_after == pytest.approx(max_norm, rel=1e-5)
    else:
        assert all(torch.equal(t.grad, b) for t, b in zip(ours[:2], before))  # below the cap: untouched


def test_lr_at_worked_values():
    kw = dict(max_lr=1e-3, warmup_steps=10, total_steps=110, min_lr_ratio=0.1)
    assert lr_at(0, **kw) == pytest.approx(1e-4)     # first warmup step: max_lr / warmup_steps
    assert lr_at(4, **kw) == pytest.approx(5e-4)
    assert lr_at(9, **kw) == pytest.approx(1e-3)     # warmup ends at the peak
    assert lr_at(10, **kw) == pytest.approx(1e-3)    # cosine starts at the peak
    assert lr_at(60, **kw) == pytest.approx(5.5e-4)  # cosine midpoint: mean of max and min
    assert lr_at(35, **kw) == pytest.approx(1e-4 + 0.5 * 9e-4 * (1 + math.cos(math.pi / 4)))
    assert lr_at(110, **kw) == pytest.approx(1e-4)   # end of decay
    assert lr_at(500, **kw) == pytest.approx(1e-4)   # flat after
    assert lr_at(0, 1e-3, 0, 100, 0.0) == pytest.approx(1e-3)  # no warmup: start at the peak


def test_lr_at_decreases_monotonically_after_warmup():
    rates = [lr_at(s, 1.0, 5, 50) for s in range(5, 60)]
    assert all(a >= b for a, b in zip(rates, rates[1:]))
    assert rates[0] > rates[-1]


class TinyLM(nn.Module):
    def __init__(self):
        super().__init__()
        self.wte = nn.Embedding(10, 4)
        self.ln = nn.LayerNorm(4)
        self.proj = nn.Linear(4, 4)
        self.frozen = nn.Linear(4, 4)
        self.head = nn.Linear(4, 10, bias=False)
        self.head.weight = self.wte.weight  # tied, as in GPT-2
        for p in self.frozen.parameters():
            p.requires_grad_(False)


def test_param_groups_split_decay_skip_frozen_and_count_tied_once():
    groups = param_groups(TinyLM(), weight_decay=0.1, lr=1e-3)
    by_decay = {g["weight_decay"]: g for g in groups}
    assert sorted(by_decay) == [0.0, 0.1]
    assert by_decay[0.1]["names"] == ["wte.weight", "proj.weight"]
    assert by_decay[0.0]["names"] == ["ln.weight", "ln.bias", "proj.bias"]
    assert all(g["lr"] == 1e-3 and g["lr_scale"] == 1.0 for g in groups)
    assert sum(p.numel() for g in groups for p in g["params"]) == 40 + 4 + 4 + 16 + 4


def test_param_groups_accept_named_params_and_deduplicate():
    model = TinyLM()
    named = list(model.named_parameters(remove_duplicate=False))  # head.weight appears too
    groups = param_groups(named, weight_decay=0.1)
    names = [n for g in groups for n in g["names"]]
    assert names.count("wte.weight") + names.count("head.weight") == 1
    assert not any(n.startswith("frozen") for n in names)


def test_lr_scales_make_separate_groups_and_set_lr_applies_them():
    model = TinyLM()
    scales = {"wte.weight": 1 / 2.6 ** 2, "proj.weight": 1 / 2.6}
    groups = param_groups(model, weight_decay=0.1, lr=1e-3, lr_scales=scales)
    assert len(groups) == 3  # wte, proj.weight, and the unscaled no-decay group
    by_name = {g["names"][0]: g for g in groups}
    assert by_name["wte.weight"]["lr"] == pytest.approx(1e-3 / 2.6 ** 2)
    assert by_name["proj.weight"]["lr_scale"] == pytest.approx(1 / 2.6)

    opt = AdamW(groups, lr=5.0)  # the groups' own rates win over the default
    assert sorted(g["lr"] for g in opt.param_groups) == pytest.approx(sorted([1e-3 / 2.6 ** 2, 1e-3 / 2.6, 1e-3]))
    set_lr(opt, 2e-4)
    assert sorted(g["lr"] for g in opt.param_groups) == pytest.approx(sorted([2e-4 / 2.6 ** 2, 2e-4 / 2.6, 2e-4]))

    # Without lr in param_groups, AdamW applies the scales to its own lr.
    opt = AdamW(param_groups(model, 0.1, lr_scales=scales), lr=1e-2)
    assert sorted(g["lr"] for g in opt.param_groups) == pytest.approx(sorted([1e-2 / 2.6 ** 2, 1e-2 / 2.6, 1e-2]))


def test_adamw_tolerates_names_key_through_step_and_state_dict():
    model = TinyLM()
    opt = AdamW(param_groups(model, 0.1, lr=1e-3))
    model.head(model.proj(model.ln(model.wte(torch.tensor([1, 2, 3]))))).sum().backward()
    opt.step()
    fresh = AdamW(param_groups(model, 0.1, lr=1e-3))
    fresh.load_state_dict(copy.deepcopy(opt.state_dict()))
    assert fresh.param_groups[0]["names"] == ["wte.weight", "proj.weight"]
    assert optimizer_state_bytes(fresh) == optimizer_state_bytes(opt) > 0


def test_param_groups_errors():
    model = TinyLM()
    for p in model.parameters():
        p.requires_grad_(False)
    with pytest.raises(MiniftError, match="no trainable parameters"):
        param_groups(model, 0.1)
    with pytest.raises(MiniftError, match="unknown parameters"):
        param_groups(TinyLM(), 0.1, lr_scales={"wte.wieght": 0.5})
    with pytest.raises(MiniftError, match="lr_scales"):
        param_groups(TinyLM(), 0.1, lr_scales={"wte.weight": 0.0})


@pytest.mark.parametrize("kwargs, field", [
    (dict(lr=0.0), "lr"), (dict(lr=-1e-3), "lr"), (dict(lr=float("nan")), "lr"),
    (dict(betas=(1.0, 0.999)), "betas"), (dict(betas=(0.9, -0.1)), "betas"), (dict(betas=(0.9,)), "betas"),
    (dict(eps=-1e-8), "eps"), (dict(weight_decay=-0.1), "weight_decay"), (dict(foreach="yes"), "foreach"),
])
def test_bad_adamw_hyperparameters_raise(kwargs, field):
    with pytest.raises(MiniftError, match=field):
        AdamW([torch.zeros(2, requires_grad=True)], **kwargs)


def test_bad_group_and_helper_arguments_raise():
    p = torch.zeros(2, requires_grad=True)
    with pytest.raises(MiniftError, match="param group 0: lr"):
        AdamW([{"params": [p], "lr": -1.0}])
    opt = AdamW([p])
    with pytest.raises(MiniftError, match="param group 1: weight_decay"):
        opt.add_param_group({"params": [torch.zeros(1, requires_grad=True)], "weight_decay": -1.0})
    assert len(opt.param_groups) == 1  # the rejected group was not kept
    with pytest.raises(MiniftError, match="no parameters"):
        AdamW([])
    with pytest.raises(MiniftError, match="max_norm"):
        clip_grad_norm([p], 0.0)
    with pytest.raises(MiniftError, match="warmup_steps"):
        lr_at(0, 1e-3, warmup_steps=20, total_steps=10)
    with pytest.raises(MiniftError, match="step"):
        lr_at(-1, 1e-3, 0, 10)
    with pytest.raises(MiniftError, match="min_lr_ratio"):
        lr_at(0, 1e-3, 0, 10, min_lr_ratio=1.5)
    with pytest.raises(MiniftError, match="weight"):
        l2_penalty([p], -0.1)
    with pytest.raises(MiniftError, match="set_lr: lr"):
        set_lr(AdamW([p]), -1.0)


def test_optimizer_state_bytes_is_two_float32_copies_of_the_trained_params():
    p, opt = train(lambda p: AdamW(two_groups(p)), torch.float32, 1)
    n_trained = sum(t.numel() for k, t in p.items() if k != "unused")  # "unused" has no grad, no state
    assert optimizer_state_bytes(opt) == 2 * 4 * n_trained  # step counts are Python ints: no bytes
    _, ref_opt = train(lambda p: torch.optim.AdamW(two_groups(p)), torch.float32, 1)
    # torch keeps its step as a float32 scalar tensor per parameter: 4 bytes each more.
    assert optimizer_state_bytes(ref_opt) == 2 * 4 * n_trained + 4 * 4


# --- SGD ------------------------------------------------------------------------------------------

def sgd_groups(p, **hyper):
    # Matrices decay (coupled, under SGD) and learn fast; biases do not decay and learn slower.
    # The biases' group also overrides the momentum when one is asked for, so a group's own value is used.
    second = {"params": [p["b1"], p["b2"]], "lr": 0.02, "weight_decay": 0.0}
    if hyper.get("momentum") and not hyper.get("nesterov"):
        second["momentum"] = 0.5
    return [{"params": [p["w1"], p["w2"], p["unused"]], "lr": 0.05, "weight_decay": hyper.pop("weight_decay", 0.0)},
            second]


SGD_SETTINGS = [
    dict(),                                                  # plain gradient descent
    dict(weight_decay=0.1),                                  # coupled decay only
    dict(momentum=0.9),                                      # heavy ball
    dict(momentum=0.9, dampening=0.3),                       # damped: (1 - dampening) of each new gradient
    dict(momentum=0.9, weight_decay=0.1),                    # decay goes through the buffer
    dict(momentum=0.9, nesterov=True),                       # look-ahead
    dict(momentum=0.8, nesterov=True, weight_decay=0.05),
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("hyper", SGD_SETTINGS, ids=lambda h: ",".join(f"{k}={v}" for k, v in h.items()) or "plain")
def test_sgd_matches_torch_sgd_after_30_steps(dtype, hyper):
    def build(cls):
        def factory(p):
            kw = dict(hyper)
            groups = sgd_groups(p, **kw)
            kw.pop("weight_decay", None)
            return cls(groups, lr=0.01, **kw)
        return factory

    ours, opt = train(build(SGD), dtype, 30)
    ref, _ = train(build(torch.optim.SGD), dtype, 30)
    assert relative_error(ours, ref) <= TOLERANCE[dtype]
    assert relative_error(make_mlp_params(dtype), ref) > 1e-2  # the weights moved: the comparison means something
    assert torch.equal(ours["unused"], make_mlp_params(dtype)["unused"]) and ours["unused"] not in opt.state


def test_sgd_first_steps_hand_worked():
    # lr 0.1, momentum 0.9, dampening 0.5, wd 0.1, gradient 0.5 every step, p = 1:
    # step 1: g = 0.5 + 0.1 * 1 = 0.6; the buffer starts as g itself (no dampening): b = 0.6; p = 1 - 0.06 = 0.94.
    # step 2: g = 0.5 + 0.1 * 0.94 = 0.594; b = 0.9 * 0.6 + 0.5 * 0.594 = 0.837; p = 0.94 - 0.0837 = 0.8563.
    p = torch.tensor([1.0], dtype=torch.float64, requires_grad=True)
    opt = SGD([p], lr=0.1, momentum=0.9, dampening=0.5, weight_decay=0.1)
    seen = []
    for _ in range(2):
        p.grad = torch.tensor([0.5], dtype=torch.float64)
        opt.step()
        seen.append((p.item(), opt.state[p]["momentum_buffer"].item()))
    assert seen == [pytest.approx((0.94, 0.6), abs=1e-15), pytest.approx((0.8563, 0.837), abs=1e-15)]
    assert p.grad.item() == 0.5  # the decay term is added to a copy, never into p.grad

    # Nesterov, lr 0.1, momentum 0.9, no decay, gradient 0.5:
    # step 1: b = 0.5, step along g + 0.9 b = 0.95: p = 1 - 0.095 = 0.905.
    # step 2: b = 0.9 * 0.5 + 0.5 = 0.95, step along 0.5 + 0.9 * 0.95 = 1.355: p = 0.905 - 0.1355 = 0.7695.
    p = torch.tensor([1.0], dtype=torch.float64, requires_grad=True)
    opt = SGD([p], lr=0.1, momentum=0.9, nesterov=True)
    for want in (0.905, 0.7695):
        p.grad = torch.tensor([0.5], dtype=torch.float64)
        opt.step()
        assert p.item() == pytest.approx(want, abs=1e-15)


def test_sgd_follows_set_lr_times_each_groups_lr_scale_like_torch_with_explicit_rates():
    """The schedule sets every group to lr * lr_scale; torch's SGD, given those rates by hand, agrees."""
    def model_and_groups():
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 4))
        scales = {"0.weight": 1 / 2.6, "0.bias": 1 / 2.6}  # the lower layer learns at rate / 2.6
        return model, param_groups(model, weight_decay=0.1, lr_scales=scales)

    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(32, 8, generator=g), torch.randn(32, 4, generator=g)
    rates = [lr_at(step, 0.1, 5, 30) for step in range(30)]

    ours_model, groups = model_and_groups()
    ours = SGD(groups, lr=1.0, momentum=0.9)  # no lr in the groups: each starts at 1.0 * lr_scale
    assert sorted(g["lr"] for g in ours.param_groups) == pytest.approx([1 / 2.6, 1 / 2.6, 1.0, 1.0])
    ref_model, ref_groups = model_and_groups()
    scales = [grp.pop("lr_scale") for grp in ref_groups]  # torch knows nothing of lr_scale
    for grp in ref_groups:
        del grp["names"]
    ref = torch.optim.SGD(ref_groups, lr=1.0, momentum=0.9)
    for lr in rates:
        set_lr(ours, lr)
        for grp, scale in zip(ref.param_groups, scales):
            grp["lr"] = lr * scale
        for model, opt in ((ours_model, ours), (ref_model, ref)):
            opt.zero_grad()
            ((model(x) - y) ** 2).mean().backward()
            opt.step()
        assert [grp["lr"] for grp in ours.param_groups] == pytest.approx([grp["lr"] for grp in ref.param_groups])
    got, want = dict(ours_model.named_parameters()), dict(ref_model.named_parameters())
    assert relative_error(got, want) <= 1e-6
    assert relative_error(dict(model_and_groups()[0].named_parameters()), want) > 1e-2


def test_sgd_state_dict_round_trip_continues_exactly():
    assert_round_trip_continues_exactly(lambda p: SGD(sgd_groups(p), lr=0.01, momentum=0.9))


def test_sgd_state_bytes_are_one_float32_buffer_with_momentum_and_none_without():
    p, opt = train(lambda p: SGD(sgd_groups(p), lr=0.01, momentum=0.9), torch.float32, 1)
    n_trained = sum(t.numel() for k, t in p.items() if k != "unused")
    assert optimizer_state_bytes(opt) == 4 * n_trained
    _, ref = train(lambda p: torch.optim.SGD(sgd_groups(p), lr=0.01, momentum=0.9), torch.float32, 1)
    assert optimizer_state_bytes(ref) == 4 * n_trained  # torch keeps the same buffer, and nothing else
    _, plain = train(lambda p: SGD(sgd_groups(p), lr=0.01), torch.float32, 3)
    assert optimizer_state_bytes(plain) == 0


@pytest.mark.parametrize("kwargs, field", [
    (dict(lr=0.0), "lr"), (dict(lr=float("nan")), "lr"), (dict(momentum=-0.1), "momentum"),
    (dict(weight_decay=-0.1), "weight_decay"), (dict(dampening=float("inf")), "dampening"),
    (dict(nesterov=True), "nesterov needs momentum > 0"),
    (dict(nesterov=True, momentum=0.9, dampening=0.1), "nesterov needs momentum > 0 and dampening = 0"),
    (dict(nesterov="yes", momentum=0.9), "nesterov must be True or False"),
])
def test_bad_sgd_hyperparameters_raise(kwargs, field):
    with pytest.raises(MiniftError, match=f"SGD: {field}"):
        SGD([torch.zeros(2, requires_grad=True)], **kwargs)


def test_bad_sgd_groups_raise_and_are_not_kept():
    p = torch.zeros(2, requires_grad=True)
    with pytest.raises(MiniftError, match="no parameters"):
        SGD([])
    with pytest.raises(MiniftError, match="param group 0: momentum"):
        SGD([{"params": [p], "momentum": -1.0}])
    opt = SGD([p], lr=0.1)
    with pytest.raises(MiniftError, match="param group 1: lr_scale"):
        opt.add_param_group({"params": [torch.zeros(1, requires_grad=True)], "lr": 0.1, "lr_scale": 0.0})
    assert len(opt.param_groups) == 1
    q = torch.zeros(2, requires_grad=True)
    q.grad = torch.zeros(2).to_sparse()
    with pytest.raises(MiniftError, match="sparse"):
        SGD([q], lr=0.1).step()


# --- L1 -------------------------------------------------------------------------------------------

def test_l1_penalty_value_counts_trainable_and_tied_params_once():
    a = torch.tensor([1.0, -2.0], requires_grad=True)  # |a| sums to 3
    b = torch.tensor([[-3.0]], requires_grad=True)     # 3
    frozen = torch.tensor([10.0])
    assert l1_penalty([a, b, a, frozen], 0.2).item() == pytest.approx(0.2 * 6)
    assert l1_penalty([frozen], 0.2).item() == 0.0
    with pytest.raises(MiniftError, match="l1_penalty: weight"):
        l1_penalty([a], -0.1)


def test_l1_penalty_gradient_is_weight_times_sign_and_zero_at_zero():
    w = torch.tensor([[-2.0, 0.0, 3e-4]], requires_grad=True)
    l1_penalty(w, 0.25).backward()
    # d/dw of 0.25 |w| = 0.25 sign(w); autograd's subgradient of |w| at 0 is 0. Small weights feel the
    # full pull (L2's would be 0.25 * 3e-4): that is what drives them to zero.
    assert w.grad.tolist() == [[-0.25, 0.0, 0.25]]


def test_decayed_is_the_rule_param_groups_uses():
    model = TinyLM()
    groups = param_groups(model, weight_decay=0.1)
    for g in groups:
        assert all(decayed(p) == (g["weight_decay"] > 0) for p in g["params"])
    assert decayed(model.proj.weight) and not decayed(model.proj.bias) and not decayed(model.ln.weight)
