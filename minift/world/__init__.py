"""A small procedural world of text in English and French, for pretraining and fine-tuning.

Real corpora are too big for a laptop and too messy for a lesson, so minift generates its own:
about two hundred words per language (people with names, animals, food, objects, places, colours,
actions, the numbers one to ten), combined by a grammar into thousands of distinct sentences that
are *correct* — French articles, adjectives and verbs agree, adjectives sit on the right side of
the noun, "à le" becomes "au", "je aime" becomes "j'aime".

How it is built, one module per idea:

- ``lexicon.py``: the words and their irregular forms; ``kitchen.py``: a narrow recipe domain;
- ``grammar.py``: what a sentence means, as small structures, before it has words;
- ``english.py``, ``french.py``, ``conjugation.py``: the rules that turn a meaning into text;
- ``cast.py``, ``stories.py``: who does what, in little stories of 2–6 sentences;
- ``questions.py``, ``tasks.py``: the fine-tuning tasks and their leak-free splits.

The public API::

    corpus(n_paragraphs, seed, languages=("en", "fr"))   # tutorial 05: pretraining text
    examples(task, n, seed=0, split="train", subset=None) # tutorials 06, 09, 10
    TASKS = ("translation", "summarization", "qa")
    SUBSETS = {"translation": ("general", "kitchen"), "summarization": ("headline", "sentence"),
               "qa": ("who", "what", "where", "how_many", "colour")}

Everything is a pure function of its arguments: the same call gives the same text on any machine.
"""
from minift.world.stories import corpus
from minift.world.tasks import SPLITS, SUBSETS, TASKS, examples

__all__ = ["corpus", "examples", "TASKS", "SUBSETS", "SPLITS"]
