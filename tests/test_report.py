"""report.md of a fine-tuning run: written by `minift finetune`, rewritten identically by `minift report`.

Pins what the report holds against independent references: the stages and metrics against
summary.json, the samples' references against the data file they were drawn from, the git commit
against `git rev-parse HEAD`, the versions against the imported packages, tokens/s and peak memory
against the numbers they are made of.
"""
import json
import re
import resource
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import minift
from minift.cli import main

RECIPE = """
name = "tiny-two"
[defaults]
batch_size = 4
eval_every = 2
eval_examples = 8
warmup_steps = 1
[[stages]]
name = "all"
strategy = "full"
max_steps = 2
[[stages]]
name = "styles"
strategy = "prompt"
prompt_tokens = 2
max_steps = 2
"""


SCALE = 1 if sys.platform == "darwin" else 1024  # ru_maxrss is KiB on Linux, bytes on macOS
PEAK_RSS = {}  # the process's resident high-water mark just before the run, in bytes


@pytest.fixture(scope="module")
def run(tiny_setup, tmp_path_factory):
    folder = tmp_path_factory.mktemp("report")
    PEAK_RSS["before"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * SCALE
    (folder / "r.toml").write_text(RECIPE)
    code = main(["finetune", "--recipe", str(folder / "r.toml"), "--out", str(folder / "run"), "--data",
                 str(tiny_setup / "pairs.jsonl"), "--base", str(tiny_setup / "base"), "--seed", "1", "--quiet",
                 "--device", "cpu"])
    assert code == 0
    return folder / "run"


def summary_of(run):
    return json.loads((run / "summary.json").read_text(encoding="utf-8"))


def section(text: str, title: str) -> str:
    """The body of the '## title' section."""
    body = text.split(f"\n## {title}\n", 1)[1]
    return body.split("\n## ", 1)[0]


def table(text: str) -> list[dict]:
    """The first Markdown table in ``text`` as a list of {header: cell} rows."""
    lines = [ln for ln in text.splitlines() if ln.startswith("|")]
    split = [[c.strip() for c in re.split(r"(?<!\\)\|", ln)[1:-1]] for ln in lines]
    header, rows = split[0], split[2:]  # split[1] is the |---| line
    return [dict(zip(header, row)) for row in rows]


def number(cell: str) -> float:
    return float(cell.replace(",", ""))


def test_finetune_writes_a_report_that_says_what_ran(run):
    s = summary_of(run)
    lines = [ln for ln in section((run / "report.md").read_text(encoding="utf-8"), "What ran").splitlines()
             if ln.startswith("|")][2:]  # after the (blank) header and the |---| line
    facts = dict(tuple(c.strip() for c in ln.strip("|").split(" | ", 1)) for ln in lines)
    assert facts["recipe"] == f"tiny-two (`{s['recipe_source']}`)" and s["recipe_source"].endswith("r.toml")
    assert facts["base"] == s["base"] and facts["seed"] == "1" and facts["device"] == "cpu"
    assert facts["CPU threads"] == str(torch.get_num_threads())
    assert facts["torch"] == torch.__version__ and facts["minift"] == minift.__version__
    # The commit of the checkout minift was imported from, or no line at all when it is not one.
    root = Path(minift.__file__).resolve().parent.parent
    head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True)
    if (root / ".git").exists() and head.returncode == 0:
        assert facts["git commit"].startswith(f"`{head.stdout.strip()}`")
        assert s["git_commit"] == head.stdout.strip()
    else:
        assert "git commit" not in facts and "git_commit" not in s


def test_report_has_one_row_per_stage_matching_the_summary(run):
    s = summary_of(run)
    rows = table(section((run / "report.md").read_text(encoding="utf-8"), "Stages"))
    assert [r["stage"] for r in rows] == [st["name"] for st in s["stages"]] == ["all", "styles"]
    for row, st in zip(rows, s["stages"]):
        assert row["strategy"] == st["strategy"] and number(row["steps"]) == st["steps"] == 2
        assert row["stopped"] == st["stopped"] == "completed"
        trainable, total = row["trainable / total"].split(" (")[0].split(" / ")
        assert (number(trainable), number(total)) == (st["trainable_params"], st["total_params"])
        assert number(row["CPU s"]) == pytest.approx(st["cpu_seconds"], abs=0.005)
        assert number(row["tokens/s"]) == pytest.approx(st["tokens_per_s"], abs=0.5)
        assert number(row["peak memory"].removesuffix(" MB")) == pytest.approx(st["peak_memory_bytes"] / 1e6, abs=0.05)
        assert number(row["bleu"]) == pytest.approx(st["metrics"]["bleu"], abs=0.005)
    assert s["stages"][1]["trainable_params"] == 2 * 2 * 32  # two prompts (subsets x, y) of 2 vectors of width 32


def test_summary_records_cost_of_each_stage(run):
    s = summary_of(run)
    for st in s["stages"]:
        # tokens/s is tokens over the loop's seconds; "seconds" is rounded to 0.01, so bound it.
        assert st["tokens"] / (st["seconds"] + 0.005) <= st["tokens_per_s"] <= st["tokens"] / max(st["seconds"] - 0.005, 1e-9)
        assert st["cpu_seconds"] >= 0
        assert len(st["samples"]) == 5
    # On the CPU the peak is the process's resident high-water mark: it never shrinks, and the run
    # happened in this process, so the kernel's figures before the run and now bound the recorded ones.
    first, second = (st["peak_memory_bytes"] for st in s["stages"])
    assert {st["peak_memory_kind"] for st in s["stages"]} == {"peak RSS of the process so far"}
    assert PEAK_RSS["before"] <= first <= second <= resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * SCALE


def test_report_metrics_before_and_after_equal_the_summary(run):
    s = summary_of(run)
    rows = table(section((run / "report.md").read_text(encoding="utf-8"), "Metrics before and after"))
    assert [r["metric"] for r in rows] == list(s["before"]) == ["bleu"]
    for r in rows:
        before, after = s["before"][r["metric"]], s["stages"][-1]["metrics"][r["metric"]]
        assert number(r["before"]) == pytest.approx(before, abs=0.005)
        assert number(r["after"]) == pytest.approx(after, abs=0.005)
        assert number(r["change"]) == pytest.approx(after - before, abs=0.01)


def test_report_shows_five_samples_beside_their_references(run, tiny_setup):
    rows = table(section((run / "report.md").read_text(encoding="utf-8"), "Sample outputs"))
    # The validation examples of a data file are its last tenth (8 of 80), in file order.
    pairs = [json.loads(line) for line in (tiny_setup / "pairs.jsonl").read_text().splitlines()]
    held_out = pairs[-8:][:5]
    assert [r["reference"] for r in rows] == [p["target"] for p in held_out]
    assert [r["prompt"].split("<br>")[0] for r in rows] == [f"English: {p['source']}" for p in held_out]
    predictions = [x["prediction"] for x in summary_of(run)["stages"][-1]["samples"]]
    assert [r["output"] for r in rows] == predictions


def test_report_lists_validation_loss_by_stage_from_the_log(run):
    records = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    rows = table(section((run / "report.md").read_text(encoding="utf-8"), "Validation loss by stage"))
    for row in rows:
        losses = [r["val_loss"] for r in records if r["event"] == "eval" and r["stage"] == row["stage"]]
        assert number(row["evaluations"]) == len(losses) == 2  # at the stage's start and at its end
        assert number(row["first"]) == pytest.approx(losses[0], abs=5e-5)
        assert number(row["best"]) == pytest.approx(min(losses), abs=5e-5)
        assert number(row["last"]) == pytest.approx(losses[-1], abs=5e-5)
    assert [r["stage"] for r in rows] == ["all", "styles"]


def test_report_command_rewrites_the_identical_file(run, capsys):
    written = (run / "report.md").read_bytes()
    (run / "report.md").unlink()
    assert main(["report", str(run)]) == 0
    assert capsys.readouterr().out.strip() == str(run / "report.md")
    assert (run / "report.md").read_bytes() == written


def test_report_of_an_older_summary_shows_dashes_for_what_it_did_not_record(run, tmp_path):
    s = summary_of(run)
    for key in ("threads", "torch_version", "minift_version", "git_commit", "git_dirty"):
        s.pop(key, None)
    for st in s["stages"]:
        for key in ("cpu_seconds", "tokens_per_s", "peak_memory_bytes", "peak_memory_kind"):
            del st[key]
    (tmp_path / "summary.json").write_text(json.dumps(s))
    assert main(["report", str(tmp_path)]) == 0
    text = (tmp_path / "report.md").read_text(encoding="utf-8")
    rows = table(section(text, "Stages"))
    assert {r[c] for r in rows for c in ("CPU s", "tokens/s", "peak memory")} == {"—"}
    assert "git commit" not in text and "No log.jsonl" in text
