"""English: how a meaning from ``grammar.py`` becomes an English sentence.

The rules, in the order a sentence needs them:

**Plural nouns.** Add -s; add -es after s, x, z, ch, sh (boxes, watches) and after a consonant + o
(tomatoes, potatoes); consonant + y becomes -ies (cherries, babies). Irregular plurals are stored
in the lexicon: mouse/mice, child/children, man/men, woman/women, sheep/sheep, fish/fish,
goose/geese, wolf/wolves.

**a or an** depends on the *sound* of the next word, which is usually its first letter: a cat, an
apple, an old cat, a red apple. Spelling lies sometimes: "an hour", "a uniform" (kept in two
small exception lists).

**Adjectives** all go before the noun, in a fixed order: opinion, size, quality, age, shape,
colour ("a beautiful big white horse", "a small red ball").

**Verbs.** The present simple adds -s for he/she/it and a single name (Tom plays), with the same
spelling rules as plurals: watches, washes, goes, carries. "be" and "have" are irregular
(am/is/are, has). Negation needs the helper "do": "Tom does not eat apples", "they do not
play", except with "be" ("the cat is not small") and "can" ("Tom cannot swim"). "want" and
"like" take "to" before the second verb: "Anna wants to swim".

**Pronouns** change with their role: he/him, she/her, they/them, I/me, we/us; things are "it".
Possessives: my, your, his, her, its, our, their. "Tom's dog", "the farmer's dog",
"the children's ball", "the cats' ball" (only a plural ending in -s takes the bare apostrophe).

**Adverbs**: "often" goes before the verb ("Tom often plays") but after "be" ("Tom is often
in the garden"); manner adverbs follow the object ("Stir the sauce gently").

Negative "there is" uses "no": "There are no apples on the table."
Used by tutorials 05, 06, 09, 10 through ``minift.world``.
"""
from __future__ import annotations

from minift.world.grammar import NP, Clause, Sentence, features
from minift.world.lexicon import BIG_NUMBERS, NUMBERS_EN, PREPOSITIONS, TIMES, Noun

AN_WORDS = ("hour", "honest", "heir")                          # silent h: an hour
A_WORDS = ("one", "uniform", "unicorn", "university", "useful")  # "you" sound: a uniform
ADJ_ORDER = {"opinion": 0, "size": 1, "quality": 2, "age": 3, "shape": 4, "colour": 5, "mood": 6}
VOWELS = "aeiou"


def _sibilant_or_o(word: str) -> bool:
    return word.endswith(("s", "x", "z", "ch", "sh")) or (
        word.endswith("o") and len(word) > 1 and word[-2] not in VOWELS)


def plural(word: str) -> str:
    """The regular English plural: box -> boxes, cherry -> cherries, tomato -> tomatoes, cat -> cats."""
    if _sibilant_or_o(word):
        return word + "es"
    if word.endswith("y") and word[-2] not in VOWELS:
        return word[:-1] + "ies"
    return word + "s"


def third_person(verb: str) -> str:
    """he/she/it form of a base verb: play -> plays, watch -> watches, carry -> carries, have -> has."""
    if verb == "have":
        return "has"
    return plural(verb)      # the same spelling rules as for nouns: go -> goes, wash -> washes


def noun_form(noun: Noun, plural_: bool) -> str:
    if not plural_:
        return noun.en
    return noun.en_plural or plural(noun.en)


def a_or_an(next_word: str) -> str:
    w = next_word.lower()
    if w.startswith(AN_WORDS):
        return "an"
    if w.startswith(A_WORDS):
        return "a"
    return "an" if w[0] in VOWELS else "a"


def pronoun(np: NP, case: str = "subj") -> str:
    """I/me, we/us, you, he/him, she/her, it, they/them."""
    person, plural_, gender, human = features(np)
    if person == 1:
        forms = ("we", "us") if plural_ else ("I", "me")
    elif person == 2:
        forms = ("you", "you")
    elif plural_:
        forms = ("they", "them")
    elif not human:
        forms = ("it", "it")
    else:
        forms = ("he", "him") if gender == "m" else ("she", "her")
    return forms[0] if case == "subj" else forms[1]


def possessive(owner: NP) -> str:
    """my, our, your, his, her, its, their."""
    person, plural_, gender, human = features(owner)
    if person == 1:
        return "our" if plural_ else "my"
    if person == 2:
        return "your"
    if plural_:
        return "their"
    if not human:
        return "its"
    return "his" if gender == "m" else "her"


def genitive(owner: NP) -> str:
    """Tom's, the farmer's, the children's, the cats'."""
    text = noun_phrase(owner, "obj")
    if features(owner)[1] and text.endswith("s"):
        return text + "'"
    return text + "'s"


def _bare(np: NP) -> str:
    """Adjectives in English order, then the noun: "big white horses"."""
    words = [a.en for a in sorted(np.adjs, key=lambda a: ADJ_ORDER[a.kind])]
    words.append(noun_form(np.head, features(np)[1]))
    return " ".join(words)


def noun_phrase(np: NP, case: str = "subj") -> str:
    """Render a noun phrase; ``case`` is "subj" or "obj" and matters only for pronouns."""
    det = np.det
    if det == "name":
        return np.head.name
    if det == "pron":
        return pronoun(np, case)
    if det == "and":
        items = [noun_phrase(p, case) for p in np.parts]
        return ", ".join(items[:-1]) + " and " + items[-1]
    bare = _bare(np)
    if det == "the":
        return "the " + bare
    if det == "the_num":
        return f"the {NUMBERS_EN[np.count]} {bare}"
    if det == "num":
        return f"{NUMBERS_EN[np.count]} {bare}"
    if det == "a":
        if np.count > 1 or np.head.mass:
            return bare                      # "cats", "milk": no article at all
        return a_or_an(bare) + " " + bare
    if det == "generic":
        return bare
    if det == "little":
        return "a little " + bare
    if det == "poss":
        return possessive(np.owner) + " " + bare
    if det == "of":
        return genitive(np.owner) + " " + bare
    raise ValueError(f"unknown determiner {det!r}")


def place_phrase(prep: str, place: NP) -> str:
    word = place.head.at[0] if prep == "at" else PREPOSITIONS[prep][0]
    return f"{word} {noun_phrase(place, 'obj')}"


def _predicate(adjs) -> str:
    words = [a.en for a in adjs]
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def clause_text(c: Clause) -> str:
    """One clause, without capital or final full stop."""
    words = []
    if c.time:
        words.append(TIMES[c.time][0] + ",")
    person, plural_, _, _ = features(c.subject) if c.subject else (2, True, "m", True)
    third = person == 3 and not plural_
    if c.subject is not None and not c.drop_subject:
        words.append(noun_phrase(c.subject, "subj"))
    adverb = c.adverb
    if c.verb == "there_is":
        obj_plural = features(c.obj)[1]
        words += ["there", "are" if obj_plural else "is"]
        words.append("no " + _bare(c.obj) if c.negative else noun_phrase(c.obj, "obj"))
    elif c.verb == "be":
        words.append("am" if (person == 1 and not plural_) else "is" if third else "are")
        if c.negative:
            words.append("not")
        if adverb and adverb[0] == "often":
            words.append("often")
        if c.adjs:
            words.append(_predicate(c.adjs))
    else:
        head, *rest = c.verb.en.split()
        if c.modal == "can":
            words += ["cannot" if c.negative else "can", head]
        elif c.modal:                                   # "want" / "like" + to
            if c.negative:
                words += ["does" if third else "do", "not", c.modal]
            else:
                words.append(third_person(c.modal) if third else c.modal)
            words += ["to", head]
        elif c.negative:
            words += (["does" if third else "do"] if c.subject else ["do"]) + ["not", head]
        else:
            if adverb and adverb[0] == "often":
                words.append("often")
            words.append(third_person(head) if third and c.subject else head)
        obj = noun_phrase(c.obj, "obj") if c.obj is not None else None
        if "_" in rest:                                 # "let _ rest": the object goes inside
            words += [obj if w == "_" else w for w in rest]
        else:
            words += rest
            if obj:
                words.append(obj)
        if adverb and adverb[0] != "often":
            words.append(adverb[0])
        if c.to is not None:
            words += ["to", noun_phrase(c.to, "obj")]
    if c.place is not None:
        words.append(place_phrase(c.prep, c.place))
    if c.minutes:
        unit = "minute" if c.minutes == 1 else "minutes"
        words += ["for", _number(c.minutes), unit]
    return " ".join(words)


def _number(n: int) -> str:
    return NUMBERS_EN[n] if n < len(NUMBERS_EN) else BIG_NUMBERS[n][0]


JOINS = {"and": " and ", "but": ", but ", "because": " because "}


def sentence(s: Sentence) -> str:
    text = clause_text(s.clauses[0])
    for c in s.clauses[1:]:
        text += JOINS[s.join] + clause_text(c)
    return text[0].upper() + text[1:] + "."


def paragraph(sentences) -> str:
    return " ".join(sentence(s) for s in sentences)
