"""Exercise: SQuAD's token F1 (Lesson 10, "Evaluation").

Write ``token_f1(prediction, answer)``: the official SQuAD v1.1 F1 of one predicted answer against
one gold answer, as a percentage 0-100. First normalise both strings:

    1. lowercase;
    2. drop every punctuation character (``string.punctuation``): "Eiffel-Tower" -> "eiffeltower";
    3. drop the articles a, an, the as whole words only ("theater" and "Anna" stay);
    4. split on whitespace.

Then compare the two bags of tokens: ``shared`` = the number of tokens they have in common, counted
with multiplicity and clipped (``Counter(pred) & Counter(gold)``); if ``shared`` is 0, F1 is 0 (even
when both sides normalise to nothing); else P = shared / len(pred), R = shared / len(gold) and
F1 = 100 · 2PR / (P + R).

Inputs: two strings (either may be empty). Return a float from 0 to 100.

It must equal ``minift.metrics.token_f1``; write the normalisation yourself (do not call
``minift.metrics.normalize_answer``). Worked example: "in Paris, France" against "Paris": P = 1/3,
R = 1, F1 = 50.

Grade it: ``minift grade squad_f1`` (add ``--path DIR`` if this file is elsewhere).
"""
import re  # noqa: F401
import string  # noqa: F401
from collections import Counter  # noqa: F401


def token_f1(prediction, answer):
    """Bag-of-tokens F1 (0-100) of two answers after SQuAD's normalisation."""
    raise NotImplementedError("write token_f1: normalise both answers (lowercase, no punctuation, no a/an/the), "
                              "then 100 * 2PR / (P + R) over the shared tokens (0 when none is shared)")
