"""``minift demo``: the main job. The hybrid recipe on every task, with the metrics before and after.

It loads the shipped base (``data/base``), runs ``recipes/hybrid.toml`` (full -> top layers ->
soft prompts) on translation, summarization and question answering, and prints, per task and per
stage, the task metrics on the validation split. Sizes are chosen to finish within 5 minutes on 2
CPU cores; the README states what it prints, and ``tests/test_demo.py`` checks a shrunken run.
"""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

from minift.errors import MiniftError
from minift.io import usable_folder

# Per task: training examples and steps per stage that fit the 5-minute budget on 2 cores.
DEMO_EXAMPLES = 1000
DEMO_MAX_STEPS = 200
DEMO_EVAL_LIMIT = 100


def run_demo(args, examples: int = DEMO_EXAMPLES, max_steps: int = DEMO_MAX_STEPS,
             eval_limit: int = DEMO_EVAL_LIMIT) -> dict:
    from minift.tables import print_stage_table
    from minift.device import resolve_device
    from minift.finetune import RunOptions, run_recipe
    from minift.schedule import load_recipe
    from minift.tasks import MAIN_METRIC, task_names

    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    for t in tasks:
        if t not in task_names():
            raise MiniftError(f"--tasks: unknown task '{t}': choose from {', '.join(task_names())}")
    usable_folder(args.out, "--out folder")  # before any work: a bad --out fails at once
    recipe = load_recipe("hybrid")
    device = resolve_device(args.device)
    results = {}
    for task in tasks:
        out = Path(args.out) / task
        if (out / "summary.json").exists() and (out / "resume.pt").exists():
            shutil.rmtree(out)  # a finished demo run of this task: start afresh
        print(f"\n=== {task}: recipe '{recipe.name}' ({' -> '.join(s.strategy for s in recipe.stages)}) ===",
              flush=True)
        opts = RunOptions(out=str(out), task=task, examples=examples, max_steps=max_steps, seed=args.seed,
                          device=device, quiet=args.quiet, resume=(out / "resume.pt").exists(),  # an interrupted demo continues
                          eval_limit=eval_limit)
        summary = run_recipe(recipe, opts)
        print_stage_table(summary)
        main = MAIN_METRIC[task]
        print(f"{main}: {summary['before'][main]:.1f} before -> {summary['stages'][-1]['metrics'][main]:.1f} after",
              flush=True)
        results[task] = summary
    print(f"\noutputs: {args.out}/<task>/ (model.pt, prompts/, summary.json, log.jsonl, loss.svg, report.md)", file=sys.stderr)
    return results
