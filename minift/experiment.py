"""Which strategy wins, at which data size? Measure it: every strategy, every size, several seeds.

The rule of thumb this project started from says: *with little data prefer specific-layer or
prompt tuning, with plenty prefer full-parameter fine-tuning*. ``minift experiment strategies``
puts it to the test. For each task, each training-set size N and each seed it runs

    full      every weight trains                      (recipes/full.toml)
    layers    the top half of the blocks + ln_f        (recipes/layers.toml)
    prompt    soft prompts on a frozen base            (recipes/prompt.toml)
    lora      LoRA rank 8 on the attention             (recipes/lora.toml)
    bitfit    only the bias vectors                    (recipes/bitfit.toml)
    ...       every strategy the registry holds (minift/strategies/), by its recipe of the same name
    hybrid-lora  full -> LoRA -> prompt                (recipes/hybrid-lora.toml)
    hybrid    full -> layers -> prompt                 (recipes/hybrid.toml)
    scratch   the full recipe from random weights      (the floor: what pretraining is worth)

then scores the final model on the task's TEST split (with ``--data``: its held-out tail, which
is also what the stages validated on, so treat those numbers as a smoke test).

**The protocol** (``--protocol fair``, the default; data/experiments/strategies/README.md gives
the reasons) makes the comparison fair in four ways:

* *Budgets follow the data.* Every stage trains ``epochs`` passes over its N examples, at least
  ``min_steps`` and at most ``max_steps`` (the cap) steps, and stops early on its validation
  monitor (``patience`` evaluations without an improvement larger than ``min_delta``), keeping
  its best weights (``finetune.stage_steps``). A stage the cap stopped while its last evaluation
  was still its best is ``cap_still_improving`` (``finetune.stop_reason``); its cell gets a †.
* *Tuned learning rates.* ``minift experiment lr-sweep`` (``lr_sweep``) runs each strategy at
  each of at least 3 multipliers of its recipe's learning rates, at one N and one seed, scores
  the final models on the VALIDATION split and writes the winners to ``lrs.json``;
  ``strategies --lrs lrs.json`` trains every cell with them.
* *Statistics.* A cell is the mean over seeds with a 95% confidence interval from Student's t:

      mean = sum(x) / n    s = sqrt(sum((x - mean)^2) / (n - 1))    mean ± t(0.975, n - 1) * s / sqrt(n)

  Strategies whose intervals overlap the best one's are tied (``winners``: "A = B"), not ranked.
* *Equal compute and forgetting.* Each record keeps its run's validation curve against the CPU
  seconds spent (from log.jsonl; ``TASK-compute.svg``), and the language-model loss of its final
  model on the base's held-out pretraining text (``pretrain.heldout_loss``: how much the
  strategy cost the base's general modelling).

``--protocol fixed`` is the earlier protocol (each recipe's own steps, ``--max-steps`` a cap).
The protocol is part of every record; a folder holding records of another protocol or other
settings is refused, naming the file and the differing field, never silently mixed.

Every finished run is appended as one JSON line to ``OUT/results.jsonl`` *before* the next one
starts, so a killed experiment resumes where it stopped: a (task, N, strategy, seed) already
recorded is skipped. Run folders keep only ``summary.json`` and ``log.jsonl`` once scored.
The experiment then writes ``results.md`` (tables), ``TASK.svg`` (metric against N, log axis,
error bars = the 95% interval), ``TASK-compute.svg`` and ``results.json`` (what ``minift
advise`` reads).

Tutorial 11 (choosing a strategy) reads these tables and charts.
"""
from __future__ import annotations

import dataclasses
import hashlib
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

from minift import strategies
from minift.bundle import load_model
from minift.checkpoint import save_checkpoint
from minift.errors import MiniftError
from minift.evaluate import evaluate_examples, teacher_forced_loss
from minift.finetune import RunOptions, plan_differs, run_recipe
from minift.io import atomic_write_json, atomic_write_text, read_jsonl, usable_folder
from minift.model import GPT
from minift.schedule import load_recipe
from minift.tasks import MAIN_METRIC, load_examples

# The arms: one per registered strategy (its recipe of the same name, minift/recipes/NAME.toml),
# the hybrid schedules (full -> LoRA -> prompt; full -> layers -> prompt), and the full recipe from
# fresh weights. arm -> (recipe, from fresh weights).
ARMS = {**{name: (name, False) for name in strategies.names()}, "hybrid-lora": ("hybrid-lora", False),
        "hybrid": ("hybrid", False), "scratch": ("full", True)}
STRATEGIES = tuple(ARMS)
RULE_SMALL, RULE_LARGE = ("layers", "prompt"), "full"
# Records made with another protocol or other settings do not mix (each is compared on resume).
SETTINGS = ("protocol", "max_steps", "base", "data", "test_limit")
SWEEP_SETTINGS = ("protocol", "max_steps", "base", "data", "val_limit", "examples", "seed")
# The sweep's defaults (the CLI's too): multipliers of each recipe's rates, the validation examples
# each final model is scored on, and the rungs of the 1-3-10 ladder it may add past an edge winner.
SWEEP_SCALES = (0.3, 1.0, 3.0)
SWEEP_VAL_LIMIT = 100
SWEEP_EXTEND = 2
CONFIDENCE = 0.95
# The fair protocol's defaults: budgets that follow the data (see the module docstring).
FAIR = {"epochs": 10.0, "min_steps": 100, "max_steps": 2000, "patience": 4, "min_delta": 0.001,
        "monitor": "val_loss"}
MONITORS = ("val_loss", "main_metric")  # main_metric: each task's own (bleu, rougeL, f1)
OLD_PROTOCOL = {"name": "fixed", "lr_source": "recipes"}  # what a record without a protocol was made with
DAGGER = "†"


def arm_of(recipe_name: str, base) -> str:
    """The grid's arm a run of ``recipe_name`` on ``base`` is: the recipe's own, or the arm that runs
    it from fresh weights (``scratch``) when the base is ``scratch``; a recipe the grid never ran
    keeps its name."""
    fresh = base == "scratch"
    return next((arm for arm, (recipe, new) in ARMS.items() if recipe == recipe_name and new == fresh), recipe_name)


# --- statistics ----------------------------------------------------------------------------------
def mean_std(values: list[float]) -> tuple[float, float]:
    """The mean and the sample standard deviation (n - 1); the std of one value is 0."""
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, 0.0
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))


def _beta_fraction(a: float, b: float, x: float) -> float:
    """The continued fraction of the incomplete beta function (modified Lentz's method)."""
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 500):
        for numerator in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),  # even step, then odd
                          -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-15:
            break
    return h


def betainc(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function I_x(a, b) = B(x; a, b) / B(a, b), 0 <= x <= 1."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):  # where the fraction converges fast; else use the symmetry
        return front * _beta_fraction(a, b, x) / a
    return 1.0 - front * _beta_fraction(b, a, 1.0 - x) / b


def t_upper_tail(t: float, df: float) -> float:
    """P(T > t) for Student's t with df degrees of freedom, t >= 0: I_{df/(df+t^2)}(df/2, 1/2) / 2."""
    return 0.5 * betainc(df / 2.0, 0.5, df / (df + t * t))


def t_quantile(p: float, df: float) -> float:
    """The p-quantile of Student's t (df degrees of freedom): t(0.975, 2) = 4.302653.

    Bisection on the upper tail, which is computed directly (no 1 - p cancellation near p = 1).
    """
    if not 0.0 < p < 1.0 or not df > 0:
        raise MiniftError(f"t_quantile needs 0 < p < 1 and df > 0, got p={p}, df={df}")
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    tail = 1.0 - p
    if tail == 0.5:
        return 0.0
    lo, hi = 0.0, 1.0
    while t_upper_tail(hi, df) > tail:
        lo, hi = hi, hi * 2.0
    for _ in range(200):
        mid = (lo + hi) / 2.0
        if t_upper_tail(mid, df) > tail:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-13 * hi:
            break
    return (lo + hi) / 2.0


def mean_ci(values: list[float], confidence: float = CONFIDENCE) -> tuple[float, float]:
    """(mean, half-width) of the Student's t confidence interval: t((1 + c) / 2, n - 1) * s / sqrt(n).

    One value gives no interval: its half-width is infinite (it cannot be told apart from anything).
    """
    mean, std = mean_std(values)
    n = len(values)
    if n < 2:
        return mean, math.inf
    return mean, t_quantile((1.0 + confidence) / 2.0, n - 1) * std / math.sqrt(n)


def cell_ci(cell: dict, confidence: float = CONFIDENCE) -> float:
    """A table cell's half-width: its ``ci``, else from its std and n (results of older runs)."""
    if cell.get("ci") is not None:
        return float(cell["ci"])
    n = int(cell.get("n", 1))
    if n < 2:
        return math.inf
    return t_quantile((1.0 + confidence) / 2.0, n - 1) * float(cell.get("std", 0.0)) / math.sqrt(n)


# --- small parsers -------------------------------------------------------------------------------
def parse_sizes(text: str) -> list[int]:
    """'50,200,1000' -> [50, 200, 1000] (for --examples); a bad item is named."""
    try:
        sizes = [int(item) for item in text.split(",") if item.strip()]
    except ValueError:
        raise MiniftError(f"--examples takes whole numbers separated by commas (e.g. 50,200,1000), got {text!r}") from None
    if not sizes or min(sizes) < 1:
        raise MiniftError(f"--examples: every size must be >= 1, got {text!r}")
    return sizes


def parse_scales(text: str) -> list[float]:
    """'0.3,1,3' -> [0.3, 1.0, 3.0] (for --lr-scales): at least 3 distinct multipliers > 0."""
    try:
        scales = [float(item) for item in text.split(",") if item.strip()]
    except ValueError:
        raise MiniftError(f"--lr-scales takes numbers separated by commas (e.g. 0.3,1,3), got {text!r}") from None
    if any(not math.isfinite(v) or v <= 0 for v in scales):
        raise MiniftError(f"--lr-scales: every multiplier must be > 0, got {text!r}")
    if len(set(scales)) < 3:
        raise MiniftError(f"--lr-scales: the protocol tunes over at least 3 distinct values, got {text!r}")
    return sorted(set(scales))


def backward_fraction(trainable_names: list[str], n_layer: int) -> float:
    """How far down the backward pass must reach: 1.0 = to the embeddings, 0.5 = the top half."""
    if any(n.startswith("prompts.") or ".wte." in n or ".wpe." in n for n in trainable_names):
        return 1.0  # a soft prompt or an embedding sits at the very bottom
    blocks = [int(m.group(1)) for n in trainable_names if (m := re.search(r"(?:^|\.)h\.(\d+)\.", n))]
    return (n_layer - min(blocks)) / n_layer if blocks else 0.0


# --- the protocol --------------------------------------------------------------------------------
def resolve_protocol(protocol: str = "fair", epochs=None, min_steps=None, max_steps=None, patience=None,
                     min_delta=None, monitor=None) -> tuple[dict, int | None]:
    """(protocol record, step cap) from the options; every bad value is one MiniftError."""
    options = {"epochs": epochs, "min_steps": min_steps, "patience": patience, "min_delta": min_delta,
               "monitor": monitor}
    if max_steps is not None and (isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 1):
        raise MiniftError(f"--max-steps must be a whole number >= 1, got {max_steps!r}")
    if protocol == "fixed":
        given = [k for k, v in options.items() if v is not None]
        if given:
            raise MiniftError(f"--{given[0].replace('_', '-')} belongs to the fair protocol; the fixed protocol "
                              f"trains each recipe's own steps (drop it, or use --protocol fair)")
        return dict(OLD_PROTOCOL), max_steps
    if protocol != "fair":
        raise MiniftError(f"unknown protocol {protocol!r}: choose fair (budgets by epochs, early stopping) or fixed")
    cap = max_steps if max_steps is not None else FAIR["max_steps"]
    floor = min_steps if min_steps is not None else min(FAIR["min_steps"], cap)
    epochs = FAIR["epochs"] if epochs is None else epochs
    patience = FAIR["patience"] if patience is None else patience
    min_delta = FAIR["min_delta"] if min_delta is None else min_delta
    monitor = FAIR["monitor"] if monitor is None else monitor
    if not isinstance(epochs, (int, float)) or isinstance(epochs, bool) or not epochs > 0:
        raise MiniftError(f"--epochs must be > 0, got {epochs!r}")
    if isinstance(floor, bool) or not isinstance(floor, int) or not 1 <= floor <= cap:
        raise MiniftError(f"--min-steps (the floor) must be a whole number from 1 to --max-steps (the cap, {cap}), "
                          f"got {floor!r}")
    if isinstance(patience, bool) or not isinstance(patience, int) or patience < 1:
        raise MiniftError(f"--patience must be a whole number of evaluations >= 1, got {patience!r}")
    if not isinstance(min_delta, (int, float)) or isinstance(min_delta, bool) or not min_delta >= 0:
        raise MiniftError(f"--min-delta must be >= 0, got {min_delta!r}")
    if monitor not in MONITORS:
        raise MiniftError(f"--monitor {monitor!r}: choose {' or '.join(MONITORS)}")
    return {"name": "fair", "epochs": float(epochs), "min_steps": floor, "patience": patience,
            "min_delta": float(min_delta), "monitor": monitor, "restore_best": True, "lr_source": "recipes"}, cap


def describe_protocol(protocol: dict, cap) -> str:
    """The protocol in one line, for results.md."""
    if protocol.get("name") != "fair":
        return ("fixed: each recipe's own steps per stage" + (f", capped at {cap}" if cap else "") +
                "; no early stopping unless the recipe asks; learning rates: " + protocol.get("lr_source", "recipes"))
    return (f"fair: each stage trains {protocol['epochs']:g} epochs of its N examples, at least "
            f"{protocol['min_steps']} and at most {cap} steps, and stops early after {protocol['patience']} "
            f"evaluations without a {protocol['monitor']} improvement larger than {protocol['min_delta']:g} "
            f"(best weights restored); learning rates: {protocol['lr_source']}")


def apply_protocol(recipe, protocol: dict, cap, task: str, lr_scale: float = 1.0):
    """(recipe, --max-steps for RunOptions): the recipe's stages with the protocol's budget and
    early stopping, and every stage's learning rate times ``lr_scale``."""
    if protocol.get("name") != "fair":
        stages = [dataclasses.replace(s, lr=s.lr * lr_scale) for s in recipe.stages]
        return dataclasses.replace(recipe, stages=stages), cap
    monitor = MAIN_METRIC.get(task, "f1") if protocol["monitor"] == "main_metric" else protocol["monitor"]
    stages = [dataclasses.replace(s, lr=s.lr * lr_scale, epochs=protocol["epochs"], min_steps=protocol["min_steps"],
                                  max_steps=cap, patience=protocol["patience"], min_delta=protocol["min_delta"],
                                  monitor=monitor, restore_best=protocol["restore_best"])
              for s in recipe.stages]
    return dataclasses.replace(recipe, stages=stages), None


def mismatch(record: dict, settings: dict, keys=SETTINGS) -> str | None:
    """The first field in which a record's protocol or settings differ from ours, or None (a
    protocol's name is compared first: "another protocol" says more than the field it changed)."""
    def name_first(value):
        if not isinstance(value, dict):
            return value
        return {f: value[f] for f in sorted(value, key=lambda f: (f != "name", f))}

    ours = {key: name_first(settings[key]) for key in keys}
    theirs = {key: record.get(key, OLD_PROTOCOL if key == "protocol" else None) for key in keys}
    return plan_differs(theirs, ours)


def rates_differ(record: dict, recipes: dict) -> str | None:
    """Where a record's stage rates differ from its recipe's rates now times its ``lr_scale``, or None.

    A sweep's winners are multipliers of the recipes' rates, so a recipe whose ``lr`` was edited
    after a record was made would train the missing cells at other rates than the recorded ones:
    the folder would mix two sets of rates under one lr_source. (Records without ``lrs`` predate it.)
    """
    arm = ARMS.get(record.get("strategy"))
    if arm is None or "lrs" not in record or "lr_scale" not in record:
        return None
    if arm[0] not in recipes:
        recipes[arm[0]] = [s.lr for s in load_recipe(arm[0]).stages]
    now = [lr * record["lr_scale"] for lr in recipes[arm[0]]]
    theirs = record["lrs"]
    if len(now) != len(theirs) or any(not math.isclose(a, b, rel_tol=1e-9) for a, b in zip(now, theirs)):
        return (f"lrs: {theirs} there, {now} here (recipes/{arm[0]}.toml's rates x{record['lr_scale']:g}; "
                f"was the recipe edited?)")
    return None


def check_records(log: Path, records: list[dict], settings: dict, keys=SETTINGS) -> None:
    """Refuse a folder holding records made with another protocol or settings (one line).

    A record's learning rates are those of the sweep nearest its own N (``cell_settings``), so each
    record is compared with the settings its cell would get now.
    """
    recipes = {}
    for r in records:
        differs = mismatch(r, cell_settings(settings, r.get("examples")), keys) or rates_differ(r, recipes)
        if differs:
            what = " ".join(str(r.get(k)) for k in ("task", "examples", "strategy", "seed", "lr_scale") if k in r)
            raise MiniftError(f"{log} holds a run made with another protocol or settings ({what}: {differs}): "
                              f"use another --out, or the same settings to resume")


def read_lr_sweeps(paths, protocol: dict, cap, base, data) -> tuple[dict, str, dict]:
    """({sweep size N: {(task, strategy): lr multiplier}}, lr_source, {N: that sweep's lr_source})
    from one or more lr sweeps.

    ``paths`` is one lrs.json or a comma list of them, each a sweep at its own training-set size;
    a cell of the grid uses the sweep nearest its N (``tuned_at``). One sweep gives the lr_source
    ``tuned sha256:...`` of its winners; several give ``tuned at N=50 sha256:...; N=1000 ...`` for
    the grid, while each record carries the lr_source of the one sweep its cell used.
    """
    paths = [p for p in (paths.split(",") if isinstance(paths, str) else [paths]) if str(p).strip()]
    if not paths:
        raise MiniftError("--lrs: give an lr sweep's lrs.json, or a comma list of them (one per sweep size)")
    by_size, sources = {}, {}
    for path in paths:
        winners, source, size = read_lrs(path, protocol, cap, base, data)
        if size in by_size:
            raise MiniftError(f"--lrs: two sweeps at N={size} ({sources[size][0]} and {path}); give one per size")
        by_size[size], sources[size] = winners, (path, source)
    per_size = {n: sources[n][1] for n in by_size}
    if len(by_size) == 1:
        return by_size, next(iter(per_size.values())), per_size
    return by_size, "tuned at " + "; ".join(f"N={n} {per_size[n][len('tuned '):]}" for n in sorted(by_size)), per_size


def cell_settings(cfg: dict, n) -> dict:
    """The settings a cell of N examples is trained under: the protocol's lr_source is that of the
    sweep its rates come from (``tuned sha256:`` of that sweep's winners), so records of sizes that
    use the same sweep stay valid when a sweep for other sizes is added."""
    sources = cfg.get("lr_sources")
    if not sources or n is None:
        return cfg
    return {**cfg, "protocol": {**cfg["protocol"], "lr_source": sources[tuned_at(sources, int(n))]}}


def tuned_at(sizes, n: int) -> int | None:
    """The sweep size nearest ``n`` on a log scale (a tie goes to the larger), or None when there is none.

    Log scale, because the sizes of a grid grow by factors (50, 200, 1000, ...): N=200 is nearer a
    sweep at 50 (x4) than one at 1000 (x5).
    """
    sizes = sorted(sizes)
    if not sizes:
        return None
    return min(reversed(sizes), key=lambda m: abs(math.log(n / m)))


def read_lrs(path, protocol: dict, cap, base, data) -> tuple[dict, str, int]:
    """({(task, strategy): lr multiplier}, lr_source, sweep size N) from an lr sweep's lrs.json,
    checked against the experiment: the learning rates were tuned under the same budget, base and data."""
    path = Path(str(path).strip())
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        winners = {(t, s): float(w["lr_scale"]) for t, cells in doc["winners"].items() for s, w in cells.items()}
        settings = doc["settings"]
        size = int(doc["examples"])
    except FileNotFoundError:
        raise MiniftError(f"--lrs {path}: no such file (write it with `minift experiment lr-sweep`)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise MiniftError(f"--lrs {path}: not an lr sweep's lrs.json ({type(exc).__name__}: {exc})") from None
    ours = {"protocol": {k: v for k, v in protocol.items() if k != "lr_source"}, "max_steps": cap, "base": base,
            "data": data}
    theirs = {"protocol": {k: v for k, v in settings.get("protocol", {}).items() if k != "lr_source"},
              **{k: settings.get(k) for k in ("max_steps", "base", "data")}}
    differs = mismatch(theirs, ours, keys=("protocol", "max_steps", "base", "data"))
    if differs:
        raise MiniftError(f"--lrs {path} was tuned under another protocol or settings ({differs}): rerun the sweep "
                          f"with this experiment's options, or run the experiment with the sweep's")
    canonical = json.dumps({f"{t}/{s}": v for (t, s), v in sorted(winners.items())}, sort_keys=True)
    return winners, "tuned sha256:" + hashlib.sha256(canonical.encode()).hexdigest()[:12], size


# --- one run -------------------------------------------------------------------------------------
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


def append_record(log: Path, record: dict) -> None:
    text = log.read_text(encoding="utf-8") if log.exists() else ""
    atomic_write_text(log, text + json.dumps(record) + "\n")  # recorded before the next run starts


def record_key(r: dict) -> tuple:
    return (r["task"], int(r["examples"]), r["strategy"], int(r["seed"]))


def scoring_examples(task: str, data, limit: int):
    """The examples a finished model is scored on: the test split, or a data file's held-out tail."""
    if data is None:
        return load_examples(task=task, split="test", n=limit)
    examples = load_examples(data=data)
    return examples[-max(1, len(examples) // 10):][:limit]  # the tail finetune.py holds out


def validation_examples(task: str, data, limit: int):
    """What the lr sweep scores on: the VALIDATION split (a data file has none: its held-out tail)."""
    if data is None:
        return load_examples(task=task, split="val", n=limit)
    examples = load_examples(data=data)
    return examples[-max(1, len(examples) // 10):][:limit]


def scratch_base(base, seed: int, folder: Path) -> str:
    """A checkpoint with the base's shape and tokenizer but fresh random weights (the floor)."""
    path = folder / f"seed{seed}" / "model.pt"
    if not path.exists():
        bundle = load_model(base or "base")
        torch.manual_seed(seed)
        model = GPT(bundle.model.config)
        save_checkpoint(path, model, bundle.tokenizer, meta={"kind": "scratch", "seed": seed})
    return str(path)


def compute_curve(run_dir: Path, summary: dict) -> list[list[float]]:
    """[[CPU seconds, val_loss, step], ...] for every evaluation in the run's log.jsonl.

    An eval record's ``cpu_s`` counts from its stage's start; the CPU seconds of the stages before
    it are added, so x grows over the whole run (hybrid: full, then layers, then prompt).
    """
    path = run_dir / "log.jsonl"
    if not path.exists():
        return []
    spent = {s["name"]: s.get("cpu_seconds", 0.0) for s in summary.get("stages", [])}
    order = [s["name"] for s in summary.get("stages", [])]
    evals = [r for r, _ in read_jsonl(path, what="log", skip_blank=True)
             if r.get("event") == "eval" and r.get("cpu_s") is not None and r.get("val_loss") is not None
             and r.get("stage") in spent]
    offset, offsets = 0.0, {}
    for name in order:
        offsets[name] = offset
        last = max((r["cpu_s"] for r in evals if r["stage"] == name), default=0.0)
        offset += max(spent[name], last)
    return [[round(offsets[r["stage"]] + r["cpu_s"], 4), r["val_loss"], r["step"]] for r in evals]


def train_run(task, n, strategy, seed, run_dir: Path, cfg: dict, lr_scale: float, eval_limit: int):
    """Train one run under the protocol (or pick up one trained but not scored): (summary, recipe)."""
    recipe_name, fresh = ARMS[strategy]
    recipe, opts_cap = apply_protocol(load_recipe(recipe_name), cfg["protocol"], cfg["max_steps"], task, lr_scale)
    base = scratch_base(cfg["base"], seed, cfg["out"] / "scratch-bases") if fresh else cfg["base"]
    if (run_dir / "summary.json").exists() and (run_dir / "model.pt").exists():
        return json.loads((run_dir / "summary.json").read_text()), recipe  # trained, killed before scoring
    if (run_dir / "summary.json").exists():  # scored and pruned earlier, but its record is gone
        shutil.rmtree(run_dir)
    opts = RunOptions(out=str(run_dir), task=task, data=cfg["data"], examples=n, max_steps=opts_cap,
                      seed=seed, device=cfg["device"], resume=True, quiet=True, base=base, eval_limit=eval_limit)
    return run_recipe(recipe, opts), recipe


def stage_rows(summary: dict, recipe, n_layer: int) -> list[dict]:
    return [{"name": s["name"], "strategy": s["strategy"], "trainable_params": s["trainable_params"],
             "total_params": s["total_params"], "optimizer_state_bytes": s["optimizer_state_bytes"],
             "steps": s["steps"], "seconds": s["seconds"], "cpu_seconds": s.get("cpu_seconds"),
             "examples": s["examples"], "batch_size": stage.batch_size, "lr": stage.lr,
             "max_steps": s.get("max_steps"), "best_step": s.get("best_step"),
             "stop_reason": s.get("stop_reason", "completed"),
             "backward_fraction": backward_fraction(s["trainable_names"], n_layer)}
            for s, stage in zip(summary["stages"], recipe.stages)]


def run_cpu_seconds(here: float, summary: dict, scoring: float) -> float:
    """A run's CPU seconds: this process's (``here``: setup, training, scoring), unless part of the
    training happened in an earlier process (a run killed and resumed, or trained and killed before
    it was scored): then its stages' own CPU seconds, which add up across resumes, plus the scoring's.
    (What the earlier process spent loading the base, a few seconds, is not known and not counted.)"""
    trained = sum(s.get("cpu_seconds") or 0.0 for s in summary.get("stages", []))
    return max(here, trained + scoring)


def run_one(task, n, strategy, seed, out: Path, cfg: dict) -> dict:
    """Train one (task, N, strategy, seed) and score it on the test examples; returns its record."""
    run_dir = out / "runs" / task / str(n) / strategy / f"seed{seed}"
    sweep_n = tuned_at(cfg["lr_scales"], n)
    lr_scale = cfg["lr_scales"][sweep_n].get((task, strategy), 1.0) if sweep_n is not None else 1.0
    cpu0 = time.process_time()  # CPU seconds: unlike wall time, not inflated by other processes
    summary, recipe = train_run(task, n, strategy, seed, run_dir, cfg, lr_scale, min(100, cfg["test_limit"]))
    t0, cpu1 = time.time(), time.process_time()
    bundle = load_model(run_dir, device=cfg["device"])
    report = evaluate_examples(bundle, cfg["tests"][task])
    eval_seconds = time.time() - t0
    world, settings = None, cell_settings(cfg, n)
    if cfg["world"] is not None:  # the final model without its soft prompts, on held-out world text
        from minift.pretrain import heldout_loss

        world = heldout_loss(bundle.model, cfg["world"], cfg["device"])
    stages = stage_rows(summary, recipe, cfg["model"]["n_layer"])
    metric = report["main_metric"]
    return {"task": task, "examples": n, "strategy": strategy, "seed": seed, "recipe": recipe.name,
            "main_metric": metric, "score": report["metrics"][metric], "metrics": report["metrics"],
            "before": summary.get("before", {}), "test_examples": report["n"],
            "train_seconds": summary["seconds"], "eval_seconds": round(eval_seconds, 2),
            "seconds": round(summary["seconds"] + eval_seconds, 2),
            "cpu_seconds": round(run_cpu_seconds(time.process_time() - cpu0, summary, time.process_time() - cpu1), 2),
            "threads": torch.get_num_threads(),
            "trainable_params": max(s["trainable_params"] for s in stages),
            "optimizer_state_bytes": max(s["optimizer_state_bytes"] for s in stages),
            "steps": sum(s["steps"] for s in stages), "stages": stages,
            "lr_scale": lr_scale, "lr_tuned_at": sweep_n, "lrs": [s["lr"] for s in stages],
            "capped_improving": any(s["stop_reason"] == "cap_still_improving" for s in stages),
            "world_loss": world, "curve": compute_curve(run_dir, summary),
            **{k: settings[k] for k in SETTINGS}}


def prune(run_dir: Path) -> None:
    """Keep only summary.json and log.jsonl: checkpoints of 200 runs would fill a disk."""
    for item in run_dir.iterdir():
        if item.name not in ("summary.json", "log.jsonl"):
            shutil.rmtree(item) if item.is_dir() else item.unlink()


# --- aggregate and report ------------------------------------------------------------------------
def aggregate(records: list[dict], model: dict) -> dict:
    """results.json: task -> strategy -> size -> {mean, std, ci, n, scores, seconds, world loss, ...}."""
    results, costs, main = {}, {}, {}
    groups = {}
    for r in records:
        groups.setdefault((r["task"], r["strategy"], int(r["examples"])), []).append(r)
    for (task, strategy, n), rs in sorted(groups.items()):
        scores = [r["score"] for r in sorted(rs, key=lambda r: r["seed"])]
        mean, std = mean_std(scores)
        _, ci = mean_ci(scores)
        worlds = [r["world_loss"] for r in rs if r.get("world_loss") is not None]
        world_mean, world_ci = mean_ci(worlds) if worlds else (None, None)
        results.setdefault(task, {}).setdefault(strategy, {})[str(n)] = {
            "mean": mean, "std": std, "ci": ci if math.isfinite(ci) else None, "n": len(rs),
            "seconds_mean": sum(r["seconds"] for r in rs) / len(rs),
            "cpu_seconds_mean": sum(r.get("cpu_seconds", r["seconds"]) for r in rs) / len(rs),
            "steps_mean": sum(r.get("steps", 0) for r in rs) / len(rs),
            "capped_improving": sum(bool(r.get("capped_improving")) for r in rs),
            "world_loss_mean": world_mean, "world_loss_ci": world_ci if world_ci is None or math.isfinite(world_ci)
            else None, "world_loss_n": len(worlds),
            "lr_scale": rs[0].get("lr_scale", 1.0),
            "trainable_params": max(r["trainable_params"] for r in rs),
            "stage_trainable_params": [s["trainable_params"] for s in rs[0]["stages"]],
            "scores": scores}
        main[task] = rs[0]["main_metric"]
        costs.setdefault(task, {})[strategy] = [  # the stages of the largest size: what memory the advisor plans
            {k: s[k] for k in ("name", "strategy", "trainable_params", "total_params", "batch_size",
                               "backward_fraction", "optimizer_state_bytes") if k in s}
            | {"trainable_fraction": s["trainable_params"] / model["params"]}
            for s in rs[0]["stages"]]
    for task in results:  # a canonical strategy order for tables and charts
        results[task] = {s: results[task][s] for s in STRATEGIES if s in results[task]}
    return {"results": results, "costs": costs, "main_metric": main, "model": model, "confidence": CONFIDENCE}


def winners(table: dict, among=STRATEGIES) -> dict[int, list[str]]:
    """At each size, the best mean and every strategy tied with it (in ``among``'s order).

    Tied: the 95% intervals overlap (mean_s + ci_s >= mean_best - ci_best), or the means agree
    to the 0.1 the table shows. A cell of one seed has no interval, so it ties with everything.
    """
    sizes = sorted({int(n) for cells in table.values() for n in cells})
    out = {}
    for n in sizes:
        cells = {s: table[s][str(n)] for s in among if s in table and str(n) in table[s]}
        if not cells:
            continue
        best = max(cells, key=lambda s: cells[s]["mean"])
        low = cells[best]["mean"] - cell_ci(cells[best])
        out[n] = [s for s, c in cells.items() if c["mean"] + cell_ci(c) >= low
                  or round(c["mean"], 1) == round(cells[best]["mean"], 1)]
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
            f"Over all strategies: {show(winners(table))}. ('A = B': their 95% intervals overlap, a tie.)")


def machine() -> str:
    return (f"{platform.platform()}, processor {platform.processor() or 'unknown'}, torch {torch.__version__}, "
            f"{torch.get_num_threads()} thread{'s' if torch.get_num_threads() != 1 else ''}")


def markdown_table(table: dict, value, text, best=max, bold=None) -> list[str]:
    """Rows = sizes, columns = strategies. Bold: the cells ``bold(n)`` names, else every cell showing
    the best rounded value (ties too)."""
    strategies, sizes = list(table), sorted({int(n) for cells in table.values() for n in cells})
    lines = ["| examples | " + " | ".join(strategies) + " |", "|---:|" + "---:|" * len(strategies)]
    for n in sizes:
        cells = [table[s].get(str(n)) for s in strategies]
        if bold is not None:
            strong = set(bold(n))
            marked = [c is not None and s in strong for s, c in zip(strategies, cells)]
        else:
            top = best(round(value(c), 1) for c in cells if c)
            marked = [c is not None and round(value(c), 1) == top for c in cells]
        lines.append(f"| {n} | " + " | ".join("" if not c else f"**{text(c)}**" if m else text(c)
                                              for c, m in zip(cells, marked)) + " |")
    return lines


def score_text(c: dict) -> str:
    """A metric cell: mean ± the 95% half-width (one seed: no interval), † if a run was capped improving."""
    ci = cell_ci(c)
    shown = f"{c['mean']:.1f} ± {ci:.1f}" if math.isfinite(ci) else f"{c['mean']:.1f} (1 seed)"
    return shown + (DAGGER if c.get("capped_improving") else "")


def world_text(c: dict, base_loss: float) -> str:
    if c.get("world_loss_mean") is None:
        return "–"
    ci = c.get("world_loss_ci")
    return f"{c['world_loss_mean'] - base_loss:+.3f}" + (f" ± {ci:.3f}" if ci is not None else "")


def write_markdown(path: Path, agg: dict, command: str, seeds: int, test_n: dict) -> None:
    model = agg["model"]
    lines = ["# Fine-tuning strategies against training-set size", "",
             f"- command: `{command}`", f"- date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC}",
             f"- machine: {machine()}"]
    if agg.get("protocol"):
        lines.append(f"- protocol: {describe_protocol(agg['protocol'], agg.get('settings', {}).get('max_steps'))}")
    lines += [f"- seeds: {', '.join(map(str, range(seeds)))} (cells: mean ± the half-width of the 95% confidence "
              f"interval, Student's t with n - 1 degrees of freedom; in bold the best mean and every strategy whose "
              f"interval overlaps it, a tie)",
              f"- {DAGGER}: at least one seed's run ended at the step cap while its last evaluation was still its best "
              f"(more steps might have raised it)",
              f"- model: {model['params']:,} parameters ({model['n_layer']} layers, width {model['n_embd']})", ""]
    base_loss = agg.get("base_world_loss")
    for task, table in agg["results"].items():
        lines += [f"## {task}: {agg['main_metric'][task]} on {test_n[task]} test examples", ""]
        lines += markdown_table(table, lambda c: c["mean"], score_text, bold=winners(table).get)
        lines += ["", f"Time per run, {task} (training + evaluation + test scoring): the process's own CPU "
                      f"seconds, which other processes on the machine do not inflate (fastest in bold), and in "
                      f"brackets the wall-clock seconds, which they do:", ""]
        lines += markdown_table(table, lambda c: c["cpu_seconds_mean"],
                                lambda c: f"{c['cpu_seconds_mean']:.1f} ({c['seconds_mean']:.0f})", best=min)
        params = [" → ".join(f"{p:,}" for p in next(iter(cells.values()))["stage_trainable_params"])
                  for cells in table.values()]
        lines += ["| trainable params | " + " | ".join(params) + " |", ""]
        lines += lr_table(agg, task, list(table))
        if base_loss is not None and any(c.get("world_loss_mean") is not None
                                         for cells in table.values() for c in cells.values()):
            lines += [f"Forgetting, {task}: the final model's language-model loss on the base's held-out "
                      f"pretraining text (soft prompts aside), minus the base's own {base_loss:.4f} nats/token "
                      f"(mean ± 95% half-width; + is worse):", ""]
            lines += markdown_table(table, None, lambda c: world_text(c, base_loss), bold=lambda n: ())
            lines.append("")
        elif agg.get("world_note"):
            lines += [f"Forgetting not measured: {agg['world_note']}", ""]
        if agg.get("compute_examples") and (Path(path).parent / f"{task}-compute.svg").exists():
            lines += [f"Equal compute: `{task}-compute.svg` draws each strategy's validation loss against the CPU "
                      f"seconds it had spent, at N={agg['compute_examples']} (the first seed).", ""]
        lines += ["**Rule of thumb.** " + rule_of_thumb(task, table), ""]
    atomic_write_text(path, "\n".join(lines))


def lr_table(agg: dict, task: str, strategies: list[str]) -> list[str]:
    """Markdown lines: each strategy's learning-rate multiplier at each size, and the sweep it came from."""
    by_size, tuned = agg.get("lr_scales_by_size"), agg.get("lr_tuned_at", {})
    if not by_size or not any(tuned.values()):
        return []
    sizes = sorted(by_size, key=int)
    lines = [f"Learning rates, {task}: each recipe's rates times the multiplier its lr sweep chose, the sweep "
             "nearest the size on a log scale:", "",
             "| strategy | " + " | ".join(f"N={n} (sweep at {tuned[n]})" for n in sizes) + " |",
             "|---|" + "---:|" * len(sizes)]
    for s in strategies:
        lines.append(f"| {s} | " + " | ".join(f"x{by_size[n][task][s]:g}" for n in sizes) + " |")
    return lines + [""]


def write_charts(out: Path, agg: dict) -> list[Path]:
    from minift.plot import line_chart

    paths = []
    for task, table in agg["results"].items():
        series = []
        for s, cells in table.items():
            sizes = sorted(cells, key=int)
            series.append({"name": s, "x": [int(n) for n in sizes], "y": [cells[n]["mean"] for n in sizes],
                           "yerr": [cell_ci(cells[n]) for n in sizes], "markers": True})
        path = out / f"{task}.svg"
        line_chart(series, title=f"{task}: strategies against training-set size (mean ± 95% CI over seeds)",
                   xlabel="training examples (log scale)", ylabel=agg["main_metric"][task], logx=True, path=path)
        paths.append(path)
    return paths


def write_compute_charts(out: Path, records: list[dict], n: int) -> list[Path]:
    """TASK-compute.svg: validation loss against the CPU seconds spent, one line per strategy at N=n
    (the first seed's run), so a reader sees which strategy is ahead at each compute budget."""
    from minift.plot import line_chart

    paths = []
    for task in dict.fromkeys(r["task"] for r in records):
        series = []
        for strategy in STRATEGIES:
            runs = sorted((r for r in records if r["task"] == task and r["strategy"] == strategy
                           and int(r["examples"]) == n and r.get("curve")), key=lambda r: r["seed"])
            if runs:
                curve = runs[0]["curve"]
                series.append({"name": strategy, "x": [p[0] for p in curve], "y": [p[1] for p in curve],
                               "markers": True})
        if series:
            path = out / f"{task}-compute.svg"
            line_chart(series, title=f"{task}: validation loss against CPU seconds spent, N={n}",
                       xlabel="CPU seconds of the run so far", ylabel="validation loss (nats/token)", path=path)
            paths.append(path)
    return paths


def command_line(tasks, sizes, seeds, out, max_steps, base, data, test_limit, strategies, protocol=None,
                 lrs=None) -> str:
    parts = ["minift experiment strategies", f"--tasks {','.join(tasks)}", f"--examples {','.join(map(str, sizes))}",
             f"--seeds {seeds}", f"--out {out}", f"--test-limit {test_limit}"]
    if tuple(strategies) != STRATEGIES:
        parts.append(f"--strategies {','.join(strategies)}")
    parts += protocol_flags(protocol or OLD_PROTOCOL, max_steps)
    parts += [f"--{k} {v}" for k, v in (("base", base), ("data", data), ("lrs", lrs)) if v is not None]
    return " ".join(parts)


def protocol_flags(protocol: dict, cap) -> list[str]:
    if protocol.get("name") != "fair":
        return ["--protocol fixed"] + ([f"--max-steps {cap}"] if cap is not None else [])
    return [f"--epochs {protocol['epochs']:g}", f"--min-steps {protocol['min_steps']}", f"--max-steps {cap}",
            f"--patience {protocol['patience']}", f"--min-delta {protocol['min_delta']:g}",
            f"--monitor {protocol['monitor']}"]


# --- the grid ------------------------------------------------------------------------------------
def check_tasks(tasks, data) -> list[str]:
    from minift.tasks import task_names

    if data is not None:
        data_task = load_examples(data=data)[0].task
        tasks = tasks or [data_task]
        if list(tasks) != [data_task]:
            raise MiniftError(f"{data} holds {data_task} examples: pass --tasks {data_task} (or leave --tasks out)")
    tasks = list(tasks or ("translation", "summarization", "qa"))
    for t in tasks:
        if t not in task_names():
            raise MiniftError(f"unknown task '{t}': choose from {', '.join(task_names())}")
    return tasks


def check_strategies(strategies) -> list[str]:
    unknown = [s for s in strategies if s not in STRATEGIES]
    if unknown:
        raise MiniftError(f"unknown strategy {unknown[0]!r}: choose from {', '.join(STRATEGIES)}")
    return list(strategies)


def model_shape(bundle) -> dict:
    c = bundle.model.config
    return {"params": bundle.model.num_parameters(), "n_layer": c.n_layer, "n_head": c.n_head, "n_embd": c.n_embd,
            "block_size": c.block_size, "vocab_size": c.vocab_size}


def world_windows(bundle, text_file=None):
    """(token stream, note): the base's held-out pretraining text, or None and why it cannot be had."""
    from minift.pretrain import heldout_stream

    try:
        return heldout_stream(bundle, text_file=text_file), ""
    except MiniftError as exc:
        return None, str(exc)


def run_experiment(tasks, sizes, seeds, out, max_steps=None, base=None, data=None, test_limit=200, device="cpu",
                   quiet=False, strategies=STRATEGIES, keep_checkpoints=False, protocol="fair", epochs=None,
                   min_steps=None, patience=None, min_delta=None, monitor=None, lrs=None, compute_examples=None,
                   world_text=None) -> dict:
    """Run (or resume) the grid, then write results.md, TASK.svg, TASK-compute.svg and results.json."""
    out = Path(out)
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise MiniftError(f"seeds is how many seeds to run (0, 1, ...), a number >= 1, got {seeds!r}")
    if not sizes or any(not isinstance(n, int) or n < 1 for n in sizes):
        raise MiniftError(f"training-set sizes must be whole numbers >= 1, got {sizes!r}")
    if test_limit < 1:
        raise MiniftError(f"--test-limit must be >= 1, got {test_limit}")
    strategies = check_strategies(strategies)
    tasks = check_tasks(tasks, data)
    sizes = sorted(set(sizes))
    if compute_examples is not None and compute_examples not in sizes:
        raise MiniftError(f"--compute-examples {compute_examples}: pick one of the sizes run ({', '.join(map(str, sizes))})")
    proto, cap = resolve_protocol(protocol, epochs, min_steps, max_steps, patience, min_delta, monitor)
    base_s, data_s = None if base is None else str(base), None if data is None else str(data)
    lr_scales, lr_sources = {}, {}
    if lrs is not None:
        lr_scales, proto["lr_source"], lr_sources = read_lr_sweeps(lrs, proto, cap, base_s, data_s)
        missing = [(n, t, s) for n in lr_scales for t in tasks for s in strategies if (t, s) not in lr_scales[n]]
        if missing:
            n, t, s = missing[0]
            raise MiniftError(f"--lrs {lrs}: the sweep at N={n} has no tuned learning rate for {t}/{s}: "
                              f"sweep that task and strategy too")
    usable_folder(out, "--out folder")  # before any work: a bad --out fails at once
    bundle = load_model(base or "base")  # fails early, with a clear message, if the base is missing
    model = model_shape(bundle)
    world, world_note = world_windows(bundle, world_text)
    cfg = {"protocol": proto, "max_steps": cap, "base": base_s, "data": data_s, "test_limit": test_limit,
           "device": device, "model": model, "out": out, "lr_scales": lr_scales, "lr_sources": lr_sources,
           "world": world,
           "tests": {t: scoring_examples(t, data, test_limit) for t in tasks}}
    log = out / "results.jsonl"
    records = read_records(log)
    check_records(log, records, cfg)
    done = {record_key(r) for r in records}
    grid = [(t, n, s, seed) for t in tasks for n in sizes for seed in range(seeds) for s in strategies]
    todo = [g for g in grid if g not in done]
    if not quiet:
        print(f"experiment: {len(grid)} runs, {len(grid) - len(todo)} already recorded in {log}", file=sys.stderr)
    started = time.time()
    for i, (task, n, strategy, seed) in enumerate(todo, 1):
        record = run_one(task, n, strategy, seed, out, cfg)
        append_record(log, record)
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
    kept = [r for r in records if record_key(r) in wanted]
    agg = aggregate(kept, model)
    command = command_line(tasks, sizes, seeds, out, cap, base, data, test_limit, strategies, proto, lrs)
    compute_n = compute_examples if compute_examples is not None else sizes[-1]
    agg.update({"command": command, "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "machine": machine(), "seeds": seeds, "sizes": sizes, "strategies": strategies,
                "settings": {k: cfg[k] for k in SETTINGS}, "protocol": proto,
                "lr_scales": {t: {s: lr_scales[tuned_at(lr_scales, sizes[-1])].get((t, s), 1.0) if lr_scales else 1.0
                                  for s in strategies} for t in tasks},
                "lr_scales_by_size": {str(n): {t: {s: lr_scales[tuned_at(lr_scales, n)].get((t, s), 1.0)
                                                   if lr_scales else 1.0 for s in strategies} for t in tasks}
                                      for n in sizes},
                "lr_tuned_at": {str(n): tuned_at(lr_scales, n) for n in sizes},
                "base_world_loss": None if world is None else _base_world_loss(bundle, world, device),
                "world_note": world_note, "compute_examples": compute_n,
                "rule_of_thumb": {t: rule_of_thumb(t, agg["results"][t]) for t in agg["results"]}})
    write_charts(out, agg)
    write_compute_charts(out, kept, compute_n)
    write_markdown(out / "results.md", agg, command, seeds, {t: len(cfg["tests"][t]) for t in tasks})
    atomic_write_json(out / "results.json", agg)
    if not quiet:
        print(f"wrote {out}/results.md, results.json, {', '.join(t + '.svg' for t in agg['results'])}", file=sys.stderr)
    return agg


def _base_world_loss(bundle, world, device) -> float:
    from minift.pretrain import heldout_loss

    return heldout_loss(bundle.model.to(device), world, device)


# --- the learning-rate sweep ---------------------------------------------------------------------
def ladder_step(scale: float, up: bool) -> float:
    """The next multiplier above (or below) ``scale`` on the 1-3-10 ladder: 3 -> 10, 0.3 -> 0.1.

    The ladder is ..., 0.1, 0.3, 1, 3, 10, 30, ... (each about half a decade from the next), written
    as decimal literals so that 0.1 here is the same float as ``--lr-scales 0.1``.
    """
    ladder = sorted(float(f"{m}e{k}") for k in range(-8, 9) for m in (1, 3))
    if up:
        return next(x for x in ladder if x > scale * 1.01)
    return next(x for x in reversed(ladder) if x < scale / 1.01)


def sweep_best(rs: list[dict]) -> dict:
    """The winning record of one (task, strategy): highest validation score, then lower validation
    loss, then the multiplier nearest 1."""
    return max(rs, key=lambda r: (r["val_score"], -r["val_loss"], -abs(math.log(r["lr_scale"]))))


def lr_sweep(tasks, examples: int, out, scales=SWEEP_SCALES, seed: int = 0, strategies=STRATEGIES, base=None,
             data=None, val_limit: int = SWEEP_VAL_LIMIT, device="cpu", quiet=False, protocol="fair", epochs=None,
             min_steps=None, max_steps=None, patience=None, min_delta=None, monitor=None,
             extend: int = SWEEP_EXTEND) -> dict:
    """Tune each strategy's learning rate: every multiplier of its recipe's rates, one N, one seed.

    Each final model is scored on the VALIDATION split (``validation_examples``; the test split is
    never touched) by the task's main metric; the winner per (task, strategy) is the highest, ties
    going to the lower validation loss, then to the multiplier nearest 1. A winner at the edge of
    the grid is not known to be tuned (a rate past it might do better), so the sweep extends that
    strategy's grid one rung of the 1-3-10 ladder in that direction (``ladder_step``: 3 -> 10,
    0.3 -> 0.1) and runs it, up to ``extend`` rungs each way, until the winner has a worse
    neighbour on both sides; one still at the edge then is marked in lrs.md. Writes OUT/sweep.jsonl
    (one record per run, resumable like the experiment), OUT/lrs.json (the winners, what
    ``strategies --lrs`` reads) and OUT/lrs.md.
    """
    out = Path(out)
    if isinstance(examples, bool) or not isinstance(examples, int) or examples < 1:
        raise MiniftError(f"the lr sweep runs at one training-set size, a whole number >= 1, got {examples!r}")
    if val_limit < 1:
        raise MiniftError(f"--val-limit must be >= 1, got {val_limit}")
    if isinstance(extend, bool) or not isinstance(extend, int) or extend < 0:
        raise MiniftError(f"--lr-extend must be a whole number of rungs >= 0, got {extend!r}")
    scales = parse_scales(",".join(map(str, scales)))
    strategies = check_strategies(strategies)
    tasks = check_tasks(tasks, data)
    proto, cap = resolve_protocol(protocol, epochs, min_steps, max_steps, patience, min_delta, monitor)
    usable_folder(out, "--out folder")  # before any work: a bad --out fails at once
    bundle = load_model(base or "base")
    cfg = {"protocol": proto, "max_steps": cap, "base": None if base is None else str(base),
           "data": None if data is None else str(data), "val_limit": val_limit, "examples": examples, "seed": seed,
           "device": device, "model": model_shape(bundle), "out": out}
    vals = {t: validation_examples(t, data, val_limit) for t in tasks}
    log = out / "sweep.jsonl"
    records = read_records(log)
    check_records(log, records, cfg, keys=SWEEP_SETTINGS)
    done = {(r["task"], r["strategy"], float(r["lr_scale"])) for r in records}
    todo = [(t, s, x) for t in tasks for s in strategies for x in scales if (t, s, x) not in done]
    if not quiet:
        print(f"lr sweep: {len(tasks) * len(strategies) * len(scales)} runs, {len(todo)} to do"
              + (f" (and up to {extend} more each way where a winner sits at the edge)" if extend else ""),
              file=sys.stderr)
    grid = {(t, s): set(scales) for t in tasks for s in strategies}  # each (task, strategy)'s multipliers
    i = 0
    while True:
        if not todo:  # the planned runs are done: extend every grid whose winner sits at its edge
            todo = _extensions(records, grid, scales, extend)
            if not todo:
                break
        i += 1
        task, strategy, scale = todo.pop(0)
        run_dir = out / "runs" / task / str(examples) / strategy / f"lr{scale:g}"
        summary, recipe = train_run(task, examples, strategy, seed, run_dir, cfg, scale, val_limit)
        trained = load_model(run_dir, device=device)
        report = evaluate_examples(trained, vals[task])
        metric = report["main_metric"]
        stages = stage_rows(summary, recipe, cfg["model"]["n_layer"])
        record = {"task": task, "examples": examples, "strategy": strategy, "seed": seed, "lr_scale": scale,
                  "lrs": [s["lr"] for s in stages], "main_metric": metric, "val_score": report["metrics"][metric],
                  "val_loss": teacher_forced_loss(trained, vals[task]), "val_examples": report["n"],
                  "steps": sum(s["steps"] for s in stages), "stages": stages,
                  "capped_improving": any(s["stop_reason"] == "cap_still_improving" for s in stages),
                  **{k: cfg[k] for k in SWEEP_SETTINGS}}
        append_record(log, record)
        records.append(record)
        prune(run_dir)
        if not quiet:
            print(f"[{i}/{i + len(todo)}] {task} {strategy} lr x{scale:g}: validation {metric} "
                  f"{record['val_score']:.1f}", file=sys.stderr)
    kept = [r for r in records if float(r["lr_scale"]) in grid.get((r["task"], r["strategy"]), ())]
    result = {"kind": "minift lr sweep", "examples": examples, "seed": seed, "scales": scales,
              "settings": {k: cfg[k] for k in SWEEP_SETTINGS}, "metric": {}, "winners": {}, "scores": {}}
    for task in tasks:
        for strategy in strategies:
            rs = [r for r in kept if r["task"] == task and r["strategy"] == strategy]
            best = sweep_best(rs)
            tried = sorted(float(r["lr_scale"]) for r in rs)
            result["metric"][task] = best["main_metric"]
            result["winners"].setdefault(task, {})[strategy] = {
                "lr_scale": best["lr_scale"], "lrs": best["lrs"], "val_score": best["val_score"],
                "val_loss": best["val_loss"], "tried": tried,
                "at_edge": float(best["lr_scale"]) in (tried[0], tried[-1])}  # tried: >= 3 multipliers
            result["scores"].setdefault(task, {})[strategy] = {f"{r['lr_scale']:g}": r["val_score"]
                                                               for r in sorted(rs, key=lambda r: r["lr_scale"])}
    atomic_write_json(out / "lrs.json", result)
    write_sweep_markdown(out / "lrs.md", result)
    return result


def _extensions(records, grid, scales, extend) -> list:
    """The next rung to run for every (task, strategy) whose best multiplier sits at the edge of the
    multipliers it has run, at most ``extend`` rungs past the planned ``scales`` each way.

    Grows ``grid`` (each (task, strategy)'s multipliers) as it goes, taking in the rungs a resumed
    sweep finds already on disk. Returns [] when every winner has a worse neighbour on both sides
    or has used its rungs.
    """
    done = {(r["task"], r["strategy"], float(r["lr_scale"])) for r in records}
    todo = []
    for (task, strategy), tried in grid.items():
        while not any((task, strategy, x) not in done for x in tried):  # its runs so far are all done
            best = float(sweep_best([r for r in records if r["task"] == task and r["strategy"] == strategy
                                     and float(r["lr_scale"]) in tried])["lr_scale"])
            up = best == max(tried)
            if not up and best != min(tried):
                break  # a worse neighbour on each side: tuned
            rungs = sum(1 for x in tried if (x > max(scales) if up else x < min(scales)))
            if rungs >= extend:
                break  # still at the edge, out of rungs: lrs.md marks it
            rung = ladder_step(best, up)
            tried.add(rung)
            if (task, strategy, rung) not in done:
                todo.append((task, strategy, rung))
    return todo


def write_sweep_markdown(path: Path, result: dict) -> None:
    lines = ["# Learning-rate sweep", "",
             f"- N = {result['examples']}, seed {result['seed']}; each final model scored on the validation split",
             f"- protocol: {describe_protocol(result['settings']['protocol'], result['settings']['max_steps'])}",
             "- cells: the validation metric at each multiplier of the recipe's learning rates; the winner in bold; "
             f"the grid {', '.join(f'{x:g}' for x in result['scales'])}, extended along the 1-3-10 ladder where "
             "a winner sat at its edge (— : not run)",
             "- ‡: the winner is still at the edge of what was run (a rate past it might do better)", ""]
    for task, cells in result["scores"].items():
        scales = sorted({float(x) for by_scale in cells.values() for x in by_scale})
        lines += [f"## {task}: validation {result['metric'][task]}", "",
                  "| strategy | " + " | ".join(f"lr × {x:g}" for x in scales) + " | chosen lrs |",
                  "|---|" + "---:|" * (len(scales) + 1)]
        for strategy, by_scale in cells.items():
            win = result["winners"][task][strategy]
            row = [("—" if f"{x:g}" not in by_scale else
                    f"**{by_scale[f'{x:g}']:.1f}**{'‡' if win.get('at_edge') else ''}" if x == win["lr_scale"]
                    else f"{by_scale[f'{x:g}']:.1f}") for x in scales]
            lines.append(f"| {strategy} | " + " | ".join(row) + " | " + " → ".join(f"{v:.3g}" for v in win["lrs"]) + " |")
        lines.append("")
    atomic_write_text(path, "\n".join(lines))
