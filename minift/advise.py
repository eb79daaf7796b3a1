"""Which strategy should I use? An answer read off measurements, plus memory arithmetic.

``minift advise --task T --examples N`` answers from the results of ``minift experiment
strategies`` (``results.json``) in two steps.

1. **Predict the metric.** Each strategy was measured at a few sizes (say 50, 200, 1000, 5000).
   Scores grow roughly linearly in log N, so between two measured sizes lo <= N <= hi:

       t = (ln N - ln lo) / (ln hi - ln lo)          pred(N) = m(lo) + t * (m(hi) - m(lo))

   Outside the measured range the nearest end is used (clamped, never extrapolated), and the
   advice says so.

2. **Predict the memory** of one training step, in bytes, for a model of P parameters, each
   stage of the strategy in turn (the peak is what must fit):

       weights      4 * P                          (float32, trainable or not)
       gradients    4 * trainable                  (only trainable weights get one)
       optimizer    S * trainable                  (S bytes of state per trainable weight)
       activations  4 * B * T * (L_back * (16 * C + H * T) + 2 * V)

   trainable = the fraction measured in the experiment * P. S is what the experiment's stage
   measured (its optimizer_state_bytes / its trainable weights): 8 for AdamW (two float32 moments),
   4 for SGD with momentum; 8 where the results predate that measurement. Activations are what autograd keeps
   for the backward pass: per token and per block about 16 vectors of width C (LayerNorm inputs
   and outputs, q, k, v, the attention output, the MLP's 4C hidden before and after GELU) plus
   the H x T attention matrix, and the logits with their softmax (2V per token). Only the blocks
   the backward pass reaches count: L_back = L * backward_fraction, 1 when a soft prompt or an
   embedding trains (so prompt tuning saves optimizer state, *not* activations), 1/2 for the
   top half. B is the recipe's batch, T its block (an upper bound: batches are padded only to
   their longest row). For P other than the measured model's P0 the width is taken to grow as
   C * sqrt(P / P0) with depth, heads, block and vocabulary fixed. It is an estimate, good to
   a factor of about 2; ``minift bench --only strategies`` measures the real thing.

Strategies that do not fit ``--memory`` are left out. Among those that fit, the highest
predicted metric wins, unless a strategy needing clearly less memory (under 90%) is within the
noise: its gap to the best is smaller than the standard error of the difference over seeds,
sqrt(s1^2/n1 + s2^2/n2), so the seeds could not tell the two apart.

Tutorial 11 (choosing a strategy) calls ``advise`` and checks it against the measured grid.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

from minift.errors import MiniftError

HINT = "run `minift experiment strategies` first, or pass --results DIR"
NOISE_MEMORY_RATIO = 0.9  # a cheaper strategy must need under 90% of the best's memory to be preferred
MB = 1e6


def default_results_dir() -> Path:
    from minift.checkpoint import data_dir

    return data_dir() / "experiments" / "strategies" / "fair"  # the fair protocol's grid


def load_results(results_dir=None) -> dict:
    """Read and check ``DIR/results.json``; every problem is one MiniftError saying what to do."""
    path = Path(results_dir if results_dir is not None else default_results_dir()) / "results.json"
    if not path.is_file():
        raise MiniftError(f"no experiment results at {path}: {HINT}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MiniftError(f"{path}: not readable JSON ({str(exc).splitlines()[0]}); {HINT}") from None
    try:
        model = data["model"]
        for key in ("params", "n_layer", "n_head", "n_embd", "block_size", "vocab_size"):
            float(model[key])
        for task, table in data["results"].items():
            for strategy, cells in table.items():
                for size, cell in cells.items():
                    int(size), float(cell["mean"]), float(cell["std"]), int(cell["n"])
                for stage in data["costs"][task][strategy]:
                    for key in ("trainable_fraction", "total_params", "batch_size", "backward_fraction"):
                        float(stage[key])
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise MiniftError(f"{path}: malformed experiment results (missing or bad {exc}); {HINT}") from None
    if not data["results"]:
        raise MiniftError(f"{path}: the experiment results hold no task; {HINT}")
    return data


def interpolate(points: dict[int, float], n: float) -> float:
    """Linear in ln N between the two measured sizes around n; the nearest end outside them; at a
    measured size, the value measured there."""
    if n in points:  # exactly: lo + 1 * (hi - lo) can miss it by a rounding, and is NaN if lo's value is
        return points[n]
    sizes = sorted(points)
    if n <= sizes[0]:
        return points[sizes[0]]
    if n >= sizes[-1]:
        return points[sizes[-1]]
    for lo, hi in zip(sizes, sizes[1:]):
        if lo <= n <= hi:
            t = (math.log(n) - math.log(lo)) / (math.log(hi) - math.log(lo))
            return points[lo] + t * (points[hi] - points[lo])
    raise AssertionError("unreachable")


def state_bytes_per_weight(stage: dict) -> float:
    """Optimizer state per trainable weight, as the experiment measured it for this stage (AdamW's 8
    bytes where the results predate the measurement)."""
    state, trainable = stage.get("optimizer_state_bytes"), stage.get("trainable_params")
    return state / trainable if state is not None and trainable else 8.0


def memory_bytes(stages: list[dict], model: dict, params: float) -> dict:
    """The peak over stages of weights + gradients + optimizer state + activations, and its parts."""
    scale = params / model["params"]
    C = model["n_embd"] * math.sqrt(scale)
    L, H, T, V = model["n_layer"], model["n_head"], model["block_size"], model["vocab_size"]
    peak = None
    for s in stages:
        trainable = s["trainable_fraction"] * params
        parts = {"weights": 4 * s["total_params"] * scale, "gradients": 4 * trainable,
                 "optimizer": state_bytes_per_weight(s) * trainable,
                 "activations": 4 * s["batch_size"] * T * (L * s["backward_fraction"] * (16 * C + H * T) + 2 * V)}
        parts["total"] = sum(parts.values())
        if peak is None or parts["total"] > peak["total"]:
            peak = {**parts, "stage": s.get("name", "")}
    return peak


def grid_lr_scale(results: dict, task: str, strategy: str, examples: int) -> tuple[float, int | None]:
    """(the learning-rate multiplier the grid trained ``strategy`` on ``task`` at, at the measured size
    nearest ``examples`` on a log scale; that size), or (1.0, None) where the grid has none."""
    from minift.experiment import tuned_at

    by_size = results.get("lr_scales_by_size") or {}
    nearest = tuned_at([int(n) for n in by_size], examples)
    scale = by_size[str(nearest)].get(task, {}).get(strategy) if nearest is not None else None
    return (1.0, None) if scale is None else (float(scale), nearest)


def tuned_lr_scale(strategy: str, task: str, examples: int, base=None, results_dir=None) -> tuple[float, str]:
    """(multiplier, why): what ``lr_scale = "tuned"`` means for a run of ``strategy``'s recipe.

    The committed grid's own choice (its lr sweep's winner for that task and strategy, at the
    sweep nearest the size), so ``minift finetune`` trains a shipped recipe at the rate the
    experiment measured it at. Rates tuned on the shipped base say nothing about another base, so
    any other base, a grid that is missing, or a recipe the grid never ran gets x1 (the recipe's
    own rates), and ``why`` says which.
    """
    try:
        results = load_results(results_dir)
    except MiniftError as exc:
        return 1.0, f"the recipe's own rates: {exc}"
    from minift.experiment import ARMS

    grid_base = results.get("settings", {}).get("base") or "base"
    fresh = ARMS.get(strategy, ("", False))[1]  # an arm from fresh weights runs on "scratch", of the grid's shape
    if str(base or "base") != str(grid_base) and not (fresh and base == "scratch"):
        return 1.0, f"the recipe's own rates: the grid's rates were tuned on the base {grid_base!r}, not {base!r}"
    scale, size = grid_lr_scale(results, task, strategy, examples)
    if size is None:
        return 1.0, f"the recipe's own rates: the grid has no tuned rate for {strategy} on {task}"
    where = Path(results_dir if results_dir is not None else default_results_dir()) / "results.json"
    return scale, (f"the multiplier of the recipe's rates the strategy grid trained {strategy} on {task} at, "
                   f"at N={size}, the measured size nearest {examples} ({where})")


def finetune_command(results: dict, task: str, strategy: str, examples: int) -> str:
    """The ``minift finetune`` line that runs the recommended strategy as it was measured."""
    from minift.experiment import ARMS

    recipe, fresh = ARMS.get(strategy, (strategy, False))
    parts = [f"minift finetune --recipe {recipe} --task {task} --examples {examples}"]
    settings = results.get("settings", {})
    if fresh:
        parts.append("--base scratch")
    elif settings.get("base"):
        parts.append(f"--base {settings['base']}")
    protocol = settings.get("protocol") or {}
    if protocol.get("name") == "fair":  # the experiment's budget, and the rate its sweep chose near this N
        from minift.experiment import protocol_flags

        parts.append("--protocol fair " + " ".join(protocol_flags(protocol, settings.get("max_steps"))))
        scale, _ = grid_lr_scale(results, task, strategy, examples)
        if scale != 1.0:
            parts.append(f"--lr-scale {scale:g}")
    elif settings.get("max_steps"):
        parts.append(f"--max-steps {settings['max_steps']}")
    parts.append(f"--out runs/{task}-{strategy}-{examples}")
    return " ".join(parts)


def advise(task: str, examples: int, params=None, memory_mb=None, results_dir=None, results: dict | None = None) -> dict:
    """Recommend a strategy: {strategy, predicted, table, reasons, command, metric, ...}."""
    results = results if results is not None else load_results(results_dir)
    if isinstance(examples, bool) or not isinstance(examples, int) or examples < 1:
        raise MiniftError(f"--examples must be a whole number >= 1 (how many training examples you have), "
                          f"got {examples!r}")
    if task not in results["results"]:
        raise MiniftError(f"no measurements for task '{task}': the results hold {', '.join(sorted(results['results']))}; "
                          f"ask about one of those, or run `minift experiment strategies --tasks {task}`")
    if params is not None and params <= 0:
        raise MiniftError(f"--params must be > 0 (the model's number of parameters), got {params}")
    if memory_mb is not None and memory_mb <= 0:
        raise MiniftError(f"--memory must be > 0 MB, got {memory_mb}")
    model, table = results["model"], results["results"][task]
    metric = results.get("main_metric", {}).get(task, "score")
    P = float(params) if params is not None else float(model["params"])
    sizes = sorted({int(n) for cells in table.values() for n in cells})

    rows = []
    for strategy, cells in table.items():
        points = {int(n): c for n, c in cells.items()}
        mem = memory_bytes(results["costs"][task][strategy], model, P)
        # CPU seconds where recorded: wall time grows with whatever else shared the machine.
        seconds = {n: c.get("cpu_seconds_mean", c.get("seconds_mean", math.nan)) for n, c in points.items()}
        rows.append({"strategy": strategy,
                     "predicted": interpolate({n: c["mean"] for n, c in points.items()}, examples),
                     "std": interpolate({n: c["std"] for n, c in points.items()}, examples),
                     "seeds": min(c["n"] for c in points.values()),
                     "seconds": interpolate(seconds, examples),
                     "memory_mb": mem["total"] / MB, "memory": mem,
                     "fits": memory_mb is None or mem["total"] / MB <= memory_mb})

    reasons = []
    if examples < sizes[0]:
        reasons.append(f"N={examples} is below the smallest measured size ({sizes[0]}): the predictions are the "
                       f"values measured at {sizes[0]}, clamped, not extrapolated, and likely too optimistic.")
    elif examples > sizes[-1]:
        reasons.append(f"N={examples} is above the largest measured size ({sizes[-1]}): the predictions are the "
                       f"values measured at {sizes[-1]}, clamped, not extrapolated.")
    elif examples in sizes:
        reasons.append(f"N={examples} was measured directly ({metric}, mean over seeds).")
    else:
        lo = max(n for n in sizes if n <= examples)
        hi = min(n for n in sizes if n >= examples)
        reasons.append(f"N={examples} lies between the measured sizes {lo} and {hi}: each strategy's {metric} is "
                       f"interpolated linearly in log N.")
    if params is not None:
        reasons.append(f"Memory is scaled from the measured model ({model['params']:,} parameters) to {P:,.0f}, using "
                       f"each strategy's measured trainable fraction; activations assume the width grows as "
                       f"sqrt(P / P0).")
    fitting = [r for r in rows if r["fits"]]
    for r in rows:
        if not r["fits"]:
            m = r["memory"]
            reasons.append(f"{r['strategy']} does not fit in {memory_mb:g} MB: it needs about {r['memory_mb']:.1f} MB "
                           f"(weights {m['weights'] / MB:.1f}, gradients {m['gradients'] / MB:.1f}, optimizer state "
                           f"{m['optimizer'] / MB:.1f}, activations {m['activations'] / MB:.1f}).")
    if not fitting:
        least = min(rows, key=lambda r: r["memory_mb"])
        raise MiniftError(f"no strategy fits in {memory_mb:g} MB: the smallest, {least['strategy']}, needs about "
                          f"{least['memory_mb']:.1f} MB; give more --memory or a smaller --params")
    fitting.sort(key=lambda r: -r["predicted"])
    best = fitting[0]
    reasons.append(f"{best['strategy']} predicts the highest {metric}: {best['predicted']:.1f}" +
                   (f" (next: {fitting[1]['strategy']} at {fitting[1]['predicted']:.1f})." if len(fitting) > 1 else "."))
    choice = best
    cheaper = [r for r in fitting[1:] if r["memory_mb"] < NOISE_MEMORY_RATIO * best["memory_mb"]
               and best["predicted"] - r["predicted"] <= standard_error(best, r)]
    if cheaper:
        choice = min(cheaper, key=lambda r: (r["memory_mb"], -r["predicted"]))
        reasons.append(f"{choice['strategy']} is within the noise of {best['strategy']} (gap "
                       f"{best['predicted'] - choice['predicted']:.1f} <= standard error "
                       f"{standard_error(best, choice):.1f} over seeds) and needs {choice['memory_mb']:.1f} MB "
                       f"instead of {best['memory_mb']:.1f} MB, so it is preferred.")
    return {"task": task, "examples": examples, "metric": metric, "strategy": choice["strategy"],
            "predicted": choice["predicted"], "best_measured": best["strategy"], "table": rows, "reasons": reasons,
            "command": finetune_command(results, task, choice["strategy"], examples), "params": P,
            "memory_mb": memory_mb, "measured_sizes": sizes}


def standard_error(a: dict, b: dict) -> float:
    """Standard error of the difference of two means over seeds (0 when either has one seed)."""
    if a["seeds"] < 2 or b["seeds"] < 2:
        return 0.0
    return math.sqrt(a["std"] ** 2 / a["seeds"] + b["std"] ** 2 / b["seeds"])


def format_advice(advice: dict) -> str:
    """The advice as text: recommendation, table, reasons, command."""
    lines = [f"recommended: {advice['strategy']} for {advice['task']} with {advice['examples']} examples "
             f"(predicted {advice['metric']} {advice['predicted']:.1f})", ""]
    header = ["strategy", f"predicted {advice['metric']}", "± std", "CPU s", "memory MB", "fits"]
    cells = [[r["strategy"], f"{r['predicted']:.1f}", f"{r['std']:.1f}",
              "" if math.isnan(r["seconds"]) else f"{r['seconds']:.0f}", f"{r['memory_mb']:.1f}",
              "yes" if r["fits"] else "no"] for r in advice["table"]]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(header)]
    lines.append("  ".join(h.ljust(w) for h, w in zip(header, widths)))
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in cells]
    lines += ["", "why:"] + [f"  - {r}" for r in advice["reasons"]] + ["", "run:", f"  {advice['command']}"]
    return "\n".join(lines)


def without_size(results: dict, task: str, n: int) -> dict:
    """The results as if size ``n`` of ``task`` had never been measured (for leave-one-size-out)."""
    table = {s: {size: c for size, c in cells.items() if int(size) != n} for s, cells in results["results"][task].items()}
    return {**results, "results": {**results["results"], task: {s: c for s, c in table.items() if c}}}


def grid_agreement(results_dir=None, results: dict | None = None, leave_one_out: bool = False) -> dict:
    """Advice against the measured winner at every measured (task, N): {agree, total, disagreements}.

    Advice agrees when it names the winner or a strategy tied with it, as the experiment's tables
    count ties (``experiment.winners``: the 95% confidence intervals overlap). With
    ``leave_one_out`` the advice at each (task, N) is computed from the *other* sizes only
    (leave-one-size-out): a check that the advisor predicts, rather than looks up, the winner.
    """
    from minift.experiment import winners

    results = results if results is not None else load_results(results_dir)
    agree, total, disagreements = 0, 0, []
    for task, table in results["results"].items():
        tied = winners(table, among=tuple(table))
        for n in sorted({int(n) for cells in table.values() for n in cells}):
            means = {s: c[str(n)]["mean"] for s, c in table.items() if str(n) in c}
            measured = max(means, key=means.get)
            advice = advise(task, n, results=without_size(results, task, n) if leave_one_out else results)
            total += 1
            if advice["strategy"] in tied[n]:  # a tie with the winner agrees too
                agree += 1
            else:
                disagreements.append(f"{task} N={n}: advice {advice['strategy']}, measured winner {measured} "
                                     f"({advice['reasons'][-1]})")
    return {"agree": agree, "total": total, "disagreements": disagreements}
