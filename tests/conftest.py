"""Shared fixtures: a tiny base model pretrained on a toy bilingual text, and pairs to fine-tune on.

Built once per test session in about two seconds, so fine-tuning tests need neither the shipped
base nor the world generator. The mutation run (tests/mutation.py) starts thousands of short test
sessions; it sets MINIFT_TINY_CACHE to a folder so the fixture is built there once and reused.
"""
import json
import os
import random
import shutil
from pathlib import Path

import pytest

WORDS = {"cat": "chat", "dog": "chien", "bird": "oiseau", "fish": "poisson", "tree": "arbre", "book": "livre"}


@pytest.fixture(scope="session")
def tiny_setup(tmp_path_factory):
    """A folder with base/ (tiny pretrained model) and pairs.jsonl (80 translation pairs, subsets x/y)."""
    cache = os.environ.get("MINIFT_TINY_CACHE")
    if cache and (Path(cache) / "pairs.jsonl").exists():
        return Path(cache)
    root = build_tiny(tmp_path_factory.mktemp("tiny"))
    if cache:  # built aside, then renamed: a half-written cache is never seen
        partial = Path(f"{cache}.{os.getpid()}")
        shutil.copytree(root, partial)
        try:
            partial.rename(cache)
        except OSError:  # another session got there first
            shutil.rmtree(partial, ignore_errors=True)
        return Path(cache)
    return root


def build_tiny(root):
    from minift.pretrain import pretrain

    rng = random.Random(0)
    lines = []
    for _ in range(200):
        a, b = rng.sample(sorted(WORDS), 2)
        lines.append(f"the {a} sees the {b}. le {WORDS[a]} voit le {WORDS[b]}.")
    (root / "book.txt").write_text("\n\n".join(lines))
    pretrain(root / "base", preset="tiny", text_file=root / "book.txt", max_steps=20, quiet=True, vocab=280)
    with open(root / "pairs.jsonl", "w") as f:
        for i in range(80):
            a, b = rng.sample(sorted(WORDS), 2)
            f.write(json.dumps({"source": f"the {a} sees the {b}.", "target": f"le {WORDS[a]} voit le {WORDS[b]}.",
                                "subset": "x" if i % 2 else "y"}) + "\n")
    return root


# --- mutation testing: credit a shared fixture's calls to every test that uses it ----------------
# mutmut first runs the suite once to learn which tests call each function, then tests each mutant
# against those tests only. The calls made while a module- or session-scoped fixture is built land
# in the first test that asked for it, so the other tests sharing that fixture (a fine-tuning run
# that ten tests inspect) would never be run against a mutant of the code that built it. While
# mutmut collects those statistics (MUTANT_UNDER_TEST=stats), record what each fixture's setup hit
# and credit it to every test that uses the fixture. Outside a mutation run these hooks do nothing.
_FIXTURE_HITS: dict[tuple[str, str], set[str]] = {}


def _mutmut_hits():
    """The functions mutmut saw called since the current test began, or None outside its statistics
    run (checked at each call: the forkserver may import this file before the run begins)."""
    if os.environ.get("MUTANT_UNDER_TEST") != "stats":
        return None
    from mutmut.state import state

    return state()._stats


@pytest.hookimpl(hookwrapper=True)
def pytest_fixture_setup(fixturedef, request):
    hits = _mutmut_hits()
    if hits is None:
        yield
        return
    before = set(hits)
    hits.clear()
    yield
    _FIXTURE_HITS.setdefault((fixturedef.baseid, fixturedef.argname), set()).update(hits)
    hits.update(before)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    yield
    hits = _mutmut_hits()
    if hits is None:
        return
    for defs in item._fixtureinfo.name2fixturedefs.values():
        for fixturedef in defs:
            hits.update(_FIXTURE_HITS.get((fixturedef.baseid, fixturedef.argname), ()))
