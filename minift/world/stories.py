"""Little stories: paragraphs of 2–6 related sentences about the same characters.

Each story kind is a plan, filled by a ``Cast`` (see ``cast.py``):

- **find**: someone goes to a place, finds something somewhere and gives it to someone.
- **buy**: someone goes to a shop, buys something (perhaps *not* something else) and gives it away.
- **lost**: someone cannot find their things; a relative finds them and gives them back.
- **pet**, **farm**, **likes**, **play**, **diary** (in the first person) and **day** (a string
  of actions): descriptions and small scenes, in which more grammar appears (there is, be +
  adjective, like + generic plural, "my brother and I", can/want/like to).

Background sentences (other people and animals nearby) are mixed in as *distractors*. The first
three kinds also record their **key event** (``Story.event``) and what follows it
(``Story.follow``): the summarization task builds its references from them, so a summary is
always derivable from the story, and never from a distractor.

Later mentions use pronouns ("He gives it to his sister") or "the" ("The cows are brown"),
which is what makes a paragraph read as one story rather than a list. ``corpus`` renders each
paragraph in *one* language, drawn independently, so English and French paragraphs are never
translations of each other. Tutorial 05 pretrains the base model on ``corpus``.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field

from minift.errors import MiniftError
from minift.world import english, french, kitchen
from minift.world.cast import ANIMAL_ACTIONS, Cast
from minift.world.grammar import NP, Clause, Sentence, both, features, generic, of, pron, speaker
from minift.world.lexicon import ADJ, ADVERBS, NOUN, OPENERS, VERB, nouns_with

RENDER = {"en": english.paragraph, "fr": french.paragraph}
SHOPS = {"market": nouns_with("fruit", "vegetable") + (NOUN["flower"], NOUN["egg"]),
         "bakery": tuple(NOUN[w] for w in ("cake", "pie", "cookie", "sandwich")),
         "shop": nouns_with("toy", "wearable", "readable", "container")}
GIFTS = ("toy", "wearable", "small", "container", "readable")
START = (None, None, None) + OPENERS          # a story starts with a time phrase 5 times in 8


def require_positive(field_name: str, n) -> None:
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise MiniftError(f"{field_name}: must be a whole number >= 1, got {n!r}")


def require_choice(field_name: str, value, allowed) -> None:
    if value not in allowed:
        raise MiniftError(f"{field_name}: unknown value {value!r}; allowed: "
                          + ", ".join(repr(a) for a in allowed))


@dataclass
class Story:
    cast: Cast
    sentences: list[Sentence] = field(default_factory=list)
    event: Clause | None = None      # the key event, hero named, with its place
    follow: Clause | None = None     # what follows it, sharing the event's subject

    def add(self, *clauses: Clause, join: str = "and") -> None:
        self.sentences.append(Sentence(clauses, join))
        self.cast.interrupted = False

    def background(self, place: NP | None, chance: float = 1.0) -> None:
        """Maybe add a distractor sentence (after which the next mention is spelled out)."""
        if self.cast.rng.random() < chance + self.cast.distract:
            self.sentences.append(self.cast.background(place))


def find_story(rng: random.Random, cast: Cast) -> Story:
    st, ref = Story(cast), cast.refer
    hero = cast.person()
    place = cast.place(("outdoor", "home", "school"), exclude=("water",))
    verb = rng.choice(("go", "be", "play"))
    st.add(Clause(hero, VERB.get(verb, verb), prep="to" if verb == "go" else "at", place=place,
                  time=rng.choice(START)))
    st.background(place, .5)
    thing = cast.thing(GIFTS, ("a", "a", "a", "num"), rng.choice((0, 1, 1, 2)), exclude=("animal",))
    prep, spot = cast.landmark(place)
    st.add(Clause(ref(hero), VERB["find"], thing, prep=prep, place=spot))
    st.background(place, .4)
    who = cast.someone_else(hero)
    give = VERB[rng.choice(("give", "show", "bring"))]
    st.add(Clause(ref(hero), give, ref(thing), to=who))
    if rng.random() < .4 and who.det != "the":
        st.add(Clause(cast.again(who), "be", adjs=(ADJ["happy"],)))
    st.event = Clause(hero, VERB["find"], thing, prep="at", place=place)
    st.follow = Clause(hero, give, pron(thing), to=who, drop_subject=True)
    return st


def buy_story(rng: random.Random, cast: Cast) -> Story:
    st, ref = Story(cast), cast.refer
    hero = cast.person()
    shop_name = rng.choice(tuple(SHOPS))
    shop = NP(NOUN[shop_name], "the", ref=cast._ref())
    st.add(Clause(hero, VERB["go"], prep="to", place=shop, time=rng.choice(START)))
    st.background(shop, .5)
    goods = SHOPS[shop_name]
    thing = cast.thing((), ("num", "num", "a", "some"), rng.choice((0, 1, 1)), noun=cast._fresh(goods))
    buy = Clause(ref(hero), VERB["buy"], thing)
    if rng.random() < .35:                         # a negated distractor: not part of the summary
        other = cast._fresh(goods)                 # "but he does not buy pears" / "pas de poires"
        st.add(buy, Clause(pron(hero), VERB["buy"], NP(other, "a", 1 if other.mass else 2),
                           negative=True), join="but")
    else:
        st.add(buy)
    if rng.random() < .3:
        st.add(Clause(hero, VERB["return"], prep="from", place=shop, time="then"))
    st.background(None, .3)
    who = cast.someone_else(hero)
    give = VERB[rng.choice(("give", "bring"))]
    st.add(Clause(ref(hero), give, ref(thing), to=who))
    st.event = Clause(hero, VERB["buy"], thing, prep="at", place=shop)
    st.follow = Clause(hero, give, pron(thing), to=who, drop_subject=True)
    return st


def lost_story(rng: random.Random, cast: Cast) -> Story:
    st, ref = Story(cast), cast.refer
    hero = cast.person()
    noun = cast._fresh(nouns_with("wearable", "toy", "small", "readable", exclude=("wild", "farm")))
    item = NP(noun, "poss", rng.choice((1, 1, 1, 2)), owner=pron(hero), ref=cast._ref())
    st.add(Clause(hero, VERB["find"], item, modal="can", negative=True, time=rng.choice(START)))
    place = cast.place(("home", "kitchen", "school"))
    st.add(Clause(ref(hero), VERB["look for"], ref(item), prep="at", place=place))
    st.background(place, .5)
    finder = cast.kin(hero) if rng.random() < .6 else cast.person()
    prep, spot = cast.landmark(place)
    st.add(Clause(finder, VERB["find"], ref(item), prep=prep, place=spot))
    st.add(Clause(ref(finder), VERB["give"], ref(item), to=hero))
    if rng.random() < .5:                          # by name: "she" would now mean the finder
        st.add(Clause(cast.again(hero), "be", adjs=(ADJ["happy"],)))
    # The summary must name the hero: "Tom's sister finds his hat", "Anna finds Tom's hat".
    if finder.det == "poss":
        named, owned = of(finder.head, hero), item
    else:
        named, owned = finder, NP(noun, "of", item.count, owner=hero, ref=item.ref)
    st.event = Clause(named, VERB["find"], owned, prep=prep, place=spot)
    st.follow = Clause(named, VERB["give"], pron(item), to=pron(hero), drop_subject=True)
    return st


def pet_story(rng: random.Random, cast: Cast) -> Story:
    st, ref = Story(cast), cast.refer
    owner = cast.person() if rng.random() < .8 else speaker()
    pet = cast.thing(("pet",), ("a",), rng.choice((0, 1, 1, 2)))
    st.add(Clause(owner, VERB["have"], pet))
    left = tuple(a for a in cast.adjectives(pet.head, 2) if all(a.kind != b.kind for b in pet.adjs))
    if left:
        st.add(Clause(ref(pet), "be", adjs=left))
    verb = rng.choice([v for v, animals in ANIMAL_ACTIONS if pet.head in animals and v != "swim"])
    prep, spot = cast.landmark(cast.place(("home",)))
    st.add(Clause(ref(pet), VERB[verb], prep=prep, place=spot,
                  adverb=ADVERBS["often"] if rng.random() < .3 else None))
    # "Il joue avec lui" would hide who plays with whom when owner and pet share a gender.
    who = cast.again(owner) if owner.head is not None and features(owner)[2] == pet.head.gender \
        else ref(owner)
    r = rng.random()
    if r < .4:
        st.add(Clause(who, VERB["feed"], ref(pet), time="every_day"))
    elif r < .7:
        st.add(Clause(who, VERB["play"], prep="with", place=ref(pet), time=rng.choice(START)))
    if rng.random() < .5:
        st.add(Clause(cast.kin(owner), VERB[rng.choice(("like", "love"))], generic(pet.head),
                      negative=rng.random() < .5))
    return st


def farm_story(rng: random.Random, cast: Cast) -> Story:
    st, ref = Story(cast), cast.refer
    farmer = NP(NOUN["farmer"], "the", ref=cast._ref()) if rng.random() < .5 else cast.person()
    herd = [cast.thing(("farm",), ("num",), 0) for _ in range(2)]
    st.add(Clause(farmer, VERB["have"], both(*herd), prep="at", place=NP(NOUN["farm"], "the")))
    colours = [a for a in cast.adjectives(herd[0].head, 3) if a.kind == "colour"]
    if colours:
        st.add(Clause(cast.again(herd[0]), "be", adjs=colours[:1]))
    st.add(Clause(ref(farmer), VERB["feed"], cast.again(herd[1]),
                  time=rng.choice(("morning", "evening", "every_day"))))
    for _ in range(rng.randrange(3)):
        st.background(NP(NOUN["farm"], "the"))
    return st


def likes_story(rng: random.Random, cast: Cast) -> Story:
    st, ref = Story(cast), cast.refer
    hero = cast.person()
    pool = nouns_with("fruit", "dish") if rng.random() < .7 else nouns_with("pet", "farm")
    a, b, c = (cast._fresh(pool) for _ in range(3))
    st.add(Clause(hero, VERB["like"], generic(a)),
           Clause(pron(hero), VERB["like"], generic(b), negative=True), join="but")
    kin = cast.kin(hero)
    st.add(Clause(kin, VERB["prefer"], generic(b if rng.random() < .5 else c)))
    if "food" in c.tags:
        place = cast.place(("outdoor", "home"), exclude=("water",))
        st.add(Clause(ref(both(hero, kin)), VERB["eat"], cast.thing((), ("num", "some"), 0, noun=c),
                      prep="at", place=place, time=rng.choice((None, "today", "then"))))
    return st


def play_story(rng: random.Random, cast: Cast) -> Story:
    st, ref = Story(cast), cast.refer
    a, b = cast.person(), cast.person()
    place = cast.place(("outdoor",), exclude=("water",))
    st.add(Clause(both(a, b), VERB["play"], prep="at", place=place, time=rng.choice(START),
                  adverb=ADVERBS["together"] if rng.random() < .3 else None))
    ball = cast.thing(("throwable",), ("a", "the"), rng.choice((0, 1)))
    st.add(Clause(a, VERB["throw"], ball), Clause(b, VERB["catch"], pron(ball)))
    st.background(place, .6)
    if rng.random() < .6:
        st.add(Clause(ref(both(a, b)), "be", adjs=(ADJ[rng.choice(("happy", "tired"))],)))
    return st


def diary_story(rng: random.Random, cast: Cast) -> Story:
    st = Story(cast)
    me = speaker()
    kin = cast.kin(me)
    place = cast.place(("outdoor",))
    st.add(Clause(both(kin, me), VERB["go"], prep="to", place=place, time=rng.choice(START)))
    prep, spot = cast.landmark(place)
    st.add(Clause(speaker(True), VERB["see"], cast.thing(("animal",), ("num", "a")), prep=prep, place=spot))
    for _ in range(rng.randrange(1, 3)):
        st.add(cast.action(rng.choice((kin, me))))
    return st


def day_story(rng: random.Random, cast: Cast) -> Story:
    st, ref = Story(cast), cast.refer
    hero = cast.person() if rng.random() < .8 else cast.worker()
    times = ["morning", "then", "evening"]
    for k in range(rng.randint(2, 4)):
        c = cast.action(hero if k == 0 else ref(hero))
        if rng.random() < .4 and times and c.verb.en != "live":
            c.time = times.pop(0)
        st.add(c)
        st.background(c.place, .2)
    return st


KINDS = {"find": find_story, "buy": buy_story, "lost": lost_story, "pet": pet_story,
         "farm": farm_story, "likes": likes_story, "play": play_story, "diary": diary_story,
         "day": day_story}
KIND_NAMES = tuple(KINDS)


def story(rng: random.Random, kind: str | None = None, distract: float = 0.0) -> Story:
    """A story of ``kind`` (random if None); ``distract`` raises the chance of each distractor."""
    cast = Cast(rng)
    cast.distract = distract
    return KINDS[kind or rng.choice(KIND_NAMES)](rng, cast)


def corpus(n_paragraphs: int, seed: int, languages=("en", "fr")) -> list[str]:
    """``n_paragraphs`` monolingual paragraphs, each in one of ``languages``, drawn independently."""
    require_positive("n_paragraphs", n_paragraphs)
    languages = tuple(languages)
    if not languages:
        raise MiniftError("languages: give at least one of 'en', 'fr'")
    for lang in languages:
        require_choice("languages", lang, tuple(RENDER))
    rng = random.Random(seed)
    out = []
    for _ in range(n_paragraphs):
        lang = rng.choice(languages)
        if rng.random() < kitchen.RECIPE_SHARE:
            sentences = kitchen.recipe(rng, rng.randint(3, 6))
        else:
            sentences = story(rng).sentences[:6]
        out.append(RENDER[lang](sentences))
    return out
