"""French: how a meaning from ``grammar.py`` becomes a French sentence.

French is built in two steps. First the renderer writes the *underlying* words, as a grammar
book would list them: "je ne aime pas le orange", "il va à le marché". Then two passes fix the
surface, exactly as the spelling rules say:

1. **Elision.** je, le, la, ne, de, que lose their vowel before a word that starts with a vowel
   or a *mute* h: j'aime, l'orange, n'aime, d'Anna, qu'il, l'hôpital, l'homme. An *aspirated* h
   blocks it: le hibou (the lexicon marks those nouns). "y" counts as a vowel: il n'y a pas.
2. **Contraction.** à + le = au, à + les = aux, de + le = du, de + les = des ("au marché",
   "aux enfants", "près du lac", "le chien des voisins"). Elision comes first, so "à le
   hôpital" becomes "à l'hôpital", never "au hôpital"; but "à le hibou" becomes "au hibou".

The rules of the first step:

- **Articles agree** in gender and number: le/la/les, un/une/des. Mass nouns take the partitive
  "de + le/la" (du lait, de la soupe, de l'eau). Plural "des" becomes "de" before an adjective:
  "de petits chats".
- **Adjectives agree**: petit/petite/petits/petites. Feminine adds -e, plural adds -s (not after
  -s or -x: gris, doux; -eau takes -x: beaux). Irregular forms are stored in the lexicon:
  beau/belle, blanc/blanche, vieux/vieille, doux/douce; "marron" never changes.
- **Adjective place**: most follow the noun (colours, shapes, qualities: "un ballon rouge"); the
  *BAGS* adjectives (Beauty, Age, Goodness, Size: beau, joli, bon, mauvais, jeune, vieux, nouveau,
  petit, grand, gros) precede it: "un petit chat". Before a vowel, masculine singular beau, vieux,
  nouveau become bel, vieil, nouvel: "un vieil arbre". Two adjectives: each goes to its own side
  ("un petit ballon rouge"); two after the noun are linked by "et", the one closest to the noun in
  English staying closest in French ("une table blanche et ronde" for "a round white table").
- **Possessives agree with the thing owned**, not the owner: son chien, sa sœur, ses chats — and
  mon/ton/son replace ma/ta/sa before a vowel: "son école".
- **Nouns**: plural adds -s; -s, -x, -z do not change (souris); -eau, -au, -eu add -x (gâteaux);
  -al becomes -aux (chevaux); seven nouns in -ou add -x (hiboux).
- **Negation** wraps the conjugated verb: "ne … pas", "Tom ne mange pas". After a negation,
  un/une/des/du/de la become "de": "il ne mange pas de pomme", "il n'a pas d'eau"; "le" stays.
- **Object pronouns** go before the conjugated verb: "Tom le donne à sa sœur", "Tom ne la voit
  pas"; before the infinitive after a modal: "Anna veut le manger"; after an affirmative
  imperative, with a hyphen: "Hachez-les".
- **Adverbs** follow the conjugated verb: "Tom joue souvent", "Remuez doucement la sauce".

Verb endings are in ``conjugation.py``. Used by tutorials 05, 06, 09, 10 through ``minift.world``.
"""
from __future__ import annotations

from minift.world.conjugation import conjugate, slot
from minift.world.grammar import NP, Clause, Sentence, features
from minift.world.lexicon import BIG_NUMBERS, NOUNS, NUMBERS_FR, PREPOSITIONS, TIMES, Adjective, Noun

VOWELS = "aeiouyàâäéèêëîïôöûùüœæ"
H_ASPIRE = frozenset({n.fr for n in NOUNS if n.h_aspire} | {"hiboux", "huit", "onze",
                                                           "hacher", "hachez", "haricot", "haricots"})
ELIDED = {"je": "j'", "le": "l'", "la": "l'", "ne": "n'", "de": "d'", "que": "qu'", "me": "m'"}
CONTRACTED = {("à", "le"): "au", ("à", "les"): "aux", ("de", "le"): "du", ("de", "les"): "des"}
OU_X = ("bijou", "caillou", "chou", "genou", "hibou", "joujou", "pou")
ADJ_ORDER = {"opinion": 0, "size": 1, "quality": 2, "age": 3, "shape": 4, "colour": 5, "mood": 6}
MODALS = {"can": "pouvoir", "want": "vouloir", "like": "aimer"}
JOINS = {"and": ["et"], "but": [",", "mais"], "because": ["parce", "que"]}


def vowel_sound(word: str) -> bool:
    """Does ``word`` start with a vowel sound, so that the word before it elides?"""
    w = word.lower()
    if w[0] == "h":
        return w not in H_ASPIRE
    return w[0] in VOWELS


def noun_plural(word: str) -> str:
    if word.endswith(("s", "x", "z")):
        return word
    if word.endswith(("au", "eu")):
        return word + "x"
    if word.endswith("al"):
        return word[:-2] + "aux"
    if word in OU_X:
        return word + "x"
    return word + "s"


def noun_form(noun: Noun, plural: bool) -> str:
    if not plural:
        return noun.fr
    return noun.fr_plural or noun_plural(noun.fr)


def _adj_plural(word: str) -> str:
    if word.endswith(("s", "x")):
        return word
    return word + "x" if word.endswith("eau") else word + "s"


def adjective_form(adj: Adjective, gender: str, plural: bool, before_vowel: bool = False) -> str:
    """petit -> petite/petits/petites; beau -> bel before a vowel (masculine singular only)."""
    forms = adj.fr.split("/")
    m = forms[0]
    f = forms[1] if len(forms) > 1 else (m if m.endswith("e") else m + "e")
    if plural:
        if gender == "m":
            return forms[2] if len(forms) > 2 else _adj_plural(m)
        return forms[3] if len(forms) > 3 else _adj_plural(f)
    if gender == "f":
        return f
    return forms[4] if before_vowel and len(forms) > 4 else m


def number(n: int, gender: str) -> str:
    if n == 1:
        return "une" if gender == "f" else "un"
    return NUMBERS_FR[n] if n < len(NUMBERS_FR) else BIG_NUMBERS[n][1]


def pronoun(np: NP, case: str = "subj") -> str:
    """Subject (il), object clitic (le) or strong form after a preposition (lui)."""
    person, plural, gender, _ = features(np)
    if person == 1:
        forms = ("nous", "nous", "nous") if plural else ("je", "me", "moi")
    elif person == 2:
        forms = ("vous", "vous", "vous")
    elif plural:
        forms = ("ils", "les", "eux") if gender == "m" else ("elles", "les", "elles")
    else:
        forms = ("il", "le", "lui") if gender == "m" else ("elle", "la", "elle")
    return forms[("subj", "clitic", "strong").index(case)]


POSSESSIVES = {(1, False): ("mon", "ma", "mes"), (1, True): ("notre", "notre", "nos"),
               (2, False): ("votre", "votre", "vos"), (2, True): ("votre", "votre", "vos"),
               (3, False): ("son", "sa", "ses"), (3, True): ("leur", "leur", "leurs")}


def possessive(owner: NP, gender: str, plural: bool, next_word: str) -> str:
    person, owner_plural, _, _ = features(owner)
    m, f, pl = POSSESSIVES[(person, owner_plural)]
    if plural:
        return pl
    if gender == "f" and not vowel_sound(next_word):
        return f
    return m                                           # "son école": mon/ton/son before a vowel


def _body(np: NP, gender: str, plural: bool) -> list[str]:
    """Adjectives on both sides of the noun, agreeing with it."""
    noun = noun_form(np.head, plural)
    pre = sorted((a for a in np.adjs if a.before), key=lambda a: ADJ_ORDER[a.kind])
    post = sorted((a for a in np.adjs if not a.before), key=lambda a: -ADJ_ORDER[a.kind])
    words = []
    for i, adj in enumerate(pre):
        following = pre[i + 1].fr if i + 1 < len(pre) else noun
        words.append(adjective_form(adj, gender, plural, vowel_sound(following)))
    words.append(noun)
    post_words = [adjective_form(a, gender, plural) for a in post]
    if len(post_words) == 2:
        post_words.insert(1, "et")
    return words + post_words


def noun_phrase(np: NP, case: str = "subj", negated: bool = False) -> list[str]:
    """Underlying words of a noun phrase (before elision and contraction)."""
    det = np.det
    if det == "name":
        return [np.head.name]
    if det == "pron":
        return [pronoun(np, case)]
    if det == "and":
        words = []
        for i, part in enumerate(np.parts):
            if i:
                words.append("et" if i == len(np.parts) - 1 else ",")
            # "Mon frère et moi": a pronoun inside a coordination takes its strong form
            words += noun_phrase(part, "strong" if part.det == "pron" else case, negated)
        return words
    _, plural, gender, _ = features(np)
    body = _body(np, gender, plural)
    definite = "les" if plural else ("la" if gender == "f" else "le")
    if det in ("the", "generic"):
        return [definite] + body
    if det == "the_num":
        return ["les", number(np.count, gender)] + body
    if det == "num":
        return [number(np.count, gender)] + body
    if det == "little":
        return ["un", "peu", "de"] + body
    if det == "poss":
        return [possessive(np.owner, gender, plural, body[0])] + body
    if det == "of":
        return [definite] + body + ["de"] + noun_phrase(np.owner, "strong")
    if det == "a":
        if negated:
            return ["de"] + body                       # pas de pomme, pas d'eau
        if np.head.mass:
            return ["de", definite] + body             # partitive: du pain, de la soupe, de l'eau
        if plural:
            return ["de" if any(a.before for a in np.adjs) else "des"] + body   # de petits chats
        return ["une" if gender == "f" else "un"] + body
    raise ValueError(f"unknown determiner {det!r}")


def place_phrase(prep: str, place: NP) -> list[str]:
    word = place.head.at[1] if prep == "at" else PREPOSITIONS[prep][1]
    return word.split() + noun_phrase(place, "strong")


def clause_words(c: Clause) -> list[str]:
    """Underlying words of one clause."""
    words = []
    if c.time:
        words += [TIMES[c.time][1], ","]
    if c.subject is None:                              # imperative: the vous form, no subject
        person, plural, gender = 2, True, "m"
    else:
        person, plural, gender, _ = features(c.subject)
        if not c.drop_subject:
            words += noun_phrase(c.subject, "subj")
    i = slot(person, plural)
    ne, pas = (["ne"], ["pas"]) if c.negative else ([], [])
    adverb = c.adverb
    after_verb = [adverb[1]] if adverb and adverb[2] == "verb" else []
    if c.verb == "there_is":                           # il y a
        words += ["il"] + ne + ["y", "a"] + pas + noun_phrase(c.obj, "strong", c.negative)
    elif c.verb == "be":
        words += ne + [conjugate("être", i)] + pas + after_verb
        if c.adjs:
            forms = [adjective_form(a, gender, plural) for a in c.adjs]
            words += forms if len(forms) == 1 else [*forms[:-1], "et", forms[-1]]
    else:
        verb = c.verb.fr.split()
        clitic = [pronoun(c.obj, "clitic")] if c.obj is not None and c.obj.det == "pron" else []
        if c.modal:                                    # Anna (ne) veut (pas) le manger
            words += ne + [conjugate(MODALS[c.modal], i)] + pas + clitic + verb
        elif clitic and c.subject is None and not c.negative:
            words += [conjugate(verb[0], i) + "-" + clitic[0]] + verb[1:]    # Hachez-les
        else:
            words += ne + clitic + [conjugate(verb[0], i)] + pas + verb[1:]
        words += after_verb
        if c.obj is not None and not clitic:
            words += noun_phrase(c.obj, "strong", c.negative)
        if c.to is not None:
            if c.to.det == "pron":
                raise ValueError("a pronoun recipient needs lui/leur; the generator must not build it")
            words += ["à"] + noun_phrase(c.to, "strong")
    if adverb and adverb[2] == "end":
        words.append(adverb[1])
    if c.place is not None:
        words += place_phrase(c.prep, c.place)
    if c.minutes:
        words += ["pendant", number(c.minutes, "f"), "minute" if c.minutes == 1 else "minutes"]
    return words


def surface(words: list[str]) -> str:
    """Apply elision, then contraction, then join with the right spacing."""
    elided = []
    for k, w in enumerate(words):
        nxt = words[k + 1] if k + 1 < len(words) else ""
        elided.append(ELIDED[w] if w in ELIDED and nxt[:1].isalpha() and vowel_sound(nxt) else w)
    out = []
    for w in elided:
        if out and (out[-1], w) in CONTRACTED:
            out[-1] = CONTRACTED[(out[-1], w)]
        else:
            out.append(w)
    text = ""
    for w in out:
        if not text or text.endswith("'") or w == ",":
            text += w
        else:
            text += " " + w
    return text


def sentence(s: Sentence) -> str:
    words = clause_words(s.clauses[0])
    for c in s.clauses[1:]:
        words += JOINS[s.join] + clause_words(c)
    text = surface(words)
    return text[0].upper() + text[1:] + "."


def paragraph(sentences) -> str:
    return " ".join(sentence(s) for s in sentences)
