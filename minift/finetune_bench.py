"""What a fine-tuning step costs on real task batches, beside the pretraining-shape step.

Part of ``minift bench`` (section ``finetune``). Fine-tuning is most of an experiment's cost, and
its batches are not the train section's full blocks of random tokens: each row is a prompt and a
completion of its own length, right-padded to the longest row of the batch, and only the
completion (and the closing <|endoftext|>) is graded. So one step has three token counts:

    graded    targets != -100: what the loss asks for (the completion tokens and eot)
    all       non-padding input tokens: what the model reads (prompt + completion)
    padded    B·T positions: what the hardware computes, padding included

and graded <= all <= padded. The section reports each per second, and the padding fraction
1 - all / padded (the share of the arithmetic spent on padding).

Nothing here is a second copy of the training code. The step is the ``full`` recipe's stage
(batch 16, its dropout, weight decay, gradient clip and AdamW; ``setup_strategy`` and
``stage_optimizer``), on the task's training split as ``run_stage`` reads it (``stage_examples``),
encoded and batched as it does (``encode_stage_examples``, ``stage_batches``: rows drawn with
replacement, collated, right-padded), and run as ``train_stage`` runs it: ``trainer.step_loss``
over ``finetune.stage_loss`` (the Trainable's forward with the chunked loss) and
``trainer.apply_update`` (backward, clip, AdamW step). One untimed warm-up step, then ``steps``
timed steps, each on a fresh batch: the batch generator is seeded with ``seed``, its first draw is
the warm-up's batch. The drawing and collating of a batch is inside the timed step, as in training.
The learning rate stays the stage's peak (no warm-up schedule): it does not change the cost.
"""
from __future__ import annotations

import time

import torch

from minift.errors import MiniftError

DEFAULT_TASK = "translation"
RECIPE = "full"


def check_task(task: str) -> None:
    from minift.tasks import task_names

    if task not in task_names():
        raise MiniftError(f"--task: unknown task {task!r}; choose one of {', '.join(task_names())}")


def bench_finetune(device="cpu", steps: int = 10, task: str = DEFAULT_TASK, base: str = "base",
                   batch: int | None = None, compile: bool = False, seed: int = 0,
                   examples: int | None = None, length_buckets: int = 1) -> dict:
    """Time the full recipe's fine-tuning step on ``task``'s training batches.

    ``examples``: the size of the training split the rows are drawn from (as ``--examples`` sets
    it for a run; default the recipe's, 1000). ``length_buckets``: as the stage field, batches drawn
    from groups of similar lengths (1: from all examples, as the recipe does).

    Returns the setting, one record per timed step (seconds, graded, tokens, positions, T), and
    the totals as rates: graded_tokens_per_s, tokens_per_s (all non-padding input tokens),
    padded_positions_per_s (B·T), padding_fraction; on CUDA the allocator's peak memory.
    """
    from minift.timing import sync
    from minift.finetune import (RunOptions, encode_stage_examples, set_dropout, setup_strategy, stage_batches,
                                 stage_examples, stage_loss, stage_optimizer, stage_train_config,
                                 stage_train_size, start_bundle)
    from minift.schedule import load_recipe
    from minift.trainer import RunLog, apply_update, step_loss

    check_task(task)
    if steps < 1:
        raise MiniftError(f"--steps must be >= 1, got {steps}")
    recipe = load_recipe(RECIPE)
    stage = recipe.stages[0]
    batch_size = stage.batch_size if batch is None else batch
    if batch_size < 1:
        raise MiniftError(f"--batch must be >= 1, got {batch_size}")
    if length_buckets < 1 or (examples is not None and examples < 1):
        raise MiniftError(f"--length-buckets and --examples must be >= 1, got {length_buckets} and {examples}")
    opts = RunOptions(out="", task=task, device=device, compile=compile, examples=examples)
    ctx = opts.dist  # one process
    train = stage_examples(recipe, stage, opts, "train", stage_train_size(recipe, stage, opts), seed)
    bundle = start_bundle(base, device, seed)
    torch.manual_seed(seed)  # dropout
    set_dropout(bundle.model, stage.dropout)
    module, setup = setup_strategy(stage, bundle, train, RunLog(quiet=True), seed)
    row_prompts = setup.row_names
    optimizer = stage_optimizer(setup.groups, stage, compile=compile)
    trainable = [p for g in optimizer.param_groups for p in g["params"]]
    encoded, truncated, dropped = encode_stage_examples(bundle, train, row_prompts)
    if not encoded:
        raise MiniftError(f"{task}: no training example fits the block of {bundle.model.config.block_size} tokens")
    batches = stage_batches(encoded, batch_size, bundle.tokenizer.pad_id, ctx, device, length_buckets)
    config = stage_train_config(stage)
    train_module = torch.compile(module) if compile else module
    module.train()
    generator = torch.Generator().manual_seed(seed)
    cuda = torch.device(device).type == "cuda"

    def step() -> dict:
        t = time.perf_counter()
        b = batches(generator)
        loss, graded = step_loss(train_module, b, lambda m, x: stage_loss(x, m, device, ctx), config, trainable,
                                 device)
        apply_update(loss, optimizer, trainable, config.grad_clip)
        sync(device)
        seconds = time.perf_counter() - t
        return {"seconds": seconds, "graded": int(graded), "tokens": int(b.attention_mask.sum()),
                "positions": b.input_ids.numel(), "T": b.input_ids.size(1), "loss": float(loss.detach())}

    if cuda:
        torch.cuda.reset_peak_memory_stats()
    # Warm-up outside the timing. Compiled, two steps: the first compiles for its exact shape, the
    # second (another padded length) for every length at once (dynamic shapes); after that, no step
    # compiles again.
    for _ in range(2 if compile else 1):
        step()
    records = [step() for _ in range(steps)]
    seconds = sum(r["seconds"] for r in records)
    graded, tokens, positions = (sum(r[k] for r in records) for k in ("graded", "tokens", "positions"))
    c = bundle.model.config
    return {"task": task, "base": base, "recipe": RECIPE, "strategy": stage.strategy, "device": str(device),
            "threads": torch.get_num_threads(), "compile": compile, "batch": batch_size, "seed": seed,
            "length_buckets": length_buckets,
            "config": {k: getattr(c, k) for k in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd")},
            "params": sum(p.numel() for p in bundle.model.parameters()),
            "examples": len(encoded), "truncated_prompts": truncated, "skipped_examples": dropped,
            "steps": records, "step_seconds": seconds / steps, "mean_T": positions / (steps * batch_size),
            "graded_tokens_per_s": graded / seconds, "tokens_per_s": tokens / seconds,
            "padded_positions_per_s": positions / seconds, "padding_fraction": 1 - tokens / positions,
            "peak_memory_bytes": torch.cuda.max_memory_allocated() if cuda else None}


def step_rows(finetune: dict, train: dict | None = None) -> list[dict]:
    """The comparison table: the pretraining-shape step (every position a real, graded token)
    when the train section ran, then the fine-tuning step."""
    def model(cfg):
        return f"L{cfg['n_layer']} C{cfg['n_embd']} V{cfg['vocab_size']}"

    rows = []
    if train is not None:
        rate = train["tokens_per_s"]
        rows.append({"step": "train (pretraining shape)", "model": model(train["config"]), "batch": train["batch"],
                     "T": train["config"]["block_size"], "ms/step": train["step_seconds"] * 1000,
                     "graded tok/s": rate, "all tok/s": rate, "padded pos/s": rate, "padding": "0%"})
    f = finetune
    rows.append({"step": f"finetune ({f['task']})", "model": model(f["config"]), "batch": f["batch"],
                 "T": round(f["mean_T"], 1), "ms/step": f["step_seconds"] * 1000,
                 "graded tok/s": f["graded_tokens_per_s"], "all tok/s": f["tokens_per_s"],
                 "padded pos/s": f["padded_positions_per_s"], "padding": f"{f['padding_fraction']:.0%}"})
    return rows


def print_finetune(finetune: dict, train: dict | None = None) -> None:
    from minift.tables import print_table

    f = finetune
    print(f"finetune    the {f['recipe']} recipe's step ({f['strategy']}) on {f['task']} training batches: "
          f"{f['base']} ({f['params']:,} parameters), batch {f['batch']}, {len(f['steps'])} steps on {f['device']} "
          f"({f['threads']} threads{', compiled' if f['compile'] else ''})"
          + ("" if f["peak_memory_bytes"] is None else f", peak memory {f['peak_memory_bytes'] / 2**30:.2f} GiB"))
    print(f"  {f['examples']} examples ({f['truncated_prompts']} prompts cut, {f['skipped_examples']} skipped), "
          f"{'batches from all of them' if f.get('length_buckets', 1) == 1 else str(f['length_buckets']) + ' length buckets'}; "
          f"T is the padded length (mean over steps); graded = targets != -100, all = non-padding inputs")
    rows = step_rows(f, train)
    print_table(rows, list(rows[0]))
