"""Tasks: machine translation, summarization and question answering, as token sequences to learn.

Three questions every fine-tuning task must answer, each answered in one place:

* **Where do examples come from?** ``data.py``: the generated world (``minift/world``), seeded and
  split into disjoint train/val/test, or a user's JSONL file, read with errors that name file:line.
* **How does an example become tokens?** ``format.py``: one template per task turns an example
  into a *prompt* (what the model reads) and a *completion* (what it must write), and the loss mask
  grades only the completion.
* **How is a task scored?** ``TASK_METRICS`` below: BLEU for translation, ROUGE for summaries,
  EM/F1 for answers (``minift/metrics.py``), computed on generated text by ``minift/evaluate.py``.

Tutorials 06 (full fine-tuning) and 10 (evaluation) start here.
"""
from minift.tasks.data import Example, load_examples, read_jsonl, task_names, write_jsonl
from minift.tasks.format import Batch, EncodedExample, collate, encode_example, format_example

# The metrics each task reports, and the one early stopping and the experiments watch.
TASK_METRICS = {
    "translation": ("bleu",),
    "summarization": ("rouge1", "rouge2", "rougeL"),
    "qa": ("exact_match", "f1"),
    "text": ("exact_match", "f1"),  # a user's prompt/completion pairs
}
MAIN_METRIC = {"translation": "bleu", "summarization": "rougeL", "qa": "f1", "text": "f1"}

__all__ = [
    "Batch", "EncodedExample", "Example", "MAIN_METRIC", "TASK_METRICS", "collate", "encode_example",
    "format_example", "load_examples", "read_jsonl", "task_names", "write_jsonl",
]
