"""Exercise: one attention head with the causal mask (Lesson 02, "Self-attention").

Write ``attention_head(q, k, v, causal=True)``: scaled dot-product attention for one head,

    scores = q kᵀ / √hs                      (..., T, T)   hs = q.size(-1), the head size
    scores = −∞ above the diagonal           only if causal: query t may look at keys 0..t
    att    = softmax(scores, dim=-1)         each row sums to 1
    y      = att v                           (..., T, hs)

Inputs: q, k, v are float tensors of the same shape (..., T, hs): (B, T, hs) for one head, or
(B, nh, T, hs) for nh heads side by side (the shape inside minift's ``CausalSelfAttention``); the
leading dimensions are batch dimensions. ``causal``: apply the mask (True) or let every position see
every key (False). Return y, the same shape as q.

It must equal ``F.scaled_dot_product_attention(q, k, v, is_causal=causal)``, which is minift's sdpa
path, and, used per head, ``minift.model.CausalSelfAttention`` (its manual path is the formula
above, line by line). Use plain tensor operations (``@``, ``transpose``, ``masked_fill``,
``softmax``, ``torch.tril``); calling ``scaled_dot_product_attention`` itself is not the exercise.
Mind large scores: ``softmax`` must not overflow when scores are of size 1e4.

Grade it: ``minift grade attention`` (add ``--path DIR`` if this file is elsewhere).
"""
import math  # noqa: F401  (you will want math.sqrt)

import torch  # noqa: F401


def attention_head(q, k, v, causal=True):
    """q, k, v (..., T, hs) -> y (..., T, hs): softmax(q kᵀ/√hs + mask) v."""
    raise NotImplementedError("write attention_head: scores q kᵀ/√hs, −∞ above the diagonal if causal, "
                              "softmax over the keys, times v")
