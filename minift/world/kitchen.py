"""The kitchen: a narrow domain with its own words and its own register, for domain adaptation.

Recipes speak differently from the stories of the main world. They give orders (the imperative:
"Peel the potatoes." / "Épluchez les pommes de terre."), count minutes, and use about forty
words that the main world never uses: onion, garlic, butter, flour, salt, pan, oven, stir, pour,
chop, fifteen, twenty, thirty, "over low heat"… (``DOMAIN_WORDS`` lists the English ones).

Where these words appear, by design:

- never in the "general" translation subset, nor in summarization or QA;
- in the "kitchen" translation subset (10 % of the default translation mix);
- rarely in the pretraining corpus: about 3 % of paragraphs are recipes (``RECIPE_SHARE``), in
  English or French, never both — so the base model has *seen* "oignon" and "remuez", but almost
  no parallel data links them to "onion" and "stir". That is the situation of a real narrow
  domain, and what tutorial 09 (hybrid schedule) adapts to.

French grammar the register needs, on top of ``french.py``:

- the imperative is the "vous" form without its subject: ajoutez, mettez, faites;
- "faire" + infinitive says "make something cook/boil/melt": "Faites cuire les oignons";
- "Let the dough rest" is "Laissez reposer la pâte" (the object moves after both verbs);
- object pronouns follow an affirmative imperative with a hyphen: "Épluchez les oignons et
  hachez-les"; a negative one keeps them in front: "Ne les hachez pas";
- "a little salt" is "un peu de sel"; "Do not add salt" is "N'ajoutez pas de sel";
- "in the oven" is "au four" (à + le), "over low heat" is "à feu doux".
"""
from __future__ import annotations

import random

from minift.world.grammar import NP, Clause, Sentence, clause, pron
from minift.world.lexicon import NOUN, Noun, Verb, noun_table

RECIPE_SHARE = 0.03
MINUTES = (1, 2, 3, 4, 5, 6, 8, 10, 15, 20, 30)

KITCHEN_NOUNS = noun_table("""
onion    | oignon     | m | vegetable choppable
mushroom | champignon | m | vegetable choppable
garlic   | ail        | m | mass choppable
butter   | beurre     | m | mass fat meltable
flour    | farine     | f | mass dry
sugar    | sucre      | m | mass dry seasoning
salt     | sel        | m | mass seasoning
pepper   | poivre     | m | mass seasoning
oil      | huile      | f | mass fat liquid
cream    | crème      | f | mass liquid
sauce    | sauce      | f | mass liquid stirrable
dough    | pâte       | f | mass restable
pan      | poêle      | f | vessel hob
pot      | casserole  | f | vessel hob
bowl     | bol        | m | vessel
plate    | assiette   | f | dish_out
oven     | four       | m | oven at=in:à
knife/knives | couteau | m | tool
spoon    | cuillère   | f | tool
""")
K = {n.en: n for n in KITCHEN_NOUNS}
# Words the main world already has, reused in recipes.
SHARED = {w: NOUN[w] for w in ("egg", "potato", "carrot", "tomato", "apple", "pear", "lemon",
                               "milk", "water", "cheese", "cake", "pie", "soup", "bread")}

PEELABLE = (K["onion"], SHARED["potato"], SHARED["carrot"], SHARED["apple"], SHARED["pear"])
CUTTABLE = PEELABLE + (SHARED["tomato"], SHARED["lemon"], K["mushroom"], SHARED["bread"],
                       SHARED["cheese"], K["butter"])
CHOPPABLE = (K["onion"], K["mushroom"], K["garlic"], SHARED["tomato"])
COOKABLE = (K["onion"], K["mushroom"], SHARED["potato"], SHARED["carrot"], SHARED["egg"], K["sauce"])
LIQUIDS = (K["oil"], K["cream"], K["sauce"], SHARED["milk"], SHARED["water"])
ADDABLE = (K["butter"], K["flour"], K["sugar"], K["salt"], K["pepper"], K["cream"], K["oil"],
           K["garlic"], SHARED["milk"], SHARED["egg"], SHARED["cheese"], SHARED["lemon"])
DISHES = (SHARED["cake"], SHARED["pie"], SHARED["soup"], K["sauce"])
MIXABLE = (K["flour"], K["sugar"], K["butter"], SHARED["egg"], K["cream"], SHARED["milk"])
STIRRABLE = (K["sauce"], SHARED["soup"], K["cream"], K["dough"])
BOILABLE = (SHARED["milk"], SHARED["water"], SHARED["potato"], SHARED["egg"])
MELTABLE = (K["butter"], SHARED["cheese"], K["sugar"])

KV = {v.en: v for v in (
    Verb("peel", "éplucher", (), ()), Verb("cut", "couper", (), ()), Verb("chop", "hacher", (), ()),
    Verb("add", "ajouter", (), ()), Verb("mix", "mélanger", (), ()), Verb("stir", "remuer", (), ()),
    Verb("pour", "verser", (), ()), Verb("heat", "faire chauffer", (), ()),
    Verb("cook", "faire cuire", (), ()), Verb("boil", "faire bouillir", (), ()),
    Verb("melt", "faire fondre", (), ()), Verb("serve", "servir", (), ()),
    Verb("put", "mettre", (), ()), Verb("let _ rest", "laisser reposer", (), ()),
    Verb("season", "assaisonner", (), ()), Verb("taste", "goûter", (), ()),
    Verb("preheat", "préchauffer", (), ()), Verb("wash", "laver", (), ()),
)}
ADVERBS = {"gently": ("gently", "doucement", "verb"), "well": ("well", "bien", "verb"),
           "slowly": ("slowly", "lentement", "verb"),
           "low": ("over low heat", "à feu doux", "end"), "high": ("over high heat", "à feu vif", "end")}

DOMAIN_WORDS = tuple(sorted({n.en for n in KITCHEN_NOUNS} | {"knives", "onions", "mushrooms"} |
                            {"peel", "cut", "chop", "add", "mix", "stir", "pour", "heat", "cook",
                             "boil", "melt", "serve", "put", "season", "taste", "preheat",
                             "gently", "fifteen", "twenty", "thirty", "minutes"}))


def _food(rng: random.Random, nouns) -> NP:
    """A definite ingredient: "the flour", "the onions" (count nouns are mostly plural in recipes)."""
    noun = rng.choice(nouns)
    return NP(noun, "the", 1 if noun.mass else rng.choice((1, 2, 2, 2)))


def _amount(rng: random.Random, noun: Noun) -> NP:
    """"butter" / "a little butter" / "the butter" for a mass noun; "two eggs" for a count noun."""
    if noun.mass:
        return NP(noun, rng.choice(("a", "little", "the")))
    return NP(noun, "num", rng.choice((1, 2, 3, 4)))


def _minutes(rng: random.Random, chance: float, choices=MINUTES) -> int | None:
    return rng.choice(choices) if rng.random() < chance else None


def _peel(rng):                          # Peel the onions and chop them.
    food = _food(rng, PEELABLE)
    first = clause(None, KV["peel"], food)
    if food.head in CHOPPABLE or rng.random() < 0.5:
        then = KV["chop"] if food.head in CHOPPABLE else KV["cut"]
        return Sentence((first, clause(None, then, pron(food))))
    return Sentence((first,))


def _cut(rng):                           # Cut the bread with a knife.
    verb = rng.choice((KV["cut"], KV["chop"], KV["wash"]))
    c = clause(None, verb, _food(rng, CHOPPABLE if verb.en == "chop" else CUTTABLE))
    if verb.en != "wash" and rng.random() < .4:
        c.prep, c.place = "with", NP(K["knife"], "a")
    return Sentence((c,))


def _add(rng):                           # Add a little salt to the bowl. / Add the milk to the eggs.
    noun = rng.choice(ADDABLE)
    c = clause(None, KV["add"], _amount(rng, noun))
    r = rng.random()
    if r < .4:
        c.prep, c.place = "to_in", NP(rng.choice((K["bowl"], K["pan"], K["pot"])), "the")
    elif r < .6:
        other = _food(rng, tuple(n for n in MIXABLE if n is not noun))
        c.to = other                     # "to the eggs" / "aux œufs"
    return Sentence((c,))


def _heat(rng):                          # Cook the onions over low heat for five minutes.
    verb = rng.choice((KV["heat"], KV["cook"], KV["boil"], KV["melt"]))
    pool = {"heat": LIQUIDS, "cook": COOKABLE, "boil": BOILABLE, "melt": MELTABLE}[verb.en]
    c = Clause(None, verb, _food(rng, pool), minutes=_minutes(rng, .6))
    if rng.random() < .5:
        c.adverb = ADVERBS[rng.choice(("low", "high"))]
    if rng.random() < .4:
        c.prep, c.place = "in", NP(rng.choice((K["pan"], K["pot"])), "a")
    return Sentence((c,))


def _stir(rng):                          # Stir the sauce gently for two minutes.
    verb = rng.choice((KV["stir"], KV["mix"]))
    if verb.en == "mix" and rng.random() < .5:
        a, b = rng.sample(MIXABLE, 2)
        obj = NP(None, "and", 2, parts=(NP(a, "the"), NP(b, "the", 1 if b.mass else 2)))
    else:
        obj = _food(rng, STIRRABLE if verb.en == "stir" else MIXABLE + (K["dough"],))
    adverb = ADVERBS[rng.choice(("gently", "well", "slowly"))]
    return Sentence((Clause(None, verb, obj, adverb=adverb, minutes=_minutes(rng, .4)),))


def _pour(rng):                          # Pour the milk into the bowl.
    vessel = NP(rng.choice((K["bowl"], K["pan"], K["pot"])), rng.choice(("the", "a")))
    obj = _food(rng, LIQUIDS + (SHARED["soup"],))
    return Sentence((clause(None, KV["pour"], obj, prep="into", place=vessel),))


def _oven(rng):                          # Put the cake in the oven for thirty minutes.
    dish = NP(rng.choice((SHARED["cake"], SHARED["pie"], SHARED["bread"])), "the")
    oven = NP(K["oven"], "the")
    return Sentence((Clause(None, KV["put"], dish, prep="at", place=oven,
                            minutes=rng.choice((10, 15, 20, 30))),))


def _rest(rng):                          # Let the dough rest for ten minutes.
    obj = NP(rng.choice((K["dough"], SHARED["cake"], SHARED["pie"], SHARED["soup"])), "the")
    return Sentence((Clause(None, KV["let _ rest"], obj, minutes=rng.choice((5, 10, 15, 20, 30))),))


def _do_not(rng):                        # Do not boil the milk. / Do not add salt.
    if rng.random() < .5:
        obj = NP(rng.choice((SHARED["milk"], K["cream"], K["sauce"])), "the")
        return Sentence((clause(None, KV["boil"], obj, negative=True),))
    obj = NP(rng.choice((K["salt"], K["sugar"], K["pepper"], K["oil"], K["butter"])), "a")
    return Sentence((clause(None, KV["add"], obj, negative=True),))


def _serve(rng):                         # Serve the soup with bread. / Serve the cake on a plate.
    c = clause(None, KV["serve"], NP(rng.choice(DISHES), "the"))
    if rng.random() < .6:
        side = rng.choice((SHARED["bread"], K["cream"], SHARED["cheese"]))
        c.prep, c.place = "with", NP(side, "a")
    else:
        c.prep, c.place = "on", NP(K["plate"], "a")
    return Sentence((c,))


def _season(rng):                        # Season the soup with salt and pepper. / Preheat the oven.
    verb = rng.choice((KV["season"], KV["taste"], KV["preheat"]))
    if verb.en == "preheat":
        return Sentence((clause(None, verb, NP(K["oven"], "the")),))
    c = clause(None, verb, NP(rng.choice((SHARED["soup"], K["sauce"], SHARED["potato"])), "the"))
    if verb.en == "season":
        c.prep = "with"
        c.place = NP(None, "and", 2, parts=(NP(K["salt"], "a"), NP(K["pepper"], "a")))
    return Sentence((c,))


STEPS = (_peel, _cut, _add, _heat, _stir, _pour, _oven, _rest, _do_not, _serve, _season)


def step(rng: random.Random) -> Sentence:
    """One recipe instruction, as an imperative sentence."""
    return rng.choice(STEPS)(rng)


def recipe(rng: random.Random, n_steps: int) -> list[Sentence]:
    return [step(rng) for _ in range(n_steps)]
