"""The training loop: early stopping by the rules, best weights restored, NaN stops and restores.

And the loop's knobs, seen from inside the optimizer step (not from the log): the learning rate each
group actually uses equals the warmup + cosine schedule (times the group's lr_scale), gradient
clipping bounds the global gradient norm the update is made of, the L2 penalty adds l2 * theta to
the gradient, the L1 penalty adds l1 * sign(theta) to the gradient of the matrices only (what
minift's SGD is handed), and early stopping on a higher-is-better task metric puts back the best weights.
Expected numbers are worked by hand from the formulas in optim.py, in the comments.

And what the loop leaves behind: the log (its start record, each window's mean loss, rate, rate of
tokens and elapsed time, each evaluation, a fault; measured against a fake clock, so the numbers are
exact), the progress lines, resume points at the right steps, a resumed stage equal to one never
interrupted (weights and log), no gradient left on the weights; and the small pieces it is made of:
RunLog (reading back, writing, forgetting records on resume), format_seconds, autocast_for,
TrainConfig's dict form.
The run log (log.jsonl) survives a full disk: a failed append keeps every earlier line whole.
"""
import copy
import dataclasses
import json
import warnings
from contextlib import nullcontext

import pytest
import torch
import torch.nn as nn

import minift.trainer as trainer
from minift.errors import MiniftError
from minift.optim import SGD, AdamW, param_groups
from minift.trainer import (RunLog, TrainConfig, TrainState, autocast_for, format_seconds, is_better, snapshot,
                            train_stage)


def linear_problem():
    torch.manual_seed(0)
    model = nn.Linear(4, 1)
    x = torch.randn(64, 4)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]])

    def batches(generator):
        rows = torch.randint(0, 64, (8,), generator=generator)
        return x[rows], y[rows]

    def loss_fn(m, batch):
        return ((m(batch[0]) - batch[1]) ** 2).mean(), batch[0].shape[0]

    return model, batches, loss_fn


def scripted_evaluate(values):
    """An evaluate() that returns the given val_loss values in order (and records the weights)."""
    calls = []

    def evaluate(model):
        calls.append(model.weight.detach().clone())
        return {"val_loss": values[len(calls) - 1]}

    return evaluate, calls


@pytest.mark.parametrize("value, best, monitor, delta, expected", [
    (1.0, None, "val_loss", 0.0, True),
    (0.9, 1.0, "val_loss", 0.0, True),
    (0.95, 1.0, "val_loss", 0.05, False),  # must beat the best by MORE than min_delta
    (0.94, 1.0, "val_loss", 0.05, True),
    (30.0, 29.0, "bleu", 0.5, True),  # task metrics: higher is better
    (29.4, 29.0, "bleu", 0.5, False),
    (29.5, 29.0, "bleu", 0.5, False),  # exactly best + min_delta is not an improvement either way
])
def test_improvement_is_strict_and_follows_the_monitor_direction(value, best, monitor, delta, expected):
    assert is_better(value, best, monitor, delta) is expected


def test_early_stopping_counts_patience_in_evaluations_and_restores_the_best_weights():
    model, batches, loss_fn = linear_problem()
    # evaluations at steps 0, 2, 4, 6, 8, ...: best at step 2, then three evaluations without improvement.
    evaluate, calls = scripted_evaluate([5.0, 1.0, 1.5, 1.2, 1.1, 0.1, 0.1])
    config = TrainConfig(max_steps=20, eval_every=2, log_every=2, lr=0.05, warmup_steps=0, patience=3,
                         weight_decay=0.0)
    state = train_stage(model, AdamW(model.parameters(), lr=0.05), batches, loss_fn, config, evaluate=evaluate)
    assert state.step == 8 and "early stop at step 8" in state.stopped
    assert state.best_step == 2 and state.best_value == 1.0
    assert torch.equal(model.weight, calls[1])  # the weights evaluated at step 2 are back


def test_without_restore_best_the_last_weights_stay():
    model, batches, loss_fn = linear_problem()
    evaluate, calls = scripted_evaluate([5.0, 1.0, 2.0, 3.0])
    config = TrainConfig(max_steps=6, eval_every=2, log_every=2, lr=0.05, warmup_steps=0, restore_best=False)
    train_stage(model, AdamW(model.parameters(), lr=0.05), batches, loss_fn, config, evaluate=evaluate)
    assert torch.equal(model.weight, calls[-1])


def test_a_nan_loss_stops_the_stage_restores_the_last_good_weights_and_is_logged(tmp_path):
    model, batches, good_loss = linear_problem()
    calls_n = {"n": 0}
    at_nan = []

    def loss_fn(m, batch):
        calls_n["n"] += 1
        loss, n = good_loss(m, batch)
        if calls_n["n"] == 8:  # step 8: seven updates done, the last one after the evaluation at step 6
            at_nan.append(m.weight.detach().clone())
            return loss * float("nan"), n
        return loss, n

    evaluate, calls = scripted_evaluate([9.0, 8.0, 7.0, 6.0])
    log = RunLog(tmp_path / "log.jsonl", quiet=True)
    # restore_best off: the fault itself must put the weights back (the best ones are the same here).
    config = TrainConfig(max_steps=20, eval_every=3, log_every=3, lr=0.05, warmup_steps=0, restore_best=False)
    state = train_stage(model, AdamW(model.parameters(), lr=0.05), batches, loss_fn, config, evaluate=evaluate,
                        log=log, step_offset=20)
    assert state.stopped == "non-finite loss (nan) at step 27" and state.step == 7  # counted from the offset
    assert not torch.equal(at_nan[0], calls[-1])  # step 7 moved the weights after the last evaluation ...
    assert torch.equal(model.weight, calls[-1]) and torch.isfinite(model.weight).all()  # ... they are put back
    faults = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()
              if json.loads(line)["event"] == "fault"]
    assert faults == [{"event": "fault", "stage": "train", "step": 27,
                       "message": "non-finite loss (nan) at step 27; restored the last good weights"}]

    # NaN before any evaluation (none asked for): nothing to put back, the weights stay, no crash.
    model, batches, good_loss = linear_problem()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    state = train_stage(model, AdamW(model.parameters(), lr=0.05), batches,
                        lambda m, b: (good_loss(m, b)[0] * float("inf"), 8), config)
    assert state.stopped == "non-finite loss (inf) at step 0" and state.step == 0
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_a_batch_with_every_target_masked_is_skipped_not_nan(capsys):
    model, batches, good_loss = linear_problem()
    before = model.weight.detach().clone()

    def loss_fn(m, batch):
        return torch.tensor(float("nan"), requires_grad=True), 0  # 0 graded tokens: 0/0

    config = TrainConfig(max_steps=3, eval_every=10, log_every=10, lr=0.05, warmup_steps=0)
    log = RunLog(quiet=False)
    state = train_stage(model, AdamW(model.parameters(), lr=0.05), batches, loss_fn, config, log=log)
    assert state.skipped == 3 and not state.stopped
    assert torch.equal(model.weight, before)
    assert "every target in the batch is masked; skipped" in capsys.readouterr().err


def test_progress_lines_show_step_loss_rate_and_time_left(capsys):
    model, batches, loss_fn = linear_problem()
    config = TrainConfig(max_steps=4, eval_every=10, log_every=2, lr=0.05, warmup_steps=0)
    train_stage(model, AdamW(model.parameters(), lr=0.05), batches, loss_fn, config, log=RunLog(quiet=False),
                stage="demo")
    err = capsys.readouterr().err
    assert "[demo] step 2/4 | loss " in err and " tok/s | " in err and " left" in err


class RecordingAdamW(AdamW):
    """AdamW that records every group's rate at the moment it steps (what the update really uses)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.lrs = []

    def step(self, closure=None):
        self.lrs.append([group["lr"] for group in self.param_groups])
        return super().step(closure)


class RecordingSGD(torch.optim.SGD):
    """Plain SGD (p -= lr * grad) that records the gradients it is handed and the weights before/after.

    SGD, not AdamW, for clipping and L2: Adam divides by sqrt(v_hat), so a uniformly rescaled
    (clipped) gradient gives almost the same update; with SGD the update is the gradient itself.
    """

    def __init__(self, params, lr):
        super().__init__(params, lr=lr)
        self.grads, self.before, self.after = [], [], []

    @torch.no_grad()
    def step(self, closure=None):
        params = [p for g in self.param_groups for p in g["params"]]
        self.grads.append([p.grad.clone() for p in params])
        self.before.append([p.clone() for p in params])
        out = super().step(closure)
        self.after.append([p.clone() for p in params])
        return out


def test_every_step_uses_the_scheduled_rate_times_the_groups_scale():
    model, batches, loss_fn = linear_problem()
    # Two groups: the weight at the base rate, the bias at half of it (how discriminative rates are stored).
    groups = param_groups(model, weight_decay=0.0, lr_scales={"bias": 0.5})
    assert [g["names"] for g in groups] == [["weight"], ["bias"]]
    optimizer = RecordingAdamW(groups, lr=0.08, weight_decay=0.0)
    config = TrainConfig(max_steps=8, warmup_steps=2, lr=0.08, min_lr_ratio=0.25, eval_every=100, log_every=100)
    train_stage(model, optimizer, batches, loss_fn, config)
    # lr_at by hand: max 0.08, min 0.25 * 0.08 = 0.02, so min + 0.5 * (max - min) * (1 + cos) = 0.02 + 0.03 (1 + cos).
    # Warmup (steps 0, 1): 0.08 * (s + 1) / 2. Cosine (steps 2..7): q = (s - 2) / 6.
    expected = [
        0.04,                      # step 0: warmup 1/2
        0.08,                      # step 1: warmup 2/2, the peak
        0.08,                      # step 2: q = 0, cos 0 = 1
        0.02 + 0.03 * (1 + 0.8660254037844387),  # step 3: q = 1/6, cos(pi/6) = sqrt(3)/2 -> 0.0759808
        0.065,                     # step 4: q = 1/3, cos = 1/2
        0.05,                      # step 5: q = 1/2, cos = 0 (halfway: the mean of 0.08 and 0.02)
        0.035,                     # step 6: q = 2/3, cos = -1/2
        0.02 + 0.03 * (1 - 0.8660254037844387),  # step 7: q = 5/6 -> 0.0240192, near the floor 0.02
    ]
    assert len(optimizer.lrs) == 8
    for step, (lrs, want) in enumerate(zip(optimizer.lrs, expected)):
        assert lrs == pytest.approx([want, 0.5 * want], rel=1e-9), f"step {step}"


def two_parameter_problem(w0: float, b0: float, k: float):
    """y = w * 0.75 + b, loss = k * y: the gradients are (0.75 k, k) whatever the weights."""
    model = nn.Linear(1, 1)
    with torch.no_grad():
        model.weight.fill_(w0)
        model.bias.fill_(b0)
    x = torch.tensor([[0.75]])

    def loss_fn(m, batch):
        return k * m(x).sum(), 1

    return model, (lambda generator: None), loss_fn


# A flat schedule (no warmup, floor = peak), so every step's rate is exactly lr.
FLAT = dict(warmup_steps=0, min_lr_ratio=1.0, eval_every=100, log_every=100, weight_decay=0.0)


def test_gradient_clipping_bounds_the_global_norm_of_the_update():
    # k = 400: gradients (300, 400) in two tensors, global norm 500.
    model, batches, loss_fn = two_parameter_problem(1.0, 1.0, k=400.0)
    optimizer = RecordingSGD(model.parameters(), lr=0.1)
    train_stage(model, optimizer, batches, loss_fn, TrainConfig(max_steps=3, lr=0.1, grad_clip=1.0, **FLAT))
    for step, (grads, before, after) in enumerate(zip(optimizer.grads, optimizer.before, optimizer.after)):
        # Clipped to norm 1 as ONE vector: (300, 400) * 1 / 500 = (0.6, 0.8) (per tensor would give (1, 1)).
        assert [float(g) for g in grads] == pytest.approx([0.6, 0.8], rel=1e-5), f"step {step}"
        update = torch.cat([(a - b).flatten() for a, b in zip(after, before)])
        assert update.tolist() == pytest.approx([-0.06, -0.08], rel=1e-5)  # lr 0.1 * (0.6, 0.8): length 0.1
    assert model.weight.item() == pytest.approx(1.0 - 3 * 0.06) and model.bias.item() == pytest.approx(1.0 - 3 * 0.08)

    # A norm under the threshold is left alone: grad_clip = 1000 > 500.
    model, batches, loss_fn = two_parameter_problem(1.0, 1.0, k=400.0)
    optimizer = RecordingSGD(model.parameters(), lr=0.1)
    train_stage(model, optimizer, batches, loss_fn, TrainConfig(max_steps=1, lr=0.1, grad_clip=1000.0, **FLAT))
    assert [float(g) for g in optimizer.grads[0]] == pytest.approx([300.0, 400.0])


def test_the_l2_penalty_adds_l2_times_theta_to_the_gradient():
    # loss = w^2 (model w * x, x = 1, loss (w x)^2), so the data gradient is 2w; l2 = 0.5 adds 0.5 w.
    # SGD at lr 0.1: with L2  w <- w - 0.1 * (2w + 0.5w) = 0.75 w: 2 -> 1.5 -> 1.125;
    #                without  w <- w - 0.1 * 2w        = 0.8 w:  2 -> 1.6 -> 1.28.
    def run(l2):
        model = nn.Linear(1, 1, bias=False)
        with torch.no_grad():
            model.weight.fill_(2.0)
        x = torch.ones(1, 1)
        optimizer = RecordingSGD(model.parameters(), lr=0.1)
        config = TrainConfig(max_steps=2, lr=0.1, l2=l2, grad_clip=0.0, **FLAT)
        train_stage(model, optimizer, lambda g: None, lambda m, b: ((m(x) ** 2).sum(), 1), config)
        return [g[0].item() for g in optimizer.grads], model.weight.item()

    grads, w = run(0.5)
    assert grads == pytest.approx([2 * 2.0 + 0.5 * 2.0, 2 * 1.5 + 0.5 * 1.5]) and w == pytest.approx(1.125)
    grads, w = run(0.0)
    assert grads == pytest.approx([4.0, 3.2]) and w == pytest.approx(1.28)


class RecordingMiniftSGD(SGD):
    """minift's SGD, recording, per step, the gradient of each parameter as the step receives it."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.grads = []  # per step: {name: gradient list}

    @torch.no_grad()
    def step(self, closure=None):
        self.grads.append({n: p.grad.flatten().tolist() for g in self.param_groups
                           for n, p in zip(g["names"], g["params"])})
        return super().step(closure)


def test_the_l1_penalty_adds_l1_times_sign_to_the_decayed_weights_only():
    # y = w . x + b with x = (0.75, -0.5), loss = y: data gradients (0.75, -0.5) on the weight matrix
    # (1, 2), 1 on the bias. l1 = 0.25 adds 0.25 * sign(w) to the matrix, nothing to the bias (not
    # decayed), and 0 where w is exactly 0 (autograd's subgradient of |w| there).
    # Start w = (0.3, 0.0), b = 0.4; plain SGD at lr 0.1:
    #   step 1: grad w = (0.75 + 0.25, -0.5 + 0) = (1.0, -0.5), grad b = 1;  w -> (0.2, 0.05)
    #   step 2: grad w = (0.75 + 0.25, -0.5 + 0.25) = (1.0, -0.25) (sign(0.05) = +1), grad b = 1.
    def run(l1):
        model = nn.Linear(2, 1)
        with torch.no_grad():
            model.weight.copy_(torch.tensor([[0.3, 0.0]]))
            model.bias.fill_(0.4)
        x = torch.tensor([[0.75, -0.5]])
        optimizer = RecordingMiniftSGD(param_groups(model, weight_decay=0.0), lr=0.1)
        config = TrainConfig(max_steps=2, lr=0.1, l1=l1, grad_clip=0.0, **FLAT)
        train_stage(model, optimizer, lambda g: None, lambda m, b: (m(x).sum(), 1), config)
        return optimizer.grads, model.weight.flatten().tolist()

    grads, w = run(0.25)
    assert grads[0] == {"weight": pytest.approx([1.0, -0.5]), "bias": pytest.approx([1.0])}
    assert grads[1] == {"weight": pytest.approx([1.0, -0.25]), "bias": pytest.approx([1.0])}
    assert w == pytest.approx([0.2 - 0.1, 0.05 + 0.025])
    grads, _ = run(0.0)  # off: the data gradient alone
    assert grads[0] == {"weight": pytest.approx([0.75, -0.5]), "bias": pytest.approx([1.0])}


def test_early_stopping_on_a_task_metric_keeps_the_highest_and_restores_its_weights():
    model, batches, loss_fn = linear_problem()
    calls = []
    # Evaluations at steps 0, 2, 4, 6, 8, 10. BLEU peaks at step 4 (30); val_loss is lowest at step 2,
    # so a loop that watched val_loss, or took the lowest BLEU as best, would pick other weights.
    bleu = [1.0, 5.0, 30.0, 20.0, 25.0, 30.4, 40.0]
    val_loss = [9.0, 1.0, 5.0, 6.0, 7.0, 8.0, 0.5]

    def evaluate(m):
        calls.append({k: v.detach().clone() for k, v in m.state_dict().items()})
        i = len(calls) - 1
        return {"val_loss": val_loss[i], "bleu": bleu[i]}

    config = TrainConfig(max_steps=20, eval_every=2, log_every=2, lr=0.05, warmup_steps=0, weight_decay=0.0,
                         patience=3, monitor="bleu", min_delta=0.5)
    state = train_stage(model, AdamW(model.parameters(), lr=0.05), batches, loss_fn, config, evaluate=evaluate)
    # Steps 6, 8, 10 fail to beat 30 by more than min_delta (30.4 is not > 30.5): patience 3 runs out at step 10.
    assert state.step == 10 and "early stop at step 10" in state.stopped
    assert state.best_step == 4 and state.best_value == 30.0
    assert not torch.equal(calls[2]["weight"], calls[-1]["weight"])  # training did move on after step 4
    for key, value in model.state_dict().items():
        assert torch.equal(value, calls[2][key]), key  # the weights evaluated at step 4 are back


class FakeClock:
    """Stands in for the ``time`` module inside minift.trainer: a wall clock and a process clock that
    only the test moves, so elapsed times, rates and time left are known exactly."""

    def __init__(self, wall=1000.0, cpu=100.0):
        self.wall, self.cpu = wall, cpu

    def time(self):
        return self.wall

    def process_time(self):
        return self.cpu


def test_wall_and_cpu_seconds_are_the_clocks_of_the_loop_and_survive_a_resume(monkeypatch):
    # Only the loss function moves the clocks: 2.0 wall and 1.5 CPU seconds per step. 4 steps =
    # 8.0 s and 6.0 s, whether run at once or resumed after 2 in a new process (clocks elsewhere).
    clock = FakeClock()
    monkeypatch.setattr(trainer, "time", clock)
    model, batches, good_loss = linear_problem()

    def loss_fn(m, batch):
        clock.wall += 2.0
        clock.cpu += 1.5
        return good_loss(m, batch)

    config = TrainConfig(max_steps=4, eval_every=2, log_every=2, lr=0.05, warmup_steps=0)
    saved = []
    state = train_stage(model, AdamW(model.parameters(), lr=0.05), batches, loss_fn, config,
                        save_state=lambda s: saved.append(copy.deepcopy(s.to_dict())))
    assert state.elapsed == pytest.approx(8.0) and state.cpu_seconds == pytest.approx(6.0)
    at_step_2 = next(s for s in saved if s["step"] == 2)
    assert at_step_2["elapsed"] == pytest.approx(4.0) and at_step_2["cpu_seconds"] == pytest.approx(3.0)

    clock.wall, clock.cpu = 90000.0, 5000.0  # a new process: its clocks start anywhere
    model2, _, _ = linear_problem()
    resumed = train_stage(model2, AdamW(model2.parameters(), lr=0.05), batches, loss_fn, config,
                          state=TrainState.from_dict(at_step_2))
    assert resumed.step == 4
    assert resumed.elapsed == pytest.approx(8.0) and resumed.cpu_seconds == pytest.approx(6.0)


def read_log(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_the_log_holds_the_stage_start_each_windows_training_numbers_and_each_evaluation(tmp_path, monkeypatch):
    # Each step costs 0.25 s on the fake clock and draws 8 examples: every window runs at 8 / 0.25 = 32
    # examples per second (a window shorter than a second, so no floor of 1 s may creep into the rate).
    clock = FakeClock()
    monkeypatch.setattr(trainer, "time", clock)
    path = tmp_path / "log.jsonl"
    earlier = [{"event": "stage", "stage": "a", "step": 0}, {"event": "train", "stage": "a", "step": 10, "loss": 3.0}]
    # What an attempt at stage b wrote before it was killed (before its first resume point): forgotten.
    stale = [{"event": "stage", "stage": "b", "step": 10}, {"event": "train", "stage": "b", "step": 11, "loss": 9.0}]
    path.write_text("".join(json.dumps(r) + "\n" for r in earlier + stale), encoding="utf-8")
    model, batches, good_loss = linear_problem()
    losses = []

    def loss_fn(m, batch):
        clock.wall += 0.25
        clock.cpu += 0.123456
        loss, n = good_loss(m, batch)
        losses.append(float(loss.detach()))
        return loss, n

    def evaluate(m):
        return {"val_loss": 2.0, "bleu": 7}

    config = TrainConfig(max_steps=5, log_every=2, eval_every=4, lr=0.05, warmup_steps=0, min_lr_ratio=1.0)
    state = train_stage(model, AdamW(model.parameters(), lr=0.05), batches, loss_fn, config, evaluate=evaluate,
                        stage="b", log=RunLog(path, quiet=True), step_offset=10)

    def ev(step):  # cpu_s: the stage's CPU seconds so far, 0.123456 a step on the fake clock, to 4 decimals
        return {"event": "eval", "stage": "b", "step": step, "val_loss": 2.0, "metrics": {"val_loss": 2.0, "bleu": 7.0},
                "cpu_s": pytest.approx(round(0.123456 * (step - 10), 4), abs=1e-9)}

    def tr(step, window, elapsed):  # the window's mean loss, the rate 32/s, seconds since the stage began
        return {"event": "train", "stage": "b", "step": step, "loss": pytest.approx(sum(window) / len(window)),
                "lr": pytest.approx(0.05), "tokens_per_s": pytest.approx(32.0), "elapsed_s": pytest.approx(elapsed)}

    assert len(set(losses)) == 5  # distinct losses, so a wrong window mean cannot pass by chance
    assert read_log(path) == earlier + [
        {"event": "stage", "stage": "b", "step": 10}, ev(10),  # the start and the "before" evaluation
        tr(12, losses[0:2], 0.5), tr(14, losses[2:4], 1.0), ev(14),  # every log_every, every eval_every
        tr(15, losses[4:5], 1.25), ev(15),  # the last step always, its window only one step long
    ]
    assert state.tokens == 5 * 8


def test_by_default_a_stage_is_named_train_starts_at_step_0_draws_with_seed_0_and_prints_nothing(tmp_path, capsys):
    model, batches, loss_fn = linear_problem()
    states = []

    def recording_batches(generator):
        states.append(generator.get_state())
        return batches(generator)

    config = TrainConfig(max_steps=3, eval_every=2, log_every=1, lr=0.05, warmup_steps=0)
    train_stage(model, AdamW(model.parameters(), lr=0.05), recording_batches, loss_fn, config)
    assert capsys.readouterr().err == ""  # no log given: a quiet one, though log_every=1 would print each step
    assert torch.equal(states[0], torch.Generator().manual_seed(0).get_state())
    states.clear()
    train_stage(model, AdamW(model.parameters(), lr=0.05), recording_batches, loss_fn, config, seed=5,
                log=RunLog(tmp_path / "log.jsonl", quiet=True))
    assert torch.equal(states[0], torch.Generator().manual_seed(5).get_state())
    records = read_log(tmp_path / "log.jsonl")
    assert {r["stage"] for r in records} == {"train"}
    # Without an evaluate there is no "before" evaluation at step 0; one (empty) at eval_every and the end.
    assert [(r["event"], r["step"]) for r in records] == [("stage", 0), ("train", 1), ("train", 2), ("eval", 2),
                                                          ("train", 3), ("eval", 3)]
    assert records[3] == {"event": "eval", "stage": "train", "step": 2, "val_loss": None, "metrics": {},
                          "cpu_s": records[3]["cpu_s"]} and records[3]["cpu_s"] >= 0


def test_the_loss_is_taken_through_train_module_and_before_step_sees_each_step_index():
    model, batches, good_loss = linear_problem()
    wrapper = nn.Sequential(model)  # what a DDP wrapper is to the loop: the same weights, another module
    seen, steps = [], []

    def loss_fn(m, batch):
        seen.append(m)
        return good_loss(m, batch)

    config = TrainConfig(max_steps=3, eval_every=10, log_every=10, lr=0.05, warmup_steps=0)
    train_stage(model, AdamW(model.parameters(), lr=0.05), batches, loss_fn, config, train_module=wrapper,
                before_step=steps.append)
    assert len(seen) == 3 and all(m is wrapper for m in seen)
    assert steps == [0, 1, 2]


def test_the_progress_lines_give_the_eval_results_and_the_time_left(capsys, monkeypatch):
    # 30 s per step on the fake clock, 4 steps: time left = elapsed / done * remaining = 90, 60, 30, 0 s.
    clock = FakeClock()
    monkeypatch.setattr(trainer, "time", clock)
    model, batches, good_loss = linear_problem()

    def loss_fn(m, batch):
        clock.wall += 30.0
        return good_loss(m, batch)

    def evaluate(m):
        return {"val_loss": 1.5, "bleu": 30.25}

    config = TrainConfig(max_steps=4, eval_every=2, log_every=1, lr=0.05, warmup_steps=0)
    train_stage(model, AdamW(model.parameters(), lr=0.05), batches, loss_fn, config, evaluate=evaluate,
                log=RunLog(quiet=False), stage="demo")
    lines = capsys.readouterr().err.splitlines()
    steps = [line for line in lines if line.startswith("[demo] step ")]
    assert [line.split(" | ")[0] for line in steps] == [f"[demo] step {i}/4" for i in (1, 2, 3, 4)]
    assert [line.split(" | ")[-1] for line in steps] == ["1:30 left", "1:00 left", "0:30 left", "0:00 left"]
    assert all(line.split(" | ")[3] == "0 tok/s" for line in steps)  # 8 examples in 30 s
    assert [line for line in lines if " eval at " in line] == ["[demo] eval at step 2: val_loss 1.5, bleu 30.25",
                                                               "[demo] eval at step 4: val_loss 1.5, bleu 30.25"]


def test_a_resume_point_is_saved_every_checkpoint_every_steps_at_the_end_and_at_an_early_stop():
    model, batches, loss_fn = linear_problem()
    saved = []
    config = TrainConfig(max_steps=7, eval_every=100, log_every=100, lr=0.05, warmup_steps=0)
    train_stage(model, AdamW(model.parameters(), lr=0.05), batches, loss_fn, config,
                save_state=lambda s: saved.append(s.step), checkpoint_every=3)
    assert saved == [3, 6, 7]  # 7: the end, though not a multiple of 3

    saved.clear()
    evaluate, _ = scripted_evaluate([5.0, 1.0, 2.0, 3.0])  # steps 0, 2, 4: step 4 fails to improve
    config = TrainConfig(max_steps=20, eval_every=2, log_every=100, lr=0.05, warmup_steps=0, patience=1)
    state = train_stage(model, AdamW(model.parameters(), lr=0.05), batches, loss_fn, config, evaluate=evaluate,
                        save_state=lambda s: saved.append(s.step), checkpoint_every=3)
    assert state.stopped and saved == [3, 4]  # 4: the early stop, so a resume does not train on


class Killed(Exception):
    """The process dying between two steps."""


def test_a_resumed_stage_ends_with_the_weights_and_log_of_an_uninterrupted_one(tmp_path):
    # Dropout on the inputs, so the torch random state matters as well as the batch generator's.
    # The killed run saves a resume point at step 2, runs step 3 (logged), and dies before step 4.
    # Its resume point is kept in memory (a shallow copy of the state handed over): what save_state
    # is given must not change as training goes on.
    _, batches, loss_fn = linear_problem()

    def make(seed):
        torch.manual_seed(seed)
        return nn.Sequential(nn.Dropout(0.25), nn.Linear(4, 1))

    x = torch.randn(16, 4, generator=torch.Generator().manual_seed(1))

    def evaluate(m):
        return {"val_loss": float((m(x) ** 2).mean())}

    config = TrainConfig(max_steps=6, eval_every=2, log_every=1, lr=0.05, warmup_steps=2)
    common = dict(evaluate=evaluate, stage="s", seed=3, step_offset=10)

    whole = make(1)
    train_stage(whole, AdamW(whole.parameters(), lr=0.05, weight_decay=0.1), batches, loss_fn, config,
                log=RunLog(tmp_path / "whole.jsonl", quiet=True), **common)

    def die_before_step_4(step):
        if step == 3:
            raise Killed

    killed, saved = make(1), []
    with pytest.raises(Killed):
        train_stage(killed, AdamW(killed.parameters(), lr=0.05, weight_decay=0.1), batches, loss_fn, config,
                    log=RunLog(tmp_path / "resumed.jsonl", quiet=True), checkpoint_every=2,
                    save_state=lambda s: saved.append(dataclasses.replace(s)), before_step=die_before_step_4,
                    **common)
    assert [s.step for s in saved] == [2]
    assert read_log(tmp_path / "resumed.jsonl")[-1]["step"] == 13  # step 3 was logged, after the resume point

    resumed = make(99)  # a new process: other initial weights, another random state; the resume point wins
    state = train_stage(resumed, AdamW(resumed.parameters(), lr=0.05, weight_decay=0.1), batches, loss_fn,
                        config, log=RunLog(tmp_path / "resumed.jsonl", quiet=True), state=saved[0],
                        save_state=lambda s: None, **common)
    assert state.step == 6
    for key, value in whole.state_dict().items():
        assert torch.equal(resumed.state_dict()[key], value), key

    def without_clock(records):
        return [{k: v for k, v in r.items() if k not in ("tokens_per_s", "elapsed_s", "cpu_s")} for r in records]

    whole_log = without_clock(read_log(tmp_path / "whole.jsonl"))
    # The killed run's record of step 13 was forgotten and written again: one of each, in order.
    assert [(r["event"], r["step"]) for r in whole_log] == [
        ("stage", 10), ("eval", 10), ("train", 11), ("train", 12), ("eval", 12), ("train", 13), ("train", 14),
        ("eval", 14), ("train", 15), ("train", 16), ("eval", 16)]
    assert without_clock(read_log(tmp_path / "resumed.jsonl")) == whole_log


def test_penalties_off_leave_a_parameter_the_loss_does_not_reach_untouched():
    # With l2 = l1 = 0 the loss is the data loss alone: a trainable matrix it does not use gets no
    # gradient, so AdamW skips it (no decay). Adding a zero penalty would give it a zero gradient and
    # AdamW would decay it by (1 - lr * wd) each step.
    model, batches, loss_fn = linear_problem()
    spare = nn.Parameter(torch.ones(2, 2))
    optimizer = AdamW([*model.parameters(), spare], lr=0.05, weight_decay=0.5)
    config = TrainConfig(max_steps=3, eval_every=10, log_every=10, lr=0.05, warmup_steps=0, l1=0.0, l2=0.0)
    train_stage(model, optimizer, batches, loss_fn, config)
    assert torch.equal(spare.detach(), torch.ones(2, 2))


def test_a_stage_leaves_no_gradient_on_the_weights():
    # After a stage every .grad is None (gradients set to none, their memory freed), whether its last
    # step was an update or a skipped all-masked batch; a skipped batch also drops a stale gradient.
    model, batches, loss_fn = linear_problem()
    config = TrainConfig(max_steps=2, eval_every=10, log_every=10, lr=0.05, warmup_steps=0)
    train_stage(model, AdamW(model.parameters(), lr=0.05), batches, loss_fn, config)
    assert all(p.grad is None for p in model.parameters())

    for p in model.parameters():
        p.grad = torch.ones_like(p)  # left by the caller
    state = train_stage(model, AdamW(model.parameters(), lr=0.05), batches,
                        lambda m, b: (torch.tensor(float("nan")), 0), config)
    assert state.skipped == 2 and all(p.grad is None for p in model.parameters())


def test_a_gradient_left_by_the_caller_does_not_leak_into_the_first_update():
    # SGD without momentum: the first update is exactly -lr * the first batch's gradient, the same
    # whether or not the caller left a .grad of ones on every weight before the stage.
    config = TrainConfig(max_steps=1, eval_every=10, log_every=10, lr=0.05, warmup_steps=0, weight_decay=0.0)
    after = []
    for stale in (False, True):
        model, batches, loss_fn = linear_problem()
        if stale:
            for p in model.parameters():
                p.grad = torch.ones_like(p)
        train_stage(model, SGD(model.parameters(), lr=0.05), batches, loss_fn, config)
        after.append([p.detach().clone() for p in model.parameters()])
    for clean, stale in zip(*after):
        assert torch.equal(clean, stale)


def write_records(path, records):
    log = RunLog(path, quiet=True)
    for r in records:
        log.write(r)
    return log


RECORDS = [
    {"event": "note"},  # no step: counts as step 0
    {"event": "stage", "stage": "a", "step": 0},
    {"event": "train", "stage": "a", "step": 5},
    {"event": "stage", "stage": "b", "step": 5},
    {"event": "train", "stage": "b", "step": 6},
    {"event": "train", "stage": "b", "step": 8},
]


def as_lines(records):
    return "".join(json.dumps(r) + "\n" for r in records)


def test_a_runlog_appends_json_lines_and_reads_them_back_skipping_blank_lines(tmp_path):
    path = tmp_path / "log.jsonl"
    log = write_records(path, RECORDS[:3])
    assert log.records == RECORDS[:3]
    assert path.read_text(encoding="utf-8") == as_lines(RECORDS[:3])
    path.write_text(path.read_text(encoding="utf-8") + "\n", encoding="utf-8")  # a blank line: skipped
    log = write_records(path, RECORDS[3:4])
    assert log.records == RECORDS[:4]  # the existing records, then the new one
    assert RunLog(path).records == RECORDS[:4]
    assert RunLog(path, enabled=False).records == []  # other ranks neither read ...
    RunLog(tmp_path / "rank1.jsonl", enabled=False).write({"event": "x"})
    assert not (tmp_path / "rank1.jsonl").exists()  # ... nor write

    with pytest.raises(MiniftError, match="no such log file"):  # a folder where the log should be
        RunLog(tmp_path)


def test_runlog_progress_goes_to_stderr_unless_quiet_or_disabled(capsys):
    RunLog().progress("shown by default")
    RunLog(quiet=True).progress("hidden: quiet")
    RunLog(enabled=False).progress("hidden: not rank 0")
    captured = capsys.readouterr()
    assert captured.err == "shown by default\n" and captured.out == ""


@pytest.mark.parametrize("step, drop_stage, kept", [
    (5, None, [0, 1, 2, 3]),  # records at the step itself stay, later ones go
    (0, None, [0, 1]),  # a record without a step counts as step 0
    (5, "b", [0, 1, 2]),  # every record of the restarted stage goes, even at the step
    (100, "a", [0, 3, 4, 5]),
])
def test_truncate_after_forgets_later_records_and_those_of_a_restarted_stage(tmp_path, step, drop_stage, kept):
    path = tmp_path / "log.jsonl"
    log = write_records(path, RECORDS)
    log.truncate_after(step, drop_stage=drop_stage)
    expected = [RECORDS[i] for i in kept]
    assert log.records == expected
    assert path.read_text(encoding="utf-8") == as_lines(expected)
    memory = RunLog(quiet=True)  # no file: only the records in memory
    for r in RECORDS:
        memory.write(r)
    memory.truncate_after(step, drop_stage=drop_stage)
    assert memory.records == expected


def test_truncate_after_with_nothing_to_forget_leaves_the_file_alone(tmp_path):
    path = tmp_path / "log.jsonl"
    text = '{"event":"stage","stage":"a","step":0}\n\n{"event":"train","stage":"a","step":3}\n'  # not as RunLog writes
    path.write_text(text, encoding="utf-8")
    log = RunLog(path)
    log.truncate_after(3)
    log.truncate_after(3, drop_stage="b")
    assert path.read_text(encoding="utf-8") == text
    disabled = RunLog(path, enabled=False)
    disabled.truncate_after(0, drop_stage="a")
    assert path.read_text(encoding="utf-8") == text  # only rank 0 touches the log


@pytest.mark.parametrize("seconds, shown", [
    (0, "0:00"), (0.4, "0:00"), (-3, "0:00"),  # never negative
    (59, "0:59"), (59.6, "1:00"), (61, "1:01"), (3599, "59:59"),
    (3600, "1:00:00"), (3661, "1:01:01"), (86399, "23:59:59"), (90000, "25:00:00"),
])
def test_format_seconds_gives_minutes_and_seconds_and_hours_from_one_hour(seconds, shown):
    assert format_seconds(seconds) == shown


def test_autocast_is_bf16_on_cuda_and_nothing_elsewhere():
    assert isinstance(autocast_for("cpu"), nullcontext)
    assert isinstance(autocast_for(torch.device("cpu")), nullcontext)
    with warnings.catch_warnings():  # built, never entered: without CUDA torch only warns that it would be off
        warnings.simplefilter("ignore")
        for device in ("cuda", "cuda:0", torch.device("cuda", 0)):
            ctx = autocast_for(device)
            assert isinstance(ctx, torch.autocast)
            assert ctx.device == "cuda" and ctx.fast_dtype == torch.bfloat16  # not float16, CUDA's default


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_a_snapshot_of_cuda_weights_is_a_copy_on_the_cpu():
    model = nn.Linear(3, 2).cuda()
    weights = snapshot(model)
    assert all(v.device.type == "cpu" for v in weights.values())
    assert torch.equal(weights["weight"], model.weight.detach().cpu())


def test_a_snapshot_is_a_detached_copy_that_later_training_does_not_change():
    model = nn.Linear(3, 2)
    weights = snapshot(model)
    before = model.weight.detach().clone()
    with torch.no_grad():
        model.weight.add_(1.0)
    assert torch.equal(weights["weight"], before) and not weights["weight"].requires_grad
    assert set(weights) == {"weight", "bias"}


def test_train_config_as_a_dict_names_every_knob():
    names = ["max_steps", "batch_size", "lr", "warmup_steps", "min_lr_ratio", "weight_decay", "l2", "l1",
             "grad_clip", "eval_every", "log_every", "patience", "min_delta", "monitor", "restore_best"]
    assert TrainConfig.field_names() == names
    config = TrainConfig(max_steps=7, monitor="bleu", patience=2)
    d = config.to_dict()
    assert list(d) == names and d["max_steps"] == 7 and d["monitor"] == "bleu" and d["patience"] == 2
    assert TrainConfig(**d) == config


class ScriptedFile:
    """The file RunLog.write opens, with its ``write`` replaced by ``write(real_file, data)``."""

    def __init__(self, f, write):
        self.f, self.scripted = f, write

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.f.close()

    def __getattr__(self, name):
        return getattr(self.f, name)

    def write(self, data):
        return self.scripted(self.f, data)


def test_a_full_disk_while_logging_keeps_every_earlier_line(tmp_path, monkeypatch):
    # The log is appended to, not rewritten: a half-written line would make the next --resume fail to
    # read it, so the append is cut back to the end of the last whole line.
    import builtins
    import errno
    import os

    import minift.trainer
    from minift.errors import MiniftError

    path = tmp_path / "log.jsonl"
    log = RunLog(path, quiet=True)
    log.write({"event": "train", "step": 1, "loss": 2.0})
    before = path.read_bytes()

    def half_then_full(f, data):  # the disk fills up in the middle of the line
        f.write(data[: len(data) // 2])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(minift.trainer, "open", lambda *a, **k: ScriptedFile(builtins.open(*a, **k), half_then_full),
                        raising=False)
    with pytest.raises(MiniftError, match="log.jsonl: cannot append to the log \\(No space left on device\\)"):
        log.write({"event": "train", "step": 2, "loss": 1.5})
    assert path.read_bytes() == before
    assert [r["step"] for r in RunLog(path).records] == [1]


def test_a_log_line_written_in_pieces_is_written_once_and_whole(tmp_path, monkeypatch):
    # An unbuffered write may take fewer bytes than asked (a pipe, a nearly full disk): RunLog.write
    # goes on from where the last piece ended, so the line lands once, whole, with no warning.
    import builtins
    import warnings

    def seven_bytes(f, data):  # takes at most 7 bytes a call
        return f.write(bytes(data[:7]))

    monkeypatch.setattr(trainer, "open", lambda *a, **k: ScriptedFile(builtins.open(*a, **k), seven_bytes),
                        raising=False)
    path = tmp_path / "log.jsonl"
    log = RunLog(path, quiet=True)
    records = [{"event": "train", "step": 1, "loss": 2.5}, {"event": "eval", "step": 2, "val_loss": None}]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. "line buffering isn't supported in binary mode"
        for r in records:
            log.write(r)
    assert path.read_text(encoding="utf-8") == "".join(json.dumps(r) + "\n" for r in records)
