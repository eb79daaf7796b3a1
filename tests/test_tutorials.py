"""Every tutorial and every solution runs to the end in smoke mode, and follows the course format.

The lists are globs, so a lesson added to tutorials/ is tested without touching this file.
Smoke mode (MINIFT_SMOKE=1) shrinks steps and data; the code path is the one a student runs.
The scripts check their own numbers with asserts (library versus by-hand versions), so a zero
exit status means those checks held too.
"""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from minift.course import parse_cells, tutorial_files

TUTORIALS = Path(__file__).resolve().parent.parent / "tutorials"
LESSONS = tutorial_files(TUTORIALS)
SOLUTIONS = tutorial_files(TUTORIALS / "solutions")
TIMEOUT_S = 120


def _run(script: Path, tmp_path: Path) -> subprocess.CompletedProcess:
    # One thread: a smoke run checks correctness, not speed, and on a shared 2-core machine two
    # spinning OpenMP threads per script can be several times slower than one.
    env = dict(os.environ, MINIFT_SMOKE="1", MINIFT_COURSE_OUT=str(tmp_path / "out"), MPLBACKEND="Agg",
               PYTHONDONTWRITEBYTECODE="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    try:
        return subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired as e:
        tail = (e.stderr or b"")[-2000:]
        pytest.fail(f"{script.name} ran past {TIMEOUT_S} s in smoke mode; stderr tail:\n"
                    f"{tail.decode(errors='replace') if isinstance(tail, bytes) else tail}")


def _check_run(script: Path, tmp_path: Path) -> None:
    result = _run(script, tmp_path)
    assert result.returncode == 0, (
        f"{script.relative_to(TUTORIALS)} exited with {result.returncode} under MINIFT_SMOKE=1; "
        f"stderr tail:\n{result.stderr[-3000:]}")
    assert "\n== " in result.stdout, "a lesson prints section headers (minift.course.header)"


def test_the_first_four_lessons_are_there():
    assert [p.name for p in LESSONS[:4]] == ["01_tokenization.py", "02_self_attention.py",
                                              "03_transformer_block.py", "04_optimization.py"]


@pytest.mark.parametrize("script", LESSONS, ids=lambda p: p.name)
def test_tutorial_runs_in_smoke_mode(script, tmp_path):
    _check_run(script, tmp_path)


@pytest.mark.parametrize("script", SOLUTIONS, ids=lambda p: f"solutions/{p.name}")
def test_solution_runs_in_smoke_mode(script, tmp_path):
    _check_run(script, tmp_path)


@pytest.mark.parametrize("script", LESSONS, ids=lambda p: p.name)
def test_tutorial_follows_the_course_format(script):
    cells = parse_cells(script.read_text(encoding="utf-8"))
    first, last = cells[0], cells[-1]
    number = script.name[:2]
    assert first["cell_type"] == "markdown" and re.match(rf"# Lesson {number}\b", first["source"]), \
        f"{script.name} must open with a markdown cell titled '# Lesson {number} — ...'"
    assert last["cell_type"] == "markdown" and "## Exercises" in last["source"], \
        f"{script.name} must end with a markdown cell holding '## Exercises'"
    assert (TUTORIALS / "solutions" / script.name).is_file(), f"tutorials/solutions/{script.name} is missing"
    assert any(c["cell_type"] == "code" for c in cells)


def test_every_solution_belongs_to_a_tutorial():
    assert {p.name for p in SOLUTIONS} <= {p.name for p in LESSONS}


@pytest.mark.parametrize("script", LESSONS + SOLUTIONS, ids=lambda p: str(p.relative_to(TUTORIALS)))
def test_scripts_also_work_as_notebooks(script):
    """A notebook kernel has no ``__file__`` of its own (a module's, ``minift.__file__``, is fine)."""
    source = script.read_text(encoding="utf-8")
    assert not re.search(r"(?<![\w.])__file__", source), \
        f"{script.name} uses __file__, which a notebook does not define"
