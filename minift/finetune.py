"""Running a recipe: each stage sets what trains, trains, evaluates, and hands on its best weights.

For every stage of a recipe (``schedule.py``):

    1. data      the stage's training examples and a validation set of the same kind;
    2. strategy  the stage's strategy, from the registry (``minift/strategies/NAME.py``), sets what
                 trains: full (every weight), layers (chosen blocks and parts), prompt (soft prompts
                 on a frozen model), ...; it may add weights of its own and finish the stage (LoRA
                 merges its update);
    3. optimizer a fresh one (the stage's ``optimizer``: AdamW, or SGD with momentum) over exactly
                 the trainable weights;
    4. train     trainer.train_stage, with early stopping and a resume point every eval, for the
                 stage's step budget (``stage_steps``: max_steps, or epochs between a floor and a
                 cap); ``stop_reason`` records why it ended (early stop, cap, completed);
    5. after     the best weights are restored, the task metrics are measured on the validation
                 split, and the stage's checkpoint is written to ``stages/N-NAME/``.

The run folder then holds ``model.pt`` (+ ``prompts/``), which ``minift.load_model(DIR)`` reads,
``summary.json`` (one entry per stage: what trained, how much it cost, what it reached),
``log.jsonl``, ``loss.svg`` and ``report.md`` (``report.py``: the run for a human to read).
``--resume`` continues a killed run from its last resume point and ends with the same weights as a
run that was never interrupted; ``plan.json``, written when the run starts, makes sure it resumes
under the settings it started with (``run_plan``: the stages as they train, base, data, seed).

Tutorials 06–09 run stages through ``run_recipe``.
"""
from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import torch
import torch.nn as nn

from minift import distributed
from minift.bundle import ModelBundle, load_model
from minift.checkpoint import save_checkpoint
from minift.errors import MiniftError
from minift.evaluate import evaluate_examples, teacher_forced_loss
from minift.io import atomic_torch_save, atomic_write_json, usable_folder
from minift.model import GPT
from minift.optim import SGD, AdamW, optimizer_state_bytes
from minift.schedule import SGD_MOMENTUM, Recipe, Stage, check_against_model
from minift.tasks import MAIN_METRIC, collate, encode_example, load_examples
from minift.trainer import LOWER_IS_BETTER, RunLog, TrainConfig, TrainState, train_stage


class Trainable(nn.Module):
    """The GPT and its soft prompts as one module, so the trainer snapshots and restores both."""

    def __init__(self, model: GPT, prompts: dict):
        super().__init__()
        self.gpt = model
        self.prompts = nn.ModuleDict(prompts)

    def forward(self, input_ids, prompt_names, targets=None, reduction: str = "mean"):
        """Logits (B, T, V) for the token positions (a DDP wrapper calls this).

        With targets (B, T), the training loss instead (reduction "mean" or "sum" over the graded
        tokens), from the final hidden states by ``GPT.head_loss``: the logits are never held whole
        (``minift/loss.py``). Inside forward, so DDP and torch.compile see the loss too.
        """
        from minift.strategies.prompt import forward_with_prompts

        if targets is None:
            return forward_with_prompts(self.gpt, dict(self.prompts), input_ids, prompt_names)
        hidden = forward_with_prompts(self.gpt, dict(self.prompts), input_ids, prompt_names, return_hidden=True)
        return self.gpt.head_loss(hidden, targets, reduction=reduction)


def set_dropout(model: GPT, p: float) -> None:
    """Change the dropout rate of every dropout layer (and the fused attention's) in place."""
    model.config.dropout = p
    for module in model.modules():
        if isinstance(module, nn.Dropout):
            module.p = p
        if hasattr(module, "attn_impl") and hasattr(module, "dropout"):
            module.dropout = p


def reset_peak_memory(device) -> None:
    """Start a stage's count of peak memory (CUDA only: a process's peak RSS cannot be reset)."""
    if torch.device(device).type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory(device) -> tuple[int | None, str]:
    """(bytes, what they measure): the stage's peak CUDA allocation, else the process's peak RSS.

    On CUDA, ``torch.cuda.max_memory_allocated`` since ``reset_peak_memory``: the tensors of this
    stage. Elsewhere, ``getrusage(RUSAGE_SELF).ru_maxrss``: the largest resident set of the whole
    process so far (Python, torch and earlier stages included), which can only grow; None where the
    ``resource`` module does not exist (Windows).
    """
    if torch.device(device).type == "cuda":
        return int(torch.cuda.max_memory_allocated(device)), "CUDA max_memory_allocated of the stage"
    try:
        import resource
    except ImportError:
        return None, "not measured"
    import sys

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024), "peak RSS of the process so far"  # macOS: bytes


@dataclasses.dataclass
class RunOptions:
    """What the command line can override in a recipe."""

    out: str
    task: str | None = None
    data: str | None = None
    examples: int | None = None
    max_steps: int | None = None
    seed: int | None = None
    device: str = "cpu"
    resume: bool = False
    quiet: bool = False
    base: str | None = None
    eval_limit: int | None = None  # validation examples for the after-stage metrics
    dist: distributed.DistContext = dataclasses.field(default_factory=distributed.DistContext)
    compile: bool = False  # torch.compile the training module and the AdamW update (worth it on GPUs; SGD's is not)


def start_bundle(base: str, device, seed: int) -> ModelBundle:
    """Load the base; 'scratch' means the base's shape and tokenizer with fresh random weights."""
    if base == "scratch":
        bundle = load_model("base", device=device)
        torch.manual_seed(seed)
        bundle.model = GPT(dataclasses.replace(bundle.model.config)).to(device)
        bundle.meta = {"kind": "scratch"}
        return bundle
    return load_model(base, device=device)


def stage_examples(recipe: Recipe, stage: Stage, opts: RunOptions, split: str, n: int | None, seed: int):
    """The examples a stage trains (split='train') or is checked (split='val') on."""
    data_file = opts.data or recipe.data
    if stage.data not in ("all",) and (stage.data.endswith(".jsonl") or Path(stage.data).is_file()):
        data_file, subset = stage.data, None
    else:
        subset = None if stage.data == "all" else stage.data
    task = opts.task or recipe.task
    if data_file is not None:
        examples = load_examples(task=None, data=data_file, subset=subset)
        # A user's file has no splits: hold out the last tenth (at least one) for validation.
        cut = max(1, len(examples) // 10)
        if len(examples) < 2:
            raise MiniftError(f"{data_file}: needs at least 2 examples (one is held out for validation)")
        examples = examples[:-cut] if split == "train" else examples[-cut:]
        return examples[:n] if n else examples
    return load_examples(task=task, split=split, n=n, seed=seed, subset=subset)


def setup_strategy(stage: Stage, bundle: ModelBundle, train_examples, log: RunLog, seed: int):
    """Set what trains for the stage, by its registered strategy (``minift/strategies/``);
    returns (module, StageSetup)."""
    method = stage.method
    if method.changes_base and bundle.prompts:
        # A soft prompt (or prefix) is tuned to the exact base weights below it; once they train, it is stale.
        log.progress(f"[{stage.name}] dropping soft prompts and prefixes {', '.join(bundle.prompts)}: this stage changes "
                     f"the weights they were tuned on")
        bundle.prompts.clear()
    setup = method.setup(stage, bundle, train_examples, log, seed)
    return Trainable(bundle.model, dict(bundle.prompts)), setup


def stage_optimizer(groups, stage: Stage, compile: bool = False) -> torch.optim.Optimizer:
    """The stage's optimizer over ``groups``: AdamW, or SGD with the stage's momentum (default 0.9).

    Each group's own weight_decay (0 for biases and LayerNorm, see ``optim.param_groups``) wins over
    the stage's. ``compile`` (``--compile``) fuses AdamW's update only; SGD's loop is left as it is.
    """
    if stage.optimizer == "sgd":
        momentum = SGD_MOMENTUM if stage.momentum is None else stage.momentum
        return SGD(groups, lr=stage.lr, momentum=momentum, weight_decay=stage.weight_decay)
    if stage.optimizer != "adamw" or stage.momentum is not None:  # parse_stage refuses both already
        raise MiniftError(f"stage '{stage.name}': optimizer {stage.optimizer!r} with momentum {stage.momentum!r}: "
                          f"allowed: adamw (no momentum) or sgd")
    return AdamW(groups, lr=stage.lr, weight_decay=stage.weight_decay, compile=compile)


def stage_loss(batch, train_module, device, ctx: distributed.DistContext):
    """Mean loss over the graded tokens of the *global* batch (see distributed.py), and their count."""
    batch = batch.to(device)
    n_local = int((batch.targets != -100).sum())
    if not ctx.enabled:
        return train_module(batch.input_ids, batch.prompt_names, targets=batch.targets), n_local
    n_total = distributed.all_reduce_sum(n_local, ctx, device)
    # The sum over this rank's graded tokens (0, still attached to every weight, if it has none).
    token_sum = train_module(batch.input_ids, batch.prompt_names, targets=batch.targets, reduction="sum")
    return token_sum * ctx.world_size / max(n_total, 1.0), int(n_total)


def stage_train_config(stage: Stage) -> TrainConfig:
    """The trainer's knobs (lr, warmup, clip, penalties, early stopping...) as the stage sets them."""
    return TrainConfig(**{k: getattr(stage, k) for k in TrainConfig.field_names()})


DEFAULT_EXAMPLES = 1000  # training examples of a stage when neither --examples, the stage nor the recipe says


def stage_train_size(recipe: Recipe, stage: Stage, opts: RunOptions) -> int:
    """How many training examples a stage draws from: --examples (the experiment's knob) overrides
    every stage; then the stage's own, then the recipe's, else 1000."""
    return opts.examples or stage.examples or recipe.examples or DEFAULT_EXAMPLES


def encode_stage_examples(bundle: ModelBundle, examples, row_prompts) -> tuple[list, int, int]:
    """(encoded examples, prompts cut from the left, examples skipped) for a stage's training rows.

    Every row gets room for the widest soft prompt of the stage (its ``positions``; a prefix takes
    none), since rows with different prompts share batches; ``tasks.encode_example`` cuts a long prompt from the left and gives None for an
    example whose answer alone does not fit (skipped and counted).
    """
    tok, block = bundle.tokenizer, bundle.model.config.block_size
    encoded, truncated, dropped = [], 0, 0
    widest = max((bundle.prompts[n].positions for n in row_prompts if n), default=0)
    for e, name in zip(examples, row_prompts):
        enc = encode_example(tok, e.prompt, e.completion, block - widest, prompt_name=name)
        if enc is None:
            dropped += 1
            continue
        truncated += enc.truncated
        encoded.append(enc)
    return encoded, truncated, dropped


def length_groups(encoded, groups: int, batch_size: int) -> list[list[int]]:
    """The indices of ``encoded`` sorted by length and cut into ``groups`` runs of (nearly) equal count.

    Fewer groups when the data is small: each keeps at least ``4 * batch_size`` examples, so a batch
    drawn from one group is still a mix (a group of 6 would repeat rows in every batch of 16).
    """
    groups = max(1, min(groups, len(encoded) // (4 * batch_size)))
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i].ids))
    return [order[len(order) * g // groups: len(order) * (g + 1) // groups] for g in range(groups)]


def stage_batches(encoded, batch_size: int, pad_id: int, ctx: distributed.DistContext, device,
                  length_buckets: int = 1):
    """``batches(generator)`` for the trainer: ``batch_size`` rows drawn with replacement from
    ``encoded`` by the stage's generator, this rank's share kept, collated (right-padded, targets
    -100 on prompt and padding), in page-locked memory when the device is a CUDA GPU.

    With ``length_buckets`` = k > 1 (the stage's field), the examples are first cut into k groups
    by length (``length_groups``); a batch picks group g with probability |g| / N, then draws its
    rows uniformly within g. Each example is still drawn with probability 1/N per row, so the
    stage sees the same data as before, in batches of similar lengths: a batch is padded to its
    longest row, and a batch of equals wastes little on padding (the finetune bench measures the
    padding fraction). The price is batches less mixed than fully random ones.
    """
    pin = torch.device(device).type == "cuda"
    groups = length_groups(encoded, length_buckets, batch_size) if length_buckets > 1 else []
    if len(groups) < 2:
        groups = None  # one group is all of the data: draw as without buckets
    weights = torch.tensor([float(len(g)) for g in groups]) if groups else None

    def batches(generator):
        if groups:
            g = groups[int(torch.multinomial(weights, 1, generator=generator))]
            rows = [g[i] for i in torch.randint(0, len(g), (batch_size,), generator=generator).tolist()]
        else:
            rows = torch.randint(0, len(encoded), (batch_size,), generator=generator).tolist()
        rows = distributed.shard_rows(rows, ctx)  # every rank draws the same rows, keeps its share
        batch = collate([encoded[r] for r in rows], pad_id)
        return batch.pin_memory() if pin else batch

    return batches


def stage_steps(stage: Stage, n_examples: int, cap: int | None = None) -> tuple[int, bool]:
    """(steps, capped): the stage's step budget, and whether a cap cut what its budget asked for.

    Without ``epochs`` the stage trains its ``max_steps``. With ``epochs`` the budget follows the
    data, between a floor and a cap:

        steps = min(max(round(epochs * n_examples / batch_size), min_steps), max_steps)

    ``cap`` (``--max-steps``) then cuts either. ``capped`` is True when a cap, not the budget
    itself, decided the number: the stage was stopped short of what it asked for.
    """
    if stage.epochs is None:
        steps, capped = stage.max_steps, False
    else:
        wanted = max(round(stage.epochs * n_examples / stage.batch_size), stage.min_steps or 1, 1)
        steps, capped = min(wanted, stage.max_steps), wanted > stage.max_steps
    if cap and cap < steps:
        steps, capped = cap, True
    return steps, capped


STOP_REASONS = ("early_stop", "cap_still_improving", "cap", "completed", "fault")


def stop_reason(stopped: str, steps: int, max_steps: int, capped: bool, best_step: int) -> str:
    """Why a stage ended, as one of STOP_REASONS.

    early_stop           patience ran out: the monitor stopped improving;
    fault                a non-finite loss stopped it (trainer.py);
    cap_still_improving  it trained to a cap (``capped``) and its *last* evaluation was its best,
                         beating the one before by more than min_delta: more steps might have helped;
    cap                  it trained to a cap, but its best evaluation came earlier;
    completed            it trained the steps its own budget asked for.
    """
    if stopped.startswith("early stop"):
        return "early_stop"
    if stopped:
        return "fault"
    if capped and steps >= max_steps:
        return "cap_still_improving" if best_step == steps else "cap"
    return "completed"


def run_stage(i: int, stage: Stage, recipe: Recipe, opts: RunOptions, bundle: ModelBundle, log: RunLog,
              step_offset: int, resume_state: dict | None, seed: int, out: Path, completed: list,
              before_metrics: dict) -> dict:
    device = opts.device
    reset_peak_memory(device)
    train_examples = stage_examples(recipe, stage, opts, "train", stage_train_size(recipe, stage, opts), seed)
    val_examples = stage_examples(recipe, stage, opts, "val", stage.eval_examples, seed)
    torch.manual_seed(seed * 1000 + i)  # dropout and prompt init of this stage
    set_dropout(bundle.model, stage.dropout)
    module, setup = setup_strategy(stage, bundle, train_examples, log, seed * 1000 + i)
    groups, row_prompts = setup.groups, setup.row_names
    optimizer = stage_optimizer(groups, stage, compile=opts.compile)

    tok, block = bundle.tokenizer, bundle.model.config.block_size
    encoded, truncated, dropped = encode_stage_examples(bundle, train_examples, row_prompts)
    if not encoded:
        raise MiniftError(f"stage '{stage.name}': no training example fits the block of {block} tokens")
    if truncated or dropped:
        log.progress(f"[{stage.name}] {truncated} prompts cut from the left to fit the block; "
                     f"{dropped} examples whose answer alone does not fit were skipped")

    max_steps, capped = stage_steps(stage, len(encoded), opts.max_steps)
    config = stage_train_config(stage)
    config.max_steps, config.eval_every = max_steps, min(stage.eval_every, max_steps)
    config.log_every = min(config.log_every, max_steps)
    ctx = opts.dist
    batches = stage_batches(encoded, stage.batch_size, tok.pad_id, ctx, device, stage.length_buckets)

    def evaluate(m: Trainable):
        result = {"val_loss": teacher_forced_loss(bundle, val_examples)}
        if stage.monitor not in LOWER_IS_BETTER:
            result.update(evaluate_examples(bundle, val_examples)["metrics"])
        return result

    trainable_names = sorted({n for g in groups for n in g["names"]})
    total_params = sum(p.numel() for p in module.parameters())
    n_trainable = sum(p.numel() for g in groups for p in g["params"])
    log.progress(f"[{stage.name}] {stage.strategy}: {n_trainable:,} of {total_params:,} parameters train "
                 f"({100 * n_trainable / total_params:.2f}%), {len(encoded)} examples, {max_steps} steps")

    def save_state(state: TrainState):
        if not ctx.is_main:
            return
        atomic_torch_save(out / "resume.pt", {"stage_index": i, "step_offset": step_offset, "completed": completed,
                                              "before": before_metrics, "train_state": state.to_dict()})

    state = TrainState.from_dict(resume_state) if resume_state else None
    compiled = torch.compile(module) if opts.compile else module
    train_module = distributed.wrap(compiled, ctx, device, find_unused=setup.find_unused)
    state = train_stage(module, optimizer, batches, lambda m, b: stage_loss(b, m, device, ctx), config,
                        evaluate=evaluate, stage=stage.name, seed=seed * 1000 + i, log=log,
                        step_offset=step_offset, state=state, save_state=save_state, before_step=setup.before_step,
                        device=device, train_module=train_module)
    if state.stopped:
        log.progress(f"[{stage.name}] {state.stopped}")
    stage_dir = out / "stages" / f"{i}-{stage.name}"
    finished = stage.method.finish(stage, bundle, setup, stage_dir if ctx.is_main else None)
    bundle.model.eval()
    report = evaluate_examples(bundle, stage_examples(recipe, stage, opts, "val", opts.eval_limit or 100, seed))
    if ctx.is_main:
        save_bundle(stage_dir, bundle, {"stage": stage.name, "recipe": recipe.name})
    distributed.barrier(ctx)
    peak_bytes, peak_kind = peak_memory(device)
    return {
        "name": stage.name, "strategy": stage.strategy, "data": stage.data, "optimizer": stage.optimizer,
        "examples": len(encoded), "trainable_params": n_trainable, "total_params": total_params,
        "trainable_names": trainable_names, "optimizer_state_bytes": optimizer_state_bytes(optimizer),
        "steps": state.step, "seconds": round(state.elapsed, 2), "tokens": state.tokens,
        "best_val_loss": state.best_value if config.monitor == "val_loss" else state.last_eval.get("val_loss"),
        "best_step": state.best_step, "monitor": config.monitor, "stopped": state.stopped or "completed",
        "max_steps": max_steps, "capped": capped, "lr": stage.lr,
        "stop_reason": stop_reason(state.stopped, state.step, max_steps, capped, state.best_step),
        "truncated_prompts": truncated, "skipped_examples": dropped,
        "metrics": report["metrics"], "main_metric": report["main_metric"], "samples": report["samples"][:5],
        "checkpoint": str(stage_dir / "model.pt"),
        "cpu_seconds": round(state.cpu_seconds, 2),
        "tokens_per_s": round(state.tokens / state.elapsed, 1) if state.elapsed > 0 else None,
        "peak_memory_bytes": peak_bytes, "peak_memory_kind": peak_kind, **finished,
    }


def save_bundle(folder: Path, bundle: ModelBundle, meta: dict) -> None:
    from minift.strategies.prefix import save_state  # a soft prompt or a prefix, by its kind

    save_checkpoint(folder / "model.pt", bundle.model, bundle.tokenizer, meta={**bundle.meta, **meta})
    for name, state in bundle.prompts.items():
        save_state(folder / "prompts" / f"{name}.pt", state, bundle.model, name)


def run_plan(recipe: Recipe, opts: RunOptions, seed: int, base: str, task) -> dict:
    """What a resumed run must share with the run it continues (OUT/plan.json): the recipe's
    stages as they will train (rates already scaled by ``--lr-scale``, budgets by ``--protocol``),
    the base, data, size, seed and the overrides. Not the device: a run may move to another."""
    plan = {"recipe": recipe.name, "base": str(base), "task": task, "data": opts.data or recipe.data,
            "examples": opts.examples or recipe.examples, "seed": seed, "max_steps": opts.max_steps,
            "eval_limit": opts.eval_limit, "stages": [dataclasses.asdict(s) for s in recipe.stages]}
    return json.loads(json.dumps(plan, default=str))  # as the file will hold it (tuples as lists, ...)


def plan_differs(theirs: dict, ours: dict, where: str = "") -> str | None:
    """The first field where two plans differ, as ``stages[1].lr: 0.001 there, 0.003 here``; or None."""
    if isinstance(theirs, dict) and isinstance(ours, dict):
        for key in list(ours) + [k for k in theirs if k not in ours]:
            found = plan_differs(theirs.get(key), ours.get(key), f"{where}.{key}" if where else key)
            if found:
                return found
        return None
    if isinstance(theirs, list) and isinstance(ours, list) and len(theirs) == len(ours):
        for i, (a, b) in enumerate(zip(theirs, ours)):
            found = plan_differs(a, b, f"{where}[{i}]")
            if found:
                return found
        return None
    return None if theirs == ours else f"{where}: {theirs!r} there, {ours!r} here"


def check_resume_plan(out: Path, plan: dict) -> None:
    """Refuse to resume a run under other settings than it started with: its finished stages and
    its optimizer state belong to those, so the result would be neither run. (A run folder made
    before plan.json existed resumes unchecked.)"""
    path = out / "plan.json"
    if not path.exists():
        return
    try:
        theirs = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MiniftError(f"{path}: not readable JSON ({str(exc).splitlines()[0]}); use another --out") from None
    differs = plan_differs(theirs, plan)
    if differs:
        raise MiniftError(f"--resume: {out} was started with other settings ({differs}): resume with the "
                          f"recipe and options it started with (--lr-scale, --protocol, ...), or use another --out")


def run_recipe(recipe: Recipe, opts: RunOptions) -> dict:
    """Run every stage of ``recipe``; returns the summary (also written to OUT/summary.json)."""
    from minift.plot import plot_run
    from minift.report import run_environment, write_report

    out = usable_folder(opts.out, "--out run folder")  # before any work: a bad --out fails at once
    seed = opts.seed if opts.seed is not None else recipe.seed
    base = opts.base or recipe.base
    task = opts.task or recipe.task
    resume = None
    if opts.resume and (out / "resume.pt").exists():
        resume = torch.load(out / "resume.pt", map_location="cpu", weights_only=True)
    elif not opts.resume and (out / "summary.json").exists():
        raise MiniftError(f"{out} already holds a run: use --resume to continue it, or another --out")
    ctx = opts.dist
    plan = run_plan(recipe, opts, seed, base, task)
    if resume is not None:
        check_resume_plan(out, plan)  # before anything in the folder changes
    elif ctx.is_main:
        atomic_write_json(out / "plan.json", plan)
    log = RunLog(out / "log.jsonl", quiet=opts.quiet, enabled=ctx.is_main)
    if resume is None and (out / "log.jsonl").exists():
        log.truncate_after(-1)

    completed = list(resume["completed"]) if resume else []
    start = resume["stage_index"] if resume else 0
    if completed:  # continue from the last finished stage's weights
        bundle = load_model(out / "stages" / f"{len(completed) - 1}-{completed[-1]['name']}", device=opts.device)
    else:
        bundle = start_bundle(base, opts.device, seed)
    check_against_model(recipe, bundle.model.config)
    summary = {"base": base, "recipe": recipe.name, "recipe_source": recipe.source, "task": task,
               "data": opts.data or recipe.data, "seed": seed, "device": str(opts.device),
               "examples": opts.examples or recipe.examples, **run_environment()}
    if resume:
        before = resume["before"]
    else:
        val = stage_examples(recipe, recipe.stages[0], dataclasses.replace(opts), "val", opts.eval_limit or 100, seed)
        bundle.model.eval()
        before = evaluate_examples(bundle, val)["metrics"]
        log.progress(f"before: {', '.join(f'{k} {v:.2f}' for k, v in before.items())}")
    summary["before"] = before
    t0 = time.time()
    for i in range(start, len(recipe.stages)):
        stage = recipe.stages[i]
        step_offset = sum(s["steps"] for s in completed)
        state = resume["train_state"] if (resume and i == start) else None
        if resume and i == start:
            step_offset = resume["step_offset"]
        result = run_stage(i, stage, recipe, opts, bundle, log, step_offset, state, seed, out, completed, before)
        completed.append(result)
        if ctx.is_main:
            atomic_torch_save(out / "resume.pt", {"stage_index": i + 1, "step_offset": step_offset + result["steps"],
                                                  "completed": completed, "before": before, "train_state": None})
        shown = ", ".join(f"{k} {v:.2f}" for k, v in result["metrics"].items())
        log.progress(f"[{stage.name}] done in {result['seconds']:.1f} s: {shown}")
    summary["stages"] = completed
    summary["seconds"] = round(sum(s["seconds"] for s in completed), 2)
    summary["wall_seconds_this_call"] = round(time.time() - t0, 2)
    summary["main_metric"] = MAIN_METRIC.get(task, "f1")
    summary["processes"] = ctx.world_size
    if ctx.is_main:
        save_bundle(out, bundle, {"recipe": recipe.name, "seed": seed, "task": task})
        atomic_write_json(out / "summary.json", summary)
        plot_run(out)
        write_report(out)
    distributed.barrier(ctx)
    return summary
