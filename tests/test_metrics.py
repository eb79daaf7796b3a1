"""BLEU, ROUGE and SQuAD EM/F1 against hand-worked examples and pinned reference values.

The hand examples show their arithmetic. A few corpus values were produced by the reference
packages (sacrebleu 2.6.0, rouge-score 0.1.2); the exact call is in the comment beside them.
The comparisons at the bottom run only where those packages are installed.
"""
import ast
import doctest
import math
import random
from pathlib import Path

import pytest

from minift import metrics
from minift.metrics import (bleu, bleu_details, exact_match, lcs_length, normalize_answer, rouge,
                            rouge_pair, rouge_tokenize, squad, token_f1, tokenize_13a)


# --------------------------------------------------------------------------------------------
# 13a tokenization (expected strings checked against sacrebleu's Tokenizer13a)
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("line, expected", [
    ("U.S.", "U . S ."),                      # periods split unless beside a digit
    ("1,000.5", "1,000.5"),                   # ... so numbers stay whole
    ("3-4", "3 - 4"),                         # hyphen splits after a digit
    ("well-known", "well-known"),             # ... but not between letters
    ("-5 5-", "-5 5 -"),
    ("don't", "don't"),                       # the apostrophe never splits
    ("&quot;hi&quot; &lt;b&gt;", '" hi " < b >'),
    ("&amp;lt; &amp;quot;", "< & quot ;"),    # &quot; is undone before &amp;, &lt; after it
    ("a <skipped> b", "a b"),
    ("end.", "end ."),                        # trailing period splits off the word
    (".5 and 5.", ". 5 and 5 ."),             # the padding spaces make both ends split
    ("a..", "a . ."),
    ("e.g.,", "e . g . ,"),
    ("$5.00, 3.5-4.2", "$ 5.00 , 3.5 - 4.2"),
    ("50% (a) [b] {c} a/b #1 @x", "50 % ( a ) [ b ] { c } a / b # 1 @ x"),
    ("hyphen-\nated line\nbreak", "hyphenated line break"),
    ("café l'élève", "café l'élève"),        # non-ASCII letters are left alone
    ("", ""),
])
def test_tokenize_13a_matches_sacrebleu_on_tricky_cases(line, expected):
    assert tokenize_13a(line) == expected


# --------------------------------------------------------------------------------------------
# BLEU by hand
# --------------------------------------------------------------------------------------------

def test_bleu_worked_example_smooths_the_one_order_without_matches():
    # hyp "the cat sat on the mat" vs ref "the cat is on the mat" (6 tokens each, BP = 1)
    # 1-grams: the x2, cat, on, mat -> 5/6      2-grams: the cat, on the, the mat -> 3/5
    # 3-grams: on the mat -> 1/4                4-grams: 0/3, exp smoothing -> 1/(2*3) = 1/6
    # BLEU = 100 * (5/6 * 3/5 * 1/4 * 1/6) ** (1/4) = 100 * (1/48) ** (1/4) = 37.99
    d = bleu_details(["the cat sat on the mat"], ["the cat is on the mat"])
    assert d["counts"] == [5, 3, 1, 0] and d["totals"] == [6, 5, 4, 3]
    assert d["precisions"] == pytest.approx([500 / 6, 60.0, 25.0, 100 / 6])
    assert d["bp"] == 1.0 and (d["sys_len"], d["ref_len"]) == (6, 6)
    assert d["score"] == pytest.approx(100 * 48 ** -0.25)
    assert d["score"] == pytest.approx(37.99178428257963, abs=1e-9)


def test_bleu_brevity_penalty_for_a_short_hypothesis():
    # hyp (6 tokens) "the cat sat on the mat" vs ref (7) "the cat sat on the red mat"
    # precisions 6/6, 4/5, 3/4, 2/3 -> product 2/5;  BP = exp(1 - 7/6)
    d = bleu_details(["the cat sat on the mat"], ["the cat sat on the red mat"])
    assert d["counts"] == [6, 4, 3, 2] and d["totals"] == [6, 5, 4, 3]
    assert d["bp"] == pytest.approx(math.exp(-1 / 6))
    assert d["score"] == pytest.approx(100 * math.exp(-1 / 6) * 0.4 ** 0.25)  # 67.32
    # Longer than the reference is not penalised by BP (the precisions do that).
    assert bleu_details(["the cat sat on the red mat"], ["the cat sat on the mat"])["bp"] == 1.0


def test_bleu_exp_smoothing_halves_again_for_each_further_zero_order():
    # hyp "a b c d e" vs ref "a b x c y": 1-grams a, b, c -> 3/5; 2-grams "a b" -> 1/4;
    # 3-grams 0/3 -> 1/(2*3); 4-grams 0/2 -> 1/(4*2).  Product 3/5*1/4*1/6*1/8 = 1/320.
    d = bleu_details(["a b c d e"], ["a b x c y"])
    assert d["precisions"] == pytest.approx([60.0, 25.0, 100 / 6, 12.5])
    assert d["score"] == pytest.approx(100 * 320 ** -0.25)  # 23.64


def test_bleu_clips_repeated_words_to_their_reference_count():
    # 7 x "the" but the reference has "the" twice: 2/7. Then 0/6, 0/5, 0/4 smoothed to
    # 1/12, 1/20, 1/32. Product 2/7 * 1/12 * 1/20 * 1/32 = 1/26880; BP = 1 (7 >= 6).
    d = bleu_details(["the the the the the the the"], ["the cat is on the mat"])
    assert d["counts"] == [2, 0, 0, 0]
    assert d["score"] == pytest.approx(100 * 26880 ** -0.25)  # 7.81


def test_bleu_is_zero_when_the_corpus_has_no_4grams():
    # A perfect but 1-token answer: p1 = 100, no 2-, 3-, 4-grams exist, their p stays 0.
    d = bleu_details(["a"], ["a"])
    assert d["precisions"] == [100.0, 0.0, 0.0, 0.0] and d["score"] == 0.0
    assert bleu(["a b c d"], ["a b c d"]) == pytest.approx(100.0)


def test_bleu_of_empty_hypotheses_and_references():
    d = bleu_details([""], ["a b c"])
    assert (d["score"], d["bp"], d["sys_len"], d["ref_len"]) == (0.0, 0.0, 0, 3)
    assert bleu(["a b c"], [""]) == 0.0  # nothing to match
    assert bleu_details([""], [""])["bp"] == 1.0
    # An empty line in a corpus only lengthens the reference side: BP = exp(1 - 6/4).
    assert bleu(["a b c d", ""], ["a b c d", "x y"]) == pytest.approx(100 * math.exp(-0.5))


def test_bleu_strips_trailing_whitespace_before_tokenizing_like_sacrebleu():
    assert bleu(["the cat sat on the mat \n"], ["the cat sat on the mat"]) == pytest.approx(100.0)
    # Stripping first means a final "-\n" keeps its hyphen: "d-" matches "d-", not "d".
    # sacrebleu.corpus_bleu(["a b c d-\n"], [["a b c d"]]).score == 59.460355750136046
    assert bleu(["a b c d-\n"], ["a b c d-"]) == pytest.approx(100.0)
    assert bleu(["a b c d-\n"], ["a b c d"]) == pytest.approx(59.460355750136046, abs=1e-9)


def test_bleu_multi_sentence_corpus_equals_sacrebleu():
    hyps = ["The U.S. economy grew 3.5% in 2019-20.", "It's a well-known fact, isn't it?",
            "Le chat est sur le tapis."]
    refs = ["The U.S. economy grew by 3.5% in 2019-20.", "It is a well-known fact, isn't it?",
            "Le chat dort sur le tapis rouge."]
    d = bleu_details(hyps, refs)
    # Values from: sacrebleu.corpus_bleu(hyps, [refs])  (sacrebleu 2.6.0)
    assert d["counts"] == [27, 21, 16, 12] and d["totals"] == [29, 26, 23, 20]
    assert (d["sys_len"], d["ref_len"]) == (29, 32)
    assert d["bp"] == pytest.approx(0.9017226623630116, abs=1e-12)
    assert d["score"] == pytest.approx(67.49347082572024, abs=1e-9)


# --------------------------------------------------------------------------------------------
# ROUGE by hand
# --------------------------------------------------------------------------------------------

def test_rouge_tokenize_keeps_only_ascii_letter_and_digit_runs():
    assert rouge_tokenize("The café's 2 Cats!") == ["the", "caf", "s", "2", "cats"]
    assert rouge_tokenize("naïve well-known U.S.") == ["na", "ve", "well", "known", "u", "s"]
    assert rouge_tokenize("!!! ...") == []


def test_lcs_length_on_hand_examples():
    assert lcs_length(list("ABCBDAB"), list("BDCABA")) == 4  # e.g. B C B A
    assert lcs_length(["a", "b"], []) == 0
    assert lcs_length(["x", "y", "z"], ["z", "y", "x"]) == 1


def test_rouge_pair_worked_example():
    # pred "the cat sat" (3 tokens) vs ref "the black cat sat down" (5 tokens)
    # ROUGE-1: 3 shared, P = 3/3, R = 3/5, F1 = 2*1*0.6/1.6 = 0.75
    # ROUGE-2: pred {the cat, cat sat}, ref has "cat sat": P = 1/2, R = 1/4, F1 = 1/3
    # ROUGE-L: LCS "the cat sat" = 3, same as ROUGE-1
    s = rouge_pair("the cat sat", "the black cat sat down")
    assert s["rouge1"] == pytest.approx({"precision": 100.0, "recall": 60.0, "f1": 75.0})
    assert s["rouge2"] == pytest.approx({"precision": 50.0, "recall": 25.0, "f1": 100 / 3})
    assert s["rougeL"] == pytest.approx({"precision": 100.0, "recall": 60.0, "f1": 75.0})


def test_rouge_l_rewards_word_order_and_rouge_1_does_not():
    s = rouge_pair("sat the cat", "the cat sat")
    assert s["rouge1"]["f1"] == pytest.approx(100.0)
    assert s["rouge2"]["f1"] == pytest.approx(50.0)      # "the cat" is 1 of 2 bigrams
    assert s["rougeL"]["f1"] == pytest.approx(200 / 3)   # LCS "the cat": P = R = 2/3


def test_rouge_empty_side_scores_zero_and_accents_vanish():
    assert rouge([""], ["a b"]) == {"rouge1": 0.0, "rouge2": 0.0, "rougeL": 0.0}
    assert rouge(["!!"], [""]) == {"rouge1": 0.0, "rouge2": 0.0, "rougeL": 0.0}
    # "café" tokenizes to "caf", so it matches "caf" exactly (rouge-score does the same).
    assert rouge(["café"], ["caf"])["rouge1"] == pytest.approx(100.0)


def test_rouge_is_the_mean_of_per_pair_f1():
    # pair 1 identical -> 100; pair 2 nothing shared -> 0; mean 50
    assert rouge(["a b", "x"], ["a b", "y"]) == pytest.approx(
        {"rouge1": 50.0, "rouge2": 50.0, "rougeL": 50.0})


def test_rouge_multi_pair_corpus_equals_rouge_score():
    preds = ["Police arrested the suspect on Tuesday night.",
             "The café reopened après the storm.",
             ""]
    golds = ["The suspect was arrested by police on Tuesday.",
             "After the storm, the cafe reopened.",
             "Nothing happened."]
    # Values from: scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"],
    # use_stemmer=False); 100 * np.mean([scorer.score(g, p)[k].fmeasure ...])  (rouge-score 0.1.2)
    assert rouge(preds, golds) == pytest.approx(
        {"rouge1": 47.179487179487175, "rouge2": 16.317016317016318, "rougeL": 28.03418803418803},
        abs=1e-9)


# --------------------------------------------------------------------------------------------
# SQuAD EM / F1 by hand
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("The  Eiffel-Tower!", "eiffeltower"),   # punctuation is deleted, not replaced by a space
    ("An apple a day", "apple day"),
    ("theater anthem", "theater anthem"),    # articles only as whole words
    ("  A  ", ""),
    ("Paris, France.", "paris france"),
    ("rock–the–boat", "rock– –boat"),      # the en dash is not ASCII punctuation, so it stays
])
def test_normalize_answer(text, expected):
    assert normalize_answer(text) == expected


def test_token_f1_worked_example():
    # "in paris france" vs "paris": 1 shared, P = 1/3, R = 1/1, F1 = 2*(1/3)/(4/3) = 1/2
    assert token_f1("in Paris, France", "Paris") == pytest.approx(50.0)
    assert exact_match("in Paris, France", "Paris") == 0.0
    assert exact_match("The Eiffel Tower.", "eiffel tower") == 100.0


def test_token_f1_follows_squad_v1_when_both_sides_normalize_to_nothing():
    assert exact_match("the", "a") == 100.0 and token_f1("the", "a") == 0.0


def test_squad_takes_the_best_gold_answer_for_each_score():
    # "the Broncos team" -> [broncos, team]; vs "Denver Broncos": P = R = 1/2, F1 = 50;
    # vs "Broncos": P = 1/2, R = 1, F1 = 2/3 -> the max, 66.67. No exact match.
    # Second question: a plain string reference, exact -> EM 100, F1 100.
    result = squad(["the Broncos team", "1969"], [["Denver Broncos", "Broncos"], "1969"])
    assert result == pytest.approx({"exact_match": 50.0, "f1": (200 / 3 + 100) / 2})
    # One matching gold answer among several is enough for EM.
    assert squad(["Broncos"], [["Denver Broncos", "the broncos"]])["exact_match"] == 100.0


# --------------------------------------------------------------------------------------------
# Mistakes and the empty corpus
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("call, message", [
    (lambda: bleu(["a", "b"], ["a"]), "2 hypotheses but 1 references"),
    (lambda: rouge(["a"], ["a", "b"]), "1 predictions but 2 references"),
    (lambda: bleu([], []), "no pairs to score"),
    (lambda: rouge([], []), "no pairs to score"),
    (lambda: squad([], []), "no pairs to score"),
    (lambda: bleu("the cat", "the cat"), "got one string"),
    (lambda: rouge([None], ["a"]), r"predictions\[0\] is NoneType"),
    (lambda: squad(["a"], [[]]), "non-empty list of strings"),
])
def test_metric_mistakes_raise_value_error_naming_the_problem(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_docstring_examples_hold():
    result = doctest.testmod(metrics)
    assert result.attempted >= 4 and result.failed == 0


def test_metrics_imports_only_the_standard_library():
    tree = ast.parse(Path(metrics.__file__).read_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.module}
    assert imported <= {"__future__", "math", "re", "string", "collections"}


# --------------------------------------------------------------------------------------------
# Against the reference packages, when installed (not needed by the suite)
# --------------------------------------------------------------------------------------------

_WORDS = ("the a cat dog sat on mat is red Paris café élève naïve l'homme don't U.S. e.g. 1,000 "
          "3.5 2019-20 well-known , . ; ! ? \" ( ) - & &amp; &quot; <skipped> % $ / The 42").split()


def _random_corpus(rng, k):
    refs = [" ".join(rng.choice(_WORDS) for _ in range(rng.randint(0, 15))) for _ in range(k)]
    hyps = [" ".join(w for w in r.split() if rng.random() > 0.2) + rng.choice(["", " ok", "."])
            for r in refs]
    return hyps, refs


def test_bleu_equals_sacrebleu_on_random_corpora():
    sacrebleu = pytest.importorskip("sacrebleu")
    rng = random.Random(0)
    for _ in range(100):
        hyps, refs = _random_corpus(rng, rng.randint(1, 6))
        expected = sacrebleu.corpus_bleu(hyps, [refs]).score
        assert bleu(hyps, refs) == pytest.approx(expected, abs=1e-9)


def test_rouge_equals_rouge_score_on_random_pairs():
    rouge_scorer = pytest.importorskip("rouge_score.rouge_scorer")
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=False)
    rng = random.Random(1)
    for _ in range(100):
        hyps, refs = _random_corpus(rng, 1)
        expected = scorer.score(refs[0], hyps[0])  # note the order: target first
        got = rouge_pair(hyps[0], refs[0])
        for key in ("rouge1", "rouge2", "rougeL"):
            assert got[key]["f1"] == pytest.approx(100 * expected[key].fmeasure, abs=1e-9)
