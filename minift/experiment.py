"""Which strategy wins, at which data size? Measure it: every strategy, every size, several seeds.

The rule of thumb this project started from says: *with little data prefer specific-layer or
prompt tuning, with plenty prefer full-parameter fine-tuning*. ``minift experiment strategies``
puts it to the test. For each task, each training-set size N and each seed it runs

    full      every weight trains                      (recipes/full.toml)
    layers    the top half of the blocks + ln_f        (recipes/layers.toml)
    prompt    soft prompts on a frozen base            (recipes/prompt.toml)
    hybrid    full -> layers -> prompt                 (recipes/hybrid.toml)
    scratch   the full recipe from random weights      (the floor: what pretraining is worth)

then scores the final model on the task's TEST split (with ``--data``: its held-out tail, which
is also what the stages validated on, so treat those numbers as a smoke test). A cell of the
table is the mean over seeds and the sample standard deviation (divide by n - 1):

    mean = sum(x) / n          std = sqrt(sum((x - mean)^2) / (n - 1))      (0 for one seed)

Every finished run is appended as one JSON line to ``OUT/results.jsonl`` *before* the next one
starts, so a killed experiment resumes where it stopped: a (task, N, strategy, seed) already
recorded is skipped. Run folders keep only ``summary.json`` and ``log.jsonl`` once scored.
The experiment then writes ``results.md`` (tables), ``TASK.svg`` (metric against N, log axis,
error bars = std) and ``results.json`` (what ``minift advise`` reads).

Tutorial 11 (choosing a strategy) reads these tables and charts.
"""
from __future__ import annotations

import json
import math
import platform
import re
import shutil
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

from minift.checkpoint import load_model, save_checkpoint
from minift.errors import MiniftError
from minift.evaluate import evaluate_examples
from minift.finetune import RunOptions, run_recipe
from minift.io import atomic_write_json, atomic_write_text
from minift.model import GPT
from minift.schedule import load_recipe
from minift.tasks import load_examples

STRATEGIES = ("full", "layers", "prompt", "hybrid", "scratch")
RULE_SMALL, RULE_LARGE = ("layers", "prompt"), "full"
SETTINGS = ("max_steps", "base", "data", "test_limit")  # records made with other settings do not mix


def mean_std(values: list[float]) -> tuple[float, float]:
    """The mean and the sample standard deviation (n - 1); the std of one value is 0."""
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, 0.0
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))


def parse_sizes(text: str) -> list[int]:
    """'50,200,1000' -> [50, 200, 1000] (for --examples); a bad item is named."""
    try:
        sizes = [int(item) for item in text.split(",") if item.strip()]
    except ValueError:
        raise MiniftError(f"--examples takes whole numbers separated by commas (e.g. 50,200,1000), got {text!r}") from None
    if not sizes or min(sizes) < 1:
        raise MiniftError(f"--examples: every size must be >= 1, got {text!r}")
    return sizes


def backward_fraction(trainable_names: list[str], n_layer: int) -> float:
    """How far down the backward pass must reach: 1.0 = to the embeddings, 0.5 = the top half."""
    if any(n.startswith("prompts.") or ".wte." in n or ".wpe." in n for n in trainable_names):
        return 1.0  # a soft prompt or an embedding sits at the very bottom
    blocks = [int(m.group(1)) for n in trainable_names if (m := re.search(r"(?:^|\.)h\.(\d+)\.", n))]
    return (n_layer - min(blocks)) / n_layer if blocks else 0.0


def read_records(path: Path) -> list[dict]:
    """The runs recorded so far (one JSON object per line)."""
    if not path.exists():
        return []
    records = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            raise MiniftError(f"{path}:{number}: not a JSON record; delete that line and rerun to redo that run") from None
    return records


def record_key(r: dict) -> tuple:
    return (r["task"], int(r["examples"]), r["strategy"], int(r["seed"]))


def scoring_examples(task: str, data, limit: int):
    """The examples a finished model is scored on: the test split, or a data file's held-out tail."""
    if data is None:
        return load_examples(task=task, split="test", n=limit)
    examples = load_examples(data=data)
    return examples[-max(1, len(examples) // 10):][:limit]  # the tail finetune.py holds out


def scratch_base(base, seed: int, folder: Path) -> str:
    """A checkpoint with the base's shape and tokenizer but fresh random weights (the floor)."""
    path = folder / f"seed{seed}" / "model.pt"
    if not path.exists():
        bundle = load_model(base or "base")
        torch.manual_seed(seed)
        model = GPT(bundle.model.config)
        save_checkpoint(path, model, bundle.tokenizer, meta={"kind": "scratch", "seed": seed})
    return str(path)


def run_one(task, n, strategy, seed, out: Path, cfg: dict) -> dict:
    """Train one (task, N, strategy, seed) and score it on the test examples; returns its record."""
    run_dir = out / "runs" / task / str(n) / strategy / f"seed{seed}"
    recipe = load_recipe("full" if strategy == "scratch" else strategy)
    base = scratch_base(cfg["base"], seed, out / "scratch-bases") if strategy == "scratch" else cfg["base"]
    cpu0 = time.process_time()  # CPU seconds: unlike wall time, not inflated by other processes
    if (run_dir / "summary.json").exists() and (run_dir / "model.pt").exists():
        summary = json.loads((run_dir / "summary.json").read_text())  # trained, killed before scoring
    else:
        if (run_dir / "summary.json").exists():  # scored and pruned earlier, but its record is gone
            shutil.rmtree(run_dir)
        opts = RunOptions(out=str(run_dir), task=task, data=cfg["data"], examples=n, max_steps=cfg["max_steps"],
                          seed=seed, device=cfg["device"], resume=True, quiet=True, base=base,
                          eval_limit=min(100, cfg["test_limit"]))
        summary = run_recipe(recipe, opts)
    t0 = time.time()
    report = evaluate_examples(load_model(run_dir, device=cfg["device"]), cfg["tests"][task])
    eval_seconds = time.time() - t0
    n_layer = cfg["model"]["n_layer"]
    stages = [{"name": s["name"], "strategy": s["strategy"], "trainable_params": s["trainable_params"],
               "total_params": s["total_params"], "optimizer_state_bytes": s["optimizer_state_bytes"],
               "steps": s["steps"], "seconds": s["seconds"], "examples": s["examples"],
               "batch_size": stage.batch_size, "backward_fraction": backward_fraction(s["trainable_names"], n_layer)}
              for s, stage in zip(summary["stages"], recipe.stages)]
    metric = report["main_metric"]
    return {"task": task, "examples": n, "strategy": strategy, "seed": seed, "recipe": recipe.name,
            "main_metric": metric, "score": report["metrics"][metric], "metrics": report["metrics"],
            "before": summary.get("before", {}), "test_examples": report["n"],
            "train_seconds": summary["seconds"], "eval_seconds": round(eval_seconds, 2),
            "seconds": round(summary["seconds"] + eval_seconds, 2),
            "cpu_seconds": round(time.process_time() - cpu0, 2), "threads": torch.get_num_threads(),
            "trainable_params": max(s["trainable_params"] for s in stages),
            "optimizer_state_bytes": max(s["optimizer_state_bytes"] for s in stages),
            "steps": sum(s["steps"] for s in stages), "stages": stages,
            **{k: cfg[k] for k in SETTINGS}}


def prune(run_dir: Path) -> None:
    """Keep only summary.json and log.jsonl: checkpoints of 200 runs would fill a disk."""
    for item in run_dir.iterdir():
        if item.name not in ("summary.json", "log.jsonl"):
            shutil.rmtree(item) if item.is_dir() else item.unlink()


def aggregate(records: list[dict], model: dict) -> dict:
    """results.json: task -> strategy -> size -> {mean, std, n, seconds_mean, trainable_params}."""
    results, costs, main = {}, {}, {}
    groups = {}
    for r in records:
        groups.setdefault((r["task"], r["strategy"], int(r["examples"])), []).append(r)
    for (task, strategy, n), rs in sorted(groups.items()):
        mean, std = mean_std([r["score"] for r in rs])
        results.setdefault(task, {}).setdefault(strategy, {})[str(n)] = {
            "mean": mean, "std": std, "n": len(rs), "seconds_mean": sum(r["seconds"] for r in rs) / len(rs),
            "cpu_seconds_mean": sum(r.get("cpu_seconds", r["seconds"]) for r in rs) / len(rs),
            "trainable_params": max(r["trainable_params"] for r in rs),
            "stage_trainable_params": [s["trainable_params"] for s in rs[0]["stages"]],
            "scores": [r["score"] for r in sorted(rs, key=lambda r: r["seed"])]}
        main[task] = rs[0]["main_metric"]
        costs.setdefault(task, {})[strategy] = [  # the stages of the largest size: what memory the advisor plans
            {k: s[k] for k in ("name", "strategy", "trainable_params", "total_params", "batch_size",
                               "backward_fraction")} | {"trainable_fraction": s["trainable_params"] / model["params"]}
            for s in rs[0]["stages"]]
    for task in results:  # a canonical strategy order for tables and charts
        results[task] = {s: results[task][s] for s in STRATEGIES if s in results[task]}
    return {"results": results, "costs": costs, "main_metric": main, "model": model}


def winners(table: dict, among=STRATEGIES) -> dict[int, list[str]]:
    """The strategies with the highest mean at each size, as the table shows it (to 0.1; ties kept)."""
    sizes = sorted({int(n) for cells in table.values() for n in cells})
    out = {}
    for n in sizes:
        means = {s: round(table[s][str(n)]["mean"], 1) for s in among if s in table and str(n) in table[s]}
        if means:
            out[n] = [s for s in means if means[s] == max(means.values())]
    return out


def rule_of_thumb(task: str, table: dict) -> str:
    """Plainly: is the small-size winner layers/prompt and the large-size winner full, or not?"""
    named = winners(table, among=(RULE_LARGE, *RULE_SMALL))
    def show(w):
        return ", ".join(f"N={n}: {' = '.join(names)}" for n, names in w.items())

    if len(named) < 2:
        return f"{task}: the rule cannot be checked: it needs full, layers or prompt measured at two sizes or more."
    sizes = sorted(named)
    small, large = named[sizes[0]], named[sizes[-1]]
    if set(small) <= set(RULE_SMALL) and large == [RULE_LARGE]:
        verdict = f"the rule holds: {' = '.join(small)} wins at N={sizes[0]}, full at N={sizes[-1]}"
    else:
        why = []
        if not set(small) <= set(RULE_SMALL):
            why.append(f"at the smallest size (N={sizes[0]}) {' = '.join(small)} "
                       f"{'tie' if len(small) > 1 else 'wins'}, not layers or prompt alone")
        if large != [RULE_LARGE]:
            why.append(f"at the largest size (N={sizes[-1]}) {' = '.join(large)} "
                       f"{'tie' if len(large) > 1 else 'wins'}, not full alone")
        verdict = "the rule does not hold: " + "; ".join(why)
    return (f"{task}: {verdict}. Winners among full/layers/prompt by size: {show(named)}. "
            f"Over all strategies: {show(winners(table))}.")


def machine() -> str:
    return (f"{platform.platform()}, processor {platform.processor() or 'unknown'}, torch {torch.__version__}, "
            f"{torch.get_num_threads()} thread{'s' if torch.get_num_threads() != 1 else ''}")


def markdown_table(table: dict, value, text, best=max) -> list[str]:
    """Rows = sizes, columns = strategies; every cell showing the best rounded value is bold (ties too)."""
    strategies, sizes = list(table), sorted({int(n) for cells in table.values() for n in cells})
    lines = ["| examples | " + " | ".join(strategies) + " |", "|---:|" + "---:|" * len(strategies)]
    for n in sizes:
        cells = [table[s].get(str(n)) for s in strategies]
        top = best(round(value(c), 1) for c in cells if c)
        lines.append(f"| {n} | " + " | ".join("" if not c else f"**{text(c)}**" if round(value(c), 1) == top
                                              else text(c) for c in cells) + " |")
    return lines


def write_markdown(path: Path, agg: dict, command: str, seeds: int, test_n: dict) -> None:
    model = agg["model"]
    lines = ["# Fine-tuning strategies against training-set size", "",
             f"- command: `{command}`", f"- date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC}",
             f"- machine: {machine()}", f"- seeds: {', '.join(map(str, range(seeds)))} (cells: mean ± std over seeds, "
             f"std with n - 1; best per row in bold)",
             f"- model: {model['params']:,} parameters ({model['n_layer']} layers, width {model['n_embd']})", ""]
    for task, table in agg["results"].items():
        lines += [f"## {task}: {agg['main_metric'][task]} on {test_n[task]} test examples", ""]
        lines += markdown_table(table, lambda c: c["mean"],
                                lambda c: f"{c['mean']:.1f} ± {c['std']:.1f}" if c["n"] > 1 else f"{c['mean']:.1f} ±0")
        lines += ["", f"Time per run, {task} (training + evaluation + test scoring): the process's own CPU "
                      f"seconds, which other processes on the machine do not inflate (fastest in bold), and in "
                      f"brackets the wall-clock seconds, which they do:", ""]
        lines += markdown_table(table, lambda c: c["cpu_seconds_mean"],
                                lambda c: f"{c['cpu_seconds_mean']:.1f} ({c['seconds_mean']:.0f})", best=min)
        params = [" → ".join(f"{p:,}" for p in next(iter(cells.values()))["stage_trainable_params"])
                  for cells in table.values()]
        lines += ["| trainable params | " + " | ".join(params) + " |", "",
                  "**Rule of thumb.** " + rule_of_thumb(task, table), ""]
    atomic_write_text(path, "\n".join(lines))


def write_charts(out: Path, agg: dict) -> list[Path]:
    from minift.plot import line_chart

    paths = []
    for task, table in agg["results"].items():
        series = []
        for s, cells in table.items():
            sizes = sorted(cells, key=int)
            series.append({"name": s, "x": [int(n) for n in sizes], "y": [cells[n]["mean"] for n in sizes],
                           "yerr": [cells[n]["std"] for n in sizes], "markers": True})
        path = out / f"{task}.svg"
        line_chart(series, title=f"{task}: strategies against training-set size (mean ± std over seeds)",
                   xlabel="training examples (log scale)", ylabel=agg["main_metric"][task], logx=True, path=path)
        paths.append(path)
    return paths


def command_line(tasks, sizes, seeds, out, max_steps, base, data, test_limit, strategies) -> str:
    parts = ["minift experiment strategies", f"--tasks {','.join(tasks)}", f"--examples {','.join(map(str, sizes))}",
             f"--seeds {seeds}", f"--out {out}", f"--test-limit {test_limit}"]
    if tuple(strategies) != STRATEGIES:
        parts.append(f"--strategies {','.join(strategies)}")
    parts += [f"--{k} {v}" for k, v in (("max-steps", max_steps), ("base", base), ("data", data)) if v is not None]
    return " ".join(parts)


def run_experiment(tasks, sizes, seeds, out, max_steps=None, base=None, data=None, test_limit=200, device="cpu",
                   quiet=False, strategies=STRATEGIES, keep_checkpoints=False) -> dict:
    """Run (or resume) the grid, then write results.md, TASK.svg and results.json; returns the aggregate."""
    from minift.tasks import task_names

    out = Path(out)
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise MiniftError(f"seeds is how many seeds to run (0, 1, ...), a number >= 1, got {seeds!r}")
    if not sizes or any(not isinstance(n, int) or n < 1 for n in sizes):
        raise MiniftError(f"training-set sizes must be whole numbers >= 1, got {sizes!r}")
    if test_limit < 1:
        raise MiniftError(f"--test-limit must be >= 1, got {test_limit}")
    unknown = [s for s in strategies if s not in STRATEGIES]
    if unknown:
        raise MiniftError(f"unknown strategy {unknown[0]!r}: choose from {', '.join(STRATEGIES)}")
    if data is not None:
        data_task = load_examples(data=data)[0].task
        tasks = tasks or [data_task]
        if list(tasks) != [data_task]:
            raise MiniftError(f"{data} holds {data_task} examples: pass --tasks {data_task} (or leave --tasks out)")
    tasks = list(tasks or ("translation", "summarization", "qa"))
    for t in tasks:
        if t not in task_names():
            raise MiniftError(f"unknown task '{t}': choose from {', '.join(task_names())}")
    sizes, strategies = sorted(set(sizes)), list(strategies)
    bundle = load_model(base or "base")  # fails early, with a clear message, if the base is missing
    c = bundle.model.config
    model = {"params": bundle.model.num_parameters(), "n_layer": c.n_layer, "n_head": c.n_head, "n_embd": c.n_embd,
             "block_size": c.block_size, "vocab_size": c.vocab_size}
    cfg = {"max_steps": max_steps, "base": None if base is None else str(base),
           "data": None if data is None else str(data), "test_limit": test_limit, "device": device, "model": model,
           "tests": {t: scoring_examples(t, data, test_limit) for t in tasks}}
    log = out / "results.jsonl"
    records = read_records(log)
    for r in records:
        if any(r.get(k) != cfg[k] for k in SETTINGS):
            theirs = ", ".join(f"{k}={r.get(k)}" for k in SETTINGS)
            raise MiniftError(f"{log} holds runs made with other settings ({theirs}): use another --out, "
                              f"or the same settings to resume")
    done = {record_key(r) for r in records}
    grid = [(t, n, s, seed) for t in tasks for n in sizes for seed in range(seeds) for s in strategies]
    todo = [g for g in grid if g not in done]
    if not quiet:
        print(f"experiment: {len(grid)} runs, {len(grid) - len(todo)} already recorded in {log}", file=sys.stderr)
    started = time.time()
    for i, (task, n, strategy, seed) in enumerate(todo, 1):
        record = run_one(task, n, strategy, seed, out, cfg)
        text = log.read_text(encoding="utf-8") if log.exists() else ""
        atomic_write_text(log, text + json.dumps(record) + "\n")  # recorded before the next run starts
        records.append(record)
        if not keep_checkpoints:
            prune(out / "runs" / task / str(n) / strategy / f"seed{seed}")
        if not quiet:
            left = len(todo) - i
            eta = (time.time() - started) / i * left
            print(f"[{i}/{len(todo)}] {task} N={n} {strategy} seed {seed}: {record['main_metric']} "
                  f"{record['score']:.1f} in {record['seconds']:.0f} s; {left} run{'s' if left != 1 else ''} left, about "
                  f"{eta / 60:.1f} min left", file=sys.stderr)
    wanted = set(grid)
    agg = aggregate([r for r in records if record_key(r) in wanted], model)
    command = command_line(tasks, sizes, seeds, out, max_steps, base, data, test_limit, strategies)
    agg.update({"command": command, "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "machine": machine(), "seeds": seeds, "sizes": sizes, "strategies": strategies,
                "settings": {k: cfg[k] for k in SETTINGS},
                "rule_of_thumb": {t: rule_of_thumb(t, agg["results"][t]) for t in agg["results"]}})
    write_markdown(out / "results.md", agg, command, seeds, {t: len(cfg["tests"][t]) for t in tasks})
    write_charts(out, agg)
    atomic_write_json(out / "results.json", agg)
    if not quiet:
        print(f"wrote {out}/results.md, results.json, {', '.join(t + '.svg' for t in agg['results'])}", file=sys.stderr)
    return agg
