"""Casting: drawing people, things, places and single actions that make sense together.

A story needs a cast whose members fit: a verb's object must carry one of the verb's tags ("read"
takes a "readable" thing), an adjective must suit its noun (a "ripe" pear, never a ripe cow; a
pig may be pink, a frog only green), and an action happens in a place that suits it (one buys at
the market, swims in the lake). ``Cast`` draws all of them from one ``random.Random``, so a story
is a pure function of its seed.

``Cast`` also gives every entity an id (``NP.ref``) and avoids reusing a noun inside one story,
so that "the ball" or "it" always points at one thing — which the QA task needs for questions
with a single answer, and French needs to pick le/la.

Used by ``stories.py`` (pretraining paragraphs and task documents): tutorials 05, 06, 09, 10.
"""
from __future__ import annotations

import random

from minift.world.grammar import NP, Clause, Sentence, generic, pron
from minift.world.lexicon import (ADJECTIVES, ADVERBS, LANDMARK_PREPS, NAMES, NOUN, VERB, VERBS,
                                  Adjective, Noun, Person, nouns_with)

KIN = nouns_with("kin")
WORKERS = nouns_with("worker")
PLACES = nouns_with("place")
TRANSITIVE = tuple(v for v in VERBS if v.objects)
INTRANSITIVE = tuple(v for v in VERBS if not v.objects and v.en not in ("go", "return"))
MOTION = (VERB["go"], VERB["return"])
NO_MODAL = ("want", "like", "love", "prefer")          # "wants to want" is not a sentence
# What an animal may do on its own, and which animals do it.
ANIMAL_ACTIONS = (
    ("sleep", nouns_with("animal")), ("play", nouns_with("pet")),
    ("run", tuple(NOUN[w] for w in ("dog", "horse", "rabbit", "cat", "fox", "wolf", "mouse"))),
    ("swim", tuple(NOUN[w] for w in ("duck", "goose", "fish", "frog"))),
    ("jump", tuple(NOUN[w] for w in ("frog", "rabbit", "cat"))), ("sing", (NOUN["bird"],)),
)
SMALL_ANIMALS = tuple(n for n in nouns_with("small") if "animal" in n.tags and n.en != "fish")
CLASHES = ({"bad", "fresh"}, {"bad", "ripe"}, {"good", "bad"})   # pairs that contradict each other
_adjective_cache: dict[str, tuple[Adjective, ...]] = {}


def adjectives_for(noun: Noun, moods: bool = False) -> tuple[Adjective, ...]:
    """Adjectives that suit ``noun``; mood adjectives (happy, sad) only when asked (predicates)."""
    key = noun.en + ("+mood" if moods else "")
    if key not in _adjective_cache:
        _adjective_cache[key] = tuple(
            a for a in ADJECTIVES
            if any(t in noun.tags for t in a.applies) and (moods or a.kind != "mood")
            and (a.kind != "colour" or noun.colours is None or a.en in noun.colours)
            # "une vieille fille" is a spinster, not an old girl: no age for children
            and not (a.kind == "age" and "young" in noun.tags))
    return _adjective_cache[key]


class Cast:
    """The people and things of one story."""

    def __init__(self, rng: random.Random):
        self.rng = rng
        self.refs = 0
        self.names: list = []
        self.used: list[Noun] = []
        self.interrupted = False     # a background sentence just came: pronouns would be unclear
        self.distract = 0.0          # added to every distractor's chance (summarization wants some)

    def _ref(self) -> int:
        self.refs += 1
        return self.refs

    def _fresh(self, pool) -> Noun:
        """A noun not used yet in this story (falls back to any if the pool is exhausted)."""
        fresh = [n for n in pool if n not in self.used]
        noun = self.rng.choice(fresh or pool)
        self.used.append(noun)
        return noun

    def person(self, gender: str | None = None) -> NP:
        pool = [p for p in NAMES if p not in self.names and gender in (None, p.gender)]
        who = self.rng.choice(pool)
        self.names.append(who)
        return NP(who, "name", ref=self._ref())

    def kin(self, owner: NP) -> NP:
        """"his sister", "my grandfather": a relative of ``owner``."""
        return NP(self._fresh(KIN), "poss", owner=pron(owner), ref=self._ref())

    def again(self, np: NP) -> NP:
        """A full second mention: "Tom", "his hat", "the cows" ("the ten sheep": "the sheep" is unclear)."""
        if np.det in ("name", "and"):
            return np
        if np.det == "poss" and np.owner.det == "pron" and isinstance(np.owner.head, Person):
            # after a distractor "his hat" could be anyone's: "Tom's hat" / "le chapeau de Tom"
            return NP(np.head, "of", np.count, owner=NP(np.owner.head, "name"), ref=np.ref)
        if np.det in ("poss", "of"):
            return NP(np.head, np.det, np.count, owner=np.owner, ref=np.ref)
        invariant = np.count > 1 and np.head.en_plural == np.head.en
        return NP(np.head, "the_num" if invariant else "the", np.count, ref=np.ref)

    def refer(self, np: NP) -> NP:
        """A pronoun for ``np``, unless a distractor came in between: then say it again in full."""
        return self.again(np) if self.interrupted else pron(np)

    def worker(self) -> NP:
        return NP(self._fresh(WORKERS), "the", ref=self._ref())

    def adjectives(self, noun: Noun, how_many: int) -> tuple[Adjective, ...]:
        """Up to ``how_many`` suitable adjectives, each of a different kind (never "small big").

        Two BAGS adjectives in a row are idiomatic only as beauty + size ("une jolie petite
        maison"); other pairs keep at most one of them ("un petit manteau rouge").
        """
        chosen: list[Adjective] = []
        pool = adjectives_for(noun)
        for adj in self.rng.sample(pool, min(how_many + 2, len(pool))):
            if len(chosen) == how_many or any(adj.kind == c.kind for c in chosen):
                continue
            if chosen and adj.before and chosen[0].before and \
                    {adj.kind, chosen[0].kind} != {"opinion", "size"}:
                continue
            if chosen and {adj.en, chosen[0].en} in CLASHES:
                continue
            chosen.append(adj)
        return tuple(chosen)

    def thing(self, tags, dets=("a", "a", "a", "num", "the", "some"), adjs: int | None = None,
              noun: Noun | None = None, exclude: tuple[str, ...] = ()) -> NP:
        """A noun phrase for an object: "a red ball", "three small cats", "the old horse", "milk"."""
        rng = self.rng
        noun = noun or self._fresh(nouns_with(*tags, exclude=("kin",) + exclude))   # kin: "his sister"
        det = rng.choice(dets)
        count = 1
        if noun.mass:
            det = "a" if det in ("num", "some") else det
        elif det == "num":
            count = rng.randint(2, 10)
        elif det == "some":
            det, count = "a", 2                       # plural without a number: "apples" / "des pommes"
        elif det == "the":
            count = rng.choice((1, 1, 2))
        if noun.en_plural == noun.en and det in ("the", "a") and not noun.mass:
            # "the sheep" could be one or many, and French must choose: say how many
            det, count = ("the_num", rng.randint(2, 4)) if det == "the" else ("a", 1)
        if adjs is None:
            adjs = rng.choice((0, 0, 0, 1, 1, 2))
        return NP(noun, det, count, self.adjectives(noun, adjs), ref=self._ref())

    def place(self, tags=("place",), exclude=()) -> NP:
        pool = [p for p in PLACES if any(t in p.tags for t in tags)
                and not any(t in p.tags for t in exclude)] or list(PLACES)
        return NP(self._fresh(pool), "the", ref=self._ref())

    def landmark(self, place: NP | None) -> tuple[str, NP]:
        """A spot to put things, fitting the place: ("under", the tree) or ("on", the table)."""
        tags = place.head.tags if place is not None else ("outdoor",)
        if "indoor" in tags or "shop" in tags:
            words = ("table", "chair", "door", "window") + (("bed",) if "home" in tags else ())
        else:
            words = ("tree", "bench")
        noun = NOUN[self.rng.choice(words)]
        return self.rng.choice(LANDMARK_PREPS[noun.en]), NP(noun, "the", ref=self._ref())

    def someone_else(self, subject: NP | None) -> NP:
        """A recipient, never a pronoun: "his sister", "Anna", "the teacher", "the children"."""
        r = self.rng.random()
        if r < 0.4 and subject is not None and subject.det in ("name", "pron"):
            return self.kin(subject)
        if r < 0.75:
            return self.person()
        if r < 0.9:
            return self.worker()
        return NP(NOUN["child"], "the", 2, ref=self._ref())

    def action(self, subject: NP, negative_ok: bool = True, modal_ok: bool = True) -> Clause:
        """One plausible thing ``subject`` does: a verb with a fitting object, recipient and place."""
        rng = self.rng
        r = rng.random()
        verb = rng.choice(TRANSITIVE if r < .62 else INTRANSITIVE if r < .88 else MOTION)
        c = Clause(subject, verb)
        if verb in MOTION:
            c.prep, c.place = ("to" if verb.en == "go" else "from"), self.place()
            return c
        if verb.generic:
            c.obj = generic(self._fresh(nouns_with(*verb.objects, exclude=("person",))))
        elif "person" in verb.objects and rng.random() < .5:
            c.obj = self.someone_else(subject)        # "waits for his sister", "helps Anna"
        elif verb.objects and not (verb.intransitive and rng.random() < .25):
            c.obj = self.thing(verb.objects)
        if verb.recipient:
            c.to = self.someone_else(subject)
        if verb.where and (verb.en == "live" or rng.random() < .45):     # "lives" needs a where
            c.prep, c.place = "at", self.place(verb.where, () if "water" in verb.where else ("water",))
        if negative_ok and rng.random() < .15 and (c.obj is None or c.obj.det in ("a", "the", "generic")):
            c.negative = True
        if modal_ok and verb.en not in NO_MODAL and rng.random() < .1:
            c.modal = rng.choice(("can", "want", "like"))
        elif c.negative:
            pass                                      # "does not run slowly" reads oddly: no adverb
        elif verb.manner and rng.random() < .35:
            c.adverb = ADVERBS[rng.choice(verb.manner)]
        elif verb.intransitive and verb.en != "live" and rng.random() < .08:
            c.adverb = ADVERBS["often"]
        return c

    def background(self, place: NP | None) -> Sentence:
        """A distractor: something else happening around the story, about other entities."""
        rng = self.rng
        self.interrupted = True
        kind = rng.randrange(4)
        if kind == 0:                                    # A cat sleeps under the bench.
            tags = place.head.tags if place is not None else ("outdoor",)
            if "outdoor" in tags:                        # swimming needs water; indoors, only pets
                options = [(v, a) for v, a in ANIMAL_ACTIONS if v != "swim" or "water" in tags]
            else:
                options = [(v, tuple(n for n in a if "pet" in n.tags)) for v, a in ANIMAL_ACTIONS
                           if v in ("sleep", "play")]
            verb, animals = rng.choice(options)
            animal = self.thing((), ("a", "a", "num"), noun=self._fresh(animals))
            prep, spot = self.landmark(place)
            return Sentence((Clause(animal, VERB[verb], prep=prep, place=spot),))
        if kind == 1:                                    # There are three books on the table.
            prep, spot = self.landmark(place)
            if spot.head.en in ("tree", "bench"):         # small animals only: no cows on benches
                thing = self.thing((), ("a", "num", "num"), noun=self._fresh(SMALL_ANIMALS))
            else:
                thing = self.thing(("readable", "container", "toy"), ("a", "num", "num"))
            return Sentence((Clause(None, "there_is", thing, prep=prep, place=spot),))
        if kind == 2 and place is not None and adjectives_for(place.head):   # The garden is big.
            return Sentence((Clause(NP(place.head, "the", ref=place.ref), "be",
                                    adjs=self.adjectives(place.head, rng.choice((1, 1, 2)))),))
        other = self.person() if rng.random() < .7 else self.worker()
        return Sentence((self.action(other),))
