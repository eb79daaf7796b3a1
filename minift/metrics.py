"""Task metrics by hand: BLEU for translation, ROUGE for summaries, EM/F1 for questions.

A fine-tuned model writes text; to score it we compare that text with a human reference.
All three metrics below count *overlapping words*, and differ in what they count and how they
turn counts into one number. Every score is a percentage, 0-100 (the brevity penalty, a
multiplier, is the one number that is not). Tutorial 10 ("evaluation: BLEU, ROUGE, EM/F1 by
hand") works through each of them with pencil-sized examples; the same examples are pinned in
``tests/test_metrics.py``. This module imports nothing from minift (nor torch): the standard
library is enough, and mistakes raise plain ``ValueError``.

BLEU (Papineni et al., 2002), corpus level, equal to sacreBLEU's default ``corpus_bleu``.
  Tokenize both sides with the WMT "13a" rules. Over the whole corpus, for n = 1..4 count the
  hypothesis n-grams (``totals``) and how many of them appear in the reference, each reference
  n-gram usable as often as it occurs there (``counts``, "clipped" matches). Then
      p_n  = counts_n / totals_n                               (modified n-gram precision)
      BP   = 1 if c >= r else exp(1 - r / c)           (c, r = hypothesis, reference tokens)
      BLEU = 100 * BP * (p_1 * p_2 * p_3 * p_4) ** (1/4)
  Precision alone rewards saying little; BP punishes output shorter than the reference.
  Smoothing "exp" (NIST): the k-th order with zero matches gets p_n = 1 / (2**k * totals_n)
  instead of 0, so one missing order does not zero the score. But if nothing matches at all, or
  the corpus has no n-grams of some order (every hypothesis shorter than 4 tokens), BLEU is 0.
  Worked example: hyp "the cat sat on the mat", ref "the cat is on the mat":
      1-grams: the x2, cat, on, mat match          5/6
      2-grams: "the cat", "on the", "the mat"      3/5
      3-grams: "on the mat"                        1/4
      4-grams: none of 3, first zero -> 1/(2*3)    1/6
      BP = 1 (6 tokens each); BLEU = 100 * (5/6 * 3/5 * 1/4 * 1/6) ** (1/4) = 100 / 48**0.25 = 37.99

ROUGE (Lin, 2004), equal to Google's ``rouge-score`` (no stemmer), averaged over pairs.
  Tokens: lowercase, keep only runs of ``[a-z0-9]``; everything else is a separator, so
  accented letters vanish ("café" -> "caf", "naïve" -> "na ve"). For each pair, with
  m = matching units (clipped n-grams for ROUGE-1/2, the longest common subsequence for ROUGE-L):
      P = m / units in prediction,   R = m / units in reference,   F1 = 2PR / (P + R)
  The reported number is the mean F1 over pairs. ROUGE-L needs the words in the same order but
  not adjacent: prediction "sat the cat", reference "the cat sat" gives ROUGE-1 = 100,
  ROUGE-2 = 50 ("the cat" of 2 bigrams), ROUGE-L = 66.67 (LCS "the cat", P = R = 2/3).
  An empty side (after tokenizing) scores 0 for that pair.

SQuAD EM / F1 (Rajpurkar et al., 2016), equal to the official v1.1 evaluation script.
  Normalize: lowercase, drop punctuation, drop the words a/an/the, squeeze spaces. EM is 100 if
  the normalized strings are equal. F1 compares bags of tokens: shared = |pred & gold| (counts
  clipped), P = shared / |pred|, R = shared / |gold|. With several gold answers the best one
  counts. Example: "in Paris, France" vs "Paris": EM 0, P = 1/3, R = 1, F1 = 50.

Empty input. An empty hypothesis adds no n-grams but its reference still adds to r, so it
lowers BP; if every hypothesis is empty, c = 0, BP = 0 and BLEU = 0. An empty *list* of pairs
raises ValueError in all three metrics: an average over nothing is undefined, and a 0 would
look like a real (terrible) result.
"""
from __future__ import annotations

import math
import re
import string
from collections import Counter

MAX_ORDER = 4  # BLEU uses 1- to 4-grams

# ---------------------------------------------------------------------------------------------
# BLEU
# ---------------------------------------------------------------------------------------------

# The 13a rules (from WMT's mteval-v13a.pl) split punctuation off words, with three exceptions
# that need context: the apostrophe never splits ("don't" stays), the hyphen splits only after a
# digit ("3-4" -> "3 - 4", "well-known" stays), and "." / "," stay inside numbers ("1,000.5").
_LONE_SYMBOLS = re.compile(
    "([" + re.escape("".join(c for c in string.punctuation if c not in "'-.,")) + "])")
# Each rule below consumes the character beside the period/comma (as the Perl original does);
# that detail decides cases such as "a.." and must stay for exact agreement with sacreBLEU.
_POINT_AFTER_NON_DIGIT = re.compile(r"([^0-9])([.,])")
_POINT_BEFORE_NON_DIGIT = re.compile(r"([.,])([^0-9])")
_DASH_AFTER_DIGIT = re.compile(r"([0-9])-")


def tokenize_13a(line: str) -> str:
    """Tokenize one segment like sacreBLEU's default "13a" tokenizer; tokens joined by spaces.

    >>> tokenize_13a('He said "U.S. costs rose 1,000.5%," in 2019-20.')
    'He said " U . S . costs rose 1,000.5 % , " in 2019 - 20 .'
    """
    line = line.replace("<skipped>", "")  # marker for untranslated segments in WMT data
    line = line.replace("-\n", "")  # a word hyphenated across a line break is rejoined
    line = line.replace("\n", " ")
    # Undo four HTML entities. The order matters: "&amp;lt;" becomes "<" but "&amp;quot;"
    # becomes "&quot;", because &quot; is replaced before &amp; and &lt; after it.
    for entity, char in (("&quot;", '"'), ("&amp;", "&"), ("&lt;", "<"), ("&gt;", ">")):
        line = line.replace(entity, char)
    line = f" {line} "  # the padding lets a leading ".5" and a trailing "end." split too
    line = _LONE_SYMBOLS.sub(r" \1 ", line)
    line = _POINT_AFTER_NON_DIGIT.sub(r"\1 \2 ", line)
    line = _POINT_BEFORE_NON_DIGIT.sub(r" \1 \2", line)
    line = _DASH_AFTER_DIGIT.sub(r"\1 - ", line)
    return " ".join(line.split())


def _ngram_counts(tokens: list[str], max_order: int) -> Counter:
    """All 1..max_order-grams of ``tokens`` (as tuples) with how often each occurs."""
    return Counter(tuple(tokens[i:i + n]) for n in range(1, max_order + 1)
                   for i in range(len(tokens) - n + 1))


def bleu_details(hypotheses: list[str], references: list[str]) -> dict:
    """Corpus BLEU with its working: score, precisions, counts, totals, bp, sys_len, ref_len.

    ``references[i]`` is the one reference for ``hypotheses[i]``. Precisions and score are
    percentages; ``bp`` is the brevity penalty factor in [0, 1].
    """
    _check_pairs("bleu", "hypotheses", hypotheses, references)
    counts, totals = [0] * MAX_ORDER, [0] * MAX_ORDER
    sys_len = ref_len = 0
    for hyp, ref in zip(hypotheses, references):
        # sacreBLEU strips trailing whitespace before tokenizing (so a final "-\n" stays "-").
        hyp_tokens = tokenize_13a(hyp.rstrip()).split()
        ref_tokens = tokenize_13a(ref.rstrip()).split()
        sys_len += len(hyp_tokens)
        ref_len += len(ref_tokens)
        ref_ngrams = _ngram_counts(ref_tokens, MAX_ORDER)
        for ngram, n_hyp in _ngram_counts(hyp_tokens, MAX_ORDER).items():
            order = len(ngram) - 1
            totals[order] += n_hyp
            counts[order] += min(n_hyp, ref_ngrams[ngram])  # clip: no credit for repeating a word

    if sys_len >= ref_len:
        bp = 1.0
    else:  # nothing said at all is as short as it gets
        bp = math.exp(1 - ref_len / sys_len) if sys_len > 0 else 0.0

    precisions = [0.0] * MAX_ORDER
    if any(counts):
        halvings = 1  # "exp" smoothing: 1/2, 1/4, ... for successive zero-match orders
        for i in range(MAX_ORDER):
            if totals[i] == 0:  # no n-grams this long anywhere (hence none longer): p stays 0
                break
            if counts[i] == 0:
                halvings *= 2
                precisions[i] = 100.0 / (halvings * totals[i])
            else:
                precisions[i] = 100.0 * counts[i] / totals[i]
    if all(p > 0 for p in precisions):  # the geometric mean of anything with a 0 is 0
        score = bp * math.exp(sum(math.log(p) for p in precisions) / MAX_ORDER)
    else:
        score = 0.0
    return {"score": score, "precisions": precisions, "counts": counts, "totals": totals,
            "bp": bp, "sys_len": sys_len, "ref_len": ref_len}


def bleu(hypotheses: list[str], references: list[str]) -> float:
    """Corpus BLEU (0-100), equal to ``sacrebleu.corpus_bleu(hypotheses, [references]).score``."""
    return bleu_details(hypotheses, references)["score"]


# ---------------------------------------------------------------------------------------------
# ROUGE
# ---------------------------------------------------------------------------------------------

def rouge_tokenize(text: str) -> list[str]:
    """rouge-score's default tokens: lowercase, then the runs of ``[a-z0-9]`` (é is dropped).

    >>> rouge_tokenize("The café's 2 Cats!")
    ['the', 'caf', 's', '2', 'cats']
    """
    return re.findall(r"[a-z0-9]+", text.lower())


def lcs_length(a: list[str], b: list[str]) -> int:
    """Length of the longest common subsequence of ``a`` and ``b`` (dynamic programming).

    ``row[j]`` holds the LCS length of the prefix of ``a`` seen so far and ``b[:j]``; a match
    extends the diagonal, otherwise we keep the better of dropping a word from either side.
    """
    row = [0] * (len(b) + 1)
    for word in a:
        diagonal = 0  # value of row[j - 1] before this pass overwrote it
        for j in range(1, len(b) + 1):
            above = row[j]
            row[j] = diagonal + 1 if word == b[j - 1] else max(above, row[j - 1])
            diagonal = above
    return row[-1]


def _precision_recall_f1(matches: int, n_prediction: int, n_reference: int) -> dict:
    # max(., 1): an empty side gives P or R = 0 rather than a division by zero, as rouge-score.
    precision = matches / max(n_prediction, 1)
    recall = matches / max(n_reference, 1)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return {"precision": 100 * precision, "recall": 100 * recall, "f1": 100 * f1}


def rouge_pair(prediction: str, reference: str) -> dict:
    """Precision, recall and F1 (0-100) of ROUGE-1, ROUGE-2 and ROUGE-L for one pair.

    >>> rouge_pair("sat the cat", "the cat sat")["rougeL"]["f1"]  # LCS "the cat" = 2 of 3
    66.66666666666666
    """
    pred, ref = rouge_tokenize(prediction), rouge_tokenize(reference)
    scores = {}
    for n in (1, 2):
        pred_ngrams = Counter(tuple(pred[i:i + n]) for i in range(len(pred) - n + 1))
        ref_ngrams = Counter(tuple(ref[i:i + n]) for i in range(len(ref) - n + 1))
        matches = sum((pred_ngrams & ref_ngrams).values())  # & keeps the smaller count: clipping
        scores[f"rouge{n}"] = _precision_recall_f1(
            matches, sum(pred_ngrams.values()), sum(ref_ngrams.values()))
    scores["rougeL"] = _precision_recall_f1(lcs_length(pred, ref), len(pred), len(ref))
    return scores


def rouge(predictions: list[str], references: list[str]) -> dict:
    """Mean F1 (0-100) over pairs of ROUGE-1, ROUGE-2 and ROUGE-L (sentence-level LCS)."""
    _check_pairs("rouge", "predictions", predictions, references)
    per_pair = [rouge_pair(p, r) for p, r in zip(predictions, references)]
    return {key: sum(s[key]["f1"] for s in per_pair) / len(per_pair)
            for key in ("rouge1", "rouge2", "rougeL")}


# ---------------------------------------------------------------------------------------------
# SQuAD exact match and F1
# ---------------------------------------------------------------------------------------------

_PUNCTUATION = set(string.punctuation)
_ARTICLES = re.compile(r"\b(?:a|an|the)\b")


def normalize_answer(s: str) -> str:
    """Lowercase, drop punctuation, drop the articles a/an/the, squeeze whitespace.

    >>> normalize_answer("The  Eiffel-Tower!")
    'eiffeltower'
    """
    s = "".join(ch for ch in s.lower() if ch not in _PUNCTUATION)  # "Eiffel-Tower" -> "eiffeltower"
    s = _ARTICLES.sub(" ", s)
    return " ".join(s.split())


def exact_match(prediction: str, answer: str) -> float:
    """100.0 if the two strings are equal after ``normalize_answer``, else 0.0."""
    return 100.0 if normalize_answer(prediction) == normalize_answer(answer) else 0.0


def token_f1(prediction: str, answer: str) -> float:
    """Bag-of-tokens F1 (0-100) between normalized prediction and answer.

    As in the official v1.1 script, no shared token means 0 -- even when both normalize to
    the empty string (so "the" vs "a" has EM 100 but F1 0).
    """
    pred, gold = normalize_answer(prediction).split(), normalize_answer(answer).split()
    shared = sum((Counter(pred) & Counter(gold)).values())
    if shared == 0:
        return 0.0
    precision, recall = shared / len(pred), shared / len(gold)
    return 100 * (2 * precision * recall / (precision + recall))


def squad(predictions: list[str], references: list[str] | list[list[str]]) -> dict:
    """Mean ``exact_match`` and ``f1`` (0-100); each reference is one answer or a list of them.

    With several gold answers a prediction is scored against each and the best score counts
    (separately for EM and F1).
    """
    _check_pairs("squad", "predictions", predictions, references, allow_lists=True)
    em_total = f1_total = 0.0
    for prediction, golds in zip(predictions, references):
        golds = [golds] if isinstance(golds, str) else golds
        em_total += max(exact_match(prediction, g) for g in golds)
        f1_total += max(token_f1(prediction, g) for g in golds)
    return {"exact_match": em_total / len(predictions), "f1": f1_total / len(predictions)}


# ---------------------------------------------------------------------------------------------
# Input checks
# ---------------------------------------------------------------------------------------------

def _check_pairs(metric: str, name: str, outputs, references, allow_lists: bool = False) -> None:
    """Raise ValueError unless we have two equally long, non-empty lists of strings."""
    for what, items in ((name, outputs), ("references", references)):
        if isinstance(items, str):  # a bare string would silently be scored letter by letter
            raise ValueError(f"{metric}: {what} must be a list of strings, got one string")
    if len(outputs) != len(references):
        raise ValueError(f"{metric}: {len(outputs)} {name} but {len(references)} references; "
                         f"give exactly one reference per item")
    if len(outputs) == 0:  # an average over nothing is undefined, and 0 would look like a result
        raise ValueError(f"{metric}: no pairs to score; give at least one {name[:-1]} "
                         f"and its reference")
    for i, item in enumerate(outputs):
        if not isinstance(item, str):
            raise ValueError(f"{metric}: {name}[{i}] is {type(item).__name__}, expected str")
    for i, item in enumerate(references):
        if allow_lists and isinstance(item, (list, tuple)):
            if not item or not all(isinstance(g, str) for g in item):
                raise ValueError(f"{metric}: references[{i}] must be a non-empty list of strings")
        elif not isinstance(item, str):
            allowed = "str or list of str" if allow_lists else "str"
            raise ValueError(f"{metric}: references[{i}] is {type(item).__name__}, "
                             f"expected {allowed}")
