"""Mutation testing of the glue: does the suite notice a small bug planted in the code that joins
the pieces? (A development command, not part of CI; ``tests/README.md`` gives its figures.)

mutmut (a development tool from PyPI, never a runtime dependency) rewrites one small thing at a
time in a copy of the code — ``<`` for ``<=``, ``+`` for ``-``, a constant, a dropped argument, a
string — and runs the tests that cover the mutated function. A mutant the tests notice is
*killed*; one they do not notice *survived*. A survivor is either a missing test, or an
*equivalent* mutant: a change no test could ever see because behaviour is the same (a progress
message's wording, a default that the only caller always overrides). The equivalent ones are
listed with their reason in ``tests/mutation_equivalent/TARGET.txt``, one ``name  # why`` per line. One
kind is recognised without a list: a mutant that only rewords prose for a person (every changed
token a string literal with a space in it: a message, a heading; never a key like "val_loss") is
counted apart as *rewording* and reported beside the score. The score is

    killed / (killed + survived)      over the mutants that are neither equivalent nor rewordings
                                      goal: at least 90%

Each target module is mutated against its own test files only (``TARGETS``), in a scratch copy of
the repository, so a run never touches the working tree::

    pip install mutmut==3.8.1
    python tests/mutation.py                 # every target
    python tests/mutation.py trainer advise  # some
    python tests/mutation.py --survivors     # also print each survivor's diff
    python tests/mutation.py --sample 250 experiment   # a seeded random sample of the mutants

mutmut keeps its results in the scratch folder (``--work``, default /tmp/minift-mutation), so a
rerun only re-tests what changed.

**Sampling.** A module whose tests need a slow fixture can be too dear to mutate in full:
``experiment.py`` makes about 3,150 mutants and each one rebuilds the ~20-second tiny grid (about 18
hours of one core). ``--sample K`` tests K mutants drawn at random (``--sample-seed``, default 0;
the K with the smallest hash of seed and name, so the same code gives the same sample, and an edit
redraws only the mutants of the functions it touched) and reports the score with its 95%
Wilson interval: a uniform sample's score is an unbiased estimate of the whole module's, and random
mutant sampling is the standard way to keep mutation analysis affordable. A rerun tests only the
sample's mutants that have no result yet (``--retest``: its survivors too).
"""
from __future__ import annotations

import argparse
import hashlib
import io
import math
import os
import re
import shutil
import subprocess
import sys
import time
import tokenize
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EQUIVALENT = ROOT / "tests" / "mutation_equivalent"  # TARGET.txt: "mutant name  # why" per line

# module (glob under minift/) -> the test files that own it
TARGETS = {
    "evaluate": (["minift/evaluate.py"], ["tests/test_evaluate.py"]),
    "trainer": (["minift/trainer.py"], ["tests/test_trainer.py"]),
    "finetune": (["minift/finetune.py"], ["tests/test_finetune.py", "tests/test_wiring.py", "tests/test_heldout.py"]),
    "experiment": (["minift/experiment.py"], ["tests/test_experiment.py", "tests/test_heldout.py"]),
    "advise": (["minift/advise.py"], ["tests/test_advise.py"]),
    "tasks": (["minift/tasks/*"], ["tests/test_tasks.py"]),
}
# Tests that only prove a mode works (compile, many processes) are slow and add no killing power.
DESELECT = ["-k", "not compile and not distributed"]
# Lines whose mutants only reword what a person reads (progress on stderr): equivalent by nature.
# So are the lines that raise a one-line error (their conditions sit on the lines above, mutated).
SKIP_LINES = [r"log\.progress\(", r"print\(.*file=sys\.stderr", r'raise MiniftError\(f?"']


def toml_list(items) -> str:
    return "[" + ", ".join(f'"{i}"' for i in items) + "]"


def prepare(work: Path, name: str) -> Path:
    """A scratch copy of the repository whose pyproject.toml tells mutmut what to mutate."""
    modules, tests = TARGETS[name]
    folder = work / name
    folder.mkdir(parents=True, exist_ok=True)
    for part in ("minift", "tests", "data"):
        # A fresh copy each run; mutmut's own cache (folder/mutants) knows what changed since.
        shutil.rmtree(folder / part, ignore_errors=True)
        # shutil.copy, not copy2: a fresh mtime, or mutmut (which compares mtimes) would keep mutants
        # made from an older copy; its per-function hashes keep the results of unchanged functions.
        shutil.copytree(ROOT / part, folder / part, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
                        copy_function=shutil.copy)
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    pyproject += (
        "\n[tool.mutmut]\n"
        f'source_paths = ["minift"]\n'
        f"only_mutate = {toml_list(modules)}\n"
        f"also_copy = {toml_list(['data'])}\n"
        f"pytest_add_cli_args = {toml_list(['-p', 'no:cacheprovider', '-q'])}\n"
        f"pytest_add_cli_args_test_selection = {toml_list(tests + DESELECT)}\n"
        # TOML literal strings ('...'): a regex's backslashes and quotes pass through unchanged.
        "do_not_mutate_patterns = [" + ", ".join(f"'{p}'" for p in SKIP_LINES) + "]\n"
        'process_isolation = "forkserver"\n'
    )
    (folder / "pyproject.toml").write_text(pyproject, encoding="utf-8")
    return folder


def read_equivalent() -> dict[str, str]:
    out = {}
    for path in sorted(EQUIVALENT.glob("*.txt")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip() and not line.startswith("#"):
                name, _, why = line.partition("#")
                out[name.strip()] = why.strip()
    return out


def string_tokens(line: str) -> list[tuple[int, str]]:
    """(type, text) of each token of one source line; a line cut from a longer statement still tokenizes."""
    out = []
    try:
        for t in tokenize.generate_tokens(io.StringIO(line.strip() + "\n").readline):
            if t.type not in (tokenize.NL, tokenize.NEWLINE, tokenize.ENDMARKER, tokenize.INDENT, tokenize.DEDENT):
                out.append((t.type, t.string))
    except (tokenize.TokenError, IndentationError, SyntaxError):
        pass
    return out


def is_wording(diff: str) -> bool:
    """True when a mutant only rewords prose for a person: every changed token is a string literal
    holding a space (a message, a heading), never a key or a name such as "val_loss"."""
    removed = [line[1:] for line in diff.splitlines() if line.startswith("-") and not line.startswith("---")]
    added = [line[1:] for line in diff.splitlines() if line.startswith("+") and not line.startswith("+++")]
    if not removed or len(removed) != len(added):
        return False
    for old, new in zip(removed, added):
        a, b = string_tokens(old), string_tokens(new)
        if not a or len(a) != len(b):
            return False
        for (ta, sa), (tb, sb) in zip(a, b):
            if sa == sb:
                continue
            if not (ta == tb == tokenize.STRING and " " in sa and placeholders(sa) == placeholders(sb)):
                return False
    return True


def placeholders(literal: str) -> list[str]:
    """The ``{...}`` fields of an f-string ([] for a plain string): a change there changes a number a
    person reads (``{sizes[0]}`` -> ``{sizes[1]}``), so it is no rewording."""
    prefix = literal[: len(literal) - len(literal.lstrip("rbuRBUfF"))]
    if "f" not in prefix.lower():
        return []
    return re.findall(r"(?<!\{)\{([^{}]*)\}", literal)


def show(folder: Path, mutant: str) -> str:
    return subprocess.run([sys.executable, "-m", "mutmut", "show", mutant], cwd=folder,
                          capture_output=True, text=True).stdout


def statuses(folder: Path) -> dict[str, str]:
    text = subprocess.run([sys.executable, "-m", "mutmut", "results", "--all", "true"], cwd=folder,
                          capture_output=True, text=True, check=True).stdout
    return dict(m.groups() for m in re.finditer(r"^\s*(\S+): (.+)$", text, re.M))


def generate(folder: Path, env: dict) -> None:
    """Make the mutants (and mutmut's test statistics) without testing any: ask mutmut to run a
    name no mutant has. It stops, by its own assertion, after both are written."""
    if not list((folder / "mutants").rglob("*.meta")):
        subprocess.run([sys.executable, "-m", "mutmut", "run", "--max-children", "1", "no-such-mutant-name"],
                       cwd=folder, env=env, capture_output=True, text=True)
    if not list((folder / "mutants").rglob("*.meta")):
        raise SystemExit(f"mutmut made no mutants in {folder}")


def draw(names, k: int, seed: int) -> list[str]:
    """K of the mutants, drawn uniformly without replacement: the K whose hash of (seed, name) is
    smallest. Each mutant's chance depends on its own name only, so after an edit the mutants of the
    functions left alone keep their place in the sample (a draw over the list, like random.sample,
    would start afresh as soon as one function gained or lost a mutant)."""
    key = lambda name: hashlib.sha256(f"{seed}:{name}".encode()).hexdigest()  # noqa: E731
    return sorted(sorted(set(names), key=key)[:k])


def wilson(killed: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The 95% Wilson score interval of a proportion killed/n, in percent (sound near 100%,
    where the normal approximation's interval would pass it)."""
    if n == 0:
        return 0.0, 100.0
    p = killed / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return 100 * max(0.0, centre - half), 100 * min(1.0, centre + half)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("targets", nargs="*", metavar="TARGET",
                        help=f"modules to mutate (default: all of {', '.join(TARGETS)})")
    parser.add_argument("--work", default="/tmp/minift-mutation", help="scratch folder (kept for reruns)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="mutants tested at once")
    parser.add_argument("--survivors", action="store_true", help="print the diff of every survivor")
    parser.add_argument("--retest", action="store_true",
                        help="test the survivors again (after adding tests), instead of only new mutants")
    parser.add_argument("--sample", type=int, default=0, metavar="K",
                        help="test only K mutants of each target, drawn at random (default: all)")
    parser.add_argument("--sample-seed", type=int, default=0, help="the seed of --sample's draw (default: 0)")
    args = parser.parse_args(argv)
    unknown = [t for t in args.targets if t not in TARGETS]
    if unknown:
        parser.error(f"unknown target {', '.join(unknown)}: choose from {', '.join(TARGETS)}")
    equivalent = read_equivalent()
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONDONTWRITEBYTECODE="1",
               MINIFT_TINY_CACHE=str(Path(args.work) / "tiny-fixture"))
    totals = {"killed": 0, "survived": 0, "equivalent": 0, "wording": 0, "other": 0}
    rows = []
    for name in args.targets or list(TARGETS):
        folder = prepare(Path(args.work), name)
        t0 = time.time()
        again, sample = [], None
        if args.sample:
            generate(folder, env)
            known = statuses(folder)
            sample = set(draw(known, args.sample, args.sample_seed))
            # Named mutants are always retested by mutmut: name only those still without a verdict.
            again = sorted(m for m in sample if known[m] == "not checked"
                           or (args.retest and known[m] != "killed" and m not in equivalent))
        elif args.retest and (folder / "mutants").exists():
            again = [m for m, status in statuses(folder).items() if status != "killed" and m not in equivalent]
        if again or sample is None:
            run = subprocess.run([sys.executable, "-m", "mutmut", "run", "--max-children", str(args.jobs), *again],
                                 cwd=folder, env=env, capture_output=True, text=True)
            if run.returncode != 0:
                print(f"{name}: mutmut failed ({run.returncode}):\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}",
                      file=sys.stderr)
                return 1
        seconds = time.time() - t0
        found = statuses(folder)
        if sample is not None:
            found = {m: status for m, status in found.items() if m in sample}
        counts = {"killed": 0, "survived": 0, "equivalent": 0, "wording": 0, "other": 0}
        survivors = []
        for mutant, status in sorted(found.items()):
            if status == "killed" or status == "timeout":
                counts["killed"] += 1
                if mutant in equivalent:
                    print(f"  {mutant} is listed as equivalent but was killed: drop it from the list",
                          file=sys.stderr)
            elif status == "survived" and mutant in equivalent:
                counts["equivalent"] += 1
            elif status == "survived" and is_wording(show(folder, mutant)):
                counts["wording"] += 1
            elif status == "survived":
                counts["survived"] += 1
                survivors.append(mutant)
            else:  # no tests, suspicious, skipped, ...
                counts["other"] += 1
                survivors.append(f"{mutant} ({status})")
        for k in totals:
            totals[k] += counts[k]
        rows.append((name, counts, seconds))
        print(f"{name}: killed {counts['killed']}, survived {counts['survived']}, equivalent "
              f"{counts['equivalent']} (+ {counts['wording']} rewording prose), other {counts['other']} "
              f"in {seconds:.0f} s", flush=True)
        for s in survivors:
            print(f"  survived: {s}")
            if args.survivors:
                diff = show(folder, s.split()[0])
                print("    " + diff.strip().replace("\n", "\n    "))
    scored = totals["killed"] + totals["survived"] + totals["other"]
    score = 100 * totals["killed"] / max(scored, 1)
    strict = 100 * totals["killed"] / max(scored + totals["wording"], 1)
    sampled = ""
    if args.sample:
        low, high = wilson(totals["killed"], scored)
        sampled = f" (a sample of {args.sample} per target, seed {args.sample_seed}: 95% interval {low:.1f}-{high:.1f}%)"
    print(f"total: killed {totals['killed']}, survived {totals['survived']}, equivalent {totals['equivalent']} "
          f"(+ {totals['wording']} rewording prose), other {totals['other']}; score {score:.1f}% of the "
          f"non-equivalent mutants killed ({strict:.1f}% counting rewordings as survivors){sampled} "
          f"in {sum(r[2] for r in rows):.0f} s")
    return 0 if score >= 90 else 1


if __name__ == "__main__":
    sys.exit(main())
