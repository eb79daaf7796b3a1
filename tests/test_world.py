"""The generated world: exact English and French for hand-built meanings, then the tasks' promises.

The first half builds sentence structures by hand (``minift.world.grammar``) and checks the two
renderings word for word; each case names the rule it pins. The second half checks what the
tutorials rely on: determinism, leak-free splits, extractive QA, derivable summaries, variety,
monolingual pretraining paragraphs, and errors for bad arguments.
"""
import os
import random
import re
import subprocess
import sys
from collections import Counter

import pytest

from minift.errors import MiniftError
from minift.world import SUBSETS, TASKS, corpus, examples
from minift.world import english, french
from minift.world.conjugation import conjugate
from minift.world.grammar import (NP, Sentence, a, both, clause, generic, hearer, name, num, of,
                                  poss, pron, speaker, the)
from minift.world.kitchen import DOMAIN_WORDS, KV, K
from minift.world.lexicon import NAMES, NOUN
from minift.world.questions import candidates
from minift.world.tasks import _summarization, headline, split_of


def say(*clauses, join="and"):
    """(English, French) for one sentence."""
    s = Sentence(tuple(clauses), join)
    return english.sentence(s), french.sentence(s)


TOM, ANNA = name("Tom"), name("Anna")


# --------------------------------------------------------------------------------------------
# Rendering rules, one hand-built sentence each
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("built, en, fr", [
    # articles and adjectives agree in gender and number; numbers take plural nouns
    (lambda: clause(ANNA, "have", num("cat", 3, "small", "black")),
     "Anna has three small black cats.", "Anna a trois petits chats noirs."),
    (lambda: clause(TOM, "buy", num("apple", 3, "red")),
     "Tom buys three red apples.", "Tom achète trois pommes rouges."),
    (lambda: clause(the("cat", 2), "be", adjs=("small", "white")),
     "The cats are small and white.", "Les chats sont petits et blancs."),
    (lambda: clause(both(name("Lucy"), ANNA), "be", adjs=("happy",)),
     "Lucy and Anna are happy.", "Lucy et Anna sont contentes."),
    (lambda: clause(both(TOM, ANNA), "be", adjs=("happy",)),
     "Tom and Anna are happy.", "Tom et Anna sont contents."),
    (lambda: clause(pron(both(name("Lucy"), ANNA)), "be", adjs=("tired",)),
     "They are tired.", "Elles sont fatiguées."),
    (lambda: clause(pron(both(poss("sister", speaker()), speaker())), "see", a("duck")),
     "We see a duck.", "Nous voyons un canard."),
    # BAGS adjectives before the noun, others after; two adjectives on their own sides
    (lambda: clause(TOM, "find", a("ball", 1, "small", "red")),
     "Tom finds a small red ball.", "Tom trouve un petit ballon rouge."),
    (lambda: clause(ANNA, "buy", a("flower", 1, "round", "white")),
     "Anna buys a round white flower.", "Anna achète une fleur blanche et ronde."),
    (lambda: clause(ANNA, "see", a("house", 1, "beautiful", "big")),
     "Anna sees a beautiful big house.", "Anna voit une belle grande maison."),
    # beau, vieux, nouveau before a vowel (or mute h); an aspirated h blocks it
    (lambda: clause(ANNA, "see", a("tree", 1, "old")), "Anna sees an old tree.", "Anna voit un vieil arbre."),
    (lambda: clause(ANNA, "see", a("bird", 1, "beautiful")), "Anna sees a beautiful bird.", "Anna voit un bel oiseau."),
    (lambda: clause(ANNA, "see", a("man", 1, "old")), "Anna sees an old man.", "Anna voit un vieil homme."),
    (lambda: clause(ANNA, "see", a("owl", 1, "old")), "Anna sees an old owl.", "Anna voit un vieux hibou."),
    (lambda: clause(ANNA, "see", the("owl")), "Anna sees the owl.", "Anna voit le hibou."),
    # plural des becomes de before an adjective
    (lambda: clause(ANNA, "see", a("bird", 2, "beautiful")), "Anna sees beautiful birds.", "Anna voit de beaux oiseaux."),
    (lambda: clause(ANNA, "see", a("bird", 2, "blue")), "Anna sees blue birds.", "Anna voit des oiseaux bleus."),
    # elision: je, ne, le/la, de, que
    (lambda: clause(speaker(), "like", generic("orange")), "I like oranges.", "J'aime les oranges."),
    (lambda: clause(speaker(), "like", generic("orange"), negative=True),
     "I do not like oranges.", "Je n'aime pas les oranges."),
    (lambda: clause(TOM, "go", prep="to", place=the("school")), "Tom goes to the school.", "Tom va à l'école."),
    (lambda: clause(TOM, "go", prep="to", place=the("hospital")), "Tom goes to the hospital.", "Tom va à l'hôpital."),
    (lambda: clause(ANNA, "see", of("dog", name("Oscar"))), "Anna sees Oscar's dog.", "Anna voit le chien d'Oscar."),
    (lambda: clause(TOM, "buy", pron(a("apple"))), "Tom buys it.", "Tom l'achète."),
    # negation: ne ... pas, and de for indefinite objects (definite ones keep le/la)
    (lambda: clause(TOM, "eat", a("apple"), negative=True), "Tom does not eat an apple.", "Tom ne mange pas de pomme."),
    (lambda: clause(ANNA, "drink", a("water"), negative=True), "Anna does not drink water.", "Anna ne boit pas d'eau."),
    (lambda: clause(TOM, "have", a("dog"), negative=True), "Tom does not have a dog.", "Tom n'a pas de chien."),
    (lambda: clause(TOM, "see", the("cat"), negative=True), "Tom does not see the cat.", "Tom ne voit pas le chat."),
    (lambda: clause(TOM, "eat", a("apple", 2), modal="want", negative=True),
     "Tom does not want to eat apples.", "Tom ne veut pas manger de pommes."),
    (lambda: clause(None, "there_is", a("milk"), negative=True, prep="in", place=the("kitchen")),
     "There is no milk in the kitchen.", "Il n'y a pas de lait dans la cuisine."),
    (lambda: clause(TOM, "swim", modal="can", negative=True, prep="at", place=the("lake")),
     "Tom cannot swim in the lake.", "Tom ne peut pas nager dans le lac."),
    # contractions: au, aux, du, des
    (lambda: clause(TOM, "go", prep="to", place=the("market")), "Tom goes to the market.", "Tom va au marché."),
    (lambda: clause(TOM, "give", the("ball"), to=the("child", 3)),
     "Tom gives the ball to the children.", "Tom donne le ballon aux enfants."),
    (lambda: clause(TOM, "return", prep="from", place=the("lake")), "Tom returns from the lake.", "Tom revient du lac."),
    (lambda: clause(ANNA, "see", of("dog", the("farmer"))), "Anna sees the farmer's dog.", "Anna voit le chien du fermier."),
    (lambda: clause(ANNA, "see", of("ball", the("child", 2))),
     "Anna sees the children's ball.", "Anna voit le ballon des enfants."),
    (lambda: clause(ANNA, "see", of("ball", the("cat", 2))), "Anna sees the cats' ball.", "Anna voit le ballon des chats."),
    # partitive articles for mass nouns
    (lambda: clause(TOM, "eat", a("bread")), "Tom eats bread.", "Tom mange du pain."),
    (lambda: clause(TOM, "eat", a("soup")), "Tom eats soup.", "Tom mange de la soupe."),
    # possessives agree with the thing owned (son école: son before a vowel)
    (lambda: clause(TOM, "wait for", poss("grandmother", TOM)),
     "Tom waits for his grandmother.", "Tom attend sa grand-mère."),
    (lambda: clause(speaker(), "see", poss("school", ANNA)), "I see her school.", "Je vois son école."),
    (lambda: clause(speaker(), "open", poss("umbrella", speaker())), "I open my umbrella.", "J'ouvre mon parapluie."),
    (lambda: clause(ANNA, "feed", poss("cat", ANNA, 2)), "Anna feeds her cats.", "Anna nourrit ses chats."),
    # irregular and spelling-change verbs, all persons
    (lambda: clause(speaker(True), "eat", the("cake")), "We eat the cake.", "Nous mangeons le gâteau."),
    (lambda: clause(speaker(True), "throw", the("ball")), "We throw the ball.", "Nous lançons le ballon."),
    (lambda: clause(speaker(True), "make", a("cake")), "We make a cake.", "Nous faisons un gâteau."),
    (lambda: clause(hearer(), "take", the("key")), "You take the key.", "Vous prenez la clé."),
    (lambda: clause(pron(the("girl", 2)), "want", a("doll", 2)), "They want dolls.", "Elles veulent des poupées."),
    (lambda: clause(speaker(), "be", prep="at", place=the("garden")), "I am in the garden.", "Je suis dans le jardin."),
    (lambda: clause(TOM, "call", the("man", 2)), "Tom calls the men.", "Tom appelle les hommes."),
    (lambda: clause(TOM, "clean", the("window")), "Tom cleans the window.", "Tom nettoie la fenêtre."),
    (lambda: clause(ANNA, "prefer", generic("pear")), "Anna prefers pears.", "Anna préfère les poires."),
    (lambda: clause(both(poss("brother", speaker()), speaker()), "go", prep="to", place=the("park")),
     "My brother and I go to the park.", "Mon frère et moi allons au parc."),
    # English plurals and third person -s
    (lambda: clause(ANNA, "watch", num("mouse", 2)), "Anna watches two mice.", "Anna regarde deux souris."),
    (lambda: clause(TOM, "carry", num("box", 4)), "Tom carries four boxes.", "Tom porte quatre boîtes."),
    (lambda: clause(TOM, "feed", num("horse", 5)), "Tom feeds five horses.", "Tom nourrit cinq chevaux."),
    (lambda: clause(TOM, "see", num("sheep", 3, "white")), "Tom sees three white sheep.", "Tom voit trois moutons blancs."),
    (lambda: clause(TOM, "see", num("goose", 2)), "Tom sees two geese.", "Tom voit deux oies."),
    (lambda: clause(TOM, "help", num("person", 3, "old")), "Tom helps three old people.",
     "Tom aide trois vieilles personnes."),
    (lambda: clause(TOM, "buy", num("cherry", 6)), "Tom buys six cherries.", "Tom achète six cerises."),
    (lambda: clause(TOM, "buy", num("potato", 2)), "Tom buys two potatoes.", "Tom achète deux pommes de terre."),
    (lambda: clause(TOM, "eat", num("cake", 2)), "Tom eats two cakes.", "Tom mange deux gâteaux."),
    (lambda: clause(TOM, "open", a("umbrella")), "Tom opens an umbrella.", "Tom ouvre un parapluie."),
    # adverbs: English after the object / before the verb, French right after the verb
    (lambda: clause(TOM, "run", adverb="quickly", prep="at", place=the("park")),
     "Tom runs quickly in the park.", "Tom court vite dans le parc."),
    (lambda: clause(TOM, "play", adverb="often", prep="at", place=the("garden")),
     "Tom often plays in the garden.", "Tom joue souvent dans le jardin."),
    (lambda: clause(TOM, "run", time="morning"), "In the morning, Tom runs.", "Le matin, Tom court."),
])
def test_hand_built_sentence_renders_exactly(built, en, fr):
    assert say(built()) == (en, fr)


def test_object_pronoun_moves_before_the_verb_and_subject_is_shared():
    ball = a("ball", 1, "red", ref=1)
    first = clause(TOM, "find", ball, prep="under", place=the("tree"))
    second = clause(TOM, "give", pron(ball), to=poss("sister", TOM), drop_subject=True)
    assert say(first, second) == ("Tom finds a red ball under the tree and gives it to his sister.",
                                  "Tom trouve un ballon rouge sous l'arbre et le donne à sa sœur.")


def test_que_elides_before_a_vowel_and_mais_takes_a_comma():
    assert say(clause(ANNA, "feed", poss("cat", ANNA)), clause(pron(ANNA), "be", adjs=("happy",)),
               join="because") == ("Anna feeds her cat because she is happy.",
                                   "Anna nourrit son chat parce qu'elle est contente.")
    assert say(clause(speaker(), "have", a("dog")), clause(speaker(), "have", a("cat"), negative=True),
               join="but") == ("I have a dog, but I do not have a cat.",
                               "J'ai un chien, mais je n'ai pas de chat.")


def test_recipe_imperatives_use_the_vous_form_and_faire_plus_infinitive():
    onions = NP(K["onion"], "the", 2)
    assert say(clause(None, KV["peel"], onions), clause(None, KV["chop"], pron(onions))) == (
        "Peel the onions and chop them.", "Épluchez les oignons et hachez-les.")
    assert say(clause(None, KV["boil"], NP(NOUN["milk"], "the"), negative=True)) == (
        "Do not boil the milk.", "Ne faites pas bouillir le lait.")
    assert say(clause(None, KV["let _ rest"], NP(K["dough"], "the"), minutes=10)) == (
        "Let the dough rest for ten minutes.", "Laissez reposer la pâte pendant dix minutes.")
    assert say(clause(None, KV["add"], NP(K["salt"], "a"), negative=True)) == (
        "Do not add salt.", "N'ajoutez pas de sel.")
    assert say(clause(None, KV["put"], NP(NOUN["cake"], "the"), prep="at", place=NP(K["oven"], "the"),
                      minutes=30)) == ("Put the cake in the oven for thirty minutes.",
                                       "Mettez le gâteau au four pendant trente minutes.")


@pytest.mark.parametrize("infinitive, forms", [
    ("être", "suis es est sommes êtes sont"),
    ("avoir", "ai as a avons avez ont"),
    ("aller", "vais vas va allons allez vont"),
    ("faire", "fais fais fait faisons faites font"),
    ("prendre", "prends prends prend prenons prenez prennent"),
    ("voir", "vois vois voit voyons voyez voient"),
    ("vouloir", "veux veux veut voulons voulez veulent"),
    ("pouvoir", "peux peux peut pouvons pouvez peuvent"),
    ("manger", "mange manges mange mangeons mangez mangent"),       # -ger: e before o
    ("lancer", "lance lances lance lançons lancez lancent"),         # -cer: ç before o
    ("acheter", "achète achètes achète achetons achetez achètent"),  # e + consonant: è when silent
    ("préférer", "préfère préfères préfère préférons préférez préfèrent"),
    ("appeler", "appelle appelles appelle appelons appelez appellent"),
    ("nettoyer", "nettoie nettoies nettoie nettoyons nettoyez nettoient"),
    ("choisir", "choisis choisis choisit choisissons choisissez choisissent"),
    ("vendre", "vends vends vend vendons vendez vendent"),
    ("ouvrir", "ouvre ouvres ouvre ouvrons ouvrez ouvrent"),
])
def test_present_tense_paradigms(infinitive, forms):
    assert " ".join(conjugate(infinitive, i) for i in range(6)) == forms


# --------------------------------------------------------------------------------------------
# Tasks and corpus
# --------------------------------------------------------------------------------------------

INPUT = {"translation": "source", "summarization": "document", "qa": "context"}


def test_same_arguments_give_the_same_examples_and_corpus():
    for task in TASKS:
        assert examples(task, 20, seed=3, split="val") == examples(task, 20, seed=3, split="val")
    assert corpus(50, seed=7) == corpus(50, seed=7)
    assert corpus(50, seed=7) != corpus(50, seed=8)


def test_output_does_not_depend_on_python_string_hashing():
    code = ("import hashlib, json; from minift.world import corpus, examples; "
            "print(hashlib.sha1(json.dumps([corpus(30, 1), examples('qa', 10, 2, 'test'),"
            " examples('translation', 10, 2)]).encode()).hexdigest())")
    digests = set()
    for hash_seed in ("1", "2"):
        env = dict(os.environ, PYTHONHASHSEED=hash_seed)
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        digests.add(out.stdout.strip())
    assert len(digests) == 1


def test_split_is_a_pure_function_of_the_input_text():
    # sha1("Sam has a key.") starts 3c782331 = 1014506289, which ends in 9: test.
    assert split_of("Sam has a key.") == "test"
    assert split_of("We eat the cake.") == "val"
    assert split_of("Tom goes to the market.") == "train"
    counts = Counter(split_of(f"sentence number {i}") for i in range(2000))
    assert 1500 < counts["train"] < 1700 and 150 < counts["val"] < 250 and 150 < counts["test"] < 250


@pytest.mark.parametrize("task", TASKS)
def test_splits_are_disjoint_by_input_text(task):
    seen = {}
    for split in ("train", "val", "test"):
        rows = examples(task, 150, seed=1, split=split)
        assert len(rows) == 150
        inputs = {row[INPUT[task]] for row in rows}
        assert all(split_of(text) == split for text in inputs)
        for other, other_inputs in seen.items():
            assert not inputs & other_inputs, (split, other)
        seen[split] = inputs


def test_translation_training_pairs_are_varied():
    rows = examples("translation", 5000, seed=0)
    assert len({row["source"] for row in rows}) >= 0.95 * 5000


def test_translation_default_mix_is_mostly_general_with_a_little_kitchen():
    subsets = Counter(row["subset"] for row in examples("translation", 1000, seed=0))
    assert set(subsets) == {"general", "kitchen"}
    assert 50 <= subsets["kitchen"] <= 150


def _lower_words(text):
    return set(re.findall(r"[a-z]+", text.lower()))


def test_kitchen_words_never_appear_in_general_translation():
    words = set(DOMAIN_WORDS)
    general = examples("translation", 800, seed=2, subset="general")
    assert all(not words & _lower_words(row["source"]) for row in general)
    kitchen = examples("translation", 100, seed=2, subset="kitchen")
    used = set().union(*(words & _lower_words(row["source"]) for row in kitchen))
    assert len(used) >= 25          # the narrow domain really speaks its own vocabulary


def test_lengths_fit_a_256_token_context():
    assert max(len(r["source"].split()) for r in examples("translation", 500, seed=4)) <= 45
    docs = examples("summarization", 300, seed=4)
    assert max(len(r["document"].split()) for r in docs) <= 90
    assert all(3 <= r["document"].count(". ") + 1 <= 6 for r in docs)
    assert max(len(r["context"].split()) for r in examples("qa", 300, seed=4)) <= 70


def test_qa_answers_are_short_substrings_of_the_context():
    rows = examples("qa", 500, seed=5)
    assert {row["subset"] for row in rows} == set(SUBSETS["qa"])
    for row in rows:
        assert row["answer"] in row["context"]
        assert 1 <= len(row["answer"].split()) <= 4
        assert row["question"].endswith("?")


def test_qa_resolves_pronouns_to_names():
    rows = [r for r in examples("qa", 300, seed=6, subset="who")]
    names = {p.name for p in NAMES}
    assert all(row["answer"] in names for row in rows)


def test_summaries_name_the_hero_of_the_story():
    names = [p.name for p in NAMES]
    for row in examples("summarization", 300, seed=7):
        found = [(m.start(), n) for n in names for m in re.finditer(rf"\b{n}\b", row["document"])]
        hero = min(found)[1]                      # the first person the story names
        assert re.search(rf"\b{hero}\b", row["summary"]), row


def test_headlines_are_title_case_and_sentences_end_with_a_full_stop():
    for row in examples("summarization", 100, seed=8, subset="headline"):
        assert not row["summary"].endswith(".")
        assert all(word[0].isupper() for word in row["summary"].split())
    for row in examples("summarization", 100, seed=8, subset="sentence"):
        assert row["summary"].endswith(".") and " and " in row["summary"]


def test_headline_is_the_key_event_and_the_sentence_adds_what_follows():
    checked = 0
    for seed in range(40):
        head = _summarization(random.Random(seed), "headline")
        sentence = _summarization(random.Random(seed), "sentence")
        if head is None:
            continue
        assert head["document"] == sentence["document"]
        assert sentence["summary"].lower().startswith(head["summary"].lower() + " and ")
        checked += 1
    assert checked >= 30


def test_headline_style():
    assert headline("Tom's sister finds his hat under the bed") == "Tom's Sister Finds His Hat Under The Bed"


def test_questions_read_off_a_hand_built_passage():
    tom = name("Tom", ref=1)
    apples = num("apple", 3, "red", ref=2)
    clauses = [clause(tom, "go", prep="to", place=the("market", ref=3)),
               clause(pron(tom), "buy", apples),
               clause(pron(tom), "like", generic("pear"), negative=True),
               clause(pron(tom), "give", pron(apples), to=poss("sister", pron(tom), ref=4))]
    context = english.paragraph([Sentence((c,)) for c in clauses])
    assert context == ("Tom goes to the market. He buys three red apples. He does not like pears. "
                       "He gives them to his sister.")
    # "them" is not asked about, and the negated "like" asserts nothing.
    assert candidates(clauses, context, "who") == [("Who buys three red apples?", "Tom")]
    assert candidates(clauses, context, "what") == [("What does Tom buy?", "three red apples")]
    assert candidates(clauses, context, "where") == [("Where does Tom go?", "to the market")]
    assert candidates(clauses, context, "how_many") == [("How many apples does Tom buy?", "three")]
    assert candidates(clauses, context, "colour") == [("What colour are the apples?", "red")]


def test_questions_with_two_possible_answers_are_not_asked():
    tom, anna = name("Tom", ref=1), name("Anna", ref=2)
    clauses = [clause(tom, "buy", num("apple", 3, ref=3)), clause(anna, "buy", num("apple", 2, ref=4))]
    context = english.paragraph([Sentence((c,)) for c in clauses])
    assert candidates(clauses, context, "how_many") == []          # which apples?
    assert candidates(clauses, context, "what") == [("What does Tom buy?", "three apples"),
                                                    ("What does Anna buy?", "two apples")]


ENGLISH_ONLY = {"the", "and", "is", "are", "does", "not", "to", "in", "of", "it", "he", "she"}
FRENCH_ONLY = {"le", "la", "les", "et", "est", "sont", "des", "du", "une", "il", "elle", "pas", "au"}


def _words(paragraph):
    return set(re.findall(r"[a-zàâçéèêëîïôûùüœ]+", paragraph.lower().replace("'", " ")))


def test_corpus_paragraphs_are_monolingual_and_both_languages_appear():
    paragraphs = corpus(1500, seed=11)
    languages = Counter()
    for p in paragraphs:
        words = _words(p)
        is_en, is_fr = bool(words & ENGLISH_ONLY), bool(words & FRENCH_ONLY)
        assert is_en != is_fr, p
        languages["en" if is_en else "fr"] += 1
        assert 2 <= len(re.findall(r"[.!?](?: |$)", p)) <= 6, p
    assert 600 < languages["en"] < 900


def test_corpus_can_be_one_language_and_holds_a_few_recipes():
    french_only = corpus(300, seed=12, languages=("fr",))
    assert all(not _words(p) & ENGLISH_ONLY for p in french_only)
    recipes = sum(("Ajoutez" in p or "Faites" in p or "Mettez" in p or "Laissez" in p or "pendant" in p)
                  for p in corpus(3000, seed=12, languages=("fr",)))
    assert 20 <= recipes <= 200       # about 3 % are recipes


@pytest.mark.parametrize("call, words", [
    (lambda: examples("poetry", 5), ["task", "'poetry'", "'translation'", "'qa'"]),
    (lambda: examples("qa", 0), ["n", ">= 1"]),
    (lambda: examples("qa", 5, split="dev"), ["split", "'dev'", "'train'", "'val'", "'test'"]),
    (lambda: examples("translation", 5, subset="medical"), ["subset", "'medical'", "'kitchen'", "'general'"]),
    (lambda: examples("qa", 5, subset="kitchen"), ["subset", "'who'", "'how_many'"]),
    (lambda: corpus(0, seed=1), ["n_paragraphs"]),
    (lambda: corpus(5, seed=1, languages=("de",)), ["languages", "'de'", "'en'", "'fr'"]),
])
def test_bad_arguments_raise_errors_naming_the_field_and_the_choices(call, words):
    with pytest.raises(MiniftError) as info:
        call()
    for word in words:
        assert word in str(info.value)
