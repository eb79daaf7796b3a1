"""What a sentence *means*, before it has words in any language.

The world is generated twice removed from text. A story generator (``stories.py``) decides *who
does what to what, where*; it builds the small structures below. Then ``english.py`` and
``french.py`` each turn the same structure into a sentence, following their own rules. This is
why a translation pair is always exact: both sides are readings of one meaning.

A **noun phrase** (``NP``) names a person or a thing. Its ``det`` says how it is determined::

    det        English                 French                 note
    "name"     Tom                     Tom
    "the"      the cat / the cats      le chat / les chats
    "the_num"  the three cats          les trois chats
    "a"        a cat / cats / milk     un chat / des chats / du lait   (count 1 / many / mass)
    "num"      three cats              trois chats
    "generic"  cats / milk             les chats / le lait    after like, love, prefer
    "little"   a little sugar          un peu de sucre        mass nouns only
    "poss"     his cat                 son chat               owner = the NP who owns it
    "of"       Tom's cat               le chat de Tom
    "pron"     he / it / they          il / elle / ils        refers back to ``head``
    "and"      Tom and Anna            Tom et Anna            the members are in ``parts``

A **clause** is one verb with its subject, object, recipient ("to his sister"), place, and
optional negation, modal ("can", "want to", "like to"), adverb and fronted time phrase. A
clause without a subject is an imperative ("Stir the sauce."). A **sentence** is one clause, or
two joined by "and", "but" or "because"; with ``drop_subject`` the second one shares the first
one's subject ("Tom finds a ball and gives it to his sister").

Agreement needs four *features* of the subject, computed by ``features``: person (1, 2, 3),
number (singular/plural), gender (French "m"/"f"; a group is feminine only if all its members
are) and whether it is human (English "he"/"she" versus "it").

Entities have an id (``ref``) so that a story can tell two cats apart; the QA task uses it to ask
only questions that have one answer. Used by tutorials 05, 06, 09, 10 through ``minift.world``.
"""
from __future__ import annotations

from dataclasses import dataclass

from minift.world.lexicon import ADJ, ADVERBS, NAME, NOUN, VERB, Adjective, Noun, Person, Verb


@dataclass(slots=True)
class NP:
    head: Person | Noun | None = None
    det: str = "the"
    count: int = 1                       # how many; > 1 is plural (mass nouns stay singular)
    adjs: tuple[Adjective, ...] = ()
    owner: NP | None = None              # who owns it, for det "poss" and "of"
    person: int = 3                      # 1 or 2 for pronouns of the speaker/hearer (head None)
    parts: tuple[NP, ...] = ()           # members of a coordination (det "and")
    ref: int = 0                         # entity id shared by all mentions (0: untracked)


@dataclass(slots=True)
class Clause:
    subject: NP | None                   # None: an imperative ("Add the salt.")
    verb: Verb | str                     # a lexicon Verb, or "be" / "there_is"
    obj: NP | None = None
    to: NP | None = None                 # recipient: "to his sister" / "à sa sœur"
    prep: str | None = None              # a key of PREPOSITIONS, or "at" (the place's own)
    place: NP | None = None
    adjs: tuple[Adjective, ...] = ()     # after "be": "The cat is small and black."
    modal: str | None = None             # "can" | "want" | "like"
    negative: bool = False
    adverb: tuple[str, str, str] | None = None   # (English, French, French position), see ADVERBS
    time: str | None = None              # a key of TIMES, fronted: "In the morning, ..."
    minutes: int | None = None           # "for five minutes" (recipes)
    drop_subject: bool = False           # second half of "X and Y" with a shared subject


@dataclass(slots=True)
class Sentence:
    clauses: tuple[Clause, ...]
    join: str = "and"                    # "and" | "but" | "because": how clause 2 attaches


def features(np: NP) -> tuple[int, bool, str, bool]:
    """(person, plural, gender, human) of a noun phrase, the facts that agreement needs."""
    if np.parts:                         # "Tom and Anna", or "they" standing for them
        gender = "f" if all(features(p)[2] == "f" for p in np.parts) else "m"
        return min(features(p)[0] for p in np.parts), True, gender, any(features(p)[3] for p in np.parts)
    head = np.head
    if head is None:                     # I / we / you: gender unknown, the generator avoids needing it
        return np.person, np.count > 1, "m", True
    if isinstance(head, Person):
        return 3, False, head.gender, True
    return 3, np.count > 1 and not head.mass, head.gender, "person" in head.tags


# ----- small constructors, so that stories and tests read like the sentences they build -----

def _noun(noun: Noun | str) -> Noun:
    return NOUN[noun] if isinstance(noun, str) else noun


def _adjs(adjs) -> tuple[Adjective, ...]:
    return tuple(ADJ[a] if isinstance(a, str) else a for a in adjs)


def name(person: Person | str, ref: int = 0) -> NP:
    return NP(NAME[person] if isinstance(person, str) else person, "name", ref=ref)


def the(noun, count: int = 1, *adjs, ref: int = 0) -> NP:
    return NP(_noun(noun), "the", count, _adjs(adjs), ref=ref)


def a(noun, count: int = 1, *adjs, ref: int = 0) -> NP:
    return NP(_noun(noun), "a", count, _adjs(adjs), ref=ref)


def num(noun, count: int, *adjs, ref: int = 0) -> NP:
    return NP(_noun(noun), "num", count, _adjs(adjs), ref=ref)


def generic(noun) -> NP:
    noun = _noun(noun)
    return NP(noun, "generic", 1 if noun.mass else 2)


def poss(noun, owner: NP, count: int = 1, *adjs, ref: int = 0) -> NP:
    return NP(_noun(noun), "poss", count, _adjs(adjs), owner=owner, ref=ref)


def of(noun, owner: NP, count: int = 1, *adjs, ref: int = 0) -> NP:
    return NP(_noun(noun), "of", count, _adjs(adjs), owner=owner, ref=ref)


def pron(np: NP) -> NP:
    """The pronoun for an earlier mention: he/she/it/they, il/elle/ils/elles, le/la/les."""
    if np.det == "and":
        return NP(None, "pron", 2, parts=np.parts, ref=np.ref)
    if np.head is None:
        return np
    return NP(np.head, "pron", np.count, ref=np.ref)


def speaker(plural: bool = False) -> NP:
    """I / we."""
    return NP(None, "pron", 2 if plural else 1, person=1)


def hearer() -> NP:
    """you (always "vous" in French)."""
    return NP(None, "pron", 1, person=2)


def both(*nps: NP) -> NP:
    return NP(None, "and", len(nps), parts=tuple(nps))


def clause(subject: NP | None, verb: Verb | str, obj: NP | None = None, **kw) -> Clause:
    if isinstance(verb, str) and verb not in ("be", "there_is"):
        verb = VERB[verb]
    if "adjs" in kw:
        kw["adjs"] = _adjs(kw["adjs"])
    if isinstance(kw.get("adverb"), str):
        kw["adverb"] = ADVERBS[kw["adverb"]]
    return Clause(subject, verb, obj, **kw)


def verb_key(c: Clause) -> str:
    return c.verb if isinstance(c.verb, str) else c.verb.en


def noun_phrases(np: NP | None):
    """Every noun phrase inside ``np``, itself included (owners and coordinated members too)."""
    if np is None:
        return
    yield np
    yield from noun_phrases(np.owner)
    for part in np.parts:
        yield from noun_phrases(part)


def clause_noun_phrases(c: Clause):
    for np in (c.subject, c.obj, c.to, c.place):
        yield from noun_phrases(np)
