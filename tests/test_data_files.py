"""The shipped task files are exactly what the generator produces (so they cannot silently drift)."""
import json
from pathlib import Path

import pytest

from minift.tasks import load_examples

DATA = Path(__file__).resolve().parent.parent / "data" / "tasks"
SIZES = {"train": 1000, "val": 200, "test": 200}


@pytest.mark.parametrize("task", ["translation", "summarization", "qa"])
@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_shipped_split_equals_the_generator(task, split):
    shipped = [json.loads(line) for line in (DATA / task / f"{split}.jsonl").read_text().splitlines()]
    generated = [e.fields for e in load_examples(task=task, split=split, n=SIZES[split], seed=0)]
    assert shipped == generated


@pytest.mark.parametrize("task", ["translation", "summarization", "qa"])
def test_shipped_splits_share_no_input(task):
    key = {"translation": ("source",), "summarization": ("document",), "qa": ("context",)}[task]
    seen = {}
    for split in SIZES:
        for line in (DATA / task / f"{split}.jsonl").read_text().splitlines():
            record = json.loads(line)
            text = tuple(record[k] for k in key)
            assert seen.setdefault(text, split) == split, f"{text} is in {seen[text]} and {split}"


SWEEP = Path(__file__).resolve().parent.parent / "data" / "experiments" / "strategies" / "lr-sweep"


def test_the_committed_lr_sweep_winners_follow_from_its_records(tmp_path):
    """lrs.json is what the sweep's own rule picks from sweep.jsonl, every winner has a worse
    neighbour on both sides (tuned, not at the edge), and lrs.md is lrs.json rendered."""
    from minift.experiment import sweep_best, write_sweep_markdown

    records = [json.loads(line) for line in (SWEEP / "sweep.jsonl").read_text().splitlines() if line.strip()]
    doc = json.loads((SWEEP / "lrs.json").read_text())
    pairs = {(r["task"], r["strategy"]) for r in records}
    assert pairs == {(t, s) for t, cells in doc["winners"].items() for s in cells}
    assert len({(r["task"], r["strategy"], r["lr_scale"]) for r in records}) == len(records)  # no run twice
    for task, strategy in sorted(pairs):
        rs = [r for r in records if (r["task"], r["strategy"]) == (task, strategy)]
        win = doc["winners"][task][strategy]
        assert win["lr_scale"] == sweep_best(rs)["lr_scale"], (task, strategy)
        tried = sorted(r["lr_scale"] for r in rs)
        assert {0.3, 1.0, 3.0} <= set(tried) and tried[0] < win["lr_scale"] < tried[-1], (task, strategy, tried)
        assert not win["at_edge"] and win["tried"] == tried
    write_sweep_markdown(tmp_path / "lrs.md", doc)
    assert (tmp_path / "lrs.md").read_text() == (SWEEP / "lrs.md").read_text()
