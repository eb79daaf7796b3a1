"""Tests for minift.tokenizer: BPE training by hand, tiktoken serving, files, GPT-2 offline."""
import json
import os
import random
import threading
import time
from collections import Counter

import numpy as np
import pytest
import regex
import tiktoken.load
import torch
from tiktoken_ext import openai_public

import minift.tokenizer as tokmod
from minift.errors import MiniftError
from minift.tokenizer import (ENDOFTEXT, GPT2_SPLIT_PATTERN, PAD, Tokenizer, split_words,
                              tiktoken_cache_path, train_bpe)

SENTENCES = [
    "The little cat sleeps near the warm window.", "Le petit chat dort près de la fenêtre chaude.",
    "We don't know where they've gone, but they'll be back at 7 o'clock.",
    "Nous ne savons pas où ils sont allés ; ils reviendront à 19 h.",
    "L'élève écrit une lettre à l'école, and the teacher reads it twice.",
    "Prices rose 12.5% in 2023 -- see table 4 (page 112).",
    "Qu'est-ce que c'est ? C'est un garçon très sérieux !",
    "aaaa bbbb aaaaaa abababab    spaces\tand\ttabs\n\nnew paragraph",
    "def f(x):\n    return x ** 2  # squares", "Ça coûte 3,50 € — trop cher pour l'œuf.",
    "Every morning the baker opens his shop before sunrise.",
    "Chaque matin, le boulanger ouvre sa boutique avant le lever du soleil.",
    "She wasn't sure whether the museum would reopen in September or October.",
    "Elle n'était pas sûre que le musée rouvrirait en septembre ou en octobre.",
    "Small models learn quickly; larger ones generalise better.",
    "Les grands modèles généralisent mieux, mais ils coûtent plus cher.",
]


def corpus(n_sentences=90, seed=0):
    """A few KB of mixed English, French, numbers, code and whitespace, deterministic."""
    rng = random.Random(seed)
    return " ".join(rng.choice(SENTENCES) for _ in range(n_sentences))


def naive_train(text, vocab_size):
    """Reference BPE: recount every pair of every word from scratch at each step (same tie rule)."""
    counts = Counter(w.encode("utf-8") for w in regex.findall(GPT2_SPLIT_PATTERN, text))
    words = {tuple(bytes([b]) for b in w): n for w, n in counts.items()}
    ranks = {bytes([b]): b for b in range(256)}
    while len(ranks) < vocab_size:
        pairs = Counter()
        for word, n in words.items():
            for pair in zip(word, word[1:]):
                pairs[pair] += n
        if not pairs:
            break
        a, b = min(pairs, key=lambda p: (-pairs[p], p))  # most frequent, then smallest bytes
        merged = {}
        for word, n in words.items():
            out, i = [], 0
            while i < len(word):
                if word[i:i + 2] == (a, b):
                    out.append(a + b)
                    i += 2
                else:
                    out.append(word[i])
                    i += 1
            merged[tuple(out)] = merged.get(tuple(out), 0) + n
        words = merged
        ranks.setdefault(a + b, len(ranks))
    return ranks


def learned(ranks):
    return [t for t, _ in sorted(ranks.items(), key=lambda kv: kv[1])][256:]


@pytest.fixture(scope="module")
def tok():
    return Tokenizer.train(corpus(), 256 + 300)


# --- training --------------------------------------------------------------------------------
def test_hand_worked_single_word_merges_in_order_and_stops_early():
    # "aaabdaaabac" is one piece. Pair counts, and the winner of each step:
    #   a a a b d a a a b a c     aa:4 ab:2 ...                        -> aa
    #   aa a b d aa a b a c       (aa,a):2 (a,b):2 tie; b"a" < b"aa"   -> ab
    #   aa ab d aa ab a c         (aa,ab):2                            -> aaab
    #   aaab d aaab a c           all 1; (a,c) sorts first             -> ac
    #   aaab d aaab ac            all 1; (aaab,ac) < (aaab,d)          -> aaabac
    #   aaab d aaabac             (aaab,d) < (d,aaabac)                -> aaabd
    #   aaabd aaabac                                                   -> aaabdaaabac
    # then the word is one token: training stops at 263 although 300 were asked for.
    ranks = train_bpe("aaabdaaabac", 300)
    assert learned(ranks) == [b"aa", b"ab", b"aaab", b"ac", b"aaabac", b"aaabd", b"aaabdaaabac"]
    assert len(ranks) == 263 and all(ranks[bytes([b])] == b for b in range(256))


def test_merges_never_cross_a_split_and_count_word_frequencies():
    # Pieces: "ab" x1, " ab" x2, " ba" x1.  (a,b)=1+2=3 -> ab; (" ",ab)=2 -> " ab";
    # then (" ",b) and (b,a) are both 1 and b" " < b"b" -> " b"; then " ba". Nothing joins "ab ab".
    assert learned(train_bpe("ab ab ab ba", 1000)) == [b"ab", b" ab", b" b", b" ba"]


def test_incremental_counting_matches_naive_reference_trainer():
    text = corpus()
    assert learned(train_bpe(text, 256 + 250)) == learned(naive_train(text, 256 + 250))


@pytest.mark.parametrize("seed", range(4))
def test_incremental_counting_matches_reference_on_repetitive_words(seed):
    # Runs like "aaaa" and "abab" are where left-to-right merging and overlaps can go wrong.
    rng = random.Random(seed)
    text = " ".join("".join(rng.choice("aab") for _ in range(rng.randint(1, 9))) * rng.randint(1, 3)
                    for _ in range(40))
    assert learned(train_bpe(text, 400)) == learned(naive_train(text, 400))


def test_training_depends_only_on_word_counts_not_document_order():
    docs = [corpus(10, seed) for seed in range(6)]
    assert train_bpe(docs, 400) == train_bpe(list(reversed(docs)), 400) == train_bpe(iter(docs), 400)


def test_progress_reports_each_new_token_in_rank_order():
    calls = []
    ranks = train_bpe("aaabdaaabac", 300, progress=lambda done, wanted, t: calls.append((done, wanted, t)))
    assert calls == [(i + 1, 44, t) for i, t in enumerate(learned(ranks))]


@pytest.mark.parametrize("bad", [0, 255, -1, 300.0, "1024"])
def test_vocab_size_below_256_or_not_an_integer_is_a_user_error(bad):
    with pytest.raises(MiniftError, match="vocab_size"):
        train_bpe("hello", bad)


def test_split_pattern_agrees_with_tiktokens_gpt2_pattern():
    text = corpus(40) + " I'm  here!!  \n\n  x's 1234567 αβγ 日本語 🎉🎉"
    assert split_words(text) == regex.findall(openai_public.r50k_pat_str, text)
    assert split_words("I'm  here!\n") == ["I", "'m", " ", " here", "!", "\n"]


# --- encoding and decoding --------------------------------------------------------------------
ROUND_TRIP = [
    "", "hello world", "中文分词测试：你好，世界。", "emoji 🎉 family 👨‍👩‍👧‍👦 flag 🇫🇷🇯🇵 skin 👍🏽",
    "combining: e\u0301 a\u0308 n\u0303 Z\u0351\u0352", "RTL: שלום עולם مرحبا بالعالم", "   \t\t  \n\n\r\n  ",
    f"{ENDOFTEXT} and {PAD} as plain text<|", "\x00\x01 control \x7f", corpus(5),
]


@pytest.mark.parametrize("text", ROUND_TRIP)
def test_decode_inverts_encode_on_any_unicode(tok, text):
    ids = tok.encode(text)
    assert tok.decode(ids) == text
    assert b"".join(tok.decode_tokens(ids)) == text.encode("utf-8")
    assert all(0 <= i < len(tok.mergeable_ranks) for i in ids)  # no special ids from plain text


def test_special_tokens_get_the_two_ids_after_the_ranks(tok):
    n = len(tok.mergeable_ranks)
    assert (tok.eot_id, tok.pad_id, tok.vocab_size) == (n, n + 1, n + 2)
    assert tok.decode([tok.eot_id, tok.pad_id]) == ENDOFTEXT + PAD
    assert tok.eot_id not in tok.encode(ENDOFTEXT)


def test_decode_accepts_list_tuple_tensor_and_array(tok):
    ids = tok.encode("Le petit chat dort.")
    expected = "Le petit chat dort."
    assert tok.decode(tuple(ids)) == tok.decode(torch.tensor(ids)) == tok.decode(np.array(ids)) == expected
    assert tok.encode_batch(["Le petit", "", "chat"]) == [tok.encode("Le petit"), [], tok.encode("chat")]


def test_explain_replays_the_merges_by_lowest_rank_leftmost_first():
    tok = Tokenizer(train_bpe("aaabdaaabac", 300))
    steps = [b"".join(b"|" + p for p in s) for s in tok.explain("aaabdaaabac")]
    assert steps == [b"|a|a|a|b|d|a|a|a|b|a|c", b"|aa|a|b|d|a|a|a|b|a|c", b"|aa|a|b|d|aa|a|b|a|c",
                     b"|aa|ab|d|aa|a|b|a|c", b"|aa|ab|d|aa|ab|a|c", b"|aaab|d|aa|ab|a|c",
                     b"|aaab|d|aaab|a|c", b"|aaab|d|aaab|ac", b"|aaab|d|aaabac", b"|aaabd|aaabac",
                     b"|aaabdaaabac"]


def test_explain_ends_at_the_tokens_tiktoken_produces(tok):
    rng = random.Random(3)
    words = set(split_words(corpus(200, seed=1)))
    words |= {rng.choice(["", " "]) + "".join(rng.choice("aeiouéàlnrst") for _ in range(rng.randint(1, 12)))
              for _ in range(300)}
    words |= {"naïveté", " 日本語", " 👨‍👩‍👧", " 123456789"}
    checked = 0
    for word in words:
        if split_words(word) != [word]:
            continue
        steps = tok.explain(word)
        assert steps[0] == [bytes([b]) for b in word.encode("utf-8")]
        assert steps[-1] == tok.decode_tokens(tok.encode(word)), word
        checked += 1
    assert checked > 300


def test_explain_keeps_a_whole_piece_that_is_a_token_even_when_merges_cannot_reach_it():
    # A hand-made vocabulary: "bc" then "abcd". Merging "abcd" gets stuck at a|bc|d ("abc" and
    # "bcd" are not tokens), but tiktoken looks the whole piece up first and finds "abcd".
    ranks = {bytes([b]): b for b in range(256)} | {b"bc": 256, b"abcd": 257}
    tok = Tokenizer(ranks)
    assert tok.decode_tokens(tok.encode("abcd")) == [b"abcd"]
    assert tok.explain("abcd") == [[b"a", b"b", b"c", b"d"], [b"a", b"bc", b"d"], [b"abcd"]]
    assert tok.explain("abcde")[-1] == tok.decode_tokens(tok.encode("abcde")) == [b"a", b"bc", b"d", b"e"]


def test_explain_rejects_text_of_several_pieces(tok):
    with pytest.raises(MiniftError, match="one pre-split piece"):
        tok.explain("hello world")


def test_custom_special_tokens_need_endoftext_and_pad_falls_back_to_it(tok):
    ranks = tok.mergeable_ranks
    only_eot = Tokenizer(ranks, special_tokens={ENDOFTEXT: len(ranks) + 5})
    assert only_eot.pad_id == only_eot.eot_id == len(ranks) + 5 and only_eot.vocab_size == len(ranks) + 6
    with pytest.raises(MiniftError, match="endoftext"):
        Tokenizer(ranks, special_tokens={PAD: len(ranks)})


# --- files ------------------------------------------------------------------------------------
def test_save_then_load_gives_identical_encodings(tok, tmp_path):
    path = tmp_path / "tok" / "tokenizer.json"
    tok.save(path)
    again = Tokenizer.load(path)
    on_disk = json.loads(path.read_text(encoding="utf-8"))
    assert (on_disk["format"], on_disk["version"], len(on_disk["ranks"])) == ("minift-bpe", 1, 556)
    assert again.to_dict() == tok.to_dict() and again.mergeable_ranks == tok.mergeable_ranks
    for text in ROUND_TRIP:
        assert again.encode(text) == tok.encode(text)
    assert (again.eot_id, again.pad_id, again.vocab_size) == (tok.eot_id, tok.pad_id, tok.vocab_size)


def _corrupt(d, case):
    ranks = d["ranks"]
    if case == "format":
        d["format"] = "tiktoken"
    elif case == "version":
        d["version"] = 2
    elif case == "base64":
        ranks[300] = "not base64!"
    elif case == "bytes order":
        ranks[0], ranks[300] = ranks[300], ranks[0]
    elif case == "duplicate":
        ranks.append(ranks[300])
    elif case == "special vs rank":
        d["special_tokens"][PAD] = 10
    elif case == "special vs special":
        d["special_tokens"][PAD] = d["special_tokens"][ENDOFTEXT]
    elif case == "no ranks":
        del d["ranks"]
    elif case == "pattern":
        d["pattern"] = "(unclosed"
    return d


@pytest.mark.parametrize("case, message", [
    ("format", "not a tokenizer file"), ("version", "not a tokenizer file"), ("base64", r"ranks\[300\]"),
    ("bytes order", "256 single bytes"), ("duplicate", "repeats the token"),
    ("special vs rank", "collides with the ranks"), ("special vs special", "collides with the special"),
    ("no ranks", "'ranks'"), ("pattern", "pattern"),
])
def test_corrupt_file_raises_an_error_naming_the_file(tok, tmp_path, case, message):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(_corrupt(tok.to_dict(), case)), encoding="utf-8")
    with pytest.raises(MiniftError, match=message) as err:
        Tokenizer.load(path)
    assert str(path) in str(err.value)


@pytest.mark.parametrize("content", [None, "{not json", b"\xff\xfe binary", "[1, 2]"])
def test_missing_or_non_json_file_raises_an_error_naming_the_file(tmp_path, content):
    path = tmp_path / "tokenizer.json"
    if isinstance(content, str):
        path.write_text(content)
    elif isinstance(content, bytes):
        path.write_bytes(content)
    with pytest.raises(MiniftError) as err:
        Tokenizer.load(path)
    assert str(path) in str(err.value)


# --- GPT-2 -------------------------------------------------------------------------------------
@pytest.fixture
def offline(monkeypatch, tmp_path):
    """An empty tiktoken cache and no GPT-2 loaded yet in this process."""
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path / "empty-cache"))
    monkeypatch.setattr(tokmod, "_gpt2_loaded", {})
    return monkeypatch


def test_gpt2_offline_raises_a_user_error_that_says_what_is_needed(offline):
    def no_network(url):
        raise ConnectionError(f"Failed to resolve host for {url}")

    offline.setattr(tiktoken.load, "read_file", no_network)
    with pytest.raises(MiniftError, match="TIKTOKEN_CACHE_DIR") as err:
        Tokenizer.gpt2()
    assert "ConnectionError" in str(err.value) and "not in tiktoken's cache" in str(err.value)
    assert "empty-cache" in str(err.value)
    offline.setenv("TIKTOKEN_CACHE_DIR", "")  # tiktoken's switch for "never cache"
    with pytest.raises(MiniftError, match="cannot be cached"):
        Tokenizer.gpt2()


def test_gpt2_gives_up_quickly_when_the_download_hangs(offline):
    release = threading.Event()

    def hang(url):
        release.wait(30)  # a dropped connection: no answer, no error
        raise ConnectionError("released")

    offline.setattr(tiktoken.load, "read_file", hang)
    start = time.monotonic()
    try:
        with pytest.raises(MiniftError, match="no answer within 0.3 s"):
            Tokenizer.gpt2(timeout=0.3)
        assert time.monotonic() - start < 5
    finally:
        release.set()  # let the background thread finish


def test_cache_path_is_where_tiktoken_stores_a_download(offline):
    url = tokmod.GPT2_FILES[0]
    offline.setattr(tiktoken.load, "read_file", lambda u: b"fake contents")
    tiktoken.load.read_file_cached(url)
    with open(tiktoken_cache_path(url), "rb") as f:
        assert f.read() == b"fake contents"


def test_gpt2_matches_the_published_ids_when_its_files_are_cached():
    if not all(os.path.exists(tiktoken_cache_path(u)) for u in tokmod.GPT2_FILES):
        pytest.skip("GPT-2's tokenizer files are not in tiktoken's cache on this machine")
    gpt2 = Tokenizer.gpt2()
    assert (gpt2.eot_id, gpt2.pad_id, gpt2.vocab_size) == (50256, 50256, 50257)
    assert gpt2.encode("Hello world") == [15496, 995]
    assert gpt2.explain(" world")[-1] == [b" world"]
