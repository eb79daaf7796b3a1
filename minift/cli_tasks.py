"""The task, fine-tuning and course subcommands of ``minift`` (see cli.py for the conventions)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from minift.args import lr_scale_arg, positive
from minift.errors import MiniftError
from minift.tables import print_stage_table  # noqa: F401  (tutorial 09 and the demo print with it)


def check_task(task):
    from minift.tasks import task_names

    if task is not None and task not in task_names():
        raise MiniftError(f"unknown task '{task}': choose one of {', '.join(task_names())}")


# --- data -----------------------------------------------------------------------------------------
def cmd_data(args):
    from minift.io import usable_file
    from minift.tasks import load_examples, write_jsonl

    check_task(args.task)
    if args.out:
        usable_file(args.out, "--out file")
    examples = load_examples(task=args.task, split=args.split, n=args.examples, seed=args.seed, subset=args.subset)
    if args.out:
        write_jsonl(args.out, examples)
        print(f"wrote {len(examples)} {args.task} examples ({args.split}) to {args.out}", file=sys.stderr)
    else:
        for e in examples:
            print(json.dumps(e.fields, ensure_ascii=False))


# --- evaluate -------------------------------------------------------------------------------------
def cmd_evaluate(args):
    from minift.bundle import load_model
    from minift.tables import print_table
    from minift.device import resolve_device
    from minift.evaluate import evaluate_examples
    from minift.io import atomic_write_json, usable_file, usable_folder
    from minift.tasks import load_examples

    if args.task is None and args.data is None:
        raise MiniftError("give --task (translation, summarization, qa) or --data FILE.jsonl")
    check_task(args.task)
    # The report's path, checked before the model is loaded and the examples decoded.
    model_dir = Path(args.model if Path(str(args.model)).is_dir() else ".")
    if args.out:
        usable_file(args.out, "--out report")
    else:
        usable_folder(model_dir, "folder of the report (the model's folder; choose another with --out)")
    bundle = load_model(args.model, device=resolve_device(args.device))
    examples = load_examples(task=args.task, data=args.data, split=args.split, n=args.limit, seed=args.seed,
                             subset=args.subset)
    if args.limit:
        examples = examples[: args.limit]
    prompt = args.prompt_name if args.prompt_name else "auto"
    report = evaluate_examples(bundle, examples, prompt_names=prompt, batch_size=args.batch_size)
    report.update({"model": str(args.model), "split": args.split, "subset": args.subset})
    print_table([{"task": report["task"], "examples": report["n"], **report["metrics"]}],
                ["task", "examples", *report["metrics"]])
    for s in report["samples"][:3]:
        print(f"\n  reference:  {s['reference']}\n  prediction: {s['prediction']}")
    out = args.out or str(model_dir / f"eval-{report['task']}-{args.split}.json")
    atomic_write_json(out, report)
    print(f"\nreport: {out}", file=sys.stderr)


# --- finetune -------------------------------------------------------------------------------------
def finetune_options(args):
    from minift import distributed
    from minift.device import resolve_device
    from minift.finetune import RunOptions

    # Under torchrun (WORLD_SIZE > 1) join the process group; each rank gets its own GPU.
    ctx, device = distributed.init_from_env(resolve_device(args.device))
    return RunOptions(out=args.out, task=args.task, data=args.data, examples=args.examples,
                      max_steps=args.max_steps, seed=args.seed, device=device,
                      resume=args.resume, quiet=args.quiet, base=args.base, dist=ctx, compile=args.compile)


def cmd_finetune(args):
    from minift.experiment import apply_protocol, arm_of, resolve_protocol
    from minift.finetune import DEFAULT_EXAMPLES, run_recipe
    from minift.schedule import load_recipe

    check_task(args.task)
    recipe = load_recipe(args.recipe)
    task = args.task or recipe.task
    # The budget: the recipe's own steps (fixed), or the experiment's (fair), and the rate multiplier;
    # the same two functions shape every cell of `minift experiment`, so its advice can be rerun here.
    # Unless told otherwise, the recipe says which (the shipped ones: fair, at the grid's tuned rates).
    protocol, cap = resolve_protocol(args.protocol or recipe.protocol, args.epochs, args.min_steps, args.max_steps,
                                     args.patience, args.min_delta, args.monitor)
    scale = args.lr_scale if args.lr_scale is not None else recipe.lr_scale
    if scale == "tuned":
        from minift.advise import tuned_lr_scale
        from minift.io import usable_folder

        usable_folder(args.out, "--out run folder")  # a bad --out is the one line printed, before the rate's note
        base = args.base or recipe.base
        size = args.examples or recipe.examples or DEFAULT_EXAMPLES
        scale, why = tuned_lr_scale(arm_of(recipe.name, base), task, size, base)
        if not args.quiet:
            print(f"lr x{scale:g}: {why}", file=sys.stderr)
    recipe, opts_cap = apply_protocol(recipe, protocol, cap, task, scale)
    opts = finetune_options(args)
    opts.max_steps = opts_cap
    try:
        summary = run_recipe(recipe, opts)
    finally:
        from minift.distributed import shutdown

        shutdown(opts.dist)
    if opts.dist.is_main:
        print_stage_table(summary)
        print(f"\nrun folder: {args.out} (model.pt, summary.json, log.jsonl, loss.svg, report.md)")


def cmd_report(args):
    from minift.report import write_report

    print(write_report(args.run_dir, args.out))


def cmd_generate(args):
    from minift.bundle import load_model
    from minift.device import resolve_device

    bundle = load_model(args.model, device=resolve_device(args.device))
    text = " ".join(args.text) if args.text else sys.stdin.read()
    if not text:
        raise MiniftError("give TEXT to continue (or pipe it on stdin)")
    text = text.replace("\\n", "\n")
    print(bundle.generate(text, max_new_tokens=args.max_new_tokens, prompt_name=args.prompt_name,
                          temperature=args.temperature, top_k=args.top_k))


def cmd_demo(args):
    from minift.demo import run_demo

    run_demo(args)


def add_budget(p, default: str | None, fixed_help: str) -> None:
    """The step budget's options, the same for ``finetune`` and ``experiment`` (``experiment.resolve_protocol``
    reads them): ``finetune --protocol fair`` trains a recipe exactly as the experiment trains one cell.
    ``default=None``: the recipe's own ``protocol`` field decides (``finetune``)."""
    helps = {"fair": "budgets by epochs with a floor and a cap, early stopping, best weights kept",
             "fixed": fixed_help}
    if default is None:
        text = f"default: the recipe's protocol (the shipped recipes say fair); fair: {helps['fair']}; fixed: {fixed_help}"
    else:
        other = "fixed" if default == "fair" else "fair"
        text = f"{default} (default): {helps[default]}; {other}: {helps[other]}"
    p.add_argument("--protocol", choices=["fair", "fixed"], default=default, help=text)
    p.add_argument("--epochs", type=float, help="fair: passes over the N examples per stage (default: 10)")
    p.add_argument("--min-steps", type=positive, help="fair: the floor on steps per stage (default: 100)")
    p.add_argument("--max-steps", type=positive, help="the cap on steps per stage (fair default: 2000)")
    p.add_argument("--patience", type=positive, help="fair: evaluations without improvement before stopping (default: 4)")
    p.add_argument("--min-delta", type=float, help="fair: an improvement must beat the best by more (default: 0.001)")
    p.add_argument("--monitor", choices=["val_loss", "main_metric"],
                   help="fair: what early stopping watches (default: val_loss)")


def register(sub) -> None:
    """Add this module's subcommands to the ``minift`` parser."""
    from minift import strategies
    from minift.args import add_device, add_quiet
    from minift.schedule import builtin_recipes

    p = sub.add_parser("data", help="write task examples (translation, summarization, qa) as JSONL",
                       description="Generate examples of a task from the project's world, as JSONL.")
    p.add_argument("task", help="translation, summarization or qa")
    p.add_argument("--examples", type=positive, default=100, help="how many (default: 100)")
    p.add_argument("--split", default="train", help="train, val or test (disjoint; default: train)")
    p.add_argument("--subset", help="one sub-domain or style only (e.g. kitchen, headline)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="JSONL file to write (default: stdout)")
    p.set_defaults(func=cmd_data)

    p = sub.add_parser("evaluate", help="generate on a task's split and score it (BLEU, ROUGE, EM/F1)",
                       description="Greedy decoding with the KV cache on a task split, then the task's metrics. "
                                   "Prints a table and writes a JSON report with sample predictions.")
    p.add_argument("--model", required=True, help="run folder, checkpoint file, 'base' or gpt2:PATH")
    p.add_argument("--task", help="translation, summarization or qa")
    p.add_argument("--data", help="a JSONL file instead of a generated task")
    p.add_argument("--split", default="test", help="train, val or test (default: test)")
    p.add_argument("--subset", help="one sub-domain or style only")
    p.add_argument("--limit", type=positive, help="score only the first N examples (default: 200)")
    p.add_argument("--prompt-name", help="use this soft prompt for every example (default: by subset)")
    p.add_argument("--batch-size", type=positive, default=32)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="JSON report path (default: inside the model's folder)")
    add_device(p)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("finetune", help="run a recipe: one strategy (" + ", ".join(strategies.names())
                       + ") or a hybrid schedule of them",
                       description="Fine-tune with a recipe (built-in name or TOML path). Writes OUT/model.pt, "
                                   "summary.json, log.jsonl, loss.svg and report.md. A stage's strategy is one "
                                   "of: " + strategies.help_text() + ".")
    p.add_argument("--recipe", default="hybrid", help=f"a built-in recipe ({', '.join(builtin_recipes())}) "
                                                      f"or a .toml path")
    p.add_argument("--out", required=True, help="run folder")
    p.add_argument("--task", help="override the recipe's task")
    p.add_argument("--data", help="a JSONL file instead of a generated task")
    p.add_argument("--base", help="override the recipe's base model ('base', a path, 'gpt2:PATH', 'scratch')")
    p.add_argument("--examples", type=positive, help="training examples for every stage")
    add_budget(p, default=None, fixed_help="each stage trains its recipe's own max_steps, --max-steps caps them")
    p.add_argument("--lr-scale", type=lr_scale_arg,
                   help="multiply every stage's learning rate (what `minift experiment lr-sweep` tunes), or 'tuned': "
                        "the multiplier the strategy grid chose for the recipe, task and nearest size on the shipped "
                        "base (default: the recipe's lr_scale; the shipped recipes say tuned)")
    p.add_argument("--seed", type=int)
    p.add_argument("--resume", action="store_true", help="continue a run that was interrupted")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the model and the AdamW update (worth it on GPUs)")
    add_device(p)
    add_quiet(p)
    p.set_defaults(func=cmd_finetune)

    p = sub.add_parser("report", help="(re)write a fine-tuning run's report.md from its run folder",
                       description="Read RUN/summary.json and RUN/log.jsonl and write RUN/report.md: what ran, a row "
                                   "per stage, the metrics before and after, and five sample outputs. Prints the path.")
    p.add_argument("run_dir", metavar="RUN", help="a `minift finetune` run folder")
    p.add_argument("--out", help="Markdown path (default: RUN/report.md)")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("generate", help="continue a text with a model (try it by hand)",
                       description="Greedy (or sampled) continuation of TEXT; '\\n' in TEXT is a newline.")
    p.add_argument("--model", default="base", help="run folder, checkpoint file, 'base' (default) or gpt2:PATH")
    p.add_argument("--prompt-name", help="a soft prompt of the model to use")
    p.add_argument("--max-new-tokens", type=positive, default=64)
    p.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default)")
    p.add_argument("--top-k", type=positive)
    p.add_argument("text", nargs="*", help="the text to continue (default: stdin)")
    add_device(p)
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("demo", help="the main job: the hybrid recipe on every task, before and after",
                       description="Load the shipped base and run the hybrid recipe on translation, summarization "
                                   "and question answering; print the metrics before and after each stage.")
    p.add_argument("--out", default="runs/demo", help="folder for the runs (default: runs/demo)")
    p.add_argument("--tasks", default="translation,summarization,qa")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--jobs", type=positive, help="tasks trained at once, the CPU cores shared among them (default: "
                                                 "every task at once on a CPU, one at a time on a GPU)")
    add_device(p)
    add_quiet(p)
    p.set_defaults(func=cmd_demo)

    register_study(sub)


# --- the study: experiment and advise ------------------------------------------------------------
EXPERIMENT_OUT = "data/experiments/strategies/fair"  # where `experiment strategies` writes and `advise` reads
# lr-sweep's own flags default to None here: lr_sweep holds the defaults (experiment.SWEEP_*), and
# `experiment strategies` refuses any of them that was given.
SWEEP_FLAGS = ("lr_scales", "lr_extend", "seed", "val_limit")


def cmd_experiment(args):
    from minift.device import resolve_device
    from minift.experiment import STRATEGIES, lr_sweep, parse_scales, parse_sizes, run_experiment

    tasks = args.tasks.split(",") if args.tasks else None
    strategies = args.strategies.split(",") if args.strategies else STRATEGIES
    budget = dict(protocol=args.protocol, epochs=args.epochs, min_steps=args.min_steps, max_steps=args.max_steps,
                  patience=args.patience, min_delta=args.min_delta, monitor=args.monitor)
    if args.which == "lr-sweep":
        sizes = parse_sizes(args.examples or "1000")
        if len(sizes) != 1:
            raise MiniftError(f"lr-sweep tunes at one training-set size: give --examples N, got {args.examples!r}")
        for name in ("lrs", "compute_examples", "world_text"):
            if getattr(args, name) is not None:
                raise MiniftError(f"--{name.replace('_', '-')} belongs to `experiment strategies`, not lr-sweep")
        out = args.out or "data/experiments/strategies/lr-sweep"
        given = {"scales": None if args.lr_scales is None else parse_scales(args.lr_scales), "seed": args.seed,
                 "extend": args.lr_extend, "val_limit": args.val_limit}
        result = lr_sweep(tasks, sizes[0], out, strategies=strategies, base=args.base, data=args.data,
                          device=resolve_device(args.device), quiet=args.quiet,
                          **{k: v for k, v in given.items() if v is not None}, **budget)
        for task, cells in result["winners"].items():
            print(f"{task}: " + ", ".join(f"{s} lr x{w['lr_scale']:g}" for s, w in cells.items()))
        print(f"\nwinners: {out}/lrs.json (pass it as --lrs)\ntable: {out}/lrs.md\nrecords: {out}/sweep.jsonl")
        return
    if any(getattr(args, name) is not None for name in SWEEP_FLAGS):
        raise MiniftError("--lr-scales, --lr-extend, --seed and --val-limit belong to `experiment lr-sweep`; strategies runs "
                          "seeds 0..N-1 and scores on --test-limit test examples")
    out = args.out or EXPERIMENT_OUT
    agg = run_experiment(tasks=tasks, sizes=parse_sizes(args.examples or "50,200,1000,5000"), seeds=args.seeds,
                         out=out, base=args.base, data=args.data, test_limit=args.test_limit,
                         device=resolve_device(args.device), quiet=args.quiet, strategies=strategies,
                         keep_checkpoints=args.keep_checkpoints, lrs=args.lrs,
                         compute_examples=args.compute_examples, world_text=args.world_text, **budget)
    for line in agg["rule_of_thumb"].values():
        print(line)
    charts = [f"{out}/{task}{kind}.svg" for task in agg["results"] for kind in ("", "-compute")
              if Path(out, f"{task}{kind}.svg").exists()]
    print(f"\ntables: {out}/results.md\ncharts: {', '.join(charts)}\nfor `minift advise`: {out}/results.json")


def cmd_advise(args):
    from minift.advise import advise, format_advice

    check_task(args.task)
    print(format_advice(advise(args.task, args.examples, params=args.params, memory_mb=args.memory,
                               results_dir=args.results)))


def cmd_notebooks(args):
    from minift.course import default_tutorial_dir, write_notebooks

    written = write_notebooks(args.tutorials or default_tutorial_dir(), args.out)
    for path in written:
        print(path)
    print(f"{len(written)} notebooks in {args.out}", file=sys.stderr)


def cmd_course(args):
    if args.what == "ranges":
        return cmd_course_ranges(args)
    from minift.figures import write_figures

    written = write_figures(args.out)
    for path in written:
        print(path)
    print(f"{len(written)} figures in {args.out}", file=sys.stderr)


def _whole_numbers(text: str, flag: str) -> list[int]:
    parts = [t.strip() for t in text.split(",")]
    if not parts or not all(t.isdigit() for t in parts):
        raise MiniftError(f"{flag}: a comma list of whole numbers >= 0, like 0,1,2; got {text!r}")
    return sorted(set(map(int, parts)))


def cmd_course_ranges(args):
    from minift.course import default_tutorial_dir, lessons_with_key_numbers, ranges_table, run_ranges
    from minift.io import atomic_write_text, usable_folder

    seeds = _whole_numbers(args.seeds, "--seeds")
    scripts = lessons_with_key_numbers(args.tutorials or default_tutorial_dir())
    if args.lessons:
        wanted = _whole_numbers(args.lessons, "--lessons")
        known = {int(s.name[:2]): s for s in scripts}
        unknown = [n for n in wanted if n not in known]
        if unknown:
            raise MiniftError(f"--lessons: no lesson {', '.join(f'{n:02d}' for n in unknown)} reports key numbers; "
                              f"allowed: {', '.join(s.name[:2] for s in scripts)}")
        scripts = [known[n] for n in wanted]
    folder = usable_folder(args.out, "--out folder")
    if not args.no_run:
        run_ranges(scripts, seeds, folder, asserts=not args.no_asserts, jobs=args.jobs)
    table = ranges_table(scripts, seeds, folder)
    atomic_write_text(folder / "ranges.md", table)
    print(table, end="")


def cmd_grade(args):
    from minift.grade import run

    return run(args.exercises, args.path)  # the exit status: 0 when every check passes, else 1


def register_study(sub) -> None:
    """The experiment, advise, notebooks, course and grade subcommands."""
    from minift import strategies
    from minift.args import add_device, add_quiet
    from minift.experiment import ARMS, STRATEGIES

    extra = [a for a in ARMS if a not in strategies.names()]
    p = sub.add_parser("experiment", help="measure every strategy at several data sizes (tables + charts)",
                       description="strategies: run every registered strategy (" + ", ".join(strategies.names())
                                   + "), then " + ", ".join(extra) + " at each training-set "
                                   "size, on each task, for several seeds, under the fair protocol (budgets by "
                                   "epochs between a floor and a cap, early stopping, best weights kept); score on "
                                   "the test split. Resumable: rerun to continue. Writes OUT/results.md, "
                                   "OUT/TASK.svg, OUT/TASK-compute.svg and OUT/results.json. lr-sweep: tune each "
                                   "strategy's learning rate at one size and one seed on the validation split; "
                                   "writes OUT/lrs.json for strategies --lrs. "
                                   "data/experiments/strategies/README.md explains the protocol.")
    p.add_argument("which", choices=["strategies", "lr-sweep"], help="the experiment to run: strategies or lr-sweep")
    p.add_argument("--tasks", help="comma list (default: translation,summarization,qa; with --data: the data's task)")
    p.add_argument("--examples", help="training-set sizes, comma list (default: 50,200,1000,5000; "
                                      "lr-sweep: one size, default 1000)")
    p.add_argument("--seeds", type=positive, default=3, help="seeds per cell: 0..N-1 (default: 3)")
    p.add_argument("--strategies", help=f"comma list from {','.join(STRATEGIES)} (default: all)")
    p.add_argument("--out", help=f"folder (default: {EXPERIMENT_OUT}; lr-sweep: data/experiments/strategies/lr-sweep)")
    add_budget(p, default="fair", fixed_help="each recipe's own steps (the earlier protocol)")
    p.add_argument("--lrs", help="strategies: an lr sweep's lrs.json, or a comma list of sweeps at different sizes: "
                                 "train each (task, strategy) at the rates tuned at the sweep size nearest N "
                                 "(log scale)")
    p.add_argument("--compute-examples", type=positive,
                   help="strategies: the size N of the equal-compute chart (default: the largest)")
    p.add_argument("--world-text", help="strategies: the base's pretraining text file, if it moved since "
                                        "pretraining (forgetting is scored on its held-out tenth)")
    # lr-sweep's defaults are experiment.SWEEP_SCALES, SWEEP_EXTEND, seed 0 and SWEEP_VAL_LIMIT
    # (tests/test_cli.py checks that the help below says the same).
    p.add_argument("--lr-scales",
                   help="lr-sweep: multipliers of each recipe's learning rates, at least 3 (default: 0.3,1,3)")
    p.add_argument("--lr-extend", type=int,
                   help="lr-sweep: where a winner sits at the edge of --lr-scales, run up to this many more "
                        "rungs of the 1-3-10 ladder that way (3 -> 10 -> 30); 0: never (default: 2)")
    p.add_argument("--seed", type=int, help="lr-sweep: the one seed it runs (default: 0)")
    p.add_argument("--val-limit", type=positive,
                   help="lr-sweep: validation examples each run is scored on (default: 100)")
    p.add_argument("--base", help="base model ('base', a path, 'gpt2:PATH'; default: the recipes' base)")
    p.add_argument("--data", help="a JSONL file instead of a generated task (its held-out tail is the test set)")
    p.add_argument("--test-limit", type=positive, default=200, help="test examples scored per run (default: 200)")
    p.add_argument("--keep-checkpoints", action="store_true",
                   help="keep every run's model.pt (default: summary and log only)")
    add_device(p)
    add_quiet(p)
    p.set_defaults(func=cmd_experiment)

    p = sub.add_parser("advise", help="recommend a strategy for your task, data size and memory",
                       description="Predict each strategy's metric at N examples (interpolated in log N from the "
                                   "experiment's results) and its training memory; recommend the best that fits.")
    p.add_argument("--task", required=True, help="translation, summarization or qa")
    p.add_argument("--examples", type=positive, required=True, help="how many training examples you have")
    p.add_argument("--params", type=float, help="your model's parameters (default: the measured model's)")
    p.add_argument("--memory", type=float, help="memory available for training, in MB (10^6 bytes)")
    p.add_argument("--results", help=f"experiment folder holding results.json (default: {EXPERIMENT_OUT})")
    p.set_defaults(func=cmd_advise)

    p = sub.add_parser("notebooks", help="write a Jupyter notebook for every tutorial",
                       description="Convert each tutorials/NN_*.py (# %% cells) and its solution to an .ipynb.")
    p.add_argument("--out", required=True, help="folder to write the notebooks to")
    p.add_argument("--tutorials", help="the tutorials folder (default: the one next to the package)")
    p.set_defaults(func=cmd_notebooks)

    p = sub.add_parser("course", help="the course's figures for slides, and its key numbers' ranges over seeds",
                       description="figures: write the course's pictures into --out as SVG (minift/figures.py): "
                                   "the shipped base's attention maps on a fixed sentence, the learning-rate "
                                   "schedules of lesson 04 and of the full recipe, the gradual-unfreezing timeline "
                                   "of lesson 07, the base's pretraining loss and the committed strategy "
                                   "comparison. A few seconds on one core. ranges: run every lesson that reports "
                                   "key numbers (minift.course.key) in full mode at each of --seeds, keep each "
                                   "run's output in --out (rerun to resume), and print the markdown table of "
                                   "every key number at each seed with its range and what the lesson asserts "
                                   "(also written to OUT/ranges.md); the table of tutorials/TEACHING.md section 2. "
                                   "About 20 minutes of one core per seed.")
    p.add_argument("what", choices=["figures", "ranges"], help="what to write: figures or ranges")
    p.add_argument("--out", required=True, help="folder to write to (ranges: also each run's output, for resuming)")
    p.add_argument("--seeds", default="0,1,2", help="ranges: the seeds, a comma list (default: 0,1,2)")
    p.add_argument("--lessons", help="ranges: lesson numbers, a comma list like 06,07 (default: every lesson "
                                     "with key numbers)")
    p.add_argument("--jobs", type=positive, default=1, help="ranges: lessons run at once (default: 1; with "
                                                            "OMP_NUM_THREADS=1, up to one per core)")
    p.add_argument("--no-asserts", action="store_true",
                   help="ranges: run python -O, so a failing full-mode assert does not hide later numbers")
    p.add_argument("--no-run", action="store_true", help="ranges: only rebuild the table from the runs in --out")
    p.add_argument("--tutorials", help="ranges: the tutorials folder (default: the one next to the package)")
    p.set_defaults(func=cmd_course)

    from minift.grade import EXERCISES

    p = sub.add_parser("grade", help="check a student's exercise files against minift's own pieces",
                       description="The course's autograder. For each exercise of tutorials/exercises/ (all, or "
                                   "those named), import the student's file from DIR and run its checks against "
                                   "minift's reference on seeded random inputs and edge cases: one line per check "
                                   "(PASS or FAIL, and what differed), then a score. Exit 0 when every check "
                                   "passes, 1 when one fails, 2 when called wrongly. Exercises: "
                                   + ", ".join(EXERCISES) + ". tutorials/exercises/README.md describes them.")
    p.add_argument("exercises", nargs="*", metavar="EXERCISE", help="exercises to grade (default: all)")
    p.add_argument("--path", metavar="DIR",
                   help="the folder holding the student's files (default: the repository's tutorials/exercises)")
    p.set_defaults(func=cmd_grade)
