"""Results as plain aligned text tables, for stdout: the CLI, the benches, the demo and the tutorials.

Kept out of ``cli.py`` so that library modules that print a table (the benches, the demo) need not
import the command line (which imports them: that was an import cycle).
"""
from __future__ import annotations

import sys


def print_table(rows: list[dict], columns: list[str], file=None):
    """A plain aligned text table (on stdout unless ``file`` says otherwise)."""
    file = file or sys.stdout
    def fmt(v):
        if isinstance(v, float):
            return f"{v:.4g}" if abs(v) < 1e4 else f"{v:,.0f}"
        if isinstance(v, int) and not isinstance(v, bool):
            return f"{v:,}"
        return "" if v is None else str(v)

    cells = [[fmt(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) if cells else len(c) for i, c in enumerate(columns)]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths)), file=file)
    print("  ".join("-" * w for w in widths), file=file)
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths)), file=file)


def print_stage_table(summary, file=None):
    rows = [{"stage": "(before)", **summary["before"]}]
    for s in summary["stages"]:
        rows.append({"stage": s["name"], "strategy": s["strategy"], "trainable": s["trainable_params"],
                     "of": s["total_params"], "opt state B": s["optimizer_state_bytes"], "steps": s["steps"],
                     "seconds": s["seconds"], "val loss": s["best_val_loss"], **s["metrics"]})
    metric_cols = list(summary["before"])
    print_table(rows, ["stage", "strategy", "trainable", "of", "opt state B", "steps", "seconds", "val loss",
                       *metric_cols], file=file)
