"""Exercise: BLEU's clipped n-gram precision (Lesson 10, "Evaluation").

Write ``clipped_precision(hypothesis, reference, n)``: for one sentence pair, how many of the
hypothesis's n-grams the reference has, each reference n-gram usable as often as it occurs there
("clipped" counts), and how many n-grams the hypothesis has:

    matches = Σ over distinct n-grams g of the hypothesis of  min(count_hyp(g), count_ref(g))
    total   = number of n-grams of the hypothesis = max(0, len(hypothesis) − n + 1)

so that the modified precision is p_n = matches / total. A hypothesis "the the the the" against
"the cat" gets 1 match of 4 unigrams, not 4.

Inputs: ``hypothesis`` and ``reference``, lists of token strings (already tokenized; either may be
empty); ``n``, the order, a whole number >= 1. Return the tuple ``(matches, total)`` of two ints
(not the ratio: total may be 0).

It must equal the ``counts[n - 1]`` and ``totals[n - 1]`` that ``minift.metrics.bleu_details`` adds
up for this one pair. Worked example (the docstring of ``minift/metrics.py``): "the cat sat on
the mat" against "the cat is on the mat" gives (5, 6), (3, 5), (1, 4), (0, 3) for n = 1..4.

Grade it: ``minift grade bleu_precision`` (add ``--path DIR`` if this file is elsewhere).
"""
from collections import Counter  # noqa: F401


def clipped_precision(hypothesis, reference, n):
    """(clipped n-gram matches, hypothesis n-grams) for token lists hypothesis and reference."""
    raise NotImplementedError("write clipped_precision: count the n-grams of both sides, add up "
                              "min(hypothesis count, reference count), and return it with the hypothesis total")
