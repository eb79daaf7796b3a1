"""Exercise: the learning-rate schedule, warmup + cosine + floor (Lesson 04, "Optimization").

Write ``lr_at(step, max_lr, warmup_steps, total_steps, min_lr_ratio=0.1)``: the rate at optimizer
step ``step`` (0-based), with ``min_lr = min_lr_ratio · max_lr``:

    step < warmup_steps:                  max_lr · (step + 1) / warmup_steps
                                          (the first step already moves; step warmup_steps − 1
                                          reaches max_lr)
    warmup_steps <= step < total_steps:   min_lr + ½ (max_lr − min_lr)(1 + cos(π q)),
                                          q = (step − warmup_steps) / (total_steps − warmup_steps)
    step >= total_steps:                  min_lr

Inputs: whole numbers ``0 <= warmup_steps <= total_steps``, ``step >= 0``; ``max_lr > 0``;
``min_lr_ratio`` in [0, 1]. Return a Python float. (minift's version also refuses bad inputs with
a message; the grader does not ask for that.)

It must equal ``minift.optim.lr_at``. Its docstring has worked values: for max_lr 1e-3, warmup 10,
total 110: step 0 -> 1e-4, 9 -> 1e-3, 10 -> 1e-3, 60 -> 5.5e-4, 110 -> 1e-4.

Grade it: ``minift grade lr_schedule`` (add ``--path DIR`` if this file is elsewhere).
"""
import math  # noqa: F401


def lr_at(step, max_lr, warmup_steps, total_steps, min_lr_ratio=0.1):
    """Learning rate at step (0-based): linear warmup, cosine decay, then flat at min_lr."""
    raise NotImplementedError("write lr_at: (step + 1) / warmup_steps of max_lr during warmup, then the "
                              "cosine from max_lr down to min_lr_ratio * max_lr, then flat")
