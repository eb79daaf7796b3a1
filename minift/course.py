"""The course machinery: smoke mode for the tutorials, and notebooks made from the same scripts.

Smoke mode
----------
A tutorial is a lesson first and a test second. Run with ``python tutorials/01_tokenization.py``
it does the real thing (a few seconds to a couple of minutes on a laptop). The test suite runs
every tutorial and every solution too, but it only needs to know that nothing is broken, so it
sets the environment variable ``MINIFT_SMOKE=1`` and each lesson shrinks its loops::

    from minift.course import pick
    steps = pick(300, 10)        # 300 steps normally, 10 under MINIFT_SMOKE=1

``MINIFT_SEED=N`` changes the seed of every lesson's training (``lesson_seed()``, 0 by default),
which is how the teacher's guide measures each key number's range over seeds.

The code path is the same in both modes; only the sizes change. That is how the lessons stay
tested without making the tests slow (LLMs-from-scratch's ``--test_mode`` does the same).

A zero exit status says only that nothing crashed. So each lesson also *reports* its key claims,
what it sets out to show, at the line where it shows them::

    claim("val_loss_at_each_eval", [r["val_loss"] for r in evals])  # checked by tests/test_tutorials.py

``claim(name, value)`` returns ``value`` and, in a normal run or a notebook, does nothing else.
When the environment variable ``MINIFT_CLAIMS`` names a file, it appends one JSON line
``{"lesson": ..., "name": ..., "value": ...}`` to it. ``tests/test_tutorials.py`` sets it, runs
the script in smoke mode, and checks every reported value against its table of what each lesson
claims (the loss falls, a frozen weight does not move, two paths give the same numbers, ...).

Notebooks from the same source
------------------------------
The tutorials are plain Python in the *percent* cell format: a line starting with ``# %%`` opens
a code cell, ``# %% [markdown]`` opens a prose cell whose lines are comments (``# text``). Python
ignores the markers, so the file runs top to bottom; VS Code, PyCharm and jupytext show it cell by
cell. For a class that wants real notebooks, ``write_notebooks`` turns each script into an
``.ipynb``. A notebook is nothing but JSON (nbformat 4)::

    {"nbformat": 4, "nbformat_minor": 5,
     "metadata": {"kernelspec": {...}, "language_info": {"name": "python", ...}},
     "cells": [{"cell_type": "markdown", "id": "cell-0", "metadata": {}, "source": ["# Lesson 01\\n", ...]},
               {"cell_type": "code", "id": "cell-1", "metadata": {}, "source": [...],
                "execution_count": null, "outputs": []}]}

``source`` is a list of lines that keep their ``"\\n"`` (all but the last); code cells start with no
outputs, as if freshly cleared; since nbformat 4.5 every cell carries a short unique ``id``. No
library is needed to write one, so minift writes it by hand. The script stays the single source:
the notebooks are generated, never edited.

The command line calls this module: ``minift notebooks --out DIR`` writes one notebook per
tutorial into DIR and one per solution into DIR/solutions.

Charts in a notebook
--------------------
A lesson writes its charts as SVG files (``minift.plot``) and then calls ``show(path)``. In a
Jupyter kernel (a notebook, VS Code's interactive window) the chart appears under the cell,
through IPython's ``display``; anywhere else, ``show`` prints the file's path, to open in a
browser. It prints the path in a notebook too, so the file can be found for a slide. IPython is
never a dependency: a kernel has always imported it already, so ``show`` looks for it in
``sys.modules`` and imports nothing when it is absent (a plain ``python`` run never loads it).
``minift course figures --out DIR`` (``minift/figures.py``) writes every figure the lessons draw.
"""
from __future__ import annotations

import json
import math
import os
import re
import sys
import tempfile
from pathlib import Path

from minift.errors import MiniftError
from minift.io import atomic_write_json, usable_folder

SMOKE_VARIABLE = "MINIFT_SMOKE"
SEED_VARIABLE = "MINIFT_SEED"  # a whole number: the seed of a lesson's training runs (default 0)
CLAIMS_VARIABLE = "MINIFT_CLAIMS"  # a file: where claim() appends what a lesson shows
TUTORIAL_GLOB = "[0-9][0-9]_*.py"  # 01_tokenization.py, 02_self_attention.py, ...
_MARKER = re.compile(r"^# %%(?P<rest>.*)$")


# --- smoke mode -------------------------------------------------------------------------------
def smoke() -> bool:
    """True when the tutorials should run in smoke mode (``MINIFT_SMOKE=1``): tiny sizes, same code."""
    return os.environ.get(SMOKE_VARIABLE) == "1"


def pick(full, smoke_value):
    """``full`` normally, ``smoke_value`` under ``MINIFT_SMOKE=1``: ``steps = pick(300, 10)``."""
    return smoke_value if smoke() else full


def lesson_seed() -> int:
    """The seed of a lesson's training runs: ``MINIFT_SEED`` when it is set, else 0.

    Every lesson passes it to ``torch.manual_seed`` and to the ``seed=`` of its runs, so a
    teacher measures the spread of a lesson's numbers with ``MINIFT_SEED=1``, ``2``, ... (the
    teacher's guide, ``tutorials/TEACHING.md``, gives the ranges it measured that way). As between
    the seeds of the strategy experiment, a run's seed draws its initial randomness *and* the
    generated examples ``run_recipe`` trains and validates on; the examples a lesson loads itself
    (its corpora, its test sets) keep their own fixed seeds, except where the lesson compares
    with a run's own validation scores and so loads the run's examples (lesson 06).
    """
    text = os.environ.get(SEED_VARIABLE, "").strip()
    if not text:
        return 0
    if not re.fullmatch(r"\d+", text):
        raise MiniftError(f"{SEED_VARIABLE} must be a whole number >= 0 (the lessons' seed), got {text!r}")
    return int(text)


def header(title: str) -> None:
    """Print a section header, so a run from the terminal shows where each cell's output starts."""
    line = "=" * max(60, len(title) + 6)
    print(f"\n{line}\n== {title}\n{line}")


def _plain(value):
    """``value`` as plain JSON data: tensors and numpy numbers become Python numbers or lists."""
    if isinstance(value, (bool, int, str)) or value is None:
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)  # JSON has no inf or nan
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "tolist"):  # a torch tensor or a numpy value
        return _plain(value.tolist())
    raise MiniftError(f"claim: cannot record a {type(value).__name__}; give a number, bool, string or list")


def claim(name: str, value):
    """Report a lesson's key result under ``name`` and return ``value`` unchanged.

    It does nothing visible unless ``MINIFT_CLAIMS`` names a file; then it appends
    ``{"lesson": <the script's file name>, "name": name, "value": value}`` as one JSON line, which
    the course test reads back. A single ``write`` of one short line in append mode, so lines from
    one run never interleave.
    """
    _record(name, value)
    return value


def key(label: str, value, asserted: str | None = None):
    """Report one of a lesson's *key numbers* and return ``value`` unchanged.

    A key number is what a student should see when they run the lesson (a BLEU score, a final
    loss), as opposed to an identity that holds at any seed. ``label`` names it for a reader
    ("BLEU after 300 steps of full"); ``asserted`` says, in words, what the lesson's full-mode
    ``assert`` checks about it ("15-24", "above scratch"), or None when nothing is asserted. It is
    a ``claim`` whose record also carries ``"key": true`` and ``asserted``, so ``minift course
    ranges`` can gather every key number over several seeds into the teacher's guide's table.
    """
    _record(label, value, key=True, asserted=asserted)
    return value


def _record(name: str, value, **extra) -> None:
    path = os.environ.get(CLAIMS_VARIABLE)
    if path:
        lesson = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else ""
        line = json.dumps({"lesson": lesson, "name": name, "value": _plain(value), **extra}, ensure_ascii=False)
        with open(path, "a", encoding="utf-8") as f:
            f.write(line + "\n")


def read_claims(path: str | os.PathLike) -> list[dict]:
    """The records ``claim`` appended to ``path``, in order (an empty list if there is no file)."""
    path = Path(path)
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def output_dir(lesson: str) -> Path:
    """A folder for what a lesson writes (charts, small files), outside the repository.

    ``MINIFT_COURSE_OUT`` chooses the parent folder; by default it is the system's temporary folder,
    so running a lesson never leaves files in the working tree.
    """
    parent = os.environ.get("MINIFT_COURSE_OUT") or os.path.join(tempfile.gettempdir(), "minift-course")
    path = Path(parent) / lesson
    path.mkdir(parents=True, exist_ok=True)
    return path


def _kernel():
    """The running IPython kernel's shell, or None (a plain interpreter, or terminal IPython).

    Only a kernel can show an SVG: terminal IPython would print ``<IPython.core.display.SVG
    object>``. A kernel has always imported IPython, so nothing is imported here.
    """
    ipython = sys.modules.get("IPython")
    get_ipython = getattr(ipython, "get_ipython", None)
    shell = get_ipython() if callable(get_ipython) else None
    return shell if getattr(shell, "kernel", None) is not None else None


def show(chart, label: str = "chart"):
    """Show a chart: inline in a Jupyter kernel, by its path elsewhere. Returns ``chart``.

    ``chart`` is the path of an SVG file (what a lesson wrote) or SVG text (what the
    ``minift.plot`` functions return). A path is always printed, ``label: PATH``; in a kernel the
    picture itself is displayed below it.
    """
    is_text = isinstance(chart, str) and chart.lstrip().startswith("<")
    if not is_text:
        path = Path(chart)
        if not path.is_file():
            raise MiniftError(f"show: {path}: no such chart (write it first, e.g. with minift.plot)")
        print(f"{label}: {path}")
    shell = _kernel()
    if shell is None:
        if is_text:
            print(f"{label}: an SVG of {len(chart):,} characters, not saved; run the lesson in Jupyter to see it, "
                  "or pass path= to the function that drew it")
        return chart
    from IPython.display import SVG, display  # a kernel: IPython is there, and already imported

    display(SVG(data=chart if is_text else path.read_text(encoding="utf-8")))
    return chart


# --- "# %%" scripts -> cells -> notebooks -----------------------------------------------------
def _markdown_line(line: str) -> str:
    """``# text`` -> ``text``; a bare ``#`` -> an empty line; anything else is kept as it is."""
    if line.startswith("# "):
        return line[2:]
    if line.rstrip() == "#":
        return ""
    return line


def _cell(kind: str, lines: list[str]) -> dict | None:
    if kind == "markdown":
        lines = [_markdown_line(line) for line in lines]
    while lines and not lines[0].strip():  # blank lines around a cell are layout, not content
        lines = lines[1:]
    while lines and not lines[-1].strip():
        lines = lines[:-1]
    if not lines:
        return None
    return {"cell_type": kind, "source": "\n".join(lines)}


def parse_cells(source: str) -> list[dict]:
    """Split a percent-format script into cells ``{"cell_type": "markdown" | "code", "source": str}``.

    ``# %% [markdown]`` opens a markdown cell (each line's leading ``# `` is removed); any other
    ``# %%`` line (a bare one, or one with a title such as ``# %% Train``) opens a code cell. Text
    before the first marker becomes a code cell. Blank lines at the edges of a cell are dropped,
    and so are cells left empty.
    """
    cells: list[dict] = []
    kind, lines = "code", []
    for line in source.splitlines():
        match = _MARKER.match(line)
        if match is None:
            lines.append(line)
            continue
        cell = _cell(kind, lines)
        if cell is not None:
            cells.append(cell)
        kind = "markdown" if match["rest"].strip().startswith("[markdown]") else "code"
        lines = []
    cell = _cell(kind, lines)
    if cell is not None:
        cells.append(cell)
    return cells


def to_notebook(cells: list[dict]) -> dict:
    """Cells from ``parse_cells`` -> an nbformat 4.5 notebook (a plain dict, ready for ``json.dump``)."""
    out = []
    for i, cell in enumerate(cells):
        kind = cell["cell_type"]
        if kind not in ("code", "markdown"):
            raise MiniftError(f"to_notebook: cell {i} has cell_type {kind!r}; expected 'code' or 'markdown'")
        entry = {"cell_type": kind, "id": f"cell-{i}", "metadata": {},
                 "source": cell["source"].splitlines(keepends=True)}
        if kind == "code":
            entry["execution_count"] = None
            entry["outputs"] = []
        out.append(entry)
    return {
        "cells": out,
        "metadata": {
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
            "language_info": {"name": "python", "file_extension": ".py", "mimetype": "text/x-python",
                              "codemirror_mode": {"name": "ipython", "version": 3},
                              "pygments_lexer": "ipython3", "nbconvert_exporter": "python"},
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }


def tutorial_files(tutorial_dir: str | os.PathLike) -> list[Path]:
    """The lessons in a folder (``NN_name.py``), in course order."""
    return sorted(Path(tutorial_dir).glob(TUTORIAL_GLOB))


def default_tutorial_dir() -> Path:
    """The repository's ``tutorials/`` folder (present in a source checkout, not in a wheel)."""
    path = Path(__file__).resolve().parent.parent / "tutorials"
    if not tutorial_files(path):
        raise MiniftError(f"no tutorials found at {path}; pass the folder that holds 01_tokenization.py ...")
    return path


def write_notebooks(tutorial_dir: str | os.PathLike, out_dir: str | os.PathLike) -> list[Path]:
    """Write ``out_dir/NN_name.ipynb`` for each tutorial and ``out_dir/solutions/NN_name.ipynb`` for
    each solution in ``tutorial_dir/solutions``; return the paths written, tutorials first."""
    tutorial_dir, out_dir = Path(tutorial_dir), Path(out_dir)
    lessons = tutorial_files(tutorial_dir)
    if not lessons:
        raise MiniftError(f"{tutorial_dir}: no tutorials (files named like 01_tokenization.py)")
    usable_folder(out_dir, "--out folder")  # every output folder is checked before the first notebook is written
    if tutorial_files(tutorial_dir / "solutions"):
        usable_folder(out_dir / "solutions", "folder of the solution notebooks")
    written = []
    for sources, target in ((lessons, out_dir), (tutorial_files(tutorial_dir / "solutions"), out_dir / "solutions")):
        for script in sources:
            cells = parse_cells(script.read_text(encoding="utf-8"))
            path = target / (script.stem + ".ipynb")
            atomic_write_json(path, to_notebook(cells))
            written.append(path)
    return written


# --- key numbers over seeds: ``minift course ranges`` -----------------------------------------
# A lesson's key numbers (``key(...)``) change with the seed of its training. The teacher's guide
# gives each one's range over a few seeds, so a teacher knows what a student's run should print
# and how far apart two students' runs may be. The table is made by running every lesson that
# reports a key number, in full mode, once per seed, and reading back what ``key`` recorded.
_TRACE_LINE = re.compile(r'File "(?P<file>[^"]+)", line (?P<line>\d+)')


def lessons_with_key_numbers(tutorial_dir: str | os.PathLike) -> list[Path]:
    """The lessons of ``tutorial_dir`` whose source calls ``key(`` (those the ranges table lists)."""
    return [p for p in tutorial_files(tutorial_dir) if re.search(r"(?<![\w.])key\(", p.read_text(encoding="utf-8"))]


def _failure(stderr: str, script: Path) -> str:
    """``AssertionError at line 139``: the last line of a traceback and where in the lesson it was raised."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    if not lines:
        return "no message"
    where = [m["line"] for m in _TRACE_LINE.finditer(stderr) if Path(m["file"]).name == script.name]
    last = lines[-1].strip()
    return f"{last[:120]}" + (f" at line {where[-1]}" if where else "")


def run_lesson(script: Path, seed: int, folder: Path, asserts: bool = True) -> dict:
    """Run one lesson in full mode at ``seed``, keeping its output in ``folder``; return its run record.

    ``folder/NAME-SEED.txt`` and ``.err`` hold what it printed, ``.claims`` what it reported, and
    ``.json`` the record ``{"lesson", "seed", "asserts", "returncode", "seconds", "failure"}``,
    written last (atomically), so a record on disk means a finished run and a second call resumes.
    ``asserts=False`` runs ``python -O``: the full-mode asserts are skipped, so one range that fails
    does not hide the numbers after it.
    """
    import subprocess
    import time

    stem = f"{script.stem}-{seed}"
    claims_path = folder / f"{stem}.claims"
    claims_path.unlink(missing_ok=True)
    env = dict(os.environ, **{SEED_VARIABLE: str(seed), CLAIMS_VARIABLE: str(claims_path),
                              "MINIFT_COURSE_OUT": str(folder / "out")})
    env.pop(SMOKE_VARIABLE, None)  # full mode: the sizes the lesson's text talks about
    command = [sys.executable] + ([] if asserts else ["-O"]) + [str(script.resolve())]
    start = time.perf_counter()
    with open(folder / f"{stem}.txt", "w", encoding="utf-8") as out, \
            open(folder / f"{stem}.err", "w", encoding="utf-8") as err:
        returncode = subprocess.run(command, stdout=out, stderr=err, env=env, cwd=folder).returncode
    record = {"lesson": script.name, "seed": seed, "asserts": asserts, "returncode": returncode,
              "seconds": round(time.perf_counter() - start, 1),
              "failure": None if returncode == 0 else
              _failure((folder / f"{stem}.err").read_text(encoding="utf-8", errors="replace"), script)}
    atomic_write_json(folder / f"{stem}.json", record)
    return record


def finished_run(script: Path, seed: int, folder: Path, asserts: bool) -> dict | None:
    """The record of a finished run of ``script`` at ``seed`` in ``folder`` with the same asserts, else None."""
    path = folder / f"{script.stem}-{seed}.json"
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if record.get("asserts") == asserts else None


def run_ranges(scripts: list[Path], seeds: list[int], folder: str | os.PathLike, asserts: bool = True,
               jobs: int = 1, log=None) -> list[dict]:
    """Run every (lesson, seed) not yet finished in ``folder``, ``jobs`` at a time; return every run record.

    Progress goes to ``log`` (stderr by default): each finished run, its time, and the time left.
    """
    import time
    from concurrent.futures import ThreadPoolExecutor, as_completed

    log = log or sys.stderr
    folder = usable_folder(folder, "--out folder")
    todo = [(s, seed) for seed in seeds for s in scripts if finished_run(s, seed, folder, asserts) is None]
    done = [finished_run(s, seed, folder, asserts) for seed in seeds for s in scripts]
    records = [r for r in done if r is not None]
    if records:
        print(f"course ranges: {len(records)} runs already in {folder}, {len(todo)} to go", file=log)
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:  # threads: each waits on its own process
        futures = [pool.submit(run_lesson, s, seed, folder, asserts) for s, seed in todo]
        for i, future in enumerate(as_completed(futures), 1):
            record = future.result()
            records.append(record)
            left = len(todo) - i
            eta = (time.perf_counter() - start) / i * left
            status = "ok" if record["returncode"] == 0 else f"exit {record['returncode']}: {record['failure']}"
            print(f"[{i}/{len(todo)}] {record['lesson']} seed {record['seed']}: {record['seconds']:.0f} s, {status}; "
                  f"{left} left, about {eta / 60:.1f} min", file=log, flush=True)
    return records


def _value_cell(value) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float)):
        return f"{value:.4g}"
    return str(value)


def ranges_table(scripts: list[Path], seeds: list[int], folder: str | os.PathLike) -> str:
    """The markdown table of every key number of ``scripts`` at each seed, from the runs kept in ``folder``.

    One row per key number, in the order the lessons report them: its value at each seed ("—" where
    that run did not reach it), the range over the seeds, and what the lesson asserts about it.
    Runs that failed are listed under the table with the line that stopped them.
    """
    folder = Path(folder)
    rows: dict[tuple[str, str], dict] = {}
    failures = []
    for script in scripts:
        for seed in seeds:
            for record in read_claims(folder / f"{script.stem}-{seed}.claims"):
                if record.get("key"):
                    row = rows.setdefault((script.name, record["name"]), {"values": {}, "asserted": None})
                    row["values"][seed] = record["value"]
                    row["asserted"] = record.get("asserted") or row["asserted"]
            run = json.loads((folder / f"{script.stem}-{seed}.json").read_text(encoding="utf-8")) \
                if (folder / f"{script.stem}-{seed}.json").is_file() else None
            if run is None:
                failures.append(f"- {script.name[:2]} at seed {seed}: not run yet")
            elif run["returncode"] != 0:
                failures.append(f"- {script.name[:2]} at seed {seed}: exited {run['returncode']}, {run['failure']}")
    head = ["lesson", "number"] + [f"seed {s}" for s in seeds] + ["range", "asserted in full mode"]
    lines = ["| " + " | ".join(head) + " |", "|---|---|" + "---:|" * (len(seeds) + 1) + "---|"]
    for (lesson, name), row in rows.items():
        values = [row["values"][s] for s in seeds if s in row["values"]]
        numbers = [float(v) for v in values if isinstance(v, (int, float))]
        if values and all(isinstance(v, bool) for v in values):
            span = f"yes at {sum(values)} of {len(values)}"
        else:
            span = f"{_value_cell(min(numbers))}–{_value_cell(max(numbers))}" if numbers else "—"
        cells = [_value_cell(row["values"][s]) if s in row["values"] else "—" for s in seeds]
        lines.append(f"| {lesson[:2]} | {name.replace('|', chr(92) + '|')} | " + " | ".join(cells)
                     + f" | {span} | {row['asserted'] or '—'} |")
    if failures:
        lines += ["", "Runs that did not finish:", *failures]
    return "\n".join(lines) + "\n"
