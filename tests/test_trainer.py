"""The training loop: early stopping by the rules, best weights restored, NaN stops and restores."""
import json

import pytest
import torch
import torch.nn as nn

from minift.optim import AdamW
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
