"""Exercise: one BPE merge (Lesson 01, "Tokenization").

Write ``merge_pair(word, a, b)``: the rewrite at the heart of each merge step of BPE training.
``train_bpe`` picks the most frequent neighbouring pair ``(a, b)``, gives ``a + b`` the next rank,
and then rewrites every word that holds the pair with this function.

Inputs: ``word``, a list of tokens, each a ``bytes`` object (``[b"h", b"e", b"l", b"l", b"o"]``, or
after some merges ``[b"he", b"ll", b"o"]``); ``a``, ``b``: the two tokens of the pair (bytes).
Return a new list in which each occurrence of ``a`` directly followed by ``b`` is replaced by the
one token ``a + b``, scanning left to right: a token used by one merge is not used again, so
``merge_pair([b"a", b"a", b"a"], b"a", b"a")`` is ``[b"aa", b"a"]``. Match tokens, not bytes:
``[b"a", b"bc"]`` holds no pair ``(b"ab", b"c")``, although the bytes are the same. Leave ``word``
itself unchanged (``train_bpe`` still reads the old word to update its pair counts).

It must equal ``minift.tokenizer.merge_pair``; the grader also runs ``train_bpe`` with your function
in place of minift's and compares the vocabularies learned.

Grade it: ``minift grade bpe_merge`` (add ``--path DIR`` if this file is elsewhere).
"""


def merge_pair(word, a, b):
    """Replace each a, b in word (a list of bytes) by a + b, left to right; return a new list."""
    raise NotImplementedError("write merge_pair: walk the word left to right, emit a + b where a is followed "
                              "by b (and skip both), else the token itself")
