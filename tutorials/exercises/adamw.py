"""Exercise: one AdamW step (Lesson 04, "Optimization").

Write ``adamw_step(p, grad, m, v, t, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2)``:
the update ``minift.optim.AdamW`` makes to one parameter (the module docstring of
``minift/optim.py`` has the six lines), all operations elementwise:

    p     = p · (1 − lr · weight_decay)        decoupled decay: the gradient plays no part
    m     = b1 · m + (1 − b1) · grad           first moment
    v     = b2 · v + (1 − b2) · grad²          second moment
    m_hat = m / (1 − b1^t)                     bias corrections: m and v start at 0
    v_hat = v / (1 − b2^t)
    p     = p − lr · m_hat / (√v_hat + eps)    eps after the square root

Inputs: ``p``, ``grad``, ``m``, ``v``: float tensors of one shape (the parameter, its gradient, and
the two moments after step t − 1; zeros before the first step); ``t``: this step's number, 1 for
the first; ``betas = (b1, b2)``; the rest as named. Return the tuple ``(p, m, v)`` after the step,
each of p's shape. You may update the inputs in place or return new tensors: the grader reads what
you return.

It must equal ``minift.optim.AdamW.step`` (its readable loop, ``_step_loop``), and, step after step,
``torch.optim.AdamW``. Do not call either.

Grade it: ``minift grade adamw`` (add ``--path DIR`` if this file is elsewhere).
"""
import math  # noqa: F401

import torch  # noqa: F401


def adamw_step(p, grad, m, v, t, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2):
    """One AdamW step at step number t (1, 2, ...): returns (p, m, v)."""
    raise NotImplementedError("write adamw_step: decay p by (1 - lr*wd), update m and v, bias-correct them "
                              "with t, step by lr * m_hat / (sqrt(v_hat) + eps)")
