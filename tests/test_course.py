"""minift.course: smoke mode, claims a lesson reports, "# %%" scripts split into cells, and nbformat-4
notebooks."""
import json
import re
from pathlib import Path

import pytest
import torch

from minift.course import (claim, header, lesson_seed, output_dir, parse_cells, pick, read_claims, smoke, to_notebook,
                           tutorial_files, write_notebooks)
from minift.errors import MiniftError

TUTORIALS = Path(__file__).resolve().parent.parent / "tutorials"

EXAMPLE = """\
import os


# %% [markdown]
# # Lesson 99 — An example
#
# Prose with *emphasis*.
#not a prose line, kept as it is

# %%
x = 1
# a comment inside code stays a comment

# %% Train the model
y = x + 1
# %%

# %% [markdown]
# ## Exercises
"""

# What nbformat 4.5's JSON schema allows: required keys, and no others (additionalProperties: false).
NOTEBOOK_KEYS = {"cells", "metadata", "nbformat", "nbformat_minor"}
CELL_KEYS = {"code": {"id", "cell_type", "metadata", "source", "execution_count", "outputs"},
             "markdown": {"id", "cell_type", "metadata", "source"}}
CELL_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


def check_notebook(nb: dict) -> None:
    """Assert the structure the nbformat 4.5 schema requires of a notebook and its cells."""
    assert set(nb) == NOTEBOOK_KEYS
    assert nb["nbformat"] == 4 and nb["nbformat_minor"] >= 5  # 4.5 is where cell ids became required
    assert nb["metadata"]["kernelspec"]["name"] == "python3"
    assert nb["metadata"]["language_info"]["name"] == "python"
    ids = [cell["id"] for cell in nb["cells"]]
    assert len(set(ids)) == len(ids), "cell ids must be unique"
    for cell in nb["cells"]:
        assert set(cell) == CELL_KEYS[cell["cell_type"]]
        assert CELL_ID.match(cell["id"])
        assert cell["metadata"] == {}
        lines = cell["source"]
        assert isinstance(lines, list) and all(isinstance(line, str) for line in lines)
        assert all(line.endswith("\n") for line in lines[:-1]) and not lines[-1].endswith("\n")
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None
    json.loads(json.dumps(nb))  # plain JSON types only


def test_parse_cells_splits_markdown_and_code():
    cells = parse_cells(EXAMPLE)
    assert cells == [
        {"cell_type": "code", "source": "import os"},
        {"cell_type": "markdown", "source": "# Lesson 99 — An example\n\nProse with *emphasis*.\n"
                                            "#not a prose line, kept as it is"},
        {"cell_type": "code", "source": "x = 1\n# a comment inside code stays a comment"},
        {"cell_type": "code", "source": "y = x + 1"},  # a titled marker opens a code cell
        {"cell_type": "markdown", "source": "## Exercises"},
    ]  # the empty "# %%" cell is dropped


def test_parse_cells_without_a_preamble_starts_with_the_first_marker():
    cells = parse_cells("\n\n# %% [markdown]\n# Hello\n# %%\nprint(1)\n")
    assert [c["cell_type"] for c in cells] == ["markdown", "code"]
    assert parse_cells("print(1)\n") == [{"cell_type": "code", "source": "print(1)"}]
    assert parse_cells("") == []


def test_to_notebook_is_valid_nbformat_4_5():
    cells = parse_cells(EXAMPLE)
    nb = to_notebook(cells)
    check_notebook(nb)
    assert [c["cell_type"] for c in nb["cells"]] == [c["cell_type"] for c in cells]
    assert ["".join(c["source"]) for c in nb["cells"]] == [c["source"] for c in cells]
    assert nb["cells"][1]["source"][:2] == ["# Lesson 99 — An example\n", "\n"]


def test_to_notebook_rejects_an_unknown_cell_type():
    with pytest.raises(MiniftError, match="cell 0 has cell_type 'raw'"):
        to_notebook([{"cell_type": "raw", "source": "x"}])


def test_write_notebooks_gives_one_notebook_per_tutorial_with_the_same_cells(tmp_path):
    lessons = tutorial_files(TUTORIALS)
    solutions = tutorial_files(TUTORIALS / "solutions")
    assert [p.name for p in lessons[:4]] == ["01_tokenization.py", "02_self_attention.py",
                                              "03_transformer_block.py", "04_optimization.py"]
    written = write_notebooks(TUTORIALS, tmp_path / "nb")
    expected = ([tmp_path / "nb" / f"{p.stem}.ipynb" for p in lessons]
                + [tmp_path / "nb" / "solutions" / f"{p.stem}.ipynb" for p in solutions])
    assert written == expected
    assert sorted((tmp_path / "nb").rglob("*.ipynb")) == sorted(expected)  # nothing else
    for script, path in zip(lessons + solutions, written):
        nb = json.loads(path.read_text(encoding="utf-8"))
        check_notebook(nb)
        cells = parse_cells(script.read_text(encoding="utf-8"))
        assert [(c["cell_type"], "".join(c["source"])) for c in nb["cells"]] == \
            [(c["cell_type"], c["source"]) for c in cells], script.name
        assert nb["cells"][0]["cell_type"] == "markdown"  # every lesson opens with its title


def test_write_notebooks_on_a_folder_without_tutorials_fails(tmp_path):
    with pytest.raises(MiniftError, match="no tutorials"):
        write_notebooks(tmp_path, tmp_path / "out")


def test_smoke_and_pick_follow_the_environment(monkeypatch):
    monkeypatch.delenv("MINIFT_SMOKE", raising=False)
    assert smoke() is False and pick(300, 10) == 300
    monkeypatch.setenv("MINIFT_SMOKE", "1")
    assert smoke() is True and pick(300, 10) == 10
    monkeypatch.setenv("MINIFT_SMOKE", "0")
    assert smoke() is False and pick(300, 10) == 300


def test_lesson_seed_reads_minift_seed_and_refuses_what_is_not_a_whole_number(monkeypatch):
    monkeypatch.delenv("MINIFT_SEED", raising=False)
    assert lesson_seed() == 0
    monkeypatch.setenv("MINIFT_SEED", "")
    assert lesson_seed() == 0
    monkeypatch.setenv("MINIFT_SEED", " 2 ")
    assert lesson_seed() == 2
    for bad in ("-1", "1.5", "one", "0x2"):
        monkeypatch.setenv("MINIFT_SEED", bad)
        with pytest.raises(MiniftError, match=r"MINIFT_SEED must be a whole number >= 0.*" + re.escape(repr(bad))):
            lesson_seed()


def test_header_prints_the_title(capsys):
    header("3. Training")
    out = capsys.readouterr().out
    assert "== 3. Training" in out and out.startswith("\n=")


def test_output_dir_is_outside_the_repository(monkeypatch, tmp_path):
    monkeypatch.setenv("MINIFT_COURSE_OUT", str(tmp_path))
    assert output_dir("04_optimization") == tmp_path / "04_optimization"
    assert (tmp_path / "04_optimization").is_dir()


def test_claim_returns_its_value_and_writes_nothing_without_the_variable(monkeypatch, tmp_path):
    monkeypatch.delenv("MINIFT_CLAIMS", raising=False)
    monkeypatch.chdir(tmp_path)
    value = [1.5, True]
    assert claim("anything", value) is value  # a lesson may use it inline: n = claim("n", len(x))
    assert list(tmp_path.iterdir()) == []  # a student's run leaves no trace


def test_claim_appends_one_json_line_per_call(monkeypatch, tmp_path):
    path = tmp_path / "claims.jsonl"
    monkeypatch.setenv("MINIFT_CLAIMS", str(path))
    monkeypatch.setattr("sys.argv", ["/somewhere/tutorials/05_pretraining.py"])
    claim("val_loss", [5.77, 4.77])
    claim("same", True)
    lines = path.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == [
        {"lesson": "05_pretraining.py", "name": "val_loss", "value": [5.77, 4.77]},
        {"lesson": "05_pretraining.py", "name": "same", "value": True},
    ]
    assert read_claims(path) == [json.loads(line) for line in lines]
    assert read_claims(tmp_path / "none.jsonl") == []  # a script that reported nothing


def test_claim_records_tensors_and_numpy_numbers_as_plain_json(monkeypatch, tmp_path):
    path = tmp_path / "claims.jsonl"
    monkeypatch.setenv("MINIFT_CLAIMS", str(path))
    weight = torch.tensor([0.5, -0.25], requires_grad=True)
    claim("max_diff", (weight * 2).abs().max())  # a 0-d tensor that needs grad
    claim("table", {3: torch.tensor([1, 2]), "x": (weight.detach().numpy()[0], float("inf"))})
    values = [r["value"] for r in read_claims(path)]
    assert values == [1.0, {"3": [1, 2], "x": [0.5, "inf"]}]  # JSON has no inf: kept as text, never dropped


def test_claim_refuses_a_value_it_cannot_write(monkeypatch, tmp_path):
    monkeypatch.setenv("MINIFT_CLAIMS", str(tmp_path / "claims.jsonl"))
    with pytest.raises(MiniftError, match="cannot record a object"):
        claim("odd", object())


# --- key numbers and `minift course ranges` ---------------------------------------------------
def test_key_records_a_claim_marked_key_with_what_is_asserted(monkeypatch, tmp_path):
    from minift.course import key

    monkeypatch.setenv("MINIFT_CLAIMS", str(tmp_path / "c.jsonl"))
    assert key("BLEU full", torch.tensor(19.5), asserted="15–24").item() == 19.5
    key("a loss", 1.25)
    claim("not a key number", 3)
    records = read_claims(tmp_path / "c.jsonl")
    assert [(r["name"], r.get("key"), r.get("asserted")) for r in records] == [
        ("BLEU full", True, "15–24"), ("a loss", True, None), ("not a key number", None, None)]
    assert records[0]["value"] == 19.5


# Two fake lessons: one reports numbers that depend on the seed and asserts one of them; the other
# reports nothing (it must not be run). A third fails its assert at seed 1 after its first number.
LESSON_A = '''
from minift.course import key, lesson_seed, smoke
s = lesson_seed()
assert not smoke()  # ranges run the lessons in full mode
key("loss", 1.0 + s / 10)
key("steps", 100 * (s + 1), asserted="above 50")
key("still falling", s != 1, asserted="yes")
'''
LESSON_B = '''
from minift.course import claim
claim("an identity", 0)  # a claim, not a key number
'''
LESSON_C = '''
from minift.course import key, lesson_seed
key("score | with a bar", 10 * (lesson_seed() + 1), asserted="below 15")
assert lesson_seed() != 1, "score above 15"
key("after the assert", 7)
'''


@pytest.fixture()
def fake_course(tmp_path):
    folder = tmp_path / "tutorials"
    folder.mkdir()
    for name, text in (("01_a.py", LESSON_A), ("02_b.py", LESSON_B), ("03_c.py", LESSON_C)):
        (folder / name).write_text(text)
    return folder


def test_course_ranges_runs_each_lesson_with_key_numbers_at_each_seed_and_tabulates(fake_course, tmp_path, capsys,
                                                                                      monkeypatch):
    from minift.cli import main

    monkeypatch.setenv("MINIFT_SMOKE", "1")  # the parent's smoke mode must not leak into the runs
    out = tmp_path / "ranges"
    assert main(["course", "ranges", "--tutorials", str(fake_course), "--seeds", "0,1,2", "--out", str(out)]) == 0
    table = capsys.readouterr().out
    assert (out / "ranges.md").read_text() == table
    rows = [line for line in table.splitlines() if line.startswith("| 0")]
    assert rows == [
        "| 01 | loss | 1 | 1.1 | 1.2 | 1–1.2 | — |",
        "| 01 | steps | 100 | 200 | 300 | 100–300 | above 50 |",
        "| 01 | still falling | yes | no | yes | yes at 2 of 3 | yes |",
        "| 03 | score \\| with a bar | 10 | 20 | 30 | 10–30 | below 15 |",
        "| 03 | after the assert | 7 | — | 7 | 7–7 | — |",
    ]
    assert "| 02 " not in table and not list(out.glob("02_b-*"))  # a lesson without key numbers is not run
    assert "- 03 at seed 1: exited 1, AssertionError: score above 15 at line 4" in table
    run = json.loads((out / "01_a-2.json").read_text())
    assert run["returncode"] == 0 and run["asserts"] is True and run["seed"] == 2


def test_course_ranges_resumes_and_rebuilds_without_running(fake_course, tmp_path, capsys):
    from minift.cli import main

    out = tmp_path / "ranges"
    assert main(["course", "ranges", "--tutorials", str(fake_course), "--seeds", "0", "--out", str(out)]) == 0
    first = capsys.readouterr()
    assert "[2/2]" in first.err
    stamp = (out / "01_a-0.json").stat().st_mtime_ns
    assert main(["course", "ranges", "--tutorials", str(fake_course), "--seeds", "0,1", "--out", str(out)]) == 0
    second = capsys.readouterr()
    assert "2 runs already" in second.err and "[2/2]" in second.err and "[3/" not in second.err
    assert (out / "01_a-0.json").stat().st_mtime_ns == stamp  # the finished run was not repeated
    (out / "01_a-1.json").unlink()  # a run that did not finish
    assert main(["course", "ranges", "--tutorials", str(fake_course), "--seeds", "0,1", "--out", str(out),
                 "--no-run"]) == 0
    table = capsys.readouterr().out
    assert "- 01 at seed 1: not run yet" in table and not (out / "01_a-1.json").exists()
    # --no-asserts is another kind of run (python -O, where the failing assert lets the lesson go on):
    # the finished run with asserts on does not count for it
    assert main(["course", "ranges", "--tutorials", str(fake_course), "--seeds", "1", "--lessons", "3",
                 "--out", str(out), "--no-asserts"]) == 0
    table = capsys.readouterr().out
    assert "| 03 | after the assert | 7 |" in table and "Runs that did not finish" not in table


@pytest.mark.parametrize("flags, message", [
    (["--seeds", "0,x"], "--seeds: a comma list of whole numbers"),
    (["--lessons", "02"], "--lessons: no lesson 02 reports key numbers; allowed: 01, 03"),
])
def test_course_ranges_refuses_bad_flags_in_one_line(fake_course, tmp_path, capsys, flags, message):
    from minift.cli import main

    assert main(["course", "ranges", "--tutorials", str(fake_course), "--out", str(tmp_path / "o"), *flags]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_course_ranges_refuses_an_out_path_that_is_a_file(fake_course, tmp_path, capsys):
    from minift.cli import main

    (tmp_path / "taken").write_text("keep me")
    assert main(["course", "ranges", "--tutorials", str(fake_course), "--out", str(tmp_path / "taken")]) == 2
    assert "taken" in capsys.readouterr().err and (tmp_path / "taken").read_text() == "keep me"
