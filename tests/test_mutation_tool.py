"""The mutation command's own arithmetic (tests/mutation.py): the sampled score's interval and the
draw. The mutation run itself is a development command, never part of CI."""
import importlib.util
from pathlib import Path

import pytest

spec = importlib.util.spec_from_file_location("mutation_tool", Path(__file__).with_name("mutation.py"))
mutation = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mutation)


def test_the_wilson_interval_matches_the_published_worked_example():
    # 9 of 10 at 95% (z = 1.96), Wilson's closed form worked by hand: 1 + z^2/n = 1.38416,
    # centre (0.9 + 0.19208) / 1.38416 = 0.78898, half 1.96 * sqrt(0.009 + 0.0096) / 1.38416 = 0.19312.
    low, high = mutation.wilson(9, 10)
    assert low == pytest.approx(59.58, abs=0.01) and high == pytest.approx(98.21, abs=0.01)
    # All killed: the interval is not the degenerate [100, 100] a normal approximation would give.
    low, high = mutation.wilson(50, 50)
    assert high == pytest.approx(100.0) and low == pytest.approx(100 * 50 / (50 + 1.96 ** 2), abs=0.01)


def test_the_draw_is_uniform_without_replacement_and_repeatable():
    names = [f"m{i}" for i in range(100)]
    a = mutation.draw(reversed(names), 30, seed=0)
    assert a == mutation.draw(names, 30, seed=0)  # the order the names come in does not matter
    assert len(set(a)) == 30 and set(a) <= set(names)
    assert a != mutation.draw(names, 30, seed=1)
    assert sorted(mutation.draw(names, 500, seed=0)) == sorted(names)  # K above the count: every mutant
    # An edit that renames one function's mutants leaves the others' places in the sample alone: at
    # most one old member per new name is pushed out (a draw over the list would redraw them all).
    edited = [n for n in names if n not in ("m1", "m2")] + ["m1b", "m2b"]
    kept = set(a) - {"m1", "m2"}
    assert len(kept & set(mutation.draw(edited, 30, seed=0))) >= len(kept) - 2
