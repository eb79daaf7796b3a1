"""Every tutorial and every solution runs to the end in smoke mode, shows its key claim, and follows
the course format (the house style of tutorials/README.md: a lesson ends with 3–5 exercises
numbered 1..n, each with a bold title, and its solution gives each one a section of its own, in
that order, under that title).

The lists are globs, so a lesson added to tutorials/ is tested without touching this file.
Smoke mode (MINIFT_SMOKE=1) shrinks steps and data; the code path is the one a student runs.
The scripts check their own numbers with asserts (library versus by-hand versions), so a zero
exit status means those checks held too.

A zero exit status does not say that a lesson *showed* what it teaches: a learning rate of zero
trains nothing and crashes nothing. So each script reports its key results with
``minift.course.claim(name, value)`` (one JSON line per claim in the file named by MINIFT_CLAIMS),
and ``CLAIMS`` below says, per script, what must hold of them in smoke mode: the loss falls, a
frozen weight does not move, two code paths give the same numbers, a metric equals the worked
example computed by hand here. Every script needs an entry, every claim it reports must be
checked, and every claim an entry reads must be reported.
"""
import ast
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from minift.course import parse_cells, read_claims, tutorial_files

TUTORIALS = Path(__file__).resolve().parent.parent / "tutorials"
LESSONS = tutorial_files(TUTORIALS)
SOLUTIONS = tutorial_files(TUTORIALS / "solutions")
TIMEOUT_S = 120


def _run(script: Path, tmp_path: Path, **extra_env) -> subprocess.CompletedProcess:
    # One thread: a smoke run checks correctness, not speed, and on a shared 2-core machine two
    # spinning OpenMP threads per script can be several times slower than one.
    env = dict(os.environ, MINIFT_SMOKE="1", MINIFT_COURSE_OUT=str(tmp_path / "out"), MPLBACKEND="Agg",
               MINIFT_CLAIMS=str(tmp_path / "claims.jsonl"), PYTHONDONTWRITEBYTECODE="1", OMP_NUM_THREADS="1",
               MKL_NUM_THREADS="1", **extra_env)
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
    _check_claims(script, read_claims(tmp_path / "claims.jsonl"))


_MISSING = object()


class Reported(dict):
    """What a script reported, name -> value; remembers which names the checks read."""

    def __init__(self, script, records):
        super().__init__()
        self.read = set()
        for record in records:
            assert record["name"] not in self, f"{script} reported the claim {record['name']!r} twice"
            super().__setitem__(record["name"], record["value"])

    def starting(self, prefix):
        """``{name: value}`` of every claim whose name starts with ``prefix`` (all count as read)."""
        found = {name: value for name, value in self.items() if name.startswith(prefix)}
        self.read |= set(found)
        return found


def _guide_ranges() -> dict[str, list[str]]:
    """Lesson number -> the key numbers (labels) the teacher's guide's table of ranges lists for it."""
    text = (TUTORIALS / "TEACHING.md").read_text(encoding="utf-8")
    section = text.split("### Ranges over seeds", 1)[1].split("\n### ", 1)[0]
    rows: dict[str, list[str]] = {}
    for m in re.finditer(r"^\| (\d\d) \| (.+?) \| ", section, re.M):
        rows.setdefault(m[1], []).append(m[2].replace("\\|", "|"))
    return rows


def _check_key_numbers(script: Path, records: list) -> None:
    """A lesson's key numbers (minift.course.key) are the rows the guide's table of ranges lists for it."""
    labels = [r["name"] for r in records]
    assert len(set(labels)) == len(labels), f"{script.name} reported a key number twice: {labels}"
    for r in records:
        v = r["value"]
        assert isinstance(v, bool) or (isinstance(v, (int, float)) and math.isfinite(v)), (script.name, r)
    listed = _guide_ranges().get(script.name[:2], [])
    if script.parent == TUTORIALS:  # a solution keeps its lesson's key numbers or drops them; only lessons are listed
        assert labels == listed, (
            f"{script.name} reports the key numbers {labels}, but TEACHING.md section 2 lists {listed} for it; "
            "rebuild the table with `minift course ranges --seeds 0,1,2 --out DIR`")


def _check_claims(script: Path, records: list) -> None:
    key = str(script.relative_to(TUTORIALS))
    assert key in CLAIMS, f"{key} has no entry in CLAIMS (tests/test_tutorials.py): say what it shows"
    _check_key_numbers(script, [r for r in records if r.get("key")])
    records = [r for r in records if not r.get("key")]
    reported = Reported(key, records)
    for description, names, holds in CLAIMS[key]:
        names = (names,) if isinstance(names, str) else names
        values = [reported.starting(n[:-1]) if n.endswith("*") else reported.get(n, _MISSING) for n in names]
        missing = [n for n, v in zip(names, values) if v is _MISSING or (n.endswith("*") and not v)]
        assert not missing, (f"{key} did not report {missing}, needed to check that {description}; "
                             f"it reported {sorted(reported)}")
        reported.read |= set(names)
        shown = dict(zip(names, values))
        assert holds(*values), f"{key}: in smoke mode it is not true that {description}; it reported {shown}"
    unchecked = set(reported) - reported.read
    assert not unchecked, f"{key} reported claims that CLAIMS does not check: {sorted(unchecked)}"


def test_the_first_four_lessons_are_there():
    assert [p.name for p in LESSONS[:4]] == ["01_tokenization.py", "02_self_attention.py",
                                              "03_transformer_block.py", "04_optimization.py"]


@pytest.mark.parametrize("script", LESSONS, ids=lambda p: p.name)
def test_tutorial_runs_in_smoke_mode(script, tmp_path):
    _check_run(script, tmp_path)


@pytest.mark.parametrize("script", SOLUTIONS, ids=lambda p: f"solutions/{p.name}")
def test_solution_runs_in_smoke_mode(script, tmp_path):
    _check_run(script, tmp_path)


# The calls whose seed is the training's randomness: every lesson that trains passes them SEED
# (``minift.course.lesson_seed()``, which reads MINIFT_SEED), never a literal, so the teacher's guide
# can measure each number's spread over seeds. Data seeds (corpora, examples, torch.Generator) stay fixed.
SEEDED_CALLS = {"RunOptions": "seed", "pretrain": "seed", "train_stage": "seed"}


def _uses_seed(node) -> bool:
    return any(isinstance(n, ast.Name) and n.id == "SEED" for n in ast.walk(node))


@pytest.mark.parametrize("script", [p for p in LESSONS if "02" <= p.name[:2] <= "11"], ids=lambda p: p.name)
def test_every_training_run_of_a_lesson_follows_its_seed(script):
    tree = ast.parse(script.read_text(encoding="utf-8"))
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call)]
    bad = []
    for call in calls:
        f = call.func
        name = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else None
        if isinstance(f, ast.Attribute) and f.attr == "manual_seed" and isinstance(f.value, ast.Name) \
                and f.value.id in ("torch", "random"):  # the global generators, not a data Generator
            if not call.args or not _uses_seed(call.args[0]):
                bad.append(f"line {call.lineno}: {f.value.id}.manual_seed without SEED")
        elif name in SEEDED_CALLS:
            seed = next((k.value for k in call.keywords if k.arg == SEEDED_CALLS[name]), None)
            if seed is None or not _uses_seed(seed):
                bad.append(f"line {call.lineno}: {name}(...) without seed=SEED")
        elif isinstance(f, ast.Attribute) and f.attr == "seed" and isinstance(f.value, ast.Name) \
                and f.value.id == "random":
            if not call.args or not _uses_seed(call.args[0]):
                bad.append(f"line {call.lineno}: random.seed without SEED")
    assert not bad, f"{script.name}: {bad}"


def test_minift_seed_changes_a_lessons_training(tmp_path):
    """Lesson 02 trains a tiny model: its validation loss differs under MINIFT_SEED=1 (the knob is wired)."""
    script = TUTORIALS / "02_self_attention.py"
    losses = []
    for seed in ("0", "1"):
        folder = tmp_path / seed
        folder.mkdir()
        result = _run(script, folder, MINIFT_SEED=seed)
        assert result.returncode == 0, result.stderr[-2000:]
        losses.append({r["name"]: r["value"] for r in read_claims(folder / "claims.jsonl")}["val_loss_and_ln_V"][0])
    assert losses[0] != losses[1], f"MINIFT_SEED=1 trained the same model as seed 0: {losses}"


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


# --- the house style of tutorials/README.md: 3-5 exercises, each solved in its own section, in order ---

_ITEM = re.compile(r"^(\d+)\.\s+(.*)$")  # a numbered item at the start of a line of the exercises cell
_SECTION = re.compile(r"^## (?:Exercise (?P<n>\d+)|Exercises (?P<first>\d+)\s*[–-]\s*(?P<last>\d+))\s+—\s+(?P<title>\S.*)$")


def _title(text: str) -> str:
    """A title as compared: spaces and a closing full stop dropped ("Decode by hand." = "Decode by hand")."""
    return text.strip().removesuffix(".").strip()


def lesson_exercises(source: str) -> list[tuple[int, str | None]]:
    """(number, bold title or None) of each numbered line after the last cell's '## Exercises'.

    Continuation lines are indented, and parts (a), (b) are not numbered, so only the items match."""
    last = parse_cells(source)[-1]["source"]
    items = []
    for line in last.split("## Exercises", 1)[-1].splitlines():
        item = _ITEM.match(line)
        if item:
            bold = re.match(r"\*\*(.+?)\*\*", item[2])
            items.append((int(item[1]), _title(bold[1]) if bold else None))
    return items


def exercise_list_problems(items: list[tuple[int, str | None]]) -> list[str]:
    """What breaks the house style in a lesson's exercise list (empty when it follows it)."""
    problems = []
    if not 3 <= len(items) <= 5:
        problems.append(f"{len(items)} exercises; the house style asks 3–5")
    if [n for n, _ in items] != list(range(1, len(items) + 1)):
        problems.append(f"numbered {[n for n, _ in items]}, not 1..{len(items)}")
    problems += [f"exercise {n} has no bold title (`{n}. **Title**`)" for n, title in items if not title]
    return problems


def solution_section_problems(items: list[tuple[int, str | None]], source: str) -> list[str]:
    """What breaks 'one section per exercise, in the lesson's order, under the lesson's title'.

    Sections are the markdown headings `## Exercise N — Title`; a shared setup cell before them may
    be `## Exercises N–M — ...` (placed after exercise N − 1's section, before N's)."""
    problems, singles, done = [], [], 0
    for cell in parse_cells(source):
        if cell["cell_type"] != "markdown":
            continue
        for line in cell["source"].splitlines():
            if not line.startswith("## Exercise"):
                continue
            section = _SECTION.match(line)
            if section is None:
                problems.append(f"heading {line!r} is neither '## Exercise N — Title' nor '## Exercises N–M — ...'")
            elif section["n"]:
                singles.append((int(section["n"]), _title(section["title"])))
                done = int(section["n"])
            else:
                first, last = int(section["first"]), int(section["last"])
                if not (first == done + 1 and first < last <= len(items)):
                    problems.append(f"shared heading {line!r} does not open exercises {done + 1}.. in order")
    numbers = [n for n, _ in singles]
    if numbers != [n for n, _ in items]:
        problems.append(f"the solution's sections are exercises {numbers}; the lesson's are {[n for n, _ in items]}")
    titles = dict(items)
    problems += [f"section {n} is titled {title!r}, the lesson's exercise {n} {titles[n]!r}"
                 for n, title in singles if n in titles and title != titles[n]]
    return problems


@pytest.mark.parametrize("script", LESSONS, ids=lambda p: p.name)
def test_lesson_has_three_to_five_numbered_exercises_with_bold_titles(script):
    problems = exercise_list_problems(lesson_exercises(script.read_text(encoding="utf-8")))
    assert not problems, f"{script.name}'s exercises (tutorials/README.md, House style): {problems}"


@pytest.mark.parametrize("script", LESSONS, ids=lambda p: p.name)
def test_solution_solves_each_exercise_in_its_own_section_in_the_lessons_order(script):
    items = lesson_exercises(script.read_text(encoding="utf-8"))
    solution = TUTORIALS / "solutions" / script.name
    problems = solution_section_problems(items, solution.read_text(encoding="utf-8"))
    assert not problems, f"solutions/{script.name} (tutorials/README.md, House style): {problems}"


_LESSON_FIXTURE = """# %% [markdown]
# # Lesson 99 — A fixture
#
# ## Exercises
#
# Exercises 1 and 2 share a model.
#
{items}
#
# Solutions: `tutorials/solutions/99_fixture.py`.
"""
_FOUR = [(1, "One"), (2, "Two?"), (3, "Three"), (4, "Four")]


def _lesson(lines):
    return _LESSON_FIXTURE.format(items="\n".join(f"# {line}" for line in lines))


def _solution(headings):
    return "\n".join(f"# %% [markdown]\n# {h}\n\n# %%\nprint({i})\n" for i, h in enumerate(headings))


@pytest.mark.parametrize("lines, problem", [
    ([f"{n}. **T{n}.** Do it.\n#    More of it." for n in range(1, 8)], "7 exercises"),  # lesson 08 as it was
    (["1. **A.** x", "2. **B.** x"], "2 exercises"),
    (["1. **A.** x", "2. **B.** x", "4. **D.** x"], "numbered [1, 2, 4]"),
    (["1. **A.** x", "2. Plain text, no title.", "3. **C.** x"], "exercise 2 has no bold title"),
])
def test_the_exercise_list_check_catches_a_broken_list(lines, problem):
    problems = exercise_list_problems(lesson_exercises(_lesson(lines)))
    assert any(problem in p for p in problems), problems


def test_the_exercise_list_check_reads_titles_and_skips_parts():
    lines = ["1. **How long?** On the model:", "   (a) train P = 4;", "   (b) and from words.",
             "2. **Decode by hand.** x", "3. **Why √hs?** x"]
    assert lesson_exercises(_lesson(lines)) == [(1, "How long?"), (2, "Decode by hand"), (3, "Why √hs?")]
    assert exercise_list_problems(lesson_exercises(_lesson(lines))) == []


@pytest.mark.parametrize("headings, problem", [
    (["## Exercise 3 — Three", "## Exercise 2 — Two?", "## Exercise 4 — Four", "## Exercise 1 — One"],
     "sections are exercises [3, 2, 4, 1]"),  # solution 11 as it was
    (["## Exercise 1 — One", "## Exercise 2 — Two?", "## Exercises 3 and 4 — Three; four"], "is neither"),
    (["## Exercise 1 — One", "## Exercise 2 — Two?", "## Exercise 3 — Three"], "sections are exercises [1, 2, 3]"),
    (["## Exercise 1 — One", "## Exercise 2 — Two? (with a subtitle)", "## Exercise 3 — Three",
      "## Exercise 4 — Four"], "section 2 is titled"),
    (["## Exercise 1 — One", "## Exercise 1 — One", "## Exercise 2 — Two?", "## Exercise 3 — Three",
      "## Exercise 4 — Four"], "sections are exercises [1, 1, 2, 3, 4]"),
    (["## Exercises 2–3 — Shared runs", "## Exercise 1 — One", "## Exercise 2 — Two?", "## Exercise 3 — Three",
      "## Exercise 4 — Four"], "does not open exercises 1.. in order"),
])
def test_the_solution_check_catches_a_wrong_section(headings, problem):
    problems = solution_section_problems(_FOUR, _solution(headings))
    assert any(problem in p for p in problems), problems


def test_the_solution_check_accepts_a_shared_setup_cell_before_its_exercises():
    headings = ["## Exercise 1 — One", "## Exercises 2–4 — The shared runs", "## Exercise 2 — Two?",
                "### (a) A part", "## Exercise 3 — Three.", "## Exercise 4 — Four"]
    assert solution_section_problems(_FOUR, _solution(headings)) == []


def test_every_solution_belongs_to_a_tutorial():
    assert {p.name for p in SOLUTIONS} <= {p.name for p in LESSONS}


@pytest.mark.parametrize("script", LESSONS + SOLUTIONS, ids=lambda p: str(p.relative_to(TUTORIALS)))
def test_scripts_also_work_as_notebooks(script):
    """A notebook kernel has no ``__file__`` of its own (a module's, ``minift.__file__``, is fine)."""
    source = script.read_text(encoding="utf-8")
    assert not re.search(r"(?<![\w.])__file__", source), \
        f"{script.name} uses __file__, which a notebook does not define"


# --- what each script shows in smoke mode ------------------------------------------------------
# Reference values are worked out here by hand (or from a published figure), not copied from a run.
# Conditions on trained models leave wide margins: they must hold on any machine and thread count.

def _close(a, b, tol=1e-9):
    return abs(a - b) <= tol


def _gpt_parameters(V, T, L, C):
    """Lesson 03's table: embeddings, L blocks of 12C² + 13C, ln_f; the head is tied."""
    return V * C + T * C + L * (12 * C * C + 13 * C) + 2 * C


def _flops_per_token(V, T, L, C):
    """6 FLOPs per matmul weight per token, plus 12·L·T·C for attention's scores and sum."""
    return 6 * (L * 12 * C * C + V * C) + 12 * L * T * C


def _lr(step, max_lr=1e-3, warmup=10, total=110, min_ratio=0.1):
    """Warmup then cosine, as lesson 04 states it (lr_at's documented rule)."""
    if step < warmup:
        return max_lr * (step + 1) / warmup
    if step >= total:
        return min_ratio * max_lr
    q = (step - warmup) / (total - warmup)
    return min_ratio * max_lr + 0.5 * (1 - min_ratio) * max_lr * (1 + math.cos(math.pi * q))


def _bleu(counts, totals, sys_len, ref_len):
    """Corpus BLEU with sacreBLEU's 'exp' smoothing, from n-gram counts worked out by hand."""
    p, halvings = [], 1
    for c, t in zip(counts, totals):
        if c == 0:
            halvings *= 2
        p.append(c / t if c else 1 / (halvings * t))
    bp = 1.0 if sys_len >= ref_len else math.exp(1 - ref_len / sys_len)
    return 100 * bp * math.prod(p) ** 0.25


# Lesson 10's corpus, counted by hand (13a tokens, case kept):
#   "Le chat mange le poisson ." vs "Le chat mange un poisson ."       1-4-gram matches 5, 3, 1, 0
#   "Il est sur la table ."      vs "Le livre est sur la table rouge ." 1-4-gram matches 5, 3, 2, 1
LESSON10_COUNTS, LESSON10_TOTALS = [10, 6, 3, 1], [12, 10, 8, 6]
LESSON10_BLEU = _bleu(LESSON10_COUNTS, LESSON10_TOTALS, sys_len=12, ref_len=14)  # 35.59
# Solution 10, exercise 1: "a b c d e" vs "a b x c y": matches 3/5, 1/4, 0/3, 0/2, lengths 5 and 5.
EXERCISE10_BLEU = _bleu([3, 1, 0, 0], [5, 4, 3, 2], sys_len=5, ref_len=5)  # 23.64
BASE = dict(V=1026, T=256, L=4, C=128)  # the shipped base's shape (data/base)
TOP_TWO_BLOCKS = ("transformer.h.2.", "transformer.h.3.")  # of the base's four


def _equal_pair(v):
    """A claim [a, b] of two numbers that must be equal (a by hand, b by the library), and not zero."""
    return v[0] == v[1] != 0


def _batch_positions(pairs):
    """[graded, prompt, padding, total] target positions of a right-padded batch, from each pair's
    (number of ids, prompt tokens): a pair of n ids fills n - 1 positions, n - n_prompt of them graded."""
    T = max(n - 1 for n, _ in pairs)
    return [sum(n - p for n, p in pairs), sum(p - 1 for _, p in pairs), sum(T - (n - 1) for n, _ in pairs),
            len(pairs) * T]


def _stage_costs(costs):
    (full, full_total, full_state), (layers, layers_total, layers_state), (prompt, _, prompt_state) = costs
    return (full == full_total and layers < layers_total / 2 and prompt == 2 * 8 * BASE["C"]
            and [full_state, layers_state, prompt_state] == [8 * full, 8 * layers, 8 * prompt])


C_ = BASE["C"]
LORA_ATTENTION = [f"transformer.h.{i}.attn.{t}.weight" for i in range(BASE["L"]) for t in ("c_attn", "c_proj")]
LINEAR_BIASES = {f"transformer.h.{i}.{t}.bias" for i in range(BASE["L"])
                 for t in ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj")}
LAYERNORMS = {f"transformer.h.{i}.{ln}.{w}" for i in range(BASE["L"]) for ln in ("ln_1", "ln_2")
              for w in ("weight", "bias")} | {"transformer.ln_f.weight", "transformer.ln_f.bias"}


def _lora_count(rank, shapes, L=BASE["L"]):
    """LoRA's trainable numbers: r·in + out·r for every wrapped (in, out) layer of each of L blocks."""
    return L * sum(rank * n_in + n_out * rank for n_in, n_out in shapes)


ATTENTION = [(C_, 3 * C_), (C_, C_)]  # attn.c_attn and attn.c_proj of a block, (in, out)
MLP = [(C_, 4 * C_), (4 * C_, C_)]  # mlp.c_fc and mlp.c_proj
BITFIT = BASE["L"] * (3 * C_ + C_ + 4 * C_ + C_)  # the linear layers' biases: 4 × 9C = 4,608
PREFIX = BASE["L"] * 2 * 16 * C_  # a key and a value for each of 16 slots at every layer: 16,384
BITFIT_LAYERNORM = BITFIT + (2 * BASE["L"] + 1) * 2 * C_  # + γ and β of ln_1, ln_2 per block and ln_f


# script -> [(what it shows, the claim name(s) it reads, a test of their values)]. A name ending in "*"
# stands for every claim whose name starts with the rest, passed as one {name: value} dict.
CLAIMS = {
    "01_tokenization.py": [
        ("the merges counted by hand are the ones train_bpe learns", "hand_merges_equal_library", lambda v: v is True),
        ("tiktoken gives the ids of the Python merge loop", "tiktoken_equals_python_loop", lambda v: v is True),
        ("decode(encode(text)) gives back every sample, accents, emoji and Japanese included", "round_trips",
         lambda v: v == [True, True, True]),
        ("BPE compresses: bytes alone give under one character per token, more merges give more",
         "chars_per_token_at_256_512_1024", lambda r: r[0] < 1 < r[1] < r[2]),
    ],
    "02_self_attention.py": [
        ("the causal mask leaves zero weight on every later position", "weight_on_the_future", lambda v: v == 0),
        ("attention by hand equals the module's manual path", "by_hand_minus_manual", lambda v: v < 1e-5),
        ("the manual path equals the fused sdpa path", "manual_minus_sdpa", lambda v: v < 1e-5),
        ("a few seconds of training bring the validation loss well below a uniform guess (ln V)",
         "val_loss_and_ln_V", lambda v: v[0] < v[1] - 0.5),
        ("the weights computed by hand are the library's attention_maps, the heat maps' data",
         "attention_maps_minus_by_hand", lambda v: v < 1e-6),
        ("each block's heat map has a cell per head, query and key: nh x T x T",
         "heat_map_cells_per_block_and_nh_T_T", lambda v: len(v[0]) == 2 and v[0] == [v[1]] * 2 and v[1] > 0),
        ("every row of every heat map is a softmax: it sums to 1", "heat_map_row_sums_min_max",
         lambda v: _close(v[0], 1, 1e-5) and _close(v[1], 1, 1e-5)),
    ],
    "03_transformer_block.py": [
        ("the forward pass written out equals model(ids)", "forward_by_hand_minus_model", lambda v: v < 1e-5),
        ("an untrained GPT's loss is about ln V", "init_loss_and_ln_V", lambda v: _close(*v, tol=0.1)),
        ("the parameter formula counts the model's parameters", "parameters_formula_and_model",
         lambda v: v == [_gpt_parameters(**BASE)] * 2),
        ("untying the head adds V·C parameters", "untied_extra_and_VC", lambda v: v == [BASE["V"] * BASE["C"]] * 2),
        ("generation with the KV cache gives the same tokens, greedy and sampled", "same_tokens_with_cache",
         lambda v: v == [True, True]),
    ],
    "04_optimization.py": [
        ("minift's AdamW and torch's both equal the step written by hand", "adamw_minift_and_torch_minus_hand",
         lambda v: max(v) < 1e-6),
        ("Adam + l2_penalty is torch.optim.Adam(weight_decay=λ)", "adam_l2_minus_torch_adam", lambda v: v < 1e-6),
        ("lr_at warms up linearly to max_lr, then follows the cosine down to min_lr and stays there", "lr_at",
         lambda lrs: len(lrs) == 9 and all(_close(lr, _lr(int(step)), 1e-12) for step, lr in lrs.items())),
        ("clipping caps the global norm at max_norm and keeps the direction", "norm_before_after_and_cosine",
         lambda v: v[0] > 1 and _close(v[1], 1, 1e-4) and _close(v[2], 1, 1e-4)),
    ],
    "05_pretraining.py": [
        ("an untrained GPT's loss is about ln V", "init_loss_and_ln_V", lambda v: _close(*v, tol=0.1)),
        ("pretraining lowers the validation loss", "val_loss_at_each_eval",
         lambda v: len(v) >= 2 and v[-1] < v[0] - 0.3),
        ("the shipped base, trained far longer, has a lower loss than the short run", "val_loss_ours_and_base",
         lambda v: v[1] < v[0]),
    ],
    "06_full_finetuning.py": [
        ("the loss mask grades exactly the completion and its end-of-text token",
         "graded_targets_and_completion_tokens", _equal_pair),
        ("fine-tuning lowers the validation loss", "val_loss_at_each_eval", lambda v: v[-1] < v[0] - 0.2),
        ("BLEU after fine-tuning is above the base's", "bleu_before_and_after", lambda v: v[1] > v[0]),
        ("every weight trains, and AdamW keeps 8 bytes per weight", "trainable_total_and_state_bytes",
         lambda v: v[0] == v[1] > 0 and v[2] == 8 * v[1]),
    ],
    "07_specific_layers.py": [
        ("frozen weights do not move: exactly the top two blocks' tensors changed", "moved_and_trainable_tensors",
         lambda v: v[0] == v[1] and len(v[1]) > 0 and all(n.startswith(TOP_TWO_BLOCKS) for n in v[1])),
        ("AdamW keeps state for the trainable weights only (8 bytes each)", "state_bytes_and_trainable",
         lambda v: v[0] == 8 * v[1] > 0),
        ("backward saves fewer activations when only the top blocks train", "saved_bytes_top_two_and_full",
         lambda v: v[0] < v[1]),
        ("untie_head adds V·C weights", "untied_extra_and_VC", lambda v: v == [BASE["V"] * BASE["C"]] * 2),
        ("unfreezing every 50 steps: block i of the base's 4 first trains at step (3 - i) x 50, the timeline's starts",
         "first_trained_step_per_block", lambda v: v == {str(i): (BASE["L"] - 1 - i) * 50 for i in range(BASE["L"])}),
    ],
    "08_prompt_tuning.py": [
        ("with a frozen base, no model weight gets a gradient", "model_tensors_with_a_gradient", lambda v: v == 0),
        ("at lr 0.1 the prompt learns (the loss falls) and moves over 100x farther than at lr 1e-4",
         ("lr_0.1_first_loss_last_loss_moved", "lr_0.0001_first_loss_last_loss_moved"),
         lambda high, low: high[1] < high[0] and high[2] > 100 * low[2]),
        ("at lr 1e-4 nothing happens to the loss", "lr_0.0001_first_loss_last_loss_moved",
         lambda v: _close(v[0], v[1], 0.05)),
        ("prompt tuning trains only the prompts", "trainable_and_prompt_weights", _equal_pair),
        ("prompt tuning leaves the base's weights bit-identical", "base_weights_unchanged", lambda v: v is True),
        ("each row of a mixed batch writes what it writes alone", "mixed_batch_equals_alone", lambda v: v is True),
        ("a prompt refuses to load onto another base", "refused_onto_another_base", lambda v: "trained on" in v),
        ("LoRALinear with B = 0 gives the frozen layer's output bit for bit", "lora_layer_step0_equals_frozen",
         lambda v: v is True),
        ("LoRALinear with a non-zero B computes W x + b + (alpha/r) B A x", "lora_layer_library_minus_by_hand",
         lambda v: v < 1e-5),
        ("a rank-8 LoRA on attn.c_attn trains r·in + out·r numbers, against in·out in W",
         "lora_layer_count_by_hand_library_and_W",
         lambda v: v[0] == v[1] == _lora_count(8, ATTENTION[:1], L=1) and v[2] == C_ * 3 * C_),
        ("the LoRA-wrapped model at step 0 gives the base's logits bit for bit", "lora_model_step0_equals_base",
         lambda v: v is True),
        ("rank 8 on the attention of every block trains 4 × (8·128 + 384·8 + 8·128 + 128·8) numbers",
         "lora_model_count_by_hand_and_counted", lambda v: v == [_lora_count(8, ATTENTION)] * 2),
        ("B = 0 makes A's first gradient exactly zero, and B's not", "lora_first_grad_A_max_and_B_min",
         lambda v: v[0] == 0 and v[1] > 0),
        ("training A and B by hand leaves every base weight bit-identical", "lora_hand_steps_base_unchanged",
         lambda v: v is True),
        ("the merged model has the base's keys and shapes", "lora_merged_keys_and_shapes_equal_base",
         lambda v: v is True),
        ("the merged model computes what the unmerged one does (to float32 rounding), and not what the base does",
         "lora_merged_minus_unmerged_and_minus_base", lambda v: v[0] < 1e-6 and v[1] > 1e-3),
        ("a prefix holds n_layer·2·P·C numbers, a soft prompt of the same P only P·C", "prefix_and_prompt_counts",
         lambda v: v == [PREFIX, 16 * C_]),
        ("block 0's attention with the prefix keys and values joined before the text's is the formula",
         "prefix_block0_library_minus_by_hand", lambda v: v < 1e-5),
        ("a prefix takes no positions: the text is numbered from 0, not from P",
         "prefix_text_positions_from_0_and_from_P", lambda v: v == [True, False]),
        ("every layer's prefix reaches the output: perturbing any one layer's moves the logits",
         "prefix_one_layer_perturbed_logit_gaps", lambda v: len(v) == BASE["L"] and min(v) > 1e-3),
        ("the prefix stage trains one prefix per subset (2 × L·2·16·C), AdamW keeping 8 bytes each",
         "prefix_run_trainable_state_and_kept", lambda v: v == [2 * PREFIX, 16 * PREFIX, 2 * PREFIX]),
        ("after the prefix stage every base weight is bit-identical", "prefix_run_base_unchanged", lambda v: v is True),
        ("the lora stage trains 24,576 numbers, AdamW keeping 8 bytes each", "lora_run_trainable_and_state",
         lambda v: v == [_lora_count(8, ATTENTION), 8 * _lora_count(8, ATTENTION)]),
        ("after the lora stage exactly the wrapped attention matrices differ from the base",
         "lora_run_changed_tensors", lambda v: v == sorted(LORA_ATTENTION)),
        ("the lora run's model has the base's keys and shapes", "lora_run_keys_and_shapes_equal_base",
         lambda v: v is True),
        ("the base plus adapter.pt rebuilds the run's model bit for bit", "lora_run_equals_base_plus_adapter",
         lambda v: v is True),
        ("adapter.pt is a small fraction of model.pt", "lora_adapter_and_model_bytes", lambda v: 20 * v[0] < v[1]),
        ("the model's bias vectors hold 4 × 9C numbers", "bitfit_bias_count_and_model",
         lambda v: v == [BITFIT, _gpt_parameters(**BASE)]),
        ("the key bias gets no gradient (softmax ignores a shift shared by every key)",
         "key_bias_grad_over_query_value", lambda v: v < 1e-3),
        ("the bitfit stage trains the 4,608 bias numbers, AdamW keeping 8 bytes each",
         "bitfit_run_trainable_and_state", lambda v: v == [BITFIT, 8 * BITFIT]),
        ("after the bitfit stage only bias vectors differ from the base", "bitfit_run_changed_tensors",
         lambda v: len(v) > 0 and set(v) <= LINEAR_BIASES),
        ("prompt, prefix, BitFit, LoRA and full train 2 × 16 × C, 2 × L·2·16·C, 4 × 9C, 24,576 and every weight; "
         "8 bytes of state each", "compared_trainable_and_state",
         lambda v: v == {name: [n, 8 * n] for name, n in {"lora": _lora_count(8, ATTENTION), "bitfit": BITFIT,
                                                          "prompt": 2 * 16 * C_, "prefix": 2 * PREFIX,
                                                          "full": _gpt_parameters(**BASE)}.items()}),
    ],
    "09_hybrid_schedule.py": [
        ("the TOML file and the dict are the same recipe", "toml_stages_equal_dict", lambda v: v is True),
        ("every mistake is refused before training, with a hint for a name from another library", "refused: *",
         lambda refused: len(refused) == 6 and "did you mean 'lr'" in refused["refused: learning_rate instead of lr"]),
        ("full trains every weight, layers fewer than half, the prompts 2 x 8 x C; AdamW state is 8 bytes each",
         "trainable_total_state_bytes", _stage_costs),
        ("the kitchen stage moved only the top half of the blocks and ln_f",
         "moved from after general to after kitchen",
         lambda v: len(v) > 0 and all(n.startswith(TOP_TWO_BLOCKS + ("transformer.ln_f.",)) for n in v)),
        ("the prompt stage moved no model weight", "moved from after kitchen to after prompts", lambda v: v == []),
        ("the LoRA kitchen stage trained rank 8 on the attention and wrote its adapter.pt",
         "lora_kitchen_stage_trainable_strategy_adapter", lambda v: v == [_lora_count(8, ATTENTION), "lora", True]),
        ("after the LoRA kitchen stage exactly the attention matrices differ from the general model",
         "moved by the LoRA kitchen stage", lambda v: v == sorted(LORA_ATTENTION)),
    ],
    "10_evaluation.py": [
        ("BLEU by hand and bleu_details both give the worked example's score", "bleu_by_hand_and_library",
         lambda v: all(_close(x, LESSON10_BLEU) for x in v)),
        ("the clipped n-gram counts and totals are the hand-counted ones", "bleu_counts_and_totals",
         lambda v: v == [LESSON10_COUNTS, LESSON10_TOTALS]),
        ("ROUGE F1: 6 shared words of 7 and 13 (60), 4 shared pairs of 6 and 12 (44.4), LCS 6 (60)", "rouge_f1",
         lambda v: all(_close(v[k], f1) for k, f1 in {"rouge1": 60, "rouge2": 400 / 9, "rougeL": 60}.items())),
        ("SQuAD: EM 1, 1, 0, 0 and F1 1, 1, 2/3, 0 over the four pairs", "squad",
         lambda v: _close(v["exact_match"], 50) and _close(v["f1"], 200 / 3)),
        ("a short fine-tune raises BLEU", "bleu_base_and_tuned", lambda v: v[1] > v[0]),
        ("and lowers the teacher-forced loss", "val_loss_base_and_tuned", lambda v: v[1] < v[0] - 0.2),
    ],
    "11_choosing_a_strategy.py": [
        ("the memory counted by hand is advise.memory_bytes'", "memory: *",
         lambda m: len(m) == 3 and all(_close(a, b, 1e-6) for a, b in m.values())),
        ("activations dominate: a prompt needs over 90 % of full fine-tuning's memory, top-half layers less",
         ("memory: full", "memory: prompt (16 vectors)", "memory: layers (top half + ln_f)"),
         lambda full, prompt, layers: prompt[0] > 0.9 * full[0] and layers[0] < full[0]),
        ("the miniature experiment ran every cell: 2 sizes x 2 strategies x 1 seed", "experiment_runs",
         lambda v: v == 4),
        ("the interpolation in log N by hand is the advisor's", "interpolated: *",
         lambda rows: len(rows) >= 2 and all(_close(a, b) for a, b in rows.values())),
        ("under a 2 GB budget full fine-tuning of 124M weights does not fit, and the advice does",
         "budget_choice_and_fits", lambda v: v[1]["full"] is False and v[1][v[0]] is True),
        # The committed fair grid (sizes 50, 200, 1000, 5000): the figures the lesson's discussion quotes.
        ("at N=50 full fine-tuning is among the winners on every task: the rule's small-data half fails",
         "fair: winners among full/layers/prompt at N=50",
         lambda w: sorted(w) == ["qa", "summarization", "translation"] and all("full" in v for v in w.values())
         and any("prompt" in v for v in w.values())),
        ("at N=1000 and 5000 full fine-tuning is ahead of layers and prompt on every task, intervals apart",
         "fair: full, layers, prompt at N=1000 and 5000",
         lambda t: len(t) == 3 and all(c["full"][0] - c["full"][1] > max(c[s][0] + c[s][1] for s in ("layers", "prompt"))
                                      for v in t.values() for c in v.values())),
        ("a prompt on translation stays between 1 and 3.5 BLEU at every size", "fair: translation prompt by size",
         lambda v: len(v) == 4 and all(1 < x < 3.5 for x in v)),
        ("prompt and BitFit are outside the leading tie in at least 11 of 12 cells, the hybrid in none",
         "fair: cells outside the leading tie, of 12",
         lambda v: v["prompt"] >= 11 and v["bitfit"] >= 11 and v["hybrid"] == 0 and v["full"] <= 3),
        ("on summarization at N=1000 the hybrid beats full beyond both intervals, at 1.3-2.4x full's CPU",
         "fair: summarization N=1000 hybrid and full, hybrid/full CPU range",
         lambda v: v[0][0] - v[0][1] > v[1][0] + v[1][1] and 1.25 <= v[2] <= v[3] <= 2.45),
        ("the hybrid's first stage is the full arm's run on summarization (same rate), and beats it on "
         "translation at 5000 (lr 0.003 against 0.01) before its second stage starts",
         "fair: first stage of full and hybrid (lr, best val loss) by seed",
         lambda v: all(len(v[k]) == 3 for k in v)
         and all(abs(a[1] - b[1]) < 1e-6 and a[0] == b[0] for n in (1000, 5000)
                 for a, b in zip(v[f"summarization {n} full"], v[f"summarization {n} hybrid"]))
         and all(f[0] == 0.01 and h[0] == 0.003 and h[1] < f[1] - 0.1
                 for f, h in zip(v["translation 5000 full"], v["translation 5000 hybrid"]))
         and [round(x[1], 3) for x in v["translation 5000 hybrid"]] == [0.174, 0.212, 0.124]
         and [round(x[1], 3) for x in v["translation 5000 full"]] == [0.308, 0.357, 0.362]),
        ("scratch ties full at N=50 on every task, at N=1000 and 5000 on translation and summarization, never at "
         "N=200 nor on QA above 50", "fair: scratch ties full",
         lambda v: len(v) == 12 and not any(v[f"{t} 200"] for t in ("qa", "summarization", "translation"))
         and all(v[f"{t} 50"] for t in ("qa", "summarization", "translation"))
         and all(v[f"{t} {n}"] for t in ("translation", "summarization") for n in (1000, 5000))
         and not v["qa 1000"] and not v["qa 5000"]),
        ("seeds disagree by at most 3.5 BLEU on translation and by over 6 points on qa and summarization",
         "fair: largest std between seeds",
         lambda v: v["translation"] < 3.5 and v["qa"] > 6 and v["summarization"] > 6),
        ("the other cells the discussion quotes are the grid's, to the printed digit", "fair: other cells quoted",
         lambda v: all(f"{v[k][0]:.1f} ± {v[k][1]:.1f}" == f"{m:.1f} ± {ci:.1f}" for k, (m, ci) in {
             "summarization full 50": (41.9, 2.3), "summarization layers 50": (41.6, 5.9),
             "summarization prompt 50": (18.0, 1.3), "summarization scratch 50": (26.8, 16.2),
             "translation scratch 1000": (34.8, 6.0), "summarization scratch 1000": (69.6, 2.6),
             "qa full 200": (24.1, 16.2), "translation lora 1000": (18.2, 5.9),
             "translation prefix 1000": (14.9, 1.1), "translation hybrid 5000": (81.7, 2.3),
             "translation full 5000": (69.5, 1.0), "summarization hybrid 5000": (96.0, 10.1),
             "translation lora 5000": (22.2, 1.2), "translation prefix 5000": (19.8, 8.4),
             "summarization lora 5000": (54.9, 2.2), "summarization prefix 5000": (60.4, 3.5),
             "qa lora 5000": (35.0, 8.5), "qa prefix 5000": (41.7, 24.3), "qa hybrid 5000": (71.8, 8.5),
             "qa scratch 5000": (18.6, 18.0), "translation scratch 5000": (67.8, 2.1),
             "summarization scratch 5000": (83.1, 2.0)}.items())),
        ("LoRA and prefix lead or tie on QA at 50-1000 and on translation at 50 and 200, and nowhere else but "
         "prefix at QA 5000; hybrid-lora in all cells but translation at 1000", "fair: cells in the leading tie, by arm",
         lambda v: v["lora"] == ["qa 50", "qa 200", "qa 1000", "translation 50", "translation 200"]
         and v["prefix"] == ["qa 50", "qa 200", "qa 1000", "qa 5000", "translation 50", "translation 200"]
         and len(v["hybrid-lora"]) == 11 and "translation 1000" not in v["hybrid-lora"] and len(v["hybrid"]) == 12),
        ("the N=1000 and 5000 cells the discussion quotes are the grid's, to the printed digit",
         ("fair: full, layers, prompt at N=1000 and 5000", "fair: summarization N=1000 hybrid and full, hybrid/full CPU range"),
         lambda t, h: all(abs(a - b) < 0.05 for a, b in zip(
             [*t["translation"]["1000"]["full"], *t["translation"]["1000"]["layers"], *t["translation"]["1000"]["prompt"],
              *t["qa"]["1000"]["full"], *t["qa"]["1000"]["layers"], *t["qa"]["1000"]["prompt"],
              *t["translation"]["5000"]["full"], *t["translation"]["5000"]["layers"], *t["translation"]["5000"]["prompt"],
              *t["qa"]["5000"]["full"], *t["qa"]["5000"]["layers"], *t["qa"]["5000"]["prompt"], *h[0], *h[1]],
             [42.0, 2.4, 29.2, 3.4, 2.5, 0.6, 37.0, 0.9, 20.9, 4.9, 23.5, 9.5,
              69.5, 1.0, 54.0, 2.8, 3.0, 0.7, 67.5, 3.6, 27.0, 21.6, 28.9, 8.3, 84.4, 1.9, 73.0, 2.9]))),
        ("at N=1000 full fine-tuning raises the world loss by 2-8 nats; a frozen prompt or prefix leaves it",
         "fair: forgetting at N=1000",
         lambda v: all(2 < x < 8 for x in v["full"].values())
         and all(abs(x) < 1e-4 for s in ("prompt", "prefix") for x in v[s].values())),
    ],
    "12_running_on_a_gpu.py": [
        ("FLOPs per token by hand equal bench.flops_per_token",
         ("flops_per_token: minift base", "flops_per_token: GPT-2 124M"),
         lambda base, gpt2: base == [_flops_per_token(**BASE)] * 2
         and gpt2 == [_flops_per_token(V=50304, T=1024, L=12, C=768)] * 2),
        ("1 + 0.001 survives in float32 and rounds away in bf16", "one_plus_0.001_in_fp32_and_bf16",
         lambda v: _close(v[0], 1.001, 1e-6) and v[1] == 1.0),
        ("AdamW's foreach path gives the loop's weights", "foreach_minus_loop", lambda v: v < 1e-6),
        ("two simulated ranks with the global token count give one process's gradients",
         "two_ranks_minus_one_process", lambda v: v < 1e-6),
        ("a GPT-2 folder written from a minift model loads back to identical logits", "load_gpt2_same_logits",
         lambda v: v is True),
    ],
    # Solutions: the answers that do not depend on how long a run trains.
    "solutions/01_tokenization.py": [
        ("English and French both compress far better than bytes", "chars_per_token_en_fr",
         lambda v: min(v.values()) > 2),
        ("the GPT-2 pre-split stops every merge at a word boundary; one piece per line does not",
         "spanning_tokens_with_and_without_regex", lambda v: v[0] == 0 < v[1]),
    ],
    "solutions/02_self_attention.py": [
        ("with the mask, changing the last token leaves position 0 alone; without it, position 0 changes",
         ("position_0_moved_mask_on", "position_0_moved_mask_off"), lambda on, off: on < 1e-6 and off > 1e-3),
        ("one cached query gives the last row of the full call", "cached_last_minus_full_last", lambda v: v < 1e-5),
    ],
    "solutions/03_transformer_block.py": [
        ("the formula and the model both count GPT-2 small's published 124,439,808 parameters",
         "gpt2_small_formula_and_model",
         lambda v: v == [124_439_808] * 2 == [_gpt_parameters(V=50257, T=1024, L=12, C=768)] * 2),
        ("a KVCache holds 2·L·B·nh·max_len·hs·4 bytes", "kv_cache_bytes_formula_and_real",
         lambda v: v == [2 * 4 * 3 * 4 * 200 * 32 * 4] * 2),
    ],
    "solutions/04_optimization.py": [
        ("the uncorrected first move is (1 − β1)/√(1 − β2) · lr; corrected, and in the library, it is lr",
         "first_move_uncorrected_corrected_library",
         lambda v: all(_close(x, 0.1 * 0.1 / math.sqrt(0.001), 1e-6) for x in v[0])
         and all(_close(x, 0.1, 1e-6) for x in v[1] + v[2])),
        ("min_lr_ratio 0.2 puts the halfway rate at 60 % of max_lr", "halfway_lr_at_ratio",
         lambda v: _close(v[0], 6e-4, 1e-15) and _close(v[1], 0.2, 1e-12)),
        ("Dropout(0.2) zeroes about 20 % and keeps the mean near 1", "dropout_zeroed_and_mean",
         lambda v: _close(v[0], 0.2, 0.01) and _close(v[1], 1, 0.01)),
    ],
    "solutions/05_pretraining.py": [
        ("an untrained model's perplexity is about V; the base's is over 10x lower", "perplexity_untrained_base_and_V",
         lambda v: 0.8 < v[0] / v[2] < 1.2 and v[1] < v[0] / 10),
        ("byte tokens have a lower loss per token than 512 tokens", "val_loss_vocab_256_and_512",
         lambda v: v[0] < v[1]),
    ],
    "solutions/06_full_finetuning.py": [
        ("the batch's graded, prompt and padding positions are those its pairs' lengths give",
         ("graded_prompt_padding_total", "ids_and_prompt_tokens_per_pair"),
         lambda counts, pairs: counts == _batch_positions(pairs) and min(counts) > 0),
    ],
    "solutions/07_specific_layers.py": [
        ("freezing the neighbours does not change block 3's gradients", "block_3_grads_frozen_minus_all",
         lambda v: v < 1e-6),
        ("training an untied head leaves the input embedding bit-identical and moves the head",
         ("wte_unchanged", "head_moved"), lambda wte, head: wte is True and head is True),
    ],
    "solutions/08_prompt_tuning.py": [
        ("a prompt refuses to load onto weights that moved", "stale_prompt_refused", lambda v: v is True),
        ("rank 8 on the MLP trains 4 × (8·128 + 512·8 + 8·512 + 128·8) numbers, by hand and in summary.json",
         "mlp_lora_count_by_hand_and_run", lambda v: v == [_lora_count(8, MLP)] * 2),
        ("on the attention, rank r trains 4 × r × (128 + 384 + 128 + 128) numbers, for r = 1, 8, 16",
         "attention_lora_count_by_rank",
         lambda v: v == {str(r): [_lora_count(r, ATTENTION)] * 2 for r in (1, 8, 16)}),
        ("bitfit_layernorm adds γ and β of every LayerNorm, and moves only biases and LayerNorms, some of those",
         "bitfit_layernorm_count_and_moved",
         lambda v: v[0] == BITFIT_LAYERNORM and set(v[1]) <= LINEAR_BIASES | LAYERNORMS
         and set(v[1]) & LAYERNORMS != set()),
    ],
    "solutions/09_hybrid_schedule.py": [
        ("the TOML written by hand is the dict's recipe", "toml_by_hand_equals_dict", lambda v: v is True),
        ("each of the six mistakes is refused", "refused: *", lambda refused: len(refused) == 6),
        ("the styles run trained one prompt per style", "prompts_of_the_styles_run",
         lambda v: v == ["headline", "sentence"]),
    ],
    "solutions/10_evaluation.py": [
        ("'a b c d e' vs 'a b x c y': counts, totals and score as worked out by hand, two orders smoothed",
         "bleu_counts_totals_score_smoothed",
         lambda v: v[:2] == [[3, 1, 0, 0], [5, 4, 3, 2]] and _close(v[2], EXERCISE10_BLEU) and v[3] == 2),
        ("'the big cat small sat' vs 'the cat sat': ROUGE-2 0, ROUGE-L 75 (LCS 3: P 3/5, R 1)",
         "rouge2_and_rougeL_f1", lambda v: v[0] == 0 and _close(v[1], 75)),
        ("'the' and 'a' both normalize to an empty answer: EM 100, F1 0", "em_and_f1_of_the_vs_a",
         lambda v: v == [100, 0]),
    ],
    "solutions/11_choosing_a_strategy.py": [
        ("mean and sample std by hand are experiment.mean_std's", "seeds: *",
         lambda cells: len(cells) == 2 and all(_close(v[0], v[2]) and _close(v[1], v[3]) for v in cells.values())),
        ("a prompt saves more memory as the model grows, crossing one half between 124M and 1.5B",
         "prompt_over_full_memory_1M_124M_1.5B", lambda r: r[0] > r[1] > 0.5 > r[2]),
        ("outside the measured sizes every prediction is the nearest measured value", "edge: *",
         lambda rows: len(rows) >= 4 and all(a == b for a, b in rows.values())),
        ("the fair grid's QA cells the answer quotes, to the printed digit", "fair qa: full, layers, prompt at N=50, 1000 and 5000",
         lambda v: all(abs(a - b) < 0.05 for a, b in zip(
             [x for k in ("full 50", "layers 50", "prompt 50", "full 1000", "layers 1000", "prompt 1000",
                          "full 5000", "layers 5000", "prompt 5000") for x in v[k]],
             [16.9, 12.4, 13.6, 8.5, 10.6, 5.0, 37.0, 0.9, 20.9, 4.9, 23.5, 9.5, 67.5, 3.6, 27.0, 21.6, 28.9, 8.3]))),
        ("on the fair grid's QA the three tie at N=50 and 200; full alone wins at 1000 and 5000",
         "fair qa: winners among full/layers/prompt",
         lambda w: sorted(w["50"]) == sorted(w["200"]) == ["full", "layers", "prompt"]
         and w["1000"] == w["5000"] == ["full"]),
    ],
    "solutions/12_running_on_a_gpu.py": [
        ("attention's share grows with T, and equals the weights' at T = N / (2·L·C)",
         "attention_share_256_1024_4096_and_break_even",
         lambda v: v[0] < v[1] < v[2] and v[3] == (12 * 12 * 768**2 + 50304 * 768) / (2 * 12 * 768)),
        ("dividing by each rank's own token count gives wrong gradients; by the global count, right ones",
         "naive_and_exact_rule_diff", lambda v: v[0] > 100 * max(v[1], 1e-9)),
    ],
}


def test_every_script_says_what_it_shows():
    """A new lesson or solution needs an entry in CLAIMS; an entry needs its script."""
    scripts = {str(p.relative_to(TUTORIALS)) for p in LESSONS + SOLUTIONS}
    assert scripts - set(CLAIMS) == set(), "these scripts have no entry in CLAIMS"
    assert set(CLAIMS) - scripts == set(), "these CLAIMS entries name no script"
    assert all(CLAIMS[name] for name in scripts), "an entry must check at least one claim"


# --- one running time per lesson: the lesson's Time line, the outline and the teacher's guide agree ----
_LESSON_TIME = re.compile(r"\*\*Time:\*\* about (\d+) minutes to read and run; the script runs in (.+?) on 2 CPU")
_OUTLINE_ROW = re.compile(r"^\| (\d\d) \| \[.*?\]\(\d\d_\w+\.py\) \| (\d+) min \((.+?)\) \|", re.M)
_GUIDE_ROW = re.compile(r"^\| (\d\d) [^|]+\| (\d+) min \| (.+?) \| (.+?) \|", re.M)


def test_each_lesson_states_one_running_time_the_outline_and_the_guide_repeat():
    outline = {m[1]: (m[2], m[3]) for m in _OUTLINE_ROW.finditer((TUTORIALS / "README.md").read_text())}
    guide = {m[1]: (m[2], m[3]) for m in _GUIDE_ROW.finditer((TUTORIALS / "TEACHING.md").read_text())}
    assert sorted(outline) == sorted(guide) == [p.name[:2] for p in LESSONS]
    for script in LESSONS:
        first = parse_cells(script.read_text(encoding="utf-8"))[0]["source"].replace("\n# ", " ")
        m = _LESSON_TIME.search(first)
        assert m, f"{script.name}: its first cell needs '**Time:** about N minutes to read and run; the script runs in T on 2 CPU'"
        number = script.name[:2]
        assert (m[1], m[2]) == outline[number] == guide[number], (
            f"{script.name} says {m[1]} min and {m[2]!r}; the outline {outline[number]}, TEACHING.md {guide[number]}")
