"""Byte-level BPE: train a tokenizer by hand, then let tiktoken run it fast.

The idea. A model reads integers, not letters. Byte-level BPE (byte-pair encoding) starts from the
256 possible bytes, so any text (Chinese, emoji, code) can be written down, and then learns
*merges*: the pair of neighbouring tokens seen most often becomes one new token, again and again,
until the vocabulary has the size we asked for. Frequent words end up as one token, rare ones as
a few pieces, and nothing is ever "unknown".

Training (``train_bpe``), step by step:

1. Pre-split the text with a regex (GPT-2's, below) into pieces such as ``"Hello"``, ``" world"``,
   ``"!"``. Merges never cross a piece boundary, so a token never glues a word to the next one.
2. Count each distinct piece once: 3 MB of text holds far fewer distinct words than words.
   Pairs are counted over these word *frequencies* (``" the"`` seen 9000 times adds 9000 to
   ``(" t", "he")`` in one step), never by walking the raw text again.
3. Repeat until the vocabulary is full: take the most frequent pair ``(a, b)``; give ``a + b``
   the next rank; rewrite, left to right, only the words that contain the pair, and update the
   pair counts of those words alone (subtract their old pairs, add their new ones).
   Ties: among equally frequent pairs the one whose ``(left bytes, right bytes)`` sorts first wins
   (plain Python ``bytes`` order, so ``b"a" < b"aa" < b"b"``). A heap keeps this choice cheap.
4. If every word has become a single token before the vocabulary is full, training stops early
   and returns the shorter vocabulary: there is nothing left to merge.

Encoding a new piece replays the merges: start from single bytes and, again and again, merge the
neighbouring pair whose joined bytes have the lowest rank (leftmost on a tie). ``explain`` shows
those steps; ``tiktoken.Encoding`` does the same in Rust, and is what ``encode`` uses.

Used by tutorial 01 ("tokenization: BPE by hand, then tiktoken"), and by everything that reads
text. ``Tokenizer.gpt2()`` loads GPT-2's own 50257-token vocabulary for the pretrained models.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import heapq
import json
import os
import tempfile
import threading
from collections import Counter, defaultdict
from pathlib import Path
from typing import Callable, Iterable

import regex  # tiktoken's own dependency; Python's `re` lacks \p{L}
import tiktoken

from minift.errors import MiniftError
from minift.io import atomic_write_json

# GPT-2's pre-split rule, in order: English contractions; an optional space then letters; an
# optional space then digits; an optional space then other symbols; whitespace not followed by
# a non-space (so " world" keeps its leading space); any remaining whitespace.
GPT2_SPLIT_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
ENDOFTEXT = "<|endoftext|>"
PAD = "<|pad|>"
FILE_FORMAT, FILE_VERSION = "minift-bpe", 1

Pair = tuple[bytes, bytes]


def split_words(text: str, pattern: str = GPT2_SPLIT_PATTERN) -> list[str]:
    """The pre-split pieces of ``text``: ``"Hi there"`` -> ``["Hi", " there"]``."""
    return regex.findall(pattern, text)


def count_words(texts: str | Iterable[str], pattern: str = GPT2_SPLIT_PATTERN) -> Counter[bytes]:
    """How often each distinct pre-split piece occurs, as UTF-8 bytes."""
    try:
        compiled = regex.compile(pattern)
    except regex.error as e:
        raise MiniftError(f"train_bpe: pattern is not a valid regex ({e})") from None
    pieces: Counter[str] = Counter()
    for text in [texts] if isinstance(texts, str) else texts:
        if not isinstance(text, str):
            raise MiniftError(f"train_bpe: texts must be str, got {type(text).__name__}")
        pieces.update(compiled.findall(text))
    words: Counter[bytes] = Counter()
    for piece, n in pieces.items():
        words[piece.encode("utf-8", errors="replace")] += n  # a lone surrogate becomes "?"
    return words


def merge_pair(word: list[bytes], a: bytes, b: bytes) -> list[bytes]:
    """Replace each ``a, b`` in ``word`` by ``a + b``, left to right (``aaa`` -> ``aa, a``)."""
    out, i = [], 0
    while i < len(word):
        if i + 1 < len(word) and word[i] == a and word[i + 1] == b:
            out.append(a + b)
            i += 2
        else:
            out.append(word[i])
            i += 1
    return out


def train_bpe(texts: str | Iterable[str], vocab_size: int, pattern: str = GPT2_SPLIT_PATTERN,
              progress: Callable[[int, int, bytes], None] | None = None) -> dict[bytes, int]:
    """Learn ``vocab_size`` mergeable ranks: the 256 bytes (rank = byte value), then the merges.

    The most frequent pair wins; ties go to the pair whose (left, right) bytes sort first.
    Stops early, with fewer ranks, once every word is one token. ``progress(done, wanted, token)``
    is called after each new token.
    """
    if not isinstance(vocab_size, int) or vocab_size < 256:
        raise MiniftError(f"vocab_size must be an integer >= 256 (the single bytes), got {vocab_size!r}")
    ranks = {bytes([b]): b for b in range(256)}
    word_counts = count_words(texts, pattern)
    words = [[bytes([b]) for b in w] for w in word_counts]  # each word as its current tokens
    freqs = list(word_counts.values())

    pair_counts: dict[Pair, int] = Counter()
    words_with: defaultdict[Pair, set[int]] = defaultdict(set)  # pair -> indices of words holding it
    for i, word in enumerate(words):
        for pair in zip(word, word[1:]):
            pair_counts[pair] += freqs[i]
            words_with[pair].add(i)
    # A max-heap (by negated count) ordered (count, left, right): popping gives the tie rule.
    # Entries go stale when counts change; a fresh one is pushed then, and stale ones are skipped.
    heap = [(-n, a, b) for (a, b), n in pair_counts.items()]
    heapq.heapify(heap)

    while len(ranks) < vocab_size:
        best = _pop_most_frequent(heap, pair_counts)
        if best is None:
            break  # every word is a single token: the text allows no more merges
        a, b = best
        change: Counter[Pair] = Counter()
        for i in words_with.pop(best):
            old, new = words[i], merge_pair(words[i], a, b)
            old_pairs, new_pairs = list(zip(old, old[1:])), list(zip(new, new[1:]))
            for pair in old_pairs:
                change[pair] -= freqs[i]
            for pair in new_pairs:
                change[pair] += freqs[i]
                words_with[pair].add(i)
            for pair in set(old_pairs) - set(new_pairs) - {best}:
                words_with[pair].discard(i)
            words[i] = new
        for pair, delta in change.items():
            if delta == 0:
                continue
            count = pair_counts[pair] + delta
            if count:
                pair_counts[pair] = count
                heapq.heappush(heap, (-count, *pair))
            else:
                del pair_counts[pair]
        # Defensive: should ``a + b`` already be a token (reached by another split), the words are
        # merged all the same, as tiktoken would, but the vocabulary gains nothing.
        if a + b not in ranks:
            ranks[a + b] = len(ranks)
            if progress is not None:
                progress(len(ranks) - 256, vocab_size - 256, a + b)
    return ranks


def _pop_most_frequent(heap: list, pair_counts: dict[Pair, int]) -> Pair | None:
    """The most frequent pair (smallest bytes on a tie), skipping heap entries gone stale."""
    while heap:
        neg_count, a, b = heapq.heappop(heap)
        if pair_counts.get((a, b)) == -neg_count:
            return (a, b)
    return None


class Tokenizer:
    """Mergeable ranks + a split pattern + special tokens, served by a ``tiktoken.Encoding``.

    ``vocab_size`` is the number of ids the model's embedding needs: ranks plus special tokens.
    By default ``<|endoftext|>`` and ``<|pad|>`` take the two ids after the ranks.
    """

    def __init__(self, mergeable_ranks: dict[bytes, int], pattern: str = GPT2_SPLIT_PATTERN,
                 special_tokens: dict[str, int] | None = None, name: str = "minift-bpe",
                 source: str = "Tokenizer"):
        n = len(mergeable_ranks)
        if special_tokens is None:
            special_tokens = {ENDOFTEXT: n, PAD: n + 1}
        _check_vocabulary(mergeable_ranks, special_tokens, source)
        self.name, self.pattern = name, pattern
        self.mergeable_ranks, self.special_tokens = dict(mergeable_ranks), dict(special_tokens)
        try:
            regex.compile(pattern)
            self.encoding = tiktoken.Encoding(name, pat_str=pattern, mergeable_ranks=self.mergeable_ranks,
                                              special_tokens=self.special_tokens)
        except (regex.error, ValueError) as e:
            raise MiniftError(f"{source}: pattern is not a valid regex ({e})") from e
        self.eot_id = special_tokens[ENDOFTEXT]
        self.pad_id = special_tokens.get(PAD, self.eot_id)  # GPT-2 has no pad token: reuse eot
        self.vocab_size = self.encoding.n_vocab

    @classmethod
    def train(cls, texts: str | Iterable[str], vocab_size: int, pattern: str = GPT2_SPLIT_PATTERN,
              progress: Callable[[int, int, bytes], None] | None = None) -> "Tokenizer":
        """Train BPE (``vocab_size`` = bytes + merges); the two special tokens come on top."""
        return cls(train_bpe(texts, vocab_size, pattern, progress), pattern)

    @classmethod
    def gpt2(cls, timeout: float = 15.0) -> "Tokenizer":
        """GPT-2's tokenizer (eot = pad = 50256), read from tiktoken's cache or downloaded once."""
        kwargs = _load_gpt2(timeout)
        return cls(kwargs["mergeable_ranks"], kwargs["pat_str"], kwargs["special_tokens"], name="gpt2")

    def __repr__(self) -> str:
        return (f"Tokenizer(name={self.name!r}, vocab_size={self.vocab_size}, "
                f"eot_id={self.eot_id}, pad_id={self.pad_id})")

    # --- text <-> ids ---------------------------------------------------------------------
    def encode(self, text: str) -> list[int]:
        """Token ids of ``text``. A special token's string in the text is plain text here."""
        return self.encoding.encode_ordinary(text)

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return self.encoding.encode_ordinary_batch(list(texts))

    def decode(self, ids) -> str:
        """Text of a list, tuple or 1-D tensor of ids; broken UTF-8 shows as U+FFFD."""
        return self.encoding.decode(_id_list(ids), errors="replace")

    def decode_tokens(self, ids) -> list[bytes]:
        """The bytes of each token, to show the pieces: ``[b"Hello", b" world"]``."""
        return [self.encoding.decode_single_token_bytes(i) for i in _id_list(ids)]

    def split(self, text: str) -> list[str]:
        return split_words(text, self.pattern)

    def explain(self, word: str) -> list[list[bytes]]:
        """Each step of BPE on one pre-split piece, from single bytes to the final tokens."""
        if self.split(word) != [word]:
            raise MiniftError(f"explain() takes one pre-split piece; {word!r} splits into {self.split(word)!r}")
        ranks = self.mergeable_ranks
        parts = [bytes([b]) for b in word.encode("utf-8")]
        steps = [list(parts)]
        while len(parts) > 1:
            best_rank, best_i = None, None
            for i in range(len(parts) - 1):
                rank = ranks.get(parts[i] + parts[i + 1])
                if rank is not None and (best_rank is None or rank < best_rank):  # leftmost on ties
                    best_rank, best_i = rank, i
            if best_i is None:
                break
            parts[best_i:best_i + 2] = [parts[best_i] + parts[best_i + 1]]
            steps.append(list(parts))
        # tiktoken first looks the whole piece up, so a piece that is itself a token stays whole.
        if len(parts) > 1 and word.encode("utf-8") in ranks:
            steps.append([word.encode("utf-8")])
        return steps

    # --- files ----------------------------------------------------------------------------
    def to_dict(self) -> dict:
        by_rank = sorted(self.mergeable_ranks, key=self.mergeable_ranks.__getitem__)
        return {"format": FILE_FORMAT, "version": FILE_VERSION, "name": self.name, "pattern": self.pattern,
                "ranks": [base64.b64encode(token).decode("ascii") for token in by_rank],
                "special_tokens": dict(self.special_tokens)}

    @classmethod
    def from_dict(cls, d, source: str = "<dict>") -> "Tokenizer":
        if not isinstance(d, dict):
            raise MiniftError(f"{source}: expected a JSON object, got {type(d).__name__}")
        if d.get("format") != FILE_FORMAT or d.get("version") != FILE_VERSION:
            raise MiniftError(f"{source}: not a tokenizer file (need format {FILE_FORMAT!r}, version "
                              f"{FILE_VERSION}; got {d.get('format')!r}, {d.get('version')!r})")
        for key, kind in (("name", str), ("pattern", str), ("ranks", list), ("special_tokens", dict)):
            if not isinstance(d.get(key), kind):
                raise MiniftError(f"{source}: field {key!r} must be a {kind.__name__}")
        ranks: dict[bytes, int] = {}
        for rank, text in enumerate(d["ranks"]):
            try:
                token = base64.b64decode(text, validate=True)
            except (binascii.Error, TypeError, ValueError):
                raise MiniftError(f"{source}: ranks[{rank}] is not valid base64: {text!r}") from None
            if token in ranks:
                raise MiniftError(f"{source}: ranks[{rank}] repeats the token {token!r} of ranks[{ranks[token]}]")
            ranks[token] = rank
        return cls(ranks, d["pattern"], d["special_tokens"], d["name"], source=source)

    def save(self, path: str | os.PathLike) -> None:
        atomic_write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Tokenizer":
        try:
            d = json.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise MiniftError(f"{path}: tokenizer file not found") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise MiniftError(f"{path}: not a JSON file ({e})") from None
        except OSError as e:
            raise MiniftError(f"{path}: cannot read ({e.strerror})") from None
        return cls.from_dict(d, source=str(path))


def _id_list(ids) -> list[int]:
    if hasattr(ids, "tolist"):  # torch.Tensor, numpy array
        ids = ids.tolist()
    if isinstance(ids, int):
        return [ids]
    return [int(i) for i in ids]


def _check_vocabulary(ranks: dict[bytes, int], special_tokens: dict[str, int], source: str) -> None:
    """Byte-level BPE needs every byte as a token first; ids must not clash."""
    n = len(ranks)
    if sorted(ranks.values()) != list(range(n)):
        raise MiniftError(f"{source}: ranks must be numbered 0..{n - 1} without gaps")
    # Any order of the bytes is allowed: GPT-2 numbers its 256 bytes in its own order.
    first = {token for token, rank in ranks.items() if rank < 256}
    if n < 256 or first != {bytes([b]) for b in range(256)}:
        raise MiniftError(f"{source}: ranks must start with the 256 single bytes")
    if ENDOFTEXT not in special_tokens:
        raise MiniftError(f"{source}: special_tokens must include {ENDOFTEXT!r}")
    seen: dict[int, str] = {}
    for text, i in special_tokens.items():
        if not isinstance(i, int):
            raise MiniftError(f"{source}: special token {text!r} needs an integer id, got {i!r}")
        if i < n or i in seen:
            clash = f"the special token {seen[i]!r}" if i in seen else f"the ranks 0..{n - 1}"
            raise MiniftError(f"{source}: special token {text!r} has id {i}, which collides with {clash}")
        seen[i] = text


# --- GPT-2's vocabulary ---------------------------------------------------------------------
# tiktoken downloads two files once and caches them under sha1(url) in TIKTOKEN_CACHE_DIR (or
# DATA_GYM_CACHE_DIR, else <tmp>/data-gym-cache); see tiktoken/load.py. Its download has no
# timeout, so offline it could hang. minift therefore loads in a background thread and stops
# waiting after ``timeout`` seconds: reading the cache takes well under one, and a dead network
# becomes a MiniftError instead of a frozen notebook.
GPT2_FILES = ("https://openaipublic.blob.core.windows.net/gpt-2/encodings/main/vocab.bpe",
              "https://openaipublic.blob.core.windows.net/gpt-2/encodings/main/encoder.json")
_gpt2_loaded: dict = {}  # tiktoken's constructor result, kept for the life of the process


def tiktoken_cache_dir() -> str:
    """Where tiktoken keeps downloaded files ("" means caching is switched off)."""
    for var in ("TIKTOKEN_CACHE_DIR", "DATA_GYM_CACHE_DIR"):
        if var in os.environ:
            return os.environ[var]
    return os.path.join(tempfile.gettempdir(), "data-gym-cache")


def tiktoken_cache_path(url: str) -> str:
    return os.path.join(tiktoken_cache_dir(), hashlib.sha1(url.encode()).hexdigest())


def _load_gpt2(timeout: float) -> dict:
    if "gpt2" in _gpt2_loaded:
        return _gpt2_loaded["gpt2"]
    from tiktoken_ext import openai_public  # tiktoken's recipe for "gpt2": URLs, hashes, pattern

    result: dict = {}

    def load():
        try:
            result["value"] = openai_public.gpt2()
        except Exception as e:  # handed over to the waiting thread below
            result["error"] = e

    thread = threading.Thread(target=load, name="minift-gpt2-load", daemon=True)
    thread.start()
    thread.join(timeout)
    if "value" in result:
        _gpt2_loaded["gpt2"] = result["value"]
        return result["value"]
    cache = tiktoken_cache_dir()
    cached = bool(cache) and all(os.path.exists(tiktoken_cache_path(url)) for url in GPT2_FILES)
    if thread.is_alive():
        why = f"no answer within {timeout:g} s"
    else:
        text = (str(result["error"]).splitlines() or [""])[0]
        why = f"{type(result['error']).__name__}: " + (text if len(text) <= 160 else text[:160] + "...")
    where = ("are in tiktoken's cache but could not be read" if cached else
             f"are not in tiktoken's cache {cache!r}" if cache else
             "cannot be cached (TIKTOKEN_CACHE_DIR is empty)")
    raise MiniftError(f"GPT-2 tokenizer files (vocab.bpe, encoder.json) {where}, and the download failed "
                      f"({why}); run once with internet access, or set TIKTOKEN_CACHE_DIR to a folder "
                      f"holding tiktoken's cached copies")
