"""The three fine-tuning tasks, drawn from the world: translation, summarization, question answering.

``examples(task, n, seed, split, subset)`` returns ``n`` dicts:

- **translation** ``{"source": English, "target": French, "subset": ...}``, one to three
  sentences. ``"general"`` is the world of the stories; ``"kitchen"`` is a narrow domain of recipe
  instructions whose words occur nowhere in "general" (see ``kitchen.py``). The default mix is
  90 % general, 10 % kitchen.
- **summarization** ``{"document": story, "summary": ..., "subset": ...}``: an English story of
  3–6 sentences (a key event and at least one distractor). ``"headline"`` summaries are the key
  event in Title Case without a full stop ("Tom Finds A Red Ball In The Garden");
  ``"sentence"`` summaries are one plain sentence that also says what happened next ("Tom finds
  a red ball in the garden and gives it to his sister.").
- **qa** ``{"context", "question", "answer", "subset": kind}``: extractive, the answer is an exact
  substring of the context; kinds are who, what, where, how_many, colour (see ``questions.py``).

**Splits without leakage.** Each example's split is decided by a hash of its *input* — the
source, the document, or the QA context — not by its position in the list::

    bucket = first 4 bytes of sha1(input) as an integer, mod 10
    0–7: "train"   8: "val"   9: "test"

The generator draws examples from one seeded stream and keeps those that fall in the requested
split, until it has ``n``. So a given input text lands in one split only, whatever the seed or
``n``: the model is never tested on a sentence it trained on. (For QA the hash covers the context
alone, which is stricter than context + question: no passage is shared between splits at all.)
Python's built-in ``hash`` of a string changes from one run to the next, so sha1 is used; and
the random stream is ``random.Random`` seeded with an integer derived from sha256 of
(task, seed), so the same call gives the same examples on any machine.

Lengths are bounded for a model with a 256-token context: translation sources ≤ 45 words,
documents ≤ 90, QA contexts ≤ 70. Used by tutorials 06 (full fine-tuning), 09 (hybrid schedule)
and 10 (evaluation).
"""
from __future__ import annotations

import hashlib
import random

from minift.world import english, french, kitchen
from minift.world.cast import Cast
from minift.world.grammar import NP, Sentence, features, hearer, speaker
from minift.world.lexicon import OPENERS
from minift.world.questions import KINDS as QA_KINDS, candidates
from minift.world.stories import story, require_choice, require_positive

TASKS = ("translation", "summarization", "qa")
SUBSETS: dict[str, tuple[str, ...]] = {
    "translation": ("general", "kitchen"),
    "summarization": ("headline", "sentence"),
    "qa": QA_KINDS,
}
DEFAULT_MIX = {"translation": ("general",) * 9 + ("kitchen",),    # 90 % / 10 %
               "summarization": SUBSETS["summarization"], "qa": QA_KINDS}
SPLITS = ("train", "val", "test")
MAX_WORDS = {"translation": 45, "summarization": 90, "qa": 70}


def split_of(text: str) -> str:
    """The split an input text belongs to, forever: 80 % train, 10 % val, 10 % test."""
    bucket = int.from_bytes(hashlib.sha1(text.encode("utf-8")).digest()[:4], "big") % 10
    return "train" if bucket < 8 else "val" if bucket == 8 else "test"


def _stream(task: str, seed: int) -> random.Random:
    digest = hashlib.sha256(f"minift.world/{task}/{seed}".encode("utf-8")).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


# ----- translation -----

def _needs_antecedent(np: NP) -> bool:
    """"it" and "they" decide French il/elle, le/la, ils/elles only through what they refer to."""
    if np.det != "pron" or (np.head is None and not np.parts):
        return False
    person, plural, _, human = features(np)
    return person == 3 and (plural or not human)        # "we" and "you" need nothing


def self_contained(sentences: list[Sentence]) -> bool:
    """True if every "it"/"they" in ``sentences`` points at something mentioned before it there."""
    seen: set[int] = set()
    for s in sentences:
        for c in s.clauses:
            for np in (c.subject, c.obj, c.to, c.place):
                if np is None:
                    continue
                if _needs_antecedent(np):
                    refs = [p.ref for p in np.parts] if np.parts else [np.ref]
                    if not all(r and r in seen for r in refs):
                        return False
                seen.add(np.ref)
                seen.update(p.ref for p in np.parts)
    return True


def _one_sentence(rng: random.Random) -> list[Sentence]:
    """A standalone sentence: someone (Tom, a man, the doctor, I, you, my sister) does something."""
    cast = Cast(rng)
    r = rng.random()
    subject = (cast.person() if r < .45 else cast.worker() if r < .55
               else cast.thing(("person",), ("a", "the", "num")) if r < .7
               else speaker(rng.random() < .4) if r < .85 else hearer() if r < .93
               else cast.kin(speaker()))
    first = cast.action(subject)
    if rng.random() < .25:
        first.time = rng.choice(OPENERS)
    if rng.random() < .2:
        second = cast.action(subject)
        second.drop_subject, second.time = True, None
        return [Sentence((first, second), "and")]
    return [Sentence((first,))]


def _translation(rng: random.Random, subset: str) -> dict | None:
    if subset == "kitchen":
        sentences = kitchen.recipe(rng, rng.choice((1, 2, 2, 3)))
    elif rng.random() < .4:
        sentences = _one_sentence(rng)
    else:
        told = story(rng).sentences
        k = min(rng.choice((1, 2, 2, 3)), len(told))
        # A lone sentence must say something ("He is happy." alone would repeat a lot).
        starts = [i for i in range(len(told) - k + 1) if self_contained(told[i:i + k])
                  and (k > 1 or len(english.sentence(told[i]).split()) >= 5)] or [0]
        i = rng.choice(starts)
        sentences = told[i:i + k]
    source = english.paragraph(sentences)
    if len(source.split()) > MAX_WORDS["translation"]:
        return None
    return {"source": source, "target": french.paragraph(sentences), "subset": subset}


# ----- summarization -----

def headline(text: str) -> str:
    """Title Case, no full stop: "Tom finds a red ball" -> "Tom Finds A Red Ball"."""
    return " ".join(w[:1].upper() + w[1:] for w in text.split())


def _summarization(rng: random.Random, subset: str) -> dict | None:
    told = story(rng, rng.choice(("find", "buy", "lost")), distract=.5)
    document = english.paragraph(told.sentences)
    if len(told.sentences) > 6 or len(document.split()) > MAX_WORDS["summarization"]:
        return None
    if subset == "headline":
        summary = headline(english.clause_text(told.event))
    else:
        summary = english.sentence(Sentence((told.event, told.follow), "and"))
    return {"document": document, "summary": summary, "subset": subset}


# ----- question answering -----

def _qa(rng: random.Random, subset: str) -> dict | None:
    sentences = story(rng).sentences[:5]
    context = english.paragraph(sentences)
    if len(context.split()) > MAX_WORDS["qa"]:
        return None
    pairs = candidates([c for s in sentences for c in s.clauses], context, subset)
    if not pairs:
        return None
    question, answer = rng.choice(pairs)
    return {"context": context, "question": question, "answer": answer, "subset": subset}


MAKERS = {"translation": _translation, "summarization": _summarization, "qa": _qa}
INPUT = {"translation": "source", "summarization": "document", "qa": "context"}


def examples(task: str, n: int, seed: int = 0, split: str = "train",
             subset: str | None = None) -> list[dict]:
    """``n`` examples of ``task`` in ``split``; ``subset=None`` draws the task's default mix."""
    require_choice("task", task, TASKS)
    require_positive("n", n)
    require_choice("split", split, SPLITS)
    if subset is not None:
        require_choice(f"subset (for task {task!r})", subset, SUBSETS[task])
    rng = _stream(task if subset is None else f"{task}/{subset}", seed)
    out: list[dict] = []
    for _ in range(1000 + 200 * n):             # each try lands in the split 1 time in 10 or more
        chosen = subset or rng.choice(DEFAULT_MIX[task])
        example = MAKERS[task](rng, chosen)
        if example is not None and split_of(example[INPUT[task]]) == split:
            out.append(example)
            if len(out) == n:
                return out
    raise RuntimeError(f"could not draw {n} {task} examples for split {split!r}")  # a generator bug
