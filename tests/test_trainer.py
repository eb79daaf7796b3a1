"""The training loop: early stopping by the rules, best weights restored, NaN stops and restores.

And the loop's knobs, seen from inside the optimizer step (not from the log): the learning rate each
group actually uses equals the warmup + cosine schedule (times the group's lr_scale), gradient
clipping bounds the global gradient norm the update is made of, the L2 penalty adds l2 * theta to
the gradient, the L1 penalty adds l1 * sign(theta) to the gradient of the matrices only (what
minift's SGD is handed), and early stopping on a higher-is-better task metric puts back the best weights.
Expected numbers are worked by hand from the formulas in optim.py, in the comments.
The run log (log.jsonl) survives a full disk: a failed append keeps every earlier line whole.
"""
import json

import pytest
import torch
import torch.nn as nn

from minift.optim import SGD, AdamW, param_groups
from minift.trainer import RunLog, TrainConfig, is_better, train_stage


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
    step = {"n": 0}

    def loss_fn(m, batch):
        step["n"] += 1
        loss, n = good_loss(m, batch)
        return (loss * float("nan") if step["n"] == 7 else loss), n

    evaluate, calls = scripted_evaluate([9.0, 8.0, 7.0, 6.0])
    log = RunLog(tmp_path / "log.jsonl", quiet=True)
    config = TrainConfig(max_steps=20, eval_every=3, log_every=3, lr=0.05, warmup_steps=0)
    state = train_stage(model, AdamW(model.parameters(), lr=0.05), batches, loss_fn, config, evaluate=evaluate,
                        log=log)
    assert "non-finite loss" in state.stopped and state.step == 6
    assert torch.equal(model.weight, calls[-1]) and torch.isfinite(model.weight).all()
    faults = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()
              if json.loads(line)["event"] == "fault"]
    assert len(faults) == 1 and "restored the last good weights" in faults[0]["message"]


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


def test_cpu_seconds_are_the_process_clock_of_the_loop_and_survive_a_resume(monkeypatch):
    # A fake process clock that only the loss function moves (1.5 CPU seconds per step), so the
    # expected totals are known exactly: 4 steps = 6.0, whether run at once or resumed after 2.
    import copy
    import time

    from minift.trainer import TrainState

    clock = {"now": 100.0}
    monkeypatch.setattr(time, "process_time", lambda: clock["now"])
    model, batches, good_loss = linear_problem()

    def loss_fn(m, batch):
        clock["now"] += 1.5
        return good_loss(m, batch)

    config = TrainConfig(max_steps=4, eval_every=2, log_every=2, lr=0.05, warmup_steps=0)
    saved = []
    state = train_stage(model, AdamW(model.parameters(), lr=0.05), batches, loss_fn, config,
                        save_state=lambda s: saved.append(copy.deepcopy(s.to_dict())))
    assert state.cpu_seconds == pytest.approx(6.0)
    at_step_2 = next(s for s in saved if s["step"] == 2)
    assert at_step_2["cpu_seconds"] == pytest.approx(3.0)

    clock["now"] = 5000.0  # a new process: its clock starts anywhere
    model2, _, _ = linear_problem()
    resumed = train_stage(model2, AdamW(model2.parameters(), lr=0.05), batches, loss_fn, config,
                          state=TrainState.from_dict(at_step_2))
    assert resumed.step == 4 and resumed.cpu_seconds == pytest.approx(6.0)


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

    class HalfWrite:  # the disk fills up in the middle of the line
        def __init__(self, f):
            self.f = f

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

        def __getattr__(self, name):
            return getattr(self.f, name)

        def write(self, data):
            self.f.write(data[: len(data) // 2])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(minift.trainer, "open", lambda *a, **k: HalfWrite(builtins.open(*a, **k)), raising=False)
    with pytest.raises(MiniftError, match="log.jsonl: cannot append to the log \\(No space left on device\\)"):
        log.write({"event": "train", "step": 2, "loss": 1.5})
    assert path.read_bytes() == before
    assert [r["step"] for r in RunLog(path).records] == [1]

