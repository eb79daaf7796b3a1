"""minift: fine-tuning language models, every piece built by hand in plain PyTorch.

Start with ``tutorials/README.md`` for the course, or ``minift --help`` for the command line.
The floors of the house, each importing only from the floors below it (``tests/test_imports.py``
walks every import, those inside functions too, and fails on a cycle):

1. ideas that stand alone: ``model`` (GPT), ``optim`` (AdamW, SGD, L2, L1, schedules), ``loss``
   (chunked cross-entropy), ``metrics`` (BLEU, ROUGE, EM/F1), ``tokenizer`` (BPE), ``world`` (the
   generated English/French world), and small helpers (``errors``, ``io``, ``device``, ``timing``,
   ``tables``, ``args``, ``distributed``);
2. files and loops: ``checkpoint`` (the file format), ``trainer`` (one stage's loop), ``plot``,
   ``report``, ``pretrained`` (GPT-2 weights from local files);
3. the strategies, one file each, and their registry: ``strategies`` (``full``, ``layers``,
   ``prompt``, ...; ``strategies/base.py`` is the interface);
4. composing: ``schedule`` (recipes -> stages, checked against the registry), ``tasks`` (the
   generated tasks and users' JSONL), ``pretrain``;
5. running: ``evaluate``, ``bundle`` (a model with its tokenizer and soft prompts), ``finetune``
   (a recipe, stage by stage);
6. studying: ``experiment``, ``advise``, ``demo``, the benches (``bench``, ``finetune_bench``,
   ``strategy_bench``), and ``grade`` (the course's autograder: a student's exercise against minift's
   own piece);
7. facing the user: ``cli_tasks`` and ``cli``.
"""
__version__ = "0.1.0"


def load_model(path_or_name, device="cpu"):
    """Load a model ready for ``evaluate`` and ``generate`` (see ``minift.bundle.load_model``)."""
    from minift.bundle import load_model as _load

    return _load(path_or_name, device=device)


def load_gpt2(path, dropout=0.0, attn_impl="sdpa"):
    """A Hugging Face GPT-2 folder as minift's GPT (see ``minift.pretrained.load_gpt2``)."""
    from minift.pretrained import load_gpt2 as _load

    return _load(path, dropout=dropout, attn_impl=attn_impl)
