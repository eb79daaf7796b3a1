"""Line charts written as SVG by hand: a loss curve needs no plotting library.

An SVG file is text: a ``<path d="M 70,300 L 120,250 ...">`` is a line through pixel points, a
``<text>`` is a label. Drawing a chart is therefore two small ideas:

1. **Mapping data to pixels.** The plot area is a box ``left..left+w`` by ``top..top+h``.
   A value maps linearly::

       px = left + (x - x0) / (x1 - x0) * w
       py = top + h - (y - y0) / (y1 - y0) * h      # SVG's y grows downwards, values grow upwards

   A log axis is the same map applied to ``log10(x)``.
2. **Choosing "nice" ticks.** People read 0, 0.5, 1.0 at a glance and stumble on 0.37, 0.74.
   ``nice_ticks`` tries steps 1, 2, 2.5, 5 × 10^k from small to large and keeps the first one
   that covers the data in at most ``max_ticks`` ticks; the axis then runs from the first tick
   to the last, so every gridline sits on a round number.

Lines differ in colour (the Okabe–Ito palette, safe for colour-blind readers) *and* in dash
pattern and marker shape, so they can still be told apart in grey print.

``plot_run`` turns a training log (``log.jsonl``) into ``loss.svg``, titled with the run's recipe
and with the loss in nats per token. Validation points are kept stage by stage and each stage gets
its own validation segment: a stage's first evaluation and the previous stage's last share a
global step but not a validation set, so a line between them would show a change that is only a
change of data. Tutorial 09 (the hybrid schedule) uses it to show the loss across stage
boundaries; tutorial 11 (choosing a strategy) uses ``line_chart`` with ``logx=True`` to plot a
score against training-set size.
"""
from __future__ import annotations

import itertools
import math
import os
import pathlib
from xml.sax.saxutils import escape

from minift.errors import MiniftError
from minift.io import atomic_write_text, read_jsonl, usable_file

# Okabe & Ito (2008), reordered so the first colours are the most distinct on white; yellow last.
PALETTE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442"]
DASHES = {"solid": None, "dashed": "7 4", "dotted": "2 3", "dashdot": "8 3 2 3"}
MARKERS = ["circle", "square", "triangle", "diamond"]
_SERIES_KEYS = {"name", "x", "y", "yerr", "style", "markers", "color", "width", "opacity"}
_FONT = 'font-family="DejaVu Sans, Helvetica, Arial, sans-serif"'


def nice_ticks(lo: float, hi: float, max_ticks: int = 6) -> list[float]:
    """Round tick values covering ``[lo, hi]``, at most ``max_ticks`` of them.

    >>> nice_ticks(0, 7.3)
    [0.0, 2.0, 4.0, 6.0, 8.0]
    """
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise MiniftError(f"nice_ticks: the range must be finite, got ({lo}, {hi})")
    if max_ticks < 2:
        raise MiniftError(f"nice_ticks: max_ticks must be at least 2, got {max_ticks}")
    lo, hi = min(lo, hi), max(lo, hi)
    if lo == hi:  # one value: open a small window around it so the axis has a length
        pad = abs(lo) * 0.1 or 1.0
        lo, hi = lo - pad, hi + pad
    k = math.floor(math.log10((hi - lo) / max_ticks)) - 1  # start below the answer, walk up
    while True:
        for mantissa in (1, 2, 2.5, 5):
            step = mantissa * 10.0**k
            # The tiny slack stops 2.1 / 0.1 = 21.000000000000004 from adding a tick.
            first = math.floor(lo / step + 1e-9)
            last = math.ceil(hi / step - 1e-9)
            if last - first + 1 <= max_ticks:
                digits = max(0, 1 - math.floor(math.log10(step)))  # 0.1 + 0.2 -> 0.3, not 0.30000000000000004
                return [round(i * step, digits) + 0.0 for i in range(first, last + 1)]
        k += 1


def _log_ticks(lo: float, hi: float, max_ticks: int = 8) -> list[float]:
    """Ticks at 1, 2, 5 × 10^k from the last one at or below ``lo`` to the first at or above ``hi``.

    When that would be more than ``max_ticks`` (many decades, or a narrow chart), only the powers
    of ten are kept: they are evenly spaced on a log axis and never crowd each other as much.
    """
    for mantissas in ((1, 2, 5), (1,)):
        candidates = [m * 10.0**k for k in range(math.floor(math.log10(lo)) - 1, math.ceil(math.log10(hi)) + 2)
                      for m in mantissas]
        start = max(c for c in candidates if c <= lo * (1 + 1e-9))
        end = min(c for c in candidates if c >= hi * (1 - 1e-9) and c > start)
        ticks = [float(f"{c:.6g}") for c in candidates if start <= c <= end]  # 0.30000000000000004 -> 0.3
        if len(ticks) <= max_ticks:
            break
    return ticks


def _attr(text: str) -> str:
    return escape(text, {'"': "&quot;"})  # text placed inside an attribute="..."


def _label(value: float) -> str:
    text = repr(value)  # the shortest text that reads back as this float: 0.02, 2.5, 1e-05
    return text[:-2] if text.endswith(".0") else text


def _text_width(text: str, size: float) -> float:
    return 0.6 * size * len(text)  # average glyph width of a sans-serif font; good enough for layout


def _number(value, where: str) -> float:
    if value is None:  # JSON has no NaN; a null is a missing point
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        raise MiniftError(f"{where}: expected a number, got {value!r}") from None


def _check_series(s: dict, i: int, logx: bool, where: str) -> dict:
    if not isinstance(s, dict) or "x" not in s or "y" not in s:
        raise MiniftError(f"{where}: series {i} must be a dict with 'name', 'x' and 'y'")
    name = str(s.get("name", f"series {i}"))
    unknown = set(s) - _SERIES_KEYS
    if unknown:
        raise MiniftError(f"{where}: series {name!r} has unknown keys {sorted(unknown)}; "
                          f"allowed: {sorted(_SERIES_KEYS)}")
    x = [_number(v, f"{where}: series {name!r} x") for v in s["x"]]
    y = [_number(v, f"{where}: series {name!r} y") for v in s["y"]]
    yerr = [_number(v, f"{where}: series {name!r} yerr") for v in s.get("yerr") or [0.0] * len(y)]
    if not len(x) == len(y) == len(yerr):
        raise MiniftError(f"{where}: series {name!r} has {len(x)} x, {len(y)} y and {len(yerr)} yerr values")
    style = s.get("style", list(DASHES)[i % len(DASHES)])
    if style not in DASHES:
        raise MiniftError(f"{where}: series {name!r} has style {style!r}; allowed: {', '.join(DASHES)}")
    if logx and any(v <= 0 for v in x):
        raise MiniftError(f"{where}: series {name!r} has x <= 0, which a log axis cannot show")
    return {"name": name, "x": x, "y": y, "yerr": yerr, "dash": DASHES[style],
            "markers": bool(s.get("markers", False)), "color": s.get("color", PALETTE[i % len(PALETTE)]),
            "width": float(s.get("width", 2.0)), "opacity": float(s.get("opacity", 1.0)),
            "shape": MARKERS[i % len(MARKERS)]}


def _marker(shape: str, cx: float, cy: float, color: str, r: float = 3.5) -> str:
    paint = f'fill="{color}" stroke="white" stroke-width="0.8"'
    if shape == "circle":
        return f'<circle cx="{cx:.2f}" cy="{cy:.2f}" r="{r}" {paint}/>'
    if shape == "square":
        return f'<rect x="{cx - r:.2f}" y="{cy - r:.2f}" width="{2 * r}" height="{2 * r}" {paint}/>'
    corners = ([(0, -1.2), (1.1, 0.8), (-1.1, 0.8)] if shape == "triangle"
               else [(0, -1.3), (1, 0), (0, 1.3), (-1, 0)])  # diamond
    d = " L".join(f"{cx + dx * r:.2f},{cy + dy * r:.2f}" for dx, dy in corners)
    return f'<path d="M{d} Z" {paint}/>'


def _stroke(s: dict) -> str:
    dash = f' stroke-dasharray="{s["dash"]}"' if s["dash"] else ""
    return (f'fill="none" stroke="{_attr(s["color"])}" stroke-width="{s["width"]}" '
            f'stroke-opacity="{s["opacity"]}"{dash}')


def _text(x: float, y: float, content: str, cls: str, size: int = 12, anchor: str = "start",
          extra: str = "") -> str:
    return (f'<text class="{cls}" x="{x:.2f}" y="{y:.2f}" font-size="{size}" text-anchor="{anchor}" '
            f'{_FONT} fill="#222"{extra}>{escape(content)}</text>')


def _stack_labels(boxes: list[tuple[float, float, float]]) -> list[int]:
    """Rows (0 just above the plot) for labels given as (line x, text start, text end) in pixels.

    A label must sit above every label whose vertical line runs through its text, and must not
    overlap another label in its row. Placing first the labels that no unplaced line crosses
    lets each one be put in the lowest row that keeps both rules.
    """
    rows: dict[int, int] = {}
    todo = sorted(range(len(boxes)), key=lambda i: -boxes[i][0])
    while todo:
        def crossed(i: int) -> bool:
            return any(j != i and boxes[i][1] - 3 <= boxes[j][0] <= boxes[i][2] + 3 for j in todo)

        i = next((i for i in todo if not crossed(i)), todo[0])
        todo.remove(i)
        _, start, end = boxes[i]
        row = 0
        for j in sorted(rows, key=rows.get):  # lowest rows first, so one pass finds the lowest free row
            line_x, other_start, other_end = boxes[j]
            text_overlap = rows[j] == row and start < other_end + 8 and other_start < end + 8
            line_crosses = rows[j] >= row and start - 3 <= line_x <= end + 3  # j's line spans rows 0..rows[j]
            if text_overlap or line_crosses:
                row = rows[j] + 1
        rows[i] = row
    return [rows[i] for i in range(len(boxes))]


def _draw_series(s: dict, px, py) -> tuple[list[str], bool]:
    """SVG for one series (error bars, line, markers) and whether it shows markers."""
    out, color = [], _attr(s["color"])
    pts = [(px(x), py(y), y, e) if math.isfinite(x) and math.isfinite(y) else None
           for x, y, e in zip(s["x"], s["y"], s["yerr"])]
    bars = "".join(f'<path d="M{x:.2f},{py(y - e):.2f} V{py(y + e):.2f} M{x - 3:.2f},{py(y - e):.2f} h6 '
                   f'M{x - 3:.2f},{py(y + e):.2f} h6"/>'  # a vertical bar with a cap at each end
                   for x, _, y, e in filter(None, pts) if math.isfinite(e) and e > 0)
    if bars:  # drawn first, so the line and markers sit on top
        out.append(f'<g class="errorbars" stroke="{color}" stroke-opacity="{s["opacity"]}">{bars}</g>')
    d, alone = [], []
    for j, p in enumerate(pts):
        if p is None:
            continue
        joined_before = j > 0 and pts[j - 1] is not None
        joined_after = j + 1 < len(pts) and pts[j + 1] is not None
        d.append(f"{'L' if joined_before else 'M'}{p[0]:.2f},{p[1]:.2f}")  # after a gap "M" starts anew
        if not joined_before and not joined_after:
            alone.append(p)  # an isolated point draws no line at all: give it a marker
    out.append(f'<path class="series" data-name="{_attr(s["name"])}" d="{" ".join(d)}" {_stroke(s)} '
               f'stroke-linejoin="round"/>')
    marked = list(filter(None, pts)) if s["markers"] else alone
    if marked:
        shapes = "".join(_marker(s["shape"], p[0], p[1], color) for p in marked)
        out.append(f'<g class="markers">{shapes}</g>')
    return out, bool(marked)


def line_chart(series: list[dict], *, title: str, xlabel: str, ylabel: str,
               vlines: list[tuple[float, str]] = (), logx: bool = False, width: int = 720, height: int = 420,
               path: str | os.PathLike | None = None) -> str:
    """Draw ``series`` as an SVG line chart and return its text (also written to ``path`` if given).

    Each series is ``{"name", "x", "y"}`` plus optional ``"yerr"`` (error bars), ``"style"``
    (solid, dashed, dotted, dashdot; by default it cycles), ``"markers"`` (bool), ``"color"``,
    ``"width"`` and ``"opacity"``. Non-finite points are skipped and break the line there.
    ``vlines`` are ``(x, label)`` pairs drawn as dashed vertical lines, labelled above the plot.
    """
    where = str(path) if path is not None else "line_chart"
    if width < 300 or height < 200:
        raise MiniftError(f"{where}: a chart needs at least 300 x 200 pixels, got {width} x {height}")
    lines = [_check_series(s, i, logx, where) for i, s in enumerate(series)]
    points = [(x, y, e) for s in lines for x, y, e in zip(s["x"], s["y"], s["yerr"])
              if math.isfinite(x) and math.isfinite(y)]
    if not points:
        raise MiniftError(f"{where}: nothing to draw, every series is empty (or holds only NaN/inf)")
    vlines = [(float(x), str(label)) for x, label in vlines if math.isfinite(x) and (x > 0 or not logx)]

    # Axis ranges: the data (error bars included) and the vertical lines must all fit.
    xs = [x for x, _, _ in points] + [x for x, _ in vlines]
    ys = [y + d for _, y, e in points for d in ((-e, e) if math.isfinite(e) else (0,))]
    fx = math.log10 if logx else float

    # Horizontal layout first: the left margin fits the y tick labels, the right one the legend.
    yticks = nice_ticks(min(ys), max(ys), max_ticks=max(3, (height - 120) // 45))
    left = 42 + max(_text_width(_label(t), 12) for t in yticks)
    max_chars = max(4, int((width * 0.35 - 52) / 7.2))  # cut long names so the plot keeps its room
    names = [s["name"] if len(s["name"]) <= max_chars else s["name"][: max_chars - 1] + "…" for s in lines]
    plot_w = width - left - (52 + max(_text_width(n, 12) for n in names))
    if logx:  # log tick labels are short and evenly spaced, so they can sit closer together
        xticks = _log_ticks(min(xs), max(xs), max(3, int(plot_w // 55)))
    else:
        xticks = nice_ticks(min(xs), max(xs), max(3, int(plot_w // 80)))
    x0, x1, y0, y1 = fx(xticks[0]), fx(xticks[-1]), yticks[0], yticks[-1]

    def px(x: float) -> float:
        return left + (fx(x) - x0) / (x1 - x0) * plot_w

    # Then vertical: vline labels sit above the plot, in as many rows as their collisions need.
    boxes = []
    for x, label in vlines:
        w = _text_width(label, 11)
        start = px(x) + 3 if px(x) + 3 + w < width - 4 else px(x) - 3 - w  # near the right edge: go left
        boxes.append((px(x), start, start + w))
    label_rows = _stack_labels(boxes)
    top = 40 + 15 * (1 + max(label_rows, default=-1))
    plot_h = height - top - 56  # 56: x tick labels and the x label below

    def py(y: float) -> float:
        return top + plot_h - (y - y0) / (y1 - y0) * plot_h

    right, bottom = left + plot_w, top + plot_h
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}">',
           f"<title>{escape(title)}</title>",
           f'<rect width="{width}" height="{height}" fill="white"/>']
    for t in yticks:  # light gridlines behind everything, then the axes
        out.append(f'<line class="grid" x1="{left:.2f}" x2="{right:.2f}" y1="{py(t):.2f}" y2="{py(t):.2f}" '
                   f'stroke="#e3e3e3"/>')
        out.append(_text(left - 8, py(t) + 4, _label(t), "ytick", anchor="end"))
    for t in xticks:
        out.append(f'<line class="grid" x1="{px(t):.2f}" x2="{px(t):.2f}" y1="{top}" y2="{bottom}" '
                   f'stroke="#e3e3e3"/>')
        out.append(_text(px(t), bottom + 18, _label(t), "xtick", anchor="middle"))
    out.append(f'<path class="axes" d="M{left:.2f},{top} V{bottom} H{right:.2f}" fill="none" stroke="#444"/>')

    for (x, label), row, (_, start, _) in zip(vlines, label_rows, boxes):
        out.append(f'<line class="vline" x1="{px(x):.2f}" x2="{px(x):.2f}" y1="{top - 4 - 15 * row}" '
                   f'y2="{bottom}" stroke="#666" stroke-dasharray="4 3"/>')
        out.append(_text(start, top - 6 - 15 * row, label, "vline-label", size=11))

    legend_x = right + 16
    for i, (s, name) in enumerate(zip(lines, names)):
        drawn, with_marker = _draw_series(s, px, py)
        out += drawn
        y = top + 8 + 20 * i  # legend row: a short sample of the line, then its name
        marker = _marker(s["shape"], legend_x + 13, y, _attr(s["color"])) if with_marker else ""
        out.append(f'<g class="legend"><path d="M{legend_x:.2f},{y} h26" {_stroke(s)}/>{marker}'
                   f'{_text(legend_x + 32, y + 4, name, "legend-name")}</g>')

    out.append(_text(width / 2, 24, title, "title", size=16, anchor="middle", extra=' font-weight="bold"'))
    out.append(_text(left + plot_w / 2, height - 14, xlabel, "xlabel", size=13, anchor="middle"))
    out.append(_text(0, 0, ylabel, "ylabel", size=13, anchor="middle",
                     extra=f' transform="translate(18,{top + plot_h / 2:.2f}) rotate(-90)"'))
    svg = "\n".join(out + ["</svg>\n"])
    if path is not None:
        atomic_write_text(path, svg)
    return svg


def _ema(values: list[float], beta: float) -> list[float]:
    """Exponential moving average ``m = beta * m + (1 - beta) * v``, started at the first value.

    A non-finite value (a diverged step) is shown as a gap and left out of the average.
    """
    out, m = [], None
    for v in values:
        if math.isfinite(v):
            m = v if m is None else beta * m + (1 - beta) * v
        out.append(m if math.isfinite(v) else math.nan)
    return out


def _run_title(run_dir: pathlib.Path) -> str:
    """``Loss: RECIPE (FOLDER)`` when the run's summary.json names a recipe, else ``Loss: FOLDER``."""
    import json

    summary = run_dir / "summary.json"
    if not summary.is_file():
        return f"Loss: {run_dir.name}"
    try:
        recipe = json.loads(summary.read_text(encoding="utf-8")).get("recipe")
    except (UnicodeDecodeError, json.JSONDecodeError, AttributeError):
        raise MiniftError(f"{summary}: not a JSON object (the summary a training run writes)") from None
    return f"Loss: {recipe} ({run_dir.name})" if recipe else f"Loss: {run_dir.name}"


def plot_run(run_dir: str | os.PathLike, path: str | os.PathLike | None = None) -> pathlib.Path:
    """Read ``run_dir/log.jsonl`` and draw the loss curves to ``run_dir/loss.svg`` (or ``path``).

    Validation points are kept per stage: the next stage's first evaluation sits at the same
    global step as the previous stage's last one (the same weights, measured on the next stage's
    validation set), so keying them by step alone would drop one of the two, and a line through
    both would join numbers measured on different data. Each stage gets its own validation segment.
    """
    run_dir = pathlib.Path(run_dir)
    log = run_dir / "log.jsonl"
    if not log.is_file():
        raise MiniftError(f"{log}: no such file (plot_run needs the log.jsonl a training run writes)")
    out = usable_file(path if path is not None else run_dir / "loss.svg", "chart")
    # Keyed by step (train) and by (stage, step) (eval), so that a resumed run, which logs some
    # steps again, keeps the later record.
    train: dict[int, tuple[float, str]] = {}
    val: dict[tuple[str, int], float] = {}
    val_stages: list[str] = []  # stages in the order their evaluations first appear
    stages: dict[int, str] = {}
    for rec, lineno in read_jsonl(log, what="log", skip_blank=True):
        event = rec.get("event")
        if event not in ("train", "eval", "stage"):
            continue  # events from newer trainers are not an error
        key = {"train": "loss", "eval": "val_loss", "stage": "stage"}[event]
        if not isinstance(rec.get("step"), int) or key not in rec:
            raise MiniftError(f"{log}:{lineno}: a {event!r} record needs an integer 'step' and {key!r}")
        step = rec["step"]
        if event == "train":
            train[step] = (_number(rec["loss"], f"{log}:{lineno}: 'loss'"), str(rec.get("stage", "")))
        elif event == "eval":
            stage = str(rec.get("stage", ""))
            if stage not in val_stages:
                val_stages.append(stage)
            val[stage, step] = _number(rec["val_loss"], f"{log}:{lineno}: 'val_loss'")
        else:
            stages[step] = str(rec["stage"])
    if not train and not val:
        raise MiniftError(f"{log}: no 'train' or 'eval' records with a loss, nothing to plot")

    series = []
    if train:
        steps = sorted(train)
        raw = [train[s][0] for s in steps]
        # Smooth over about a tenth of the run, and restart at each stage: averaging across a
        # boundary would blur exactly the jump the chart is there to show.
        beta = 1 - 2 / (min(max(len(steps) // 10, 1), 50) + 1)
        smooth = [m for _, run in itertools.groupby(steps, key=lambda s: train[s][1])
                  for m in _ema([train[s][0] for s in run], beta)]
        series.append({"name": "train loss", "x": steps, "y": raw, "color": PALETTE[0], "width": 1.0,
                       "opacity": 0.35, "style": "solid"})
        series.append({"name": "train loss (EMA)", "x": steps, "y": smooth, "color": PALETTE[0], "width": 2.5,
                       "style": "solid"})
    if val:
        # One series (one legend entry), one segment per stage: a NaN point between stages breaks
        # the line, so no line joins validation sets of different stages.
        xs, ys = [], []
        for stage in val_stages:
            if xs:
                xs.append(math.nan)
                ys.append(math.nan)
            steps = sorted(step for st, step in val if st == stage)
            xs += steps
            ys += [val[stage, step] for step in steps]
        series.append({"name": "validation loss", "x": xs, "y": ys,
                       "color": PALETTE[1], "style": "dashed", "markers": True})
    vlines = sorted(stages.items()) if len(stages) > 1 else []
    line_chart(series, title=_run_title(run_dir), xlabel="global step", ylabel="loss (nats/token)",
               vlines=vlines, path=out)
    return out


# --- pictures for the course: attention, the learning-rate schedule, gradual unfreezing ----------
_LOW, _HIGH = (255, 255, 255), (8, 48, 107)  # white -> dark blue: every channel falls as the weight grows


def _shade(w: float) -> str:
    """A weight in [0, 1] as a colour: 0 is white, 1 dark blue, darker for every larger weight."""
    w = min(1.0, max(0.0, w))
    return "#" + "".join(f"{round(lo + (hi - lo) * w):02x}" for lo, hi in zip(_LOW, _HIGH))


def _short(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def attention_svg(tokens: list[str], weights, *, title: str = "Attention weights", heads_per_row: int = 4,
                  path: str | os.PathLike | None = None) -> str:
    """A heat map of one layer's attention, one grid per head, as SVG text (also written to ``path``).

    ``weights`` is ``(nh, T, T)`` (a tensor or nested lists): ``weights[h][t][s]`` is how much
    query ``t`` (row, labelled on the left) looks at key ``s`` (column, labelled on top) in head
    ``h``; each row of a softmax sums to 1. ``tokens`` are the T labels. A cell's colour is its
    weight on one scale for every head, white at 0 and dark blue at 1, so the darkest cell of a row
    is the key that query reads most. Under the causal mask the cells right of the diagonal are 0.
    Each cell carries a ``<title>`` (query, key, weight) that a browser shows on hover.
    """
    where = str(path) if path is not None else "attention_svg"
    if hasattr(weights, "tolist"):
        weights = weights.tolist()
    tokens = [str(t) for t in tokens]
    T = len(tokens)
    if T == 0:
        raise MiniftError(f"{where}: no tokens to draw")
    try:
        grid = [[[float(v) for v in row] for row in head] for head in weights]
    except TypeError:
        raise MiniftError(f"{where}: weights must be (heads, T, T) numbers") from None
    if not grid or any(len(head) != T or any(len(row) != T for row in head) for head in grid):
        raise MiniftError(f"{where}: weights must be (heads, {T}, {T}) for {T} tokens, got "
                          f"{len(grid)} heads of {[len(h) for h in grid]} rows")
    bad = [v for head in grid for row in head for v in row if not (math.isfinite(v) and -1e-6 <= v <= 1 + 1e-6)]
    if bad:
        raise MiniftError(f"{where}: attention weights lie in [0, 1], got {bad[0]!r}")
    if not isinstance(heads_per_row, int) or heads_per_row < 1:
        raise MiniftError(f"{where}: heads_per_row must be an integer >= 1, got {heads_per_row!r}")

    nh = len(grid)
    cell = max(10, min(28, 260 // T))
    font = min(11, cell - 1)
    labels = [_short(t, 10) for t in tokens]
    label_w = max(_text_width(s, font) for s in labels) + 6
    panel_w, panel_h = label_w + T * cell + 24, label_w + T * cell + 34  # labels left and on top, "head h" above
    per_row = min(heads_per_row, nh)
    n_rows = math.ceil(nh / per_row)
    width = max(320, int(16 + per_row * panel_w))
    top = 44
    legend_y = top + n_rows * panel_h + 10
    height = int(legend_y + 52)

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}">',
           f"<title>{escape(title)}</title>",
           '<defs><linearGradient id="attention-scale">'
           f'<stop offset="0" stop-color="{_shade(0)}"/><stop offset="1" stop-color="{_shade(1)}"/>'
           "</linearGradient></defs>",
           f'<rect width="{width}" height="{height}" fill="white"/>',
           _text(width / 2, 24, title, "title", size=16, anchor="middle", extra=' font-weight="bold"')]
    for h, head in enumerate(grid):
        x0 = 16 + (h % per_row) * panel_w + label_w
        y0 = top + (h // per_row) * panel_h + 16 + label_w  # the grid's top-left corner
        out.append(_text(x0 + T * cell / 2, y0 - label_w - 4, f"head {h}", "head-title", size=13, anchor="middle"))
        for i, s in enumerate(labels):  # keys along the top (rotated), queries down the left
            cx = x0 + (i + 0.5) * cell + font * 0.35
            out.append(_text(cx, y0 - 4, s, "key-label", size=font,
                             extra=f' transform="rotate(-90 {cx:.2f} {y0 - 4:.2f})"'))
            out.append(_text(x0 - 4, y0 + (i + 0.5) * cell + font * 0.35, s, "query-label", size=font, anchor="end"))
        cells = []
        for t, row in enumerate(head):
            for s, w in enumerate(row):
                tip = escape(f"head {h}: {tokens[t]!r} looks at {tokens[s]!r} with weight {w:.3f}")
                cells.append(f'<rect class="cell" data-head="{h}" data-row="{t}" data-col="{s}" '
                             f'x="{x0 + s * cell:.2f}" y="{y0 + t * cell:.2f}" width="{cell}" height="{cell}" '
                             f'fill="{_shade(w)}"><title>{tip}</title></rect>')
        out.append(f'<g class="head" data-head="{h}" stroke="#dddddd" stroke-width="0.5">{"".join(cells)}</g>')
    bar_x, bar_w = 16, min(240, width - 32)
    out.append(f'<rect class="scale" x="{bar_x}" y="{legend_y}" width="{bar_w}" height="10" '
               f'fill="url(#attention-scale)" stroke="#888" stroke-width="0.5"/>')
    for v in (0, 0.5, 1):
        out.append(_text(bar_x + v * bar_w, legend_y + 24, _label(float(v)), "scale-tick", size=11, anchor="middle"))
    out.append(_text(bar_x + bar_w + 12, legend_y + 9, "weight; row = query (the token that looks), "
                     "column = key (the token looked at)", "scale-label", size=11))
    svg = "\n".join(out + ["</svg>\n"])
    if path is not None:
        atomic_write_text(path, svg)
    return svg


def _field(stage, key: str, default=None):
    value = stage.get(key, default) if isinstance(stage, dict) else getattr(stage, key, default)
    if value is None:
        raise MiniftError(f"lr_schedule_svg: a stage needs {key!r} (give a recipe's stages, TrainConfigs or dicts)")
    return value


def lr_schedule_svg(stages, *, overlay: bool = False, after: int = 0, title: str | None = None,
                    path: str | os.PathLike | None = None) -> str:
    """The learning rate at every step of one or more stages, drawn with ``line_chart``.

    ``stages`` are a recipe's stages, ``TrainConfig``s or dicts with ``lr``, ``warmup_steps``,
    ``max_steps``, ``min_lr_ratio`` (default 0.1) and optionally ``name``. Each step's rate is
    ``optim.lr_at``, called exactly as the trainer calls it. By default the stages run one after
    the other, as in a recipe (a dashed line labelled with its name where each stage starts; the
    rate restarts its warmup there); with ``overlay=True`` they all start at step 0, to compare
    schedules. ``after`` extends each curve by that many steps past ``max_steps`` (the flat end).
    A stage that scales rates per group (discriminative rates) is drawn at its peak, ``lr``.
    A stage whose budget is ``epochs`` stops at most at ``max_steps``, which is what is drawn.
    """
    from minift.optim import lr_at

    stages = list(stages)
    if not stages:
        raise MiniftError("lr_schedule_svg: no stages to draw")
    if not isinstance(after, int) or after < 0:
        raise MiniftError(f"lr_schedule_svg: after must be an integer >= 0, got {after!r}")
    series, vlines, offset = [], [], 0
    for k, stage in enumerate(stages):
        lr, total = float(_field(stage, "lr")), int(_field(stage, "max_steps"))
        warmup, ratio = min(int(_field(stage, "warmup_steps")), total), float(_field(stage, "min_lr_ratio", 0.1))
        name = str(_field(stage, "name", "") or _field(stage, "strategy", "") or f"stage {k + 1}")
        steps = range(total + (after if overlay or k == len(stages) - 1 else 0))
        start = 0 if overlay else offset
        series.append({"name": name, "x": [start + s for s in steps],
                       "y": [lr_at(s, lr, warmup, total, ratio) for s in steps]})
        if overlay or len(stages) == 1:
            vlines += [(start + warmup, "end of warmup"), (start + total, "max_steps")]
        else:
            vlines.append((start, name))
        offset += total
    vlines = list(dict.fromkeys(vlines))  # overlaid stages of one length share their lines
    if title is None:
        title = "Learning rate: warmup, then cosine decay" + ("" if overlay or len(stages) == 1 else ", stage by stage")
    return line_chart(series, title=title, xlabel="step" if overlay or len(stages) == 1 else "global step",
                      ylabel="learning rate", vlines=vlines, path=path)


def unfreezing_svg(schedule, n_layer: int, total_steps: int, *, parts=(), title: str | None = None,
                   path: str | os.PathLike | None = None) -> str:
    """Gradual unfreezing as a timeline: one row per block (top block at the top), as SVG text.

    ``schedule`` is ``GradualUnfreezer.schedule()``: ``[(step, top blocks trainable from then on)]``.
    Block ``i`` of ``n_layer`` starts training at the first step whose count reaches ``n_layer - i``
    and trains to ``total_steps``; a coloured bar shows when it trains, a grey one when it is frozen.
    ``parts`` (ln_f, the embeddings, ...) train from step 0 and get a row each, above the blocks
    (ln_f, head) or below them (embeddings). A block whose turn comes at or after ``total_steps``
    never trains in the run: its row is grey throughout, labelled "frozen".
    """
    where = str(path) if path is not None else "unfreezing_svg"
    if not isinstance(n_layer, int) or n_layer < 1:
        raise MiniftError(f"{where}: n_layer must be an integer >= 1, got {n_layer!r}")
    if not isinstance(total_steps, int) or total_steps < 1:
        raise MiniftError(f"{where}: total_steps must be an integer >= 1, got {total_steps!r}")
    schedule = [(int(step), int(n)) for step, n in schedule]
    if not schedule or any(s < 0 or not 0 <= n <= n_layer for s, n in schedule):
        raise MiniftError(f"{where}: schedule must be [(step >= 0, blocks 0..{n_layer})], got {schedule!r}")
    parts = [parts] if isinstance(parts, str) else list(parts)

    def first_step(i: int):
        return min((s for s, n in sorted(schedule) if n >= n_layer - i), default=None)

    above = [p for p in parts if p in ("ln_f", "head")]
    below = [p for p in parts if p not in above]
    rows = ([(p, 0) for p in above] + [(f"block {i}", first_step(i)) for i in reversed(range(n_layer))]
            + [(p, 0) for p in below])
    ticks = nice_ticks(0, total_steps, max_ticks=7)
    label_w = max(_text_width(label, 12) for label, _ in rows) + 24
    width, row_h = 720, 26
    left, right = label_w, width - 90
    top = 54
    height = top + row_h * len(rows) + 58

    def px(step: float) -> float:
        return left + (step - ticks[0]) / (ticks[-1] - ticks[0]) * (right - left)

    if title is None:
        every = sorted(schedule)[1][0] - sorted(schedule)[0][0] if len(schedule) > 1 else None
        title = "Gradual unfreezing" + (f": one more block every {every} steps" if every else "")
    bottom = top + row_h * len(rows)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}">',
           f"<title>{escape(title)}</title>",
           f'<rect width="{width}" height="{height}" fill="white"/>',
           _text(width / 2, 24, title, "title", size=16, anchor="middle", extra=' font-weight="bold"')]
    for t in ticks:
        out.append(f'<line class="grid" x1="{px(t):.2f}" x2="{px(t):.2f}" y1="{top}" y2="{bottom}" stroke="#e3e3e3"/>')
        out.append(_text(px(t), bottom + 18, _label(float(t)), "xtick", anchor="middle"))
    for r, (label, start) in enumerate(rows):
        y = top + r * row_h + 4
        out.append(_text(left - 8, y + 13, label, "row-label", anchor="end"))
        out.append(f'<rect class="frozen" data-row="{_attr(label)}" x="{px(0):.2f}" y="{y}" '
                   f'width="{px(total_steps) - px(0):.2f}" height="{row_h - 8}" fill="#e6e6e6"/>')
        if start is not None and start < total_steps:
            color = PALETTE[2] if label.startswith("block") else PALETTE[0]
            out.append(f'<rect class="train" data-row="{_attr(label)}" x="{px(start):.2f}" y="{y}" '
                       f'width="{px(total_steps) - px(start):.2f}" height="{row_h - 8}" fill="{color}"/>')
            out.append(_text(px(total_steps) + 6, y + 13, f"from step {start}", "start-label", size=11))
        else:
            out.append(_text(px(total_steps) + 6, y + 13, "frozen", "start-label", size=11))
    out.append(f'<path class="axes" d="M{left:.2f},{top} V{bottom} H{right:.2f}" fill="none" stroke="#444"/>')
    out.append(_text((left + right) / 2, height - 14, "step (coloured: trains; grey: frozen)", "xlabel",
                     size=13, anchor="middle"))
    svg = "\n".join(out + ["</svg>\n"])
    if path is not None:
        atomic_write_text(path, svg)
    return svg
