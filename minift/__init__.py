"""minift: fine-tuning language models, every piece built by hand in plain PyTorch.

Start with ``tutorials/README.md`` for the course, or ``minift --help`` for the command line.
The floors of the house, each standing on the ones below:

1. ideas that stand alone: ``model`` (GPT), ``optim`` (AdamW, SGD, L2, L1, schedules), ``tokenizer`` (BPE),
   ``metrics`` (BLEU, ROUGE, EM/F1), ``world`` (the generated English/French world);
2. acting on the model from outside: ``freezing``, ``prompt_tuning``, ``pretrained``, ``tasks``;
3. running: ``trainer``, ``evaluate``;
4. composing: ``schedule`` (recipes -> stages);
5. studying: ``experiment``, ``advise``, ``plot``;
6. facing the user: ``cli``.
"""
__version__ = "0.1.0"


def load_model(path_or_name, device="cpu"):
    """Load a model ready for ``evaluate`` and ``generate`` (see ``minift.checkpoint.load_model``)."""
    from minift.checkpoint import load_model as _load

    return _load(path_or_name, device=device)


def load_gpt2(path, dropout=0.0, attn_impl="sdpa"):
    """A Hugging Face GPT-2 folder as minift's GPT (see ``minift.pretrained.load_gpt2``)."""
    from minift.pretrained import load_gpt2 as _load

    return _load(path, dropout=dropout, attn_impl=attn_impl)
