"""The training loop: one function that pretraining and every fine-tuning stage share.

One step, in the order a student should picture it:

    batch  = batches(generator)              draw B examples with the stage's own random generator
    loss   = loss_fn(model, batch)           mean cross-entropy over the graded tokens
             + l2_penalty(trainable, l2)     coupled L2, only if asked for (optim.py explains)
             + l1_penalty(matrices, l1)      L1 on the decayed weights only, only if asked for
    loss.backward()                          gradients flow only into parameters that require them
    clip_grad_norm(trainable, grad_clip)     one exploding batch cannot wreck the weights
    set_lr(optimizer, lr_at(step, ...))      warmup then cosine
    optimizer.step(); zero_grad()

``step_loss`` is the loss with its penalties, ``apply_update`` the backward, clip and update: the
loop runs them, and ``minift bench --only finetune`` times the same two on real task batches.

Every ``eval_every`` steps the model is evaluated (validation loss, and task metrics when the
caller provides them; the eval record also holds ``cpu_s``, the CPU seconds the stage has spent). *Early stopping* watches one of those numbers (``monitor``): an evaluation
that beats the best by more than ``min_delta`` resets the patience counter, anything else uses up
one unit of ``patience``; when patience runs out the stage stops, and with ``restore_best`` the
best weights are put back. Tutorial 10 (section 5) shows why the monitor matters: fine-tuning on
300 translation pairs, its run prints the validation *loss* lowest at step 80 and the *task metric*
(BLEU) best at step 140, 5.5 points higher, and a full run of the lesson asserts that the best BLEU
comes after the lowest loss (``python tutorials/10_evaluation.py``).

Faults: a NaN or infinite loss stops the stage at once, puts back the last good weights (those of
the last evaluation) and says so in the log; training never silently continues on NaN.

Resume: ``TrainState`` holds everything the loop needs to continue exactly where it was — weights,
optimizer moments, the batch generator's and dropout's random states, step, best-so-far and
patience. The caller saves it atomically every ``checkpoint_every`` steps; a run killed at any
moment (even mid-write, see ``io.py``) resumes and ends with the same weights as an uninterrupted
run (``tests/test_resume.py``).

Used by ``minift pretrain`` (tutorial 05) and by every stage of ``minift finetune`` (06–09).
"""
from __future__ import annotations

import copy
import math
import sys
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field, fields
from typing import Callable

import torch

from minift.errors import MiniftError
from minift.io import atomic_write_text, read_jsonl
from minift.optim import clip_grad_norm, decayed, l1_penalty, l2_penalty, lr_at, set_lr

LOWER_IS_BETTER = {"val_loss", "loss", "bpc", "perplexity"}


@dataclass
class TrainConfig:
    """The knobs of one training stage (a recipe's stage fills these; see schedule.py)."""

    max_steps: int = 1000
    """Optimizer steps in the stage (an upper bound when early stopping is on)."""
    batch_size: int = 16
    """Examples per step."""
    lr: float = 1e-3
    """Peak learning rate, reached after warmup."""
    warmup_steps: int = 20
    """Steps of linear warmup from ~0 to lr."""
    min_lr_ratio: float = 0.1
    """The cosine decays to lr * min_lr_ratio at max_steps."""
    weight_decay: float = 0.1
    """Weight decay on matrices (decoupled under AdamW, coupled under SGD); biases and LayerNorm are never decayed."""
    l2: float = 0.0
    """Coupled L2 penalty 0.5 * l2 * ||θ||² added to the loss (0 = off)."""
    l1: float = 0.0
    """L1 penalty l1 * Σ|w| over the decayed weights (matrices) added to the loss (0 = off)."""
    grad_clip: float = 1.0
    """Clip the global gradient norm to this (0 = off)."""
    eval_every: int = 50
    """Evaluate (and maybe stop early, and checkpoint) every this many steps, and at the end."""
    log_every: int = 10
    """Write a train record and a progress line every this many steps."""
    patience: int | None = None
    """Evaluations without improvement before stopping; None = never stop early."""
    min_delta: float = 0.0
    """An improvement must beat the best by more than this."""
    monitor: str = "val_loss"
    """What early stopping and 'best' watch: val_loss (lower is better) or a task metric (higher)."""
    restore_best: bool = True
    """Put the best evaluated weights back at the end of the stage."""

    def to_dict(self):
        return asdict(self)

    @classmethod
    def field_names(cls):
        return [f.name for f in fields(cls)]


def is_better(value: float, best: float | None, monitor: str, min_delta: float) -> bool:
    """Strict improvement: beats ``best`` by more than ``min_delta`` in the monitor's direction."""
    if best is None:
        return True
    if monitor in LOWER_IS_BETTER:
        return value < best - min_delta
    return value > best + min_delta


@dataclass
class TrainState:
    """Everything needed to continue a stage exactly (saved for --resume)."""

    step: int = 0
    best_value: float | None = None
    best_step: int = -1
    best_weights: dict | None = None
    last_good_weights: dict | None = None
    bad_evals: int = 0
    last_eval: dict = field(default_factory=dict)
    elapsed: float = 0.0
    cpu_seconds: float = 0.0  # CPU time of this process (all its threads) in the stage, across resumes
    tokens: int = 0
    generator_state: torch.Tensor | None = None
    rng_state: torch.Tensor | None = None
    optimizer_state: dict | None = None
    model_weights: dict | None = None
    stopped: str = ""
    skipped: int = 0

    def to_dict(self):
        return asdict(self)

    @classmethod
    def from_dict(cls, d):
        return cls(**d)


class RunLog:
    """log.jsonl (one JSON object per line) plus human progress lines on stderr."""

    def __init__(self, path=None, quiet: bool = False, enabled: bool = True):
        self.path = path
        self.quiet = quiet
        self.enabled = enabled  # False on every rank but 0 in distributed training
        self.records: list[dict] = []
        if path is not None and enabled and path.exists():
            self.records = [r for r, _ in read_jsonl(path, what="log", skip_blank=True)]

    def write(self, record: dict):
        import json

        if not self.enabled:
            return
        if self.path is not None:
            line = (json.dumps(record) + "\n").encode("utf-8")
            with open(self.path, "ab", buffering=0) as f:  # unbuffered: every byte is in the file or refused
                end = f.tell()
                try:
                    written = 0
                    while written < len(line):
                        written += f.write(line[written:])
                except OSError as exc:  # a full disk: cut off the half line, keep every line before it
                    f.truncate(end)
                    raise MiniftError(f"{self.path}: cannot append to the log ({exc.strerror or exc})") from None
        self.records.append(record)

    def truncate_after(self, step: int, drop_stage: str | None = None):
        """On resume: forget records written after the checkpoint we resume from.

        ``drop_stage`` also forgets every record of that stage (a stage restarted from its start).
        """
        import json

        if not self.enabled:
            return
        keep = [r for r in self.records
                if r.get("step", 0) <= step and (drop_stage is None or r.get("stage") != drop_stage)]
        if len(keep) == len(self.records):
            return  # nothing to forget: leave the file alone
        self.records = keep
        if self.path is not None:
            atomic_write_text(self.path, "".join(json.dumps(r) + "\n" for r in keep))

    def progress(self, text: str):
        if self.enabled and not self.quiet:
            print(text, file=sys.stderr, flush=True)


def format_seconds(s: float) -> str:
    s = max(0, int(round(s)))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def snapshot(model) -> dict:
    """A detached copy of the weights (trainable or not) on the CPU."""
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def restore(model, weights: dict):
    model.load_state_dict(weights)


def autocast_for(device) -> object:
    """bf16 autocast on CUDA (tensor cores, fp32 master weights); plain fp32 elsewhere."""
    if torch.device(device).type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext()


def step_loss(module, batch, loss_fn, config: TrainConfig, trainable, device):
    """(loss to backpropagate, graded token count) of one batch: ``loss_fn`` (bf16 autocast on CUDA)
    plus the L2 and L1 penalties the config asks for. The first half of a step; ``train_stage`` and
    ``minift bench --only finetune`` both run it."""
    with autocast_for(device):
        loss, n_tokens = loss_fn(module, batch)
        if config.l2 > 0:
            loss = loss + l2_penalty([p for p in trainable if p.requires_grad], config.l2)
        if config.l1 > 0:  # the weights decay acts on, not biases and LayerNorm (optim.decayed)
            loss = loss + l1_penalty([p for p in trainable if p.requires_grad and decayed(p)], config.l1)
    return loss, n_tokens


def apply_update(loss, optimizer, trainable, grad_clip: float) -> None:
    """The second half of a step: backward, clip the global gradient norm (0 = off), update, clear."""
    loss.backward()
    if grad_clip > 0:
        clip_grad_norm([p for p in trainable if p.grad is not None], grad_clip)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def train_stage(
    model,
    optimizer,
    batches: Callable[[torch.Generator], object],
    loss_fn: Callable[[object, object], tuple[torch.Tensor, int]],
    config: TrainConfig,
    *,
    evaluate: Callable[[object], dict] | None = None,
    stage: str = "train",
    seed: int = 0,
    log: RunLog | None = None,
    step_offset: int = 0,
    state: TrainState | None = None,
    save_state: Callable[[TrainState], None] | None = None,
    checkpoint_every: int | None = None,
    before_step: Callable[[int], None] | None = None,
    device="cpu",
    train_module=None,
) -> TrainState:
    """Run one stage; returns its final TrainState (best value, steps done, why it stopped).

    batches(generator) -> batch; loss_fn(module, batch) -> (mean loss, graded token count).
    evaluate(model) -> {"val_loss": ..., other metrics}. save_state(state) persists a resume point.
    before_step(step) lets a strategy act between steps (gradual unfreezing).
    train_module: what loss_fn calls (a DDP wrapper in distributed runs); defaults to model.
    """
    log = log or RunLog(quiet=True)
    module = train_module if train_module is not None else model
    trainable = [p for g in optimizer.param_groups for p in g["params"]]
    generator = torch.Generator().manual_seed(seed)
    if state is None:
        state = TrainState()
        log.truncate_after(step_offset, drop_stage=stage)
        log.write({"event": "stage", "stage": stage, "step": step_offset})
    else:  # resume: put every piece of state back
        restore(model, state.model_weights)
        optimizer.load_state_dict(state.optimizer_state)
        generator.set_state(state.generator_state)
        torch.set_rng_state(state.rng_state)
        log.truncate_after(step_offset + state.step)
    checkpoint_every = checkpoint_every or config.eval_every
    t_start = time.time() - state.elapsed
    cpu_start = time.process_time() - state.cpu_seconds
    window_t, window_tokens, window_loss, window_n = time.time(), 0, 0.0, 0

    def run_eval():
        model.eval()
        with torch.no_grad():
            result = evaluate(model) if evaluate is not None else {}
        model.train()
        result = {k: float(v) for k, v in result.items()}
        state.last_eval = result
        state.last_good_weights = snapshot(model)
        # cpu_s: this process's CPU seconds since the stage began (resumes included), so a chart can
        # set what a run reached against what it spent (the experiment's equal-compute view).
        log.write({"event": "eval", "stage": stage, "step": step_offset + state.step,
                   "val_loss": result.get("val_loss"), "metrics": result,
                   "cpu_s": round(time.process_time() - cpu_start, 4)})
        value = result.get(config.monitor)
        if value is None:
            return
        if is_better(value, state.best_value, config.monitor, config.min_delta):
            state.best_value, state.best_step, state.bad_evals = value, state.step, 0
            state.best_weights = state.last_good_weights
        else:
            state.bad_evals += 1

    def persist():
        if save_state is None:
            return
        state.elapsed = time.time() - t_start
        state.cpu_seconds = time.process_time() - cpu_start
        state.generator_state = generator.get_state()
        state.rng_state = torch.get_rng_state()
        state.optimizer_state = copy.deepcopy(optimizer.state_dict())
        state.model_weights = snapshot(model)
        save_state(state)

    model.train()
    # A gradient the caller left on a weight (a probe's backward, an earlier loop) would be added
    # to the first step's: every step starts from none.
    optimizer.zero_grad(set_to_none=True)
    if state.step == 0 and evaluate is not None and state.best_value is None:
        run_eval()  # the starting point: the "before" of every before/after table
    while state.step < config.max_steps and not state.stopped:
        if before_step is not None:
            before_step(state.step)
        set_lr(optimizer, lr_at(state.step, config.lr, min(config.warmup_steps, config.max_steps),
                                config.max_steps, config.min_lr_ratio))
        batch = batches(generator)
        loss, n_tokens = step_loss(module, batch, loss_fn, config, trainable, device)
        if int(n_tokens) == 0:
            # Every target in this batch is masked (-100): the mean loss would be 0/0 = NaN.
            # Skip the update (the step still counts, so a run cannot loop forever on such data).
            optimizer.zero_grad(set_to_none=True)
            state.step += 1
            state.skipped += 1
            log.progress(f"[{stage}] warning: step {state.step}: every target in the batch is masked; skipped")
            continue
        if not math.isfinite(float(loss.detach())):
            state.stopped = f"non-finite loss ({float(loss.detach())}) at step {step_offset + state.step}"
            if state.last_good_weights is not None:
                restore(model, state.last_good_weights)
            log.write({"event": "fault", "stage": stage, "step": step_offset + state.step,
                       "message": state.stopped + "; restored the last good weights"})
            log.progress(f"[{stage}] stopped: {state.stopped}; restored the last good weights")
            break
        apply_update(loss, optimizer, trainable, config.grad_clip)
        state.step += 1
        state.tokens += int(n_tokens)
        window_tokens += int(n_tokens)
        window_loss += float(loss.detach())
        window_n += 1

        if state.step % config.log_every == 0 or state.step == config.max_steps:
            now = time.time()
            rate = window_tokens / max(now - window_t, 1e-9)
            elapsed = now - t_start
            left = elapsed / state.step * (config.max_steps - state.step)
            lr = optimizer.param_groups[0]["lr"]
            mean_loss = window_loss / window_n
            log.write({"event": "train", "stage": stage, "step": step_offset + state.step,
                       "loss": mean_loss, "lr": lr, "tokens_per_s": rate, "elapsed_s": elapsed})
            log.progress(f"[{stage}] step {state.step}/{config.max_steps} | loss {mean_loss:.4f} | "
                         f"lr {lr:.2e} | {rate:,.0f} tok/s | {format_seconds(left)} left")
            window_t, window_tokens, window_loss, window_n = now, 0, 0.0, 0

        if state.step % config.eval_every == 0 or state.step == config.max_steps:
            run_eval()
            shown = ", ".join(f"{k} {v:.4g}" for k, v in state.last_eval.items())
            log.progress(f"[{stage}] eval at step {state.step}: {shown}")
            if config.patience is not None and state.bad_evals >= config.patience:
                state.stopped = (f"early stop at step {state.step}: {config.monitor} did not improve "
                                 f"for {config.patience} evaluations")
                log.progress(f"[{stage}] {state.stopped}")
        if save_state is not None and (state.step % checkpoint_every == 0 or state.stopped
                                       or state.step == config.max_steps):
            persist()

    if config.restore_best and state.best_weights is not None and state.best_step != state.step:
        restore(model, state.best_weights)
    state.elapsed = time.time() - t_start
    state.cpu_seconds = time.process_time() - cpu_start
    return state
