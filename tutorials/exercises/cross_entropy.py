"""Exercise: cross-entropy with the ignore index (Lessons 05 and 06, pretraining and fine-tuning).

Write ``cross_entropy(logits, targets, ignore_index=-100)``: the mean next-token loss over the
graded positions,

    lse_n  = log Σ_v exp(logits[n, v])                      the log-sum-exp of row n
    loss   = mean over graded n of  lse_n − logits[n, targets[n]]

Inputs: ``logits``, a float tensor (B, T, V); ``targets``, a long tensor (B, T) of token ids, with
``ignore_index`` (-100: the prompt part of a fine-tuning example, padding) where a position is not
graded. A position is graded when its target is not ``ignore_index``. Return a 0-dim float tensor:
the sum over graded positions divided by their number, over the whole batch (not a mean of
per-row means). When no position is graded, return 0 (with zero gradient), not nan.

Compute the log-sum-exp stably (subtract each row's maximum, or use ``torch.logsumexp``): logits of
size 1e4 must not overflow. Do not call ``F.cross_entropy`` or ``F.log_softmax``.

It must equal ``minift.loss.linear_cross_entropy`` (the training loss; on logits: hidden = logits,
head = the identity), and ``minift.model.lm_loss`` wherever something is graded, in value and in
the gradient of the logits.

Grade it: ``minift grade cross_entropy`` (add ``--path DIR`` if this file is elsewhere).
"""
import torch  # noqa: F401


def cross_entropy(logits, targets, ignore_index=-100):
    """logits (B, T, V), targets (B, T) -> the mean loss over graded positions, a 0-dim tensor."""
    raise NotImplementedError("write cross_entropy: a stable log-sum-exp minus the target's logit, "
                              "averaged over the positions whose target is not ignore_index (0 if none)")
