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
