"""How minift times a step, and the shapes its benches time: shared by every bench section.

``best_time`` keeps the fastest of several runs (the one least disturbed by other work on the
machine), after a warm-up call, and waits for a GPU's queued kernels (``sync``) so the time is the
work's, not the launch's. ``bench.py`` gathers the sections; ``finetune_bench.py`` and
``strategy_bench.py`` are two of them. Kept apart so the sections need not import ``bench.py``,
which imports them.
"""
from __future__ import annotations

import time

import torch

TRAIN_SHAPE = dict(vocab_size=2048, block_size=128, n_layer=4, n_head=4, n_embd=256)
TRAIN_BATCH = 8
# GPT-2-124M shaped fine-tuning for CUDA (issue #6): block 1024.
GPT2_SHAPE = dict(vocab_size=50304, block_size=1024, n_layer=12, n_head=12, n_embd=768)


def sync(device):
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def best_time(fn, repeats: int, device) -> float:
    """The fastest of ``repeats`` runs (the least disturbed by other work on the machine)."""
    fn()  # warm-up: first calls allocate and pick kernels
    sync(device)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t)
    return min(times)
