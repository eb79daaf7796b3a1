"""Where examples come from: the generated world, or a user's JSONL file.

Each example is one JSON object per line. The fields name the task:

    {"source": ..., "target": ...}                       translation
    {"document": ..., "summary": ...}                    summarization
    {"context": ..., "question": ..., "answer": ...}     question answering (extractive)
    {"prompt": ..., "completion": ...}                   any text-to-text pairs ("text")

An optional ``"subset"`` field names a sub-domain or style (``"headline"``, ``"kitchen"`` ...), so a
recipe stage can train on part of the data. Bad lines are errors that name ``file:line`` — never
a silently skipped example, since a silently shrunk training set is a wrong experiment.

Without a file, examples come from ``minift.world.examples`` (seeded; train, val and test are
disjoint by input text). ``data/tasks/`` ships the same splits written out as JSONL.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

from minift.errors import MiniftError
from minift.io import atomic_write_text
from minift.io import read_jsonl as read_jsonl_lines
from minift.tasks.format import format_example

FIELDS = {
    "translation": ("source", "target"),
    "summarization": ("document", "summary"),
    "qa": ("context", "question", "answer"),
    "text": ("prompt", "completion"),
}
REFERENCE_FIELD = {"translation": "target", "summarization": "summary", "qa": "answer", "text": "completion"}
SPLITS = ("train", "val", "test")
DEFAULT_SIZES = {"train": 1000, "val": 100, "test": 200}


def task_names() -> tuple[str, ...]:
    """Tasks the world generates (the JSONL-only 'text' task is not generated)."""
    from minift.world import TASKS

    return tuple(TASKS)


@dataclass
class Example:
    task: str
    fields: dict
    subset: str | None
    prompt: str
    completion: str
    where: str = "generated"  # "file:line" for user data

    @property
    def reference(self) -> str:
        """What a metric compares the model's output with."""
        return str(self.fields[REFERENCE_FIELD[self.task]])


def read_jsonl(path) -> list[tuple[dict, int]]:
    """(object, line number) for every line; any malformed line is a MiniftError naming file:line."""
    records = read_jsonl_lines(path, what="data")
    if not records:
        raise MiniftError(f"{path}: the file holds no examples")
    return records


def detect_task(record: dict, where: str) -> str:
    """The task whose fields this record has (checked in a fixed order)."""
    for task, names in FIELDS.items():
        if all(name in record for name in names):
            return task
    allowed = "; ".join(", ".join(names) for names in FIELDS.values())
    raise MiniftError(f"{where}: no task's fields found (have {', '.join(sorted(record)) or 'none'}; "
                      f"need one of: {allowed})")


def make_example(task: str, record: dict, where: str) -> Example:
    for name in FIELDS[task]:
        if name not in record:
            raise MiniftError(f"{where}: missing field '{name}' (a {task} example needs {', '.join(FIELDS[task])})")
        if not isinstance(record[name], str):
            raise MiniftError(f"{where}: field '{name}' must be a string, got {type(record[name]).__name__}")
    subset = record.get("subset")
    if subset is not None and not isinstance(subset, str):
        raise MiniftError(f"{where}: field 'subset' must be a string")
    prompt, completion = format_example(task, record)
    return Example(task, dict(record), subset, prompt, completion, where)


def load_examples(task: str | None = None, data=None, split: str = "train", n: int | None = None,
                  seed: int = 0, subset: str | None = None) -> list[Example]:
    """Examples of a generated task (``task``) or from a JSONL file (``data``), optionally one subset."""
    if split not in SPLITS:
        raise MiniftError(f"unknown split '{split}': choose one of {', '.join(SPLITS)}")
    if n is not None and n < 1:
        raise MiniftError(f"the number of examples must be >= 1, got {n}")
    if data is not None:
        out = []
        for record, number in read_jsonl(data):
            where = f"{data}:{number}"
            line_task = task if task in FIELDS else detect_task(record, where)
            out.append(make_example(line_task, record, where))
        if subset is not None:
            out = [e for e in out if e.subset == subset]
            if not out:
                raise MiniftError(f"{data}: no example has subset '{subset}'")
        return out[:n] if n is not None else out
    if task is None:
        raise MiniftError("name a task (translation, summarization, qa) or give a JSONL data file")
    from minift.world import examples as world_examples

    records = world_examples(task, n or DEFAULT_SIZES[split], seed=seed, split=split, subset=subset)
    if not records:
        raise MiniftError(f"task '{task}' has no examples in split '{split}'")
    return [make_example(task, r, f"{task}/{split}") for r in records]


def write_jsonl(path, examples: list[Example]) -> None:
    """Write examples' fields as JSONL, atomically."""
    text = "".join(json.dumps(e.fields, ensure_ascii=False) + "\n" for e in examples)
    atomic_write_text(path, text)
