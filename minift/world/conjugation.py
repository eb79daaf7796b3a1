"""French verbs in the present tense: three regular patterns, a few spelling changes, and the irregulars.

The six persons, in the order every French grammar lists them (a *slot* below is this index)::

    0 je   1 tu   2 il/elle/Tom   3 nous   4 vous   5 ils/elles

The world never says "tu": "you" is always rendered "vous" (one form for one or many, and polite).

Regular patterns, written stem + ending::

    -er  (parler):  e   es  e   ons   ez    ent     je parle, nous parlons, ils parlent
    -ir  (finir):   is  is  it  issons issez issent  je choisis, nous choisissons
    -re  (vendre):  s   s   -   ons   ez    ent     il vend, vous vendez

Spelling changes of -er verbs, which keep the *sound* of the stem regular:

- ``-ger`` keeps its soft g before o by adding e: nous mang**e**ons, nous nag**e**ons;
- ``-cer`` keeps its soft c before o with a cedilla: nous lan**ç**ons, nous commen**ç**ons;
- ``e`` or ``é`` + consonant + er opens to ``è`` when the ending is silent (je, tu, il, ils):
  j'ach**è**te but nous achetons; je préf**è**re but nous préférons;
- ``appeler`` doubles the consonant instead: j'appe**ll**e, nous appelons;
- ``-yer`` turns y into i before a silent e: il netto**i**e, nous nettoyons.

Everything else (être, avoir, aller, faire, prendre, voir, vouloir, pouvoir, boire, lire…) is
irregular and listed whole. ``ouvrir`` ends in -ir but is conjugated like an -er verb (j'ouvre).

Elision is not done here: ``conjugate("aimer", 0)`` is "aime", and the renderer's elision pass
turns "je aime" into "j'aime" (see ``french.py``). Used through ``minift.world`` by every tutorial
that reads French (05, 06, 09, 10).
"""
from __future__ import annotations

PERSONS = ("je", "tu", "il", "nous", "vous", "ils")

IRREGULAR = {
    "être": "suis es est sommes êtes sont",
    "avoir": "ai as a avons avez ont",
    "aller": "vais vas va allons allez vont",
    "faire": "fais fais fait faisons faites font",
    "prendre": "prends prends prend prenons prenez prennent",
    "mettre": "mets mets met mettons mettez mettent",
    "voir": "vois vois voit voyons voyez voient",
    "vouloir": "veux veux veut voulons voulez veulent",
    "pouvoir": "peux peux peut pouvons pouvez peuvent",
    "boire": "bois bois boit buvons buvez boivent",
    "lire": "lis lis lit lisons lisez lisent",
    "écrire": "écris écris écrit écrivons écrivez écrivent",
    "peindre": "peins peins peint peignons peignez peignent",
    "dormir": "dors dors dort dormons dormez dorment",
    "courir": "cours cours court courons courez courent",
    "servir": "sers sers sert servons servez servent",
    "tenir": "tiens tiens tient tenons tenez tiennent",
    "revenir": "reviens reviens revient revenons revenez reviennent",
}
FINIR_GROUP = ("choisir", "remplir", "nourrir", "finir")   # -ir verbs with -iss- in the plural
LIKE_ER = ("ouvrir",)                                     # -ir verbs with -er endings
DOUBLING = ("appeler", "jeter")                           # double the consonant instead of è

ER_ENDINGS = ("e", "es", "e", "ons", "ez", "ent")
IR_ENDINGS = ("is", "is", "it", "issons", "issez", "issent")
RE_ENDINGS = ("s", "s", "", "ons", "ez", "ent")
SILENT = (0, 1, 2, 5)   # slots whose -er ending is a silent e: the spelling changes apply there
VOWELS = "aeiouyéèêàâîôû"

_cache: dict[tuple[str, int], str] = {}


def slot(person: int, plural: bool) -> int:
    """Paradigm slot for a subject: (1, False) -> 0 "je" ... (3, True) -> 5 "ils". "you" is always vous."""
    if person == 2:
        return 4
    return (person - 1) + (3 if plural else 0)


def conjugate(infinitive: str, person_slot: int) -> str:
    """Present-tense form of the *first word* of ``infinitive`` ("faire cuire" -> "faites" at slot 4)."""
    key = (infinitive, person_slot)
    if key not in _cache:
        _cache[key] = _conjugate(infinitive.split()[0], person_slot)
    return _cache[key]


def _conjugate(verb: str, i: int) -> str:
    if verb in IRREGULAR:
        return IRREGULAR[verb].split()[i]
    stem = verb[:-2]
    if verb in FINIR_GROUP:
        return stem + IR_ENDINGS[i]
    if verb.endswith("re"):
        return stem + RE_ENDINGS[i]
    if verb in LIKE_ER or verb.endswith("er"):
        return _er_stem(verb, stem, i) + ER_ENDINGS[i]
    raise ValueError(f"no conjugation pattern for {verb!r}")  # a lexicon bug, not a user error


def _er_stem(verb: str, stem: str, i: int) -> str:
    """Apply the -er spelling changes described in the module docstring."""
    if i == 3 and stem.endswith("g"):
        return stem + "e"                      # mangeons
    if i == 3 and stem.endswith("c"):
        return stem[:-1] + "ç"                 # lançons
    if i not in SILENT:
        return stem
    if stem.endswith("y"):
        return stem[:-1] + "i"                 # nettoie
    if verb in DOUBLING:
        return stem + stem[-1]                 # appelle
    if len(stem) >= 2 and stem[-2] in "eé" and stem[-1] not in VOWELS:
        return stem[:-2] + "è" + stem[-1]      # achète, préfère
    return stem
