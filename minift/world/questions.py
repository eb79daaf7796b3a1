"""Extractive questions about a story: who, what, where, how many, what colour.

A question is read off one clause of the passage, and its answer is a piece of that clause's
English rendering, so the answer is always an exact substring of the context and exact match
(EM) and token F1 are meaningful (tutorial 10)::

    context:  "Tom goes to the market. He buys three red apples. He gives them to his sister."
    who       Who buys three red apples?            -> Tom           (through "He")
    what      What does Tom give to his sister?     -> ... (skipped: the object is "them")
    what      What does Tom buy?                    -> three red apples
    where     Where does Tom go?                    -> to the market
    how_many  How many apples does Tom buy?         -> three
    colour    What colour are the apples?           -> red

A question is asked only if it has one answer. Pronouns and "the …" are resolved to the entity
they point at (``NP.ref``); a clause is skipped when another clause says the same kind of thing
(two people buying apples, Tom finding two things), when it is negated or only wished ("Tom
cannot find his hat" asserts nothing), or when the answer would exceed four words. Negated
clauses stay in the context as distractors: "Tom likes apples, but he does not like pears" —
What does Tom like? -> apples.
"""
from __future__ import annotations

from minift.world import english
from minift.world.grammar import NP, Clause, clause_noun_phrases, features, verb_key
from minift.world.lexicon import NUMBERS_EN, Person

KINDS = ("who", "what", "where", "how_many", "colour")
WHO = NP(Person("who", "m"), "name")          # renders as "who" and agrees like "he"
PLACE_PREPS = ("at", "under", "near", "on", "behind", "in", "to")


def _definite(np: NP) -> NP:
    """How a question names an entity: "the ball", "the two sheep", "Tom's hat", "Tom"."""
    if np.det == "pron" and isinstance(np.head, Person):
        return NP(np.head, "name")
    if np.det == "and":
        parts = tuple(_definite(p) for p in np.parts)
        return None if None in parts else NP(None, "and", np.count, parts=parts)
    if np.head is None:
        return None                                    # I, we, you: not asked about
    if np.det in ("poss", "of"):
        owner = np.owner
        if owner.det == "pron" and isinstance(owner.head, Person):
            return NP(np.head, "of", np.count, owner=NP(owner.head, "name"))
        return np if np.det == "of" else None          # "my sister": the owner has no name
    if np.det in ("name", "generic"):
        return np
    invariant = np.count > 1 and np.head.en_plural == np.head.en
    return NP(np.head, "the_num" if invariant else "the", np.count)


def _asked(np: NP | None) -> str | None:
    if np is None:
        return None
    named = _definite(np)
    return None if named is None else english.noun_phrase(named, "obj")


def _predicate(c: Clause, obj: str | None) -> str:
    """Base verb, particle and object, then recipient and nothing else: "give the ball to Anna"."""
    head, *rest = c.verb.en.split()
    words = [head] + rest + ([obj] if obj else [])
    if c.to is not None:
        words += ["to", english.noun_phrase(c.to, "obj")]
    return " ".join(words)


def _aux_question(wh: str, c: Clause, obj: str | None, tail: str = "") -> str | None:
    """"What does Tom buy?", "Where do Tom and Anna play?"."""
    subject = _asked(c.subject)
    if subject is None:
        return None
    aux = "do" if features(c.subject)[1] else "does"
    return f"{wh} {aux} {subject} {_predicate(c, obj)}{tail}?"


def candidates(clauses: list[Clause], context: str, kind: str) -> list[tuple[str, str]]:
    """All (question, answer) pairs of ``kind`` with a single answer in this passage."""
    facts = [c for c in clauses if not c.negative and not c.modal and c.subject is not None
             or c.verb == "there_is" and not c.negative]
    # How many different entities each noun names here, and which (subject, verb) pairs repeat.
    entities: dict[str, set[int]] = {}
    for c in clauses:
        for np in clause_noun_phrases(c):
            if np.head is not None and not isinstance(np.head, Person) and np.det != "generic":
                entities.setdefault(np.head.en, set()).add(np.ref or -id(np))
    said: dict[tuple, int] = {}
    for c in facts:
        key = (c.subject.ref if c.subject is not None else 0, verb_key(c))
        said[key] = said.get(key, 0) + 1

    def single(np: NP) -> bool:
        if np.head is None:                            # "two cows and three pigs": not one thing
            return False
        return isinstance(np.head, Person) or len(entities.get(np.head.en, ())) == 1

    out = []
    for c in facts:
        verb = verb_key(c)
        unique_pair = said[(c.subject.ref if c.subject is not None else 0, verb)] == 1
        qa = None
        if kind == "who" and verb not in ("be", "there_is") and c.subject.det in ("name", "pron") \
                and isinstance(c.subject.head, Person) and c.obj is not None and c.obj.det != "pron":
            same = [d for d in facts if verb_key(d) == verb and d.obj is not None
                    and d.obj.head is c.obj.head]
            if len(same) == 1:
                text = english.clause_text(Clause(WHO, c.verb, c.obj, to=c.to))
                qa = (text[0].upper() + text[1:] + "?", c.subject.head.name)
        elif kind == "what" and c.obj is not None and c.obj.det != "pron" and unique_pair \
                and verb not in ("be", "there_is"):
            qa = (_aux_question("What", c, None), english.noun_phrase(c.obj, "obj"))
        elif kind == "where" and c.place is not None and c.prep in PLACE_PREPS and unique_pair:
            answer = english.place_phrase(c.prep, c.place)
            if verb == "there_is" and single(c.obj):
                thing = _asked(c.obj)
                qa = (f"Where {'are' if features(c.obj)[1] else 'is'} {thing}?", answer)
            elif verb == "be" and not c.adjs:
                subject = _asked(c.subject)
                if subject:
                    qa = (f"Where {'are' if features(c.subject)[1] else 'is'} {subject}?", answer)
            elif verb not in ("be", "there_is") and (c.obj is None or c.obj.det == "pron" or single(c.obj)):
                qa = _aux_question("Where", c, _asked(c.obj)), answer
        elif kind == "how_many" and c.obj is not None:
            for part in (c.obj.parts or (c.obj,)):
                if part.det in ("num", "the_num") and single(part):
                    noun = english.noun_form(part.head, True)
                    if verb == "there_is":
                        where = " " + english.place_phrase(c.prep, c.place) if c.place else ""
                        qa = (f"How many {noun} are there{where}?", NUMBERS_EN[part.count])
                    elif verb != "be" and unique_pair:
                        q = _aux_question(f"How many {noun}", c, None)
                        qa = (q, NUMBERS_EN[part.count]) if q else None
                    if qa:
                        out.append(qa)
                        qa = None
        elif kind == "colour":
            if verb == "be" and c.subject.head is not None and not isinstance(c.subject.head, Person):
                shown = [(c.subject, a) for a in c.adjs if a.kind == "colour"]
            else:
                shown = [(np, a) for np in (c.obj, c.subject) if np is not None and np.det != "and"
                         for a in np.adjs if a.kind == "colour"]
            for np, adj in shown:
                thing = _asked(np)
                if thing and np.head is not None and single(np):
                    out.append((f"What colour {'are' if features(np)[1] else 'is'} {thing}?", adj.en))
        if qa and qa[0]:
            out.append(qa)
    # Keep only short answers that really are in the context, each question once.
    seen, result = set(), []
    for q, a in out:
        if q not in seen and a in context and len(a.split()) <= 4:
            seen.add(q)
            result.append((q, a))
    return result
