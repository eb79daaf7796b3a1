"""The words of the toy world: who lives there, what they own, eat and do, in English and French.

A tiny GPT (4 layers, width 128, ~1024 BPE tokens) can only learn a language whose vocabulary is
small, so the world is built from a bounded list of *lemmas* (dictionary words): about 200 per
language, counting nouns, adjectives, verbs, numbers and adverbs (names and little function words
such as "the" or "de" come on top). What makes thousands of distinct sentences is not the number
of words but the ways they combine: a name, a verb, an object with up to two adjectives and a
number, a place, a negation.

Each entry stores only what cannot be computed. English and French plurals, French feminine
adjectives and verb endings follow rules written out in ``english.py``, ``french.py`` and
``conjugation.py``; the tables below list only the exceptions ("mouse/mice", "beau/belle/…").
Every French word keeps its grammatical gender (``"m"`` or ``"f"``), because articles, adjectives
and pronouns must agree with it.

Nouns carry *tags* ("food", "pet", "container"…). A verb says which tags its object may have
("eat" takes "food", "read" takes "readable"), so the generator never writes "Tom reads a cow".

The tables are tuples, never sets, so that sampling from them is the same on every machine.
Used by tutorials 05 (pretraining corpus), 06 (fine-tuning tasks), 09 and 10 through
``minift.world``.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Person:
    """Someone with a name. The name is the same in both languages; the gender picks he/she, il/elle."""

    name: str
    gender: str


@dataclass(frozen=True, slots=True)
class Noun:
    en: str
    fr: str
    gender: str                      # French grammatical gender: "m" or "f"
    tags: tuple[str, ...]
    en_plural: str | None = None     # only when the English rule gets it wrong (mice, children)
    fr_plural: str | None = None     # only when the French rule gets it wrong (hiboux, grands-pères)
    h_aspire: bool = False           # "le hibou", not "l'hibou": this h blocks elision
    mass: bool = False               # counted as a substance: "some milk" / "du lait"
    at: tuple[str, str] = ("in", "dans")   # places: how to say "being there" (at the market / au marché)
    colours: tuple[str, ...] | None = None  # plausible colours; None means any


@dataclass(frozen=True, slots=True)
class Adjective:
    en: str
    fr: str                 # "petit", or irregular forms "beau/belle/beaux/belles/bel"
    before: bool            # French BAGS adjective: goes before the noun
    kind: str               # opinion, size, quality, age, shape, colour, mood (sets English order)
    applies: tuple[str, ...]  # noun tags it can describe


@dataclass(frozen=True, slots=True)
class Verb:
    en: str                 # base form; "_" marks the object's slot ("let _ rest"), else it goes last
    fr: str                 # infinitive; the first word is conjugated ("faire cuire")
    objects: tuple[str, ...]  # noun tags allowed as object; () for a verb used without one
    where: tuple[str, ...]  # place tags where it happens
    intransitive: bool = False  # may also be used without an object ("Anna reads.")
    recipient: bool = False     # takes "to someone" (give, show, bring)
    generic: bool = False       # like/love/prefer: "Tom likes cats" = "Tom aime les chats"
    manner: tuple[str, ...] = ()  # the manner adverbs it accepts: one sings well, not quickly


NAMES = tuple(Person(n, "m") for n in
              "Tom Paul Hugo Max Sam Ben Leo Oscar Victor Adam Marc Noah".split()) + \
        tuple(Person(n, "f") for n in
              "Anna Emma Lucy Nina Lisa Julie Clara Alice Eva Sophie Lena Mia".split())


def noun_table(table: str) -> tuple[Noun, ...]:
    """Parse rows ``english[/plural] | french[/plural] | gender | tags and options``."""
    out = []
    for line in table.strip().splitlines():
        en, fr, gender, rest = (part.strip() for part in line.split("|"))
        en, _, en_pl = en.partition("/")
        fr, _, fr_pl = fr.partition("/")
        tags, opts = [], {}
        for word in rest.split():
            if "=" in word:
                key, value = word.split("=")
                opts[key] = value
            else:
                tags.append(word)
        at = tuple(opts["at"].split(":")) if "at" in opts else ("in", "dans")
        colours = tuple(c for c in opts["colours"].split(",") if c) if "colours" in opts else None
        out.append(Noun(en, fr, gender, tuple(t for t in tags if t not in ("mass", "h-aspire")),
                        en_pl or None, fr_pl or None, "h-aspire" in tags, "mass" in tags,
                        at, colours))
    return tuple(out)


NOUNS = noun_table("""
mother         | mère                  | f | person kin
father         | père                  | m | person kin
sister         | sœur                  | f | person kin
brother        | frère                 | m | person kin
grandmother    | grand-mère/grands-mères | f | person kin
grandfather    | grand-père/grands-pères | m | person kin
uncle          | oncle                 | m | person kin
aunt           | tante                 | f | person kin
farmer         | fermier               | m | person worker
baker          | boulanger             | m | person worker
doctor         | médecin               | m | person worker
teacher        | professeur            | m | person worker
child/children | enfant                | m | person young
baby           | bébé                  | m | person young
boy            | garçon                | m | person young
girl           | fille                 | f | person young
man/men        | homme                 | m | person
woman/women    | femme                 | f | person
person/people  | personne              | f | person
cat            | chat                  | m | animal pet furry small colours=black,white,grey,brown
dog            | chien                 | m | animal pet furry colours=black,white,brown
rabbit         | lapin                 | m | animal pet furry small colours=white,grey,brown
bird           | oiseau                | m | animal pet small colours=blue,red,yellow,black
fish/fish      | poisson               | m | animal pet small colours=red,yellow,blue
mouse/mice     | souris                | f | animal pet furry small colours=grey,white
horse          | cheval                | m | animal farm colours=white,black,brown
cow            | vache                 | f | animal farm colours=brown,black,white
sheep/sheep    | mouton                | m | animal farm colours=white,black
pig            | cochon                | m | animal farm colours=pink
hen            | poule                 | f | animal farm small colours=white,brown,black
duck           | canard                | m | animal farm small colours=white,brown
goose/geese    | oie                   | f | animal farm colours=white,grey
fox            | renard                | m | animal wild colours=
wolf/wolves    | loup                  | m | animal wild colours=grey,black
owl            | hibou                 | m | animal wild h-aspire colours=white,brown
frog           | grenouille            | f | animal wild small colours=green
bee            | abeille               | f | animal wild small colours=
apple          | pomme                 | f | food fruit colours=red,green,yellow
pear           | poire                 | f | food fruit colours=green,yellow
banana         | banane                | f | food fruit colours=yellow,green
orange         | orange                | f | food fruit colours=
lemon          | citron                | m | food fruit colours=yellow,green
cherry         | cerise                | f | food fruit colours=red,black
strawberry     | fraise                | f | food fruit colours=red
carrot         | carotte               | f | food vegetable colours=
tomato         | tomate                | f | food vegetable colours=red,green,yellow
potato         | pomme de terre/pommes de terre | f | food vegetable colours=
egg            | œuf                   | m | food colours=white
cake           | gâteau                | m | food dish colours=
pie            | tarte                 | f | food dish colours=
sandwich       | sandwich              | m | food dish colours=
cookie         | biscuit               | m | food dish colours=
bread          | pain                  | m | food mass colours=
cheese         | fromage               | m | food mass colours=
soup           | soupe                 | f | food mass dish colours=
milk           | lait                  | m | drink mass colours=
water          | eau                   | f | drink mass colours=
juice          | jus                   | m | drink mass colours=
tea            | thé                   | m | drink mass colours=
ball           | ballon                | m | thing toy throwable
doll           | poupée                | f | thing toy
kite           | cerf-volant/cerfs-volants | m | thing toy
boat           | bateau                | m | thing toy vehicle
book           | livre                 | m | thing readable openable
letter         | lettre                | f | thing readable letter colours=
box            | boîte                 | f | thing container openable
bag            | sac                   | m | thing container openable
basket         | panier                | m | thing container
cup            | tasse                 | f | thing container
bottle         | bouteille             | f | thing container
key            | clé                   | f | thing small
hat            | chapeau               | m | thing wearable
shoe           | chaussure             | f | thing wearable
coat           | manteau               | m | thing wearable
watch          | montre                | f | thing wearable small
umbrella       | parapluie             | m | thing openable
clock          | horloge               | f | thing
pencil         | crayon                | m | thing small
flower         | fleur                 | f | thing plant colours=red,blue,yellow,white,pink
stone          | pierre                | f | thing throwable small colours=grey,white,black
bike           | vélo                  | m | thing vehicle
car            | voiture               | f | thing vehicle
tree           | arbre                 | m | landmark outdoor colours=
bench          | banc                  | m | landmark outdoor
table          | table                 | f | landmark indoor
chair          | chaise                | f | landmark indoor
bed            | lit                   | m | landmark indoor
door           | porte                 | f | landmark indoor openable
window         | fenêtre               | f | landmark indoor openable colours=
garden         | jardin                | m | place outdoor home
park           | parc                  | m | place outdoor
forest         | forêt                 | f | place outdoor
field          | champ                 | m | place outdoor
beach          | plage                 | f | place outdoor water at=on:à
river          | rivière               | f | place outdoor water
lake           | lac                   | m | place outdoor water
farm           | ferme                 | f | place outdoor work home at=on:à
zoo            | zoo                   | m | place outdoor work at=at:à
market         | marché                | m | place shop work at=at:à
shop           | magasin               | m | place shop work
bakery         | boulangerie           | f | place shop work at=at:à
house          | maison                | f | place indoor home
kitchen        | cuisine               | f | place indoor kitchen
school         | école                 | f | place indoor work at=at:à
library        | bibliothèque          | f | place indoor work at=at:à
hospital       | hôpital               | m | place indoor work at=at:à
station        | gare                  | f | place work at=at:à
village        | village               | m | place home outdoor
""")


def _adjectives(table: str) -> tuple[Adjective, ...]:
    """Parse rows ``english | french forms | before/after | kind | tags it applies to``."""
    out = []
    for line in table.strip().splitlines():
        en, fr, place, kind, applies = (part.strip() for part in line.split("|"))
        out.append(Adjective(en, fr, place == "before", kind, tuple(applies.split())))
    return tuple(out)


# French forms: a single word means "follow the rules"; otherwise m/f[/m-plural/f-plural[/m-before-vowel]].
ADJECTIVES = _adjectives("""
beautiful | beau/belle/beaux/belles/bel            | before | opinion | animal thing place landmark
pretty    | joli                                   | before | opinion | pet thing plant place
good      | bon/bonne                              | before | opinion | food drink
bad       | mauvais                                | before | opinion | food
small     | petit                                  | before | size    | animal thing landmark place food person
big       | grand                                  | before | size    | animal thing landmark place
fat       | gros/grosse                            | before | size    | pet farm
young     | jeune                                  | before | age     | person animal
old       | vieux/vieille/vieux/vieilles/vieil     | before | age     | person animal thing landmark place
new       | nouveau/nouvelle/nouveaux/nouvelles/nouvel | before | age | thing landmark
soft      | doux/douce                             | after  | quality | furry toy wearable
heavy     | lourd                                  | after  | quality | container vehicle landmark
light     | léger/légère                           | after  | quality | container toy wearable
clean     | propre                                 | after  | quality | container wearable landmark vehicle
dirty     | sale                                   | after  | quality | container wearable landmark vehicle pet
wet       | mouillé                                | after  | quality | pet wearable toy
ripe      | mûr                                    | after  | quality | fruit
fresh     | frais/fraîche                          | after  | quality | fruit dish drink
hot       | chaud                                  | after  | quality | drink
cold      | froid                                  | after  | quality | drink
round     | rond                                   | after  | shape   | landmark toy container
happy     | content                                | after  | mood    | person animal
sad       | triste                                 | after  | mood    | person animal
tired     | fatigué                                | after  | mood    | person animal
red       | rouge                                  | after  | colour  | thing landmark animal food
blue      | bleu                                   | after  | colour  | thing landmark animal food
green     | vert                                   | after  | colour  | thing landmark animal food
yellow    | jaune                                  | after  | colour  | thing landmark animal food
black     | noir                                   | after  | colour  | thing landmark animal food
white     | blanc/blanche                          | after  | colour  | thing landmark animal food
brown     | marron/marron/marron/marron            | after  | colour  | thing landmark animal food
grey      | gris                                   | after  | colour  | thing landmark animal food
pink      | rose                                   | after  | colour  | thing landmark animal food
""")


def _verbs(table: str) -> tuple[Verb, ...]:
    """Parse rows ``english | french | object tags | place tags | flags``."""
    out = []
    for line in table.strip().splitlines():
        en, fr, objects, where, flags = (part.strip() for part in line.split("|"))
        flags = flags.split()
        manner = next((f[7:].split(",") for f in flags if f.startswith("manner=")), ())
        out.append(Verb(en, fr, tuple(objects.split()), tuple(where.split()),
                        "intrans" in flags, "to" in flags, "generic" in flags, tuple(manner)))
    return tuple(out)


VERBS = _verbs("""
eat       | manger     | food                          | indoor outdoor         | intrans
drink     | boire      | drink                         | indoor outdoor         |
see       | voir       | animal person thing landmark  | indoor outdoor shop    |
watch     | regarder   | animal person                 | outdoor                |
listen to | écouter    | animal person                 | outdoor indoor         |
have      | avoir      | pet farm thing food           |                        |
want      | vouloir    | thing food pet                |                        |
take      | prendre    | thing food                    | indoor outdoor shop    |
buy       | acheter    | thing food                    | shop                   |
sell      | vendre     | thing food                    | shop                   |
carry     | porter     | thing food                    | outdoor                |
wash      | laver      | container wearable fruit pet vehicle | indoor outdoor  |
find      | trouver    | thing pet                     | indoor outdoor         |
look for  | chercher   | thing pet person              | indoor outdoor         |
like      | aimer      | animal food thing             |                        | generic
love      | adorer     | animal food thing             |                        | generic
prefer    | préférer   | animal food thing             |                        | generic
draw      | dessiner   | animal thing landmark         | indoor outdoor         | intrans manner=well
paint     | peindre    | landmark container vehicle    | indoor outdoor         |
read      | lire       | readable                      | indoor outdoor         | intrans
write     | écrire     | letter                        | indoor                 | intrans
choose    | choisir    | thing food                    | shop                   |
fill      | remplir    | container                     | indoor outdoor         |
open      | ouvrir     | openable                      | indoor                 |
close     | fermer     | openable                      | indoor                 |
catch     | attraper   | throwable small               | outdoor                |
throw     | lancer     | throwable                     | outdoor                |
hide      | cacher     | thing                         | indoor outdoor         |
hold      | tenir      | thing small                   |                        |
make      | faire      | dish                          | kitchen                |
feed      | nourrir    | pet farm                      | outdoor                |
call      | appeler    | person pet                    |                        |
help      | aider      | person                        |                        |
wait for  | attendre   | person                        | outdoor shop           |
clean     | nettoyer   | landmark container vehicle    | indoor                 |
give      | donner     | thing food                    |                        | to
show      | montrer    | thing pet                     |                        | to
bring     | apporter   | thing food                    |                        | to
sleep     | dormir     |                               | indoor outdoor         | intrans
play      | jouer      |                               | indoor outdoor         | intrans
run       | courir     |                               | outdoor                | intrans manner=quickly,slowly
swim      | nager      |                               | water                  | intrans manner=quickly,slowly,well
sing      | chanter    |                               | indoor outdoor         | intrans manner=well
dance     | danser     |                               | indoor outdoor         | intrans manner=well
work      | travailler |                               | work                   | intrans
walk      | marcher    |                               | outdoor                | intrans manner=quickly,slowly
jump      | sauter     |                               | outdoor                | intrans
live      | habiter    |                               | home                   | intrans
go        | aller      |                               |                        | intrans
return    | revenir    |                               |                        | intrans
""")

NUMBERS_EN = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
NUMBERS_FR = ("zéro", "un", "deux", "trois", "quatre", "cinq", "six", "sept", "huit", "neuf", "dix")
BIG_NUMBERS = {15: ("fifteen", "quinze"), 20: ("twenty", "vingt"), 30: ("thirty", "trente")}  # recipes only

# Phrases put at the front of a clause, followed by a comma: "In the morning, Tom…" / "Le matin, Tom…".
TIMES = {"today": ("Today", "Aujourd'hui"), "morning": ("In the morning", "Le matin"),
         "evening": ("In the evening", "Le soir"), "every_day": ("Every day", "Chaque jour"),
         "then": ("Then", "Ensuite"), "sunday": ("On Sunday", "Dimanche"),
         "after_school": ("After school", "Après l'école")}
TIME_KEYS = tuple(TIMES)
OPENERS = ("today", "morning", "evening", "sunday", "after_school")   # can start a story

# Adverbs: English form, French form, and where French puts it.
# "verb": right after the verb, before the object ("Remuez doucement la sauce").
# "end": at the end, as in English ("à feu doux"). "often" goes *before* the English verb.
ADVERBS = {"quickly": ("quickly", "vite", "verb"), "slowly": ("slowly", "lentement", "verb"),
           "well": ("well", "bien", "verb"), "together": ("together", "ensemble", "verb"),
           "often": ("often", "souvent", "verb")}

# Prepositions: key -> (English, French). "at" is special: each place brings its own pair.
PREPOSITIONS = {"to": ("to", "à"), "from": ("from", "de"), "near": ("near", "près de"),
                "under": ("under", "sous"), "on": ("on", "sur"), "in": ("in", "dans"),
                "into": ("into", "dans"), "behind": ("behind", "derrière"),
                "with": ("with", "avec"), "for": ("for", "pour"),
                "to_in": ("to", "dans")}   # adding to a vessel: "to the bowl" / "dans le bol"
# Where a thing can lie relative to each landmark ("under the tree", "on the table").
LANDMARK_PREPS = {"tree": ("under", "near", "behind"), "bench": ("on", "under", "near"),
                  "table": ("on", "under"), "chair": ("on", "under"), "bed": ("on", "under"),
                  "door": ("near", "behind"), "window": ("near",)}


@functools.lru_cache(maxsize=None)     # called for every object drawn: worth remembering
def nouns_with(*tags: str, exclude: tuple[str, ...] = ()) -> tuple[Noun, ...]:
    """All nouns carrying at least one of ``tags`` and none of ``exclude``, in table order."""
    return tuple(n for n in NOUNS if any(t in n.tags for t in tags)
                 and not any(t in n.tags for t in exclude))


NOUN = {n.en: n for n in NOUNS}        # lookup by English lemma, for hand-built sentences
ADJ = {a.en: a for a in ADJECTIVES}
VERB = {v.en: v for v in VERBS}
NAME = {p.name: p for p in NAMES}
