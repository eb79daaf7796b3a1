"""``minift demo``: the main job. The hybrid recipe on every task, with the metrics before and after.

It loads the shipped base (``data/base``), runs ``recipes/hybrid.toml`` (full -> top layers ->
soft prompts) on translation, summarization and question answering, and prints, per task and per
stage, the task metrics on the validation split. The README states what it prints, and
``tests/test_demo.py`` checks a shrunken run.

What it trains on, and why (the README shows what ``minift demo`` prints with these settings):

* **20,000 examples per task.** The world generator makes as many as asked; at 16 a step the
  longest full stage (800 steps) sees 12,800 examples, so no example is seen twice and nothing
  can be memorised. Whether more data beats more passes at equal steps is the grid's question
  (``data/experiments/strategies/README.md``); this is the safe side of it.
* **Rates per task** (``DEMO_BUDGETS``): ``minift experiment lr-sweep --examples 1000`` (seed 0,
  rates x0.3/x1/x3 of each recipe's, extended to x10 or x0.1 where a winner sat at the edge;
  ``data/experiments/strategies/lr-sweep/lrs.md``) chose x3 for the hybrid schedule on
  translation (validation BLEU 39.1 against 29.3 at x1 and 31.0 at x10) and on summarization
  (ROUGE-L 85.1 against 84.4 at x1 and 76.1 at x10), and x0.3 on QA (F1 42.4 against 41.5 at
  x1). The demo keeps x3 for translation and summarization at its 20,000 examples; QA runs the
  recipe's rates (x1), within 1 F1 of the sweep's x0.3 at one seed, until the grid says more.
* **The three tasks side by side** (``demo_jobs``): on a CPU each task trains in a process of its
  own, the cores shared among them. Two independent one-thread runs train 1.31x the steps a
  second, together, of one process with two threads (``OMP_NUM_THREADS=2 minift bench --only ddp
  --steps 30``, "side by side", on 2 quiet cores).
* **Batches of similar lengths** (``DEMO_LENGTH_BUCKETS``, a stage's ``length_buckets``): a batch
  is padded to its longest row, and translation's random batches are 43% padding; drawn from 8
  groups of similar lengths they are 10% (summarization 16% -> 3%, QA 20% -> 5%; ``minift bench
  --only finetune --task TASK --examples 20000 --length-buckets 8``, against ``1``).
* **Steps per stage**: what fits 5 minutes on 2 CPU cores for the three tasks, most of it in
  the full stage, where the skill is learned; the README gives what the demo printed and how long
  it took. The top-layers and prompt stages are kept short, and the table shows what each did: in
  the demo's own run the prompt stage raises the validation loss on translation and summarization
  (its prompt takes the first positions, so the text sits where the fine-tuned model never saw it).
"""
from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

from minift.errors import MiniftError
from minift.io import usable_folder

# Training examples per task, and per task the steps of each stage (full, top layers, prompts) and the
# multiplier of the recipe's rates: what fits the 5-minute budget on 2 cores (the docstring says why).
DEMO_EXAMPLES = 20000
DEMO_BUDGETS = {
    "translation": ((700, 40, 30), 3.0),
    "summarization": ((800, 40, 30), 3.0),
    "qa": ((800, 40, 30), 1.0),
}
DEMO_LENGTH_BUCKETS = 8  # batches of similar lengths: a quarter to a half less padding (the docstring)
DEMO_EVAL_LIMIT = 100


def demo_recipe(task: str):
    """The hybrid recipe with the demo's steps per stage for ``task`` and its rates scaled for it."""
    stage_steps, lr_scale = DEMO_BUDGETS[task]
    import dataclasses

    from minift.schedule import load_recipe

    recipe = load_recipe("hybrid")
    if len(stage_steps) != len(recipe.stages):
        raise MiniftError(f"the demo's steps name {len(stage_steps)} stages; recipes/hybrid.toml has "
                          f"{len(recipe.stages)}")
    stages = [dataclasses.replace(s, max_steps=n, lr=s.lr * lr_scale, length_buckets=DEMO_LENGTH_BUCKETS)
              for s, n in zip(recipe.stages, stage_steps)]
    return dataclasses.replace(recipe, stages=stages)


def demo_jobs(n_tasks: int, device: str, jobs: int | None = None) -> tuple[int, int]:
    """(tasks run at once, threads each): every task at once on a CPU, the cores shared out.

    A model this small cannot keep two threads busy: two independent one-thread processes train
    1.31x the steps a second, together, of one process with two threads (``OMP_NUM_THREADS=2
    minift bench --only ddp --steps 30`` on 2 quiet cores), so on a CPU the tasks run side by side,
    one process each, sharing the cores. On a GPU they run one after another (one device, and a
    process each would hold its own copy of the CUDA context).
    """
    if jobs is None:
        jobs = 1 if str(device).startswith(("cuda", "mps")) else n_tasks
    jobs = max(1, min(jobs, n_tasks))
    cores = os.cpu_count() or 1
    return jobs, max(1, cores // jobs)


def _prepare(out: Path) -> bool:
    """Clear a finished run of one task; True when an interrupted one is there to resume."""
    if (out / "summary.json").exists() and (out / "resume.pt").exists():
        shutil.rmtree(out)  # a finished demo run of this task: start afresh
    return (out / "resume.pt").exists()


def _train_task(task: str, out: str, examples: int, max_steps, seed: int, device: str, eval_limit: int,
                threads: int | None, quiet: bool) -> dict:
    """One task's demo run (in this process, or in a worker of its own): the run's summary."""
    import torch

    from minift.finetune import RunOptions, run_recipe

    if threads is not None:
        torch.set_num_threads(threads)
    resume = _prepare(Path(out))
    opts = RunOptions(out=out, task=task, examples=examples, max_steps=max_steps, seed=seed, device=device,
                      quiet=quiet, resume=resume, eval_limit=eval_limit)  # an interrupted demo continues
    return run_recipe(demo_recipe(task), opts)


def _worker(task: str, out: str, *rest) -> dict:
    """A worker process: what it would print goes to OUT/<task>.log, and its summary comes back."""
    Path(out).mkdir(parents=True, exist_ok=True)
    with open(Path(out).parent / f"{task}.log", "w", encoding="utf-8") as log:
        sys.stdout = sys.stderr = log
        return _train_task(task, out, *rest)


def _progress(out_dir: Path, tasks: list[str], totals: dict) -> tuple[str, float]:
    """('translation full 300/500, ...', fraction of all steps done) from each run's log.jsonl."""
    parts, done = [], 0
    for task in tasks:
        stage, step, finished, start = None, 0, 0, 0  # the log's steps count on across stages
        log = out_dir / task / "log.jsonl"
        try:
            lines = log.read_text(encoding="utf-8").splitlines()
        except OSError:
            lines = []
        for line in lines:
            try:
                record = json.loads(line)
            except ValueError:
                continue  # the line being written
            if record.get("event") == "stage" and record.get("stage") != stage:
                if stage is not None:
                    finished += totals[task][stage]
                stage, step, start = record["stage"], 0, record.get("step", 0)
            elif record.get("event") == "train":
                step = record["step"] - start
        done += finished + step
        if stage is not None:
            parts.append(f"{task} {stage} {step}/{totals[task][stage]}")
        else:
            parts.append(f"{task} starting")
    everything = sum(sum(t.values()) for t in totals.values())
    return ", ".join(parts), done / everything if everything else 0.0


def run_demo(args, examples: int = DEMO_EXAMPLES, max_steps: int | None = None,
             eval_limit: int = DEMO_EVAL_LIMIT) -> dict:
    """Run the demo's hybrid recipe on each of ``args.tasks``; ``max_steps`` caps every stage (tests).

    On a CPU the tasks train side by side, one process each (``demo_jobs``); each task's table is
    printed, in the order of ``--tasks``, once it and the tasks before it have finished, and a
    progress line (each task's stage and step, the time left) goes to stderr meanwhile.
    """
    import time
    from concurrent.futures import ProcessPoolExecutor, wait
    import multiprocessing

    from minift.device import resolve_device
    from minift.tables import print_stage_table
    from minift.tasks import MAIN_METRIC, task_names

    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    for t in tasks:
        if t not in task_names():
            raise MiniftError(f"--tasks: unknown task '{t}': choose from {', '.join(task_names())}")
    out_dir = usable_folder(args.out, "--out folder")  # before any work: a bad --out fails at once
    device = resolve_device(args.device)
    jobs, threads = demo_jobs(len(tasks), device, getattr(args, "jobs", None))
    results, printed = {}, 0

    def report(task, summary):
        recipe = demo_recipe(task)
        print(f"\n=== {task}: recipe '{recipe.name}' ({' -> '.join(s.strategy for s in recipe.stages)}) ===",
              flush=True)
        print_stage_table(summary)
        main = MAIN_METRIC[task]
        print(f"{main}: {summary['before'][main]:.1f} before -> {summary['stages'][-1]['metrics'][main]:.1f} after",
              flush=True)

    if jobs == 1:
        for task in tasks:
            if not args.quiet:
                print(f"demo: {task} ...", file=sys.stderr, flush=True)
            results[task] = _train_task(task, str(out_dir / task), examples, max_steps, args.seed, device,
                                        eval_limit, None, args.quiet)
            report(task, results[task])
    else:
        from minift.finetune import stage_steps

        totals = {t: {s.name: min(stage_steps(s, examples)[0], max_steps or 10**9) for s in demo_recipe(t).stages}
                  for t in tasks}
        if not args.quiet:
            print(f"demo: {len(tasks)} tasks side by side, {threads} thread{'s' if threads > 1 else ''} each; "
                  f"each task's output in {out_dir}/<task>.log", file=sys.stderr, flush=True)
        start = time.time()
        # spawn: a fresh interpreter per worker (forking a process that holds torch's threads is unsafe)
        with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = {pool.submit(_worker, t, str(out_dir / t), examples, max_steps, args.seed, device, eval_limit,
                                   threads, True): t for t in tasks}
            pending = set(futures)
            while pending:
                finished, pending = wait(pending, timeout=10)
                for future in finished:
                    results[futures[future]] = future.result()  # a worker's MiniftError is raised here
                while printed < len(tasks) and tasks[printed] in results:
                    report(tasks[printed], results[tasks[printed]])
                    printed += 1
                if pending and not args.quiet:
                    line, fraction = _progress(out_dir, tasks, totals)
                    elapsed = time.time() - start
                    left = f", about {elapsed * (1 - fraction) / fraction / 60:.1f} min left" if fraction > 0.02 else ""
                    print(f"demo: {line}; {elapsed / 60:.1f} min{left}", file=sys.stderr, flush=True)
    print(f"\noutputs: {args.out}/<task>/ (model.pt, prompts/, summary.json, log.jsonl, loss.svg, report.md)",
          file=sys.stderr)
    return results
