"""report.md: a fine-tuning run told for a human, rebuilt at any time from its run folder.

``summary.json`` is for programs and ``loss.svg`` for the eye; ``report.md`` answers the questions
one asks of a run a week later, in one page of Markdown:

1. **what ran**: recipe (name and file), task, data, base, seed, device, CPU threads, processes,
   torch and minift versions, and the git commit of minift's checkout when it is one (a commit
   with uncommitted changes says so; an installed package has no commit, and the line is left out);
2. **the stages**, one row each: strategy, trainable/total weights, steps, why the stage stopped,
   CPU seconds (of every thread of the process), training tokens per second, peak memory (what it
   measures depends on the device, and the report says which) and the metrics after the stage;
3. **the metrics before and after**: the base model's and the final model's, on the same examples;
4. **validation loss by stage**, read from ``log.jsonl``: first, best and last evaluation of each
   stage, and any fault (a non-finite loss) the trainer logged;
5. **five sample outputs** of the final model beside their references.

The report is a pure function of ``summary.json`` and ``log.jsonl`` (no clock, no machine state), so
``minift report RUN`` rewrites exactly the file ``minift finetune`` wrote. Older summaries that do
not record some column show "—" there. The facts only the running process knows (threads,
versions, commit, CPU time, memory) are recorded in ``summary.json`` by ``finetune.run_stage`` and
``run_recipe`` (with ``run_environment`` below).
"""
from __future__ import annotations

import html
import json
import os
import subprocess
from pathlib import Path

from minift.errors import MiniftError
from minift.io import atomic_write_text, read_jsonl, usable_file

NONE = "—"  # a value this run's summary does not record


def git_commit(folder: str | os.PathLike | None = None) -> dict:
    """``{"git_commit": SHA, "git_dirty": bool}`` when minift runs from a git checkout, else ``{}``.

    Only the folder holding the package is asked (``.git`` right there), so a minift installed in a
    virtual environment inside some other repository does not report that repository's commit.
    Never fails: no git, a broken repository or a slow disk all give ``{}``.
    """
    root = Path(folder) if folder is not None else Path(__file__).resolve().parent.parent
    if not (root / ".git").exists():
        return {}
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=10)
        if head.returncode != 0 or not head.stdout.strip():
            return {}
        status = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                                capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return {}
    info = {"git_commit": head.stdout.strip()}
    if status.returncode == 0:
        info["git_dirty"] = bool(status.stdout.strip())
    return info


def run_environment() -> dict:
    """What the running process knows about itself, for summary.json (new keys only)."""
    import torch

    import minift

    return {"threads": torch.get_num_threads(), "torch_version": torch.__version__,
            "minift_version": minift.__version__, **git_commit()}


# --- formatting -------------------------------------------------------------------------------
def _cell(value) -> str:
    """Text safe inside a Markdown table cell: no HTML, no column breaks, no line breaks."""
    text = html.escape(str(value), quote=False).replace("|", "\\|")
    return text.replace("\r\n", "\n").replace("\n", "<br>")


def _num(value, digits: int = 2) -> str:
    if value is None:
        return NONE
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return _cell(value)
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:,.{digits}f}"


def _megabytes(n) -> str:
    return NONE if n is None else f"{n / 1e6:,.1f} MB"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def _short(text: str, keep: int = 120) -> str:
    """The end of a long prompt (where the question is), marked as cut."""
    return text if len(text) <= keep else "…" + text[-keep:]


# --- the report -------------------------------------------------------------------------------
def _read_summary(run_dir: Path) -> dict:
    path = run_dir / "summary.json"
    if not path.is_file():
        raise MiniftError(f"{path}: no such file (a finished `minift finetune` run folder holds one)")
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise MiniftError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise MiniftError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(summary, dict) or not isinstance(summary.get("stages"), list) or not summary["stages"]:
        raise MiniftError(f"{path}: not the summary of a fine-tuning run (it needs a non-empty 'stages' list)")
    return summary


def _validation_by_stage(log: Path) -> tuple[dict[str, list[float]], list[str]]:
    """Each stage's validation losses in log order, and the faults, from log.jsonl."""
    losses: dict[str, list[float]] = {}
    faults = []
    for rec, _ in read_jsonl(log, what="log", skip_blank=True):
        if rec.get("event") == "eval" and isinstance(rec.get("val_loss"), (int, float)):
            losses.setdefault(str(rec.get("stage", "")), []).append(float(rec["val_loss"]))
        elif rec.get("event") == "fault":
            faults.append(f"[{rec.get('stage', '?')}] {rec.get('message', '')}")
    return losses, faults


def build_report(run_dir: str | os.PathLike) -> str:
    """The Markdown text of ``run_dir``'s report (reads summary.json and, if there, log.jsonl)."""
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise MiniftError(f"{run_dir}: is a file, not a run folder")
    s = _read_summary(run_dir)
    stages = s["stages"]
    lines = [f"# Run report: {_cell(s.get('recipe', run_dir.name))}", ""]

    # 1. what ran
    recipe = _cell(s.get("recipe", NONE)) + (f" (`{s['recipe_source']}`)" if s.get("recipe_source") else "")
    facts = [("recipe", recipe), ("task", _cell(s.get("task", NONE))),
             ("data", _cell(s["data"]) if s.get("data") else "generated by the task"),
             ("base", _cell(s.get("base", NONE))), ("seed", _num(s.get("seed"))),
             ("device", _cell(s.get("device", NONE))), ("CPU threads", _num(s.get("threads"))),
             ("processes", _num(s.get("processes"))), ("torch", _cell(s.get("torch_version", NONE))),
             ("minift", _cell(s.get("minift_version", NONE)))]
    if s.get("git_commit"):
        facts.append(("git commit", f"`{s['git_commit']}`" + (" with uncommitted changes" if s.get("git_dirty") else "")))
    lines += ["## What ran", ""] + _table(["", ""], [[k, v] for k, v in facts]) + [""]

    # 2. the stages
    before, after = s.get("before", {}), stages[-1].get("metrics", {})
    metric_names = list(dict.fromkeys([*before, *(m for st in stages for m in st.get("metrics", {}))]))
    kinds = sorted({st["peak_memory_kind"] for st in stages if st.get("peak_memory_kind")})
    rows = []
    for i, st in enumerate(stages):
        trainable, total = st.get("trainable_params"), st.get("total_params")
        share = f" ({100 * trainable / total:.2f}%)" if trainable is not None and total else ""
        rows.append([str(i), _cell(st.get("name", NONE)), _cell(st.get("strategy", NONE)),
                     f"{_num(trainable)} / {_num(total)}{share}", _num(st.get("steps")),
                     _cell(st.get("stopped", NONE)), _num(st.get("cpu_seconds")),
                     _num(st.get("tokens_per_s"), 0), _megabytes(st.get("peak_memory_bytes")),
                     _num(st.get("best_val_loss"), 4), *(_num(st.get("metrics", {}).get(m)) for m in metric_names)])
    lines += ["## Stages", ""]
    lines += _table(["#", "stage", "strategy", "trainable / total", "steps", "stopped", "CPU s", "tokens/s",
                     "peak memory", "val loss", *metric_names], rows)
    lines += ["", "CPU s: CPU time of the training loop, summed over the process's threads. tokens/s: graded "
                  "training tokens per second of the loop's wall time. val loss: the best (or, when a task "
                  "metric is monitored, the last) validation loss, in nats/token."]
    if kinds:
        lines += [f"Peak memory: {'; '.join(kinds)}."]
    lines += [""]

    # 3. before and after
    rows = []
    for m in metric_names:
        b, a = before.get(m), after.get(m)
        change = f"{a - b:+,.2f}" if isinstance(a, (int, float)) and isinstance(b, (int, float)) else NONE
        rows.append([_cell(m), _num(b), _num(a), change])
    lines += ["## Metrics before and after", "",
              f"The base model and the final model, on the same {_cell(s.get('task', ''))} validation examples "
              f"(main metric: {_cell(s.get('main_metric', NONE))})."]
    lines += [""] + _table(["metric", "before", "after", "change"], rows) + [""]

    # 4. validation loss by stage, from the log
    log = run_dir / "log.jsonl"
    lines += ["## Validation loss by stage", ""]
    if log.is_file():
        losses, faults = _validation_by_stage(log)
        rows = [[_cell(name), str(len(v)), _num(v[0], 4), _num(min(v), 4), _num(v[-1], 4)]
                for name, v in losses.items()]
        lines += _table(["stage", "evaluations", "first", "best", "last"], rows) if rows else ["No evaluations logged."]
        lines += ["", "Each stage has its own validation set: compare numbers within a row, not across rows."]
        if faults:
            lines += ["", "Faults:", ""] + [f"- {_cell(f)}" for f in faults]
    else:
        lines += [f"No log.jsonl in {_cell(run_dir)}."]
    lines += [""]

    # 5. sample outputs of the final model
    samples = stages[-1].get("samples", [])[:5]
    lines += ["## Sample outputs", "", f"The final model (after stage '{_cell(stages[-1].get('name', ''))}'), "
              "greedy decoding, beside the reference.", ""]
    if samples:
        lines += _table(["#", "prompt", "reference", "output"],
                        [[str(i + 1), _cell(_short(x.get("prompt", ""))), _cell(x.get("reference", "")),
                          _cell(x.get("prediction", ""))] for i, x in enumerate(samples)])
    else:
        lines += ["No samples recorded."]
    return "\n".join(lines) + "\n"


def write_report(run_dir: str | os.PathLike, path: str | os.PathLike | None = None) -> Path:
    """Write ``build_report(run_dir)`` to ``run_dir/report.md`` (or ``path``), atomically; returns the path."""
    run_dir = Path(run_dir)
    text = build_report(run_dir)  # every reading error comes before anything is written
    path = Path(path) if path is not None else run_dir / "report.md"
    usable_file(path, "report")
    atomic_write_text(path, text)  # a failure (a full disk) is a MiniftError naming the path
    return path
