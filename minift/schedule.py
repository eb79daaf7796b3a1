"""Hybrid schedules declared as recipes: a base model, a task, and a list of stages.

No single strategy fits every task and data size, so minift chains them. A *recipe* is a TOML file
(read with the standard library's ``tomllib``) that says which base to start from, which data to
use, and what each stage does. The order of the seed idea, ``recipes/hybrid.toml``:

    [[stages]]  full      every weight trains, on the broad data
    [[stages]]  layers    only the top blocks (+ final LayerNorm) train, on narrower data
    [[stages]]  prompt    the model is frozen; one soft prompt per sub-domain or style

Each stage starts from the best weights of the one before, with a fresh optimizer (moments
learned for one set of trainable weights mean nothing for another), and leaves a checkpoint.

Every field, with its meaning and default, is in ``STAGE_FIELDS`` / ``RECIPE_FIELDS`` below and
in ``minift/recipes/README.md``. A recipe is validated completely before any training starts: an
unknown or misspelled key, a wrong type, a block index outside the model, a prompt longer than the
block, a learning rate <= 0, an unknown optimizer, a negative l1, an empty stage list: each is one
line naming the file and the field.

Tutorial 09 (the hybrid schedule) builds one recipe by hand and runs it.
"""
from __future__ import annotations

import difflib
import math
import sys
from dataclasses import dataclass, fields
from pathlib import Path

from minift import strategies
from minift.errors import MiniftError
from minift.trainer import TrainConfig

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: tomllib arrived in 3.11; tomli is the same parser under its old name
    try:
        import tomli as tomllib
    except ImportError:  # pragma: no cover
        tomllib = None

OPTIMIZERS = ("adamw", "sgd")
PROTOCOLS = ("fixed", "fair")  # a recipe's protocol: experiment.resolve_protocol reads the same two names
SGD_MOMENTUM = 0.9  # the momentum of an sgd stage that does not give one
RECIPE_DIR = Path(__file__).resolve().parent / "recipes"


@dataclass
class Stage(TrainConfig):
    """One stage of a schedule. Fields left out of a recipe take these defaults.

    The optimisation knobs (max_steps, batch_size, lr, warmup_steps, min_lr_ratio, weight_decay,
    l2, l1, grad_clip, eval_every, log_every, patience, min_delta, monitor, restore_best) are the
    trainer's own ``TrainConfig`` fields, inherited; a stage adds which optimizer, what to train
    and on what. The fields of its strategy (``blocks``, ``prompt_tokens``, ``lora_rank``, ...)
    live in ``options``, the strategy's own dataclass (``minift/strategies/NAME.py``).
    """

    max_steps: int = 300  # a fine-tuning stage is shorter than TrainConfig's default
    optimizer: str = "adamw"
    """adamw (decoupled decay, two moments per weight) | sgd (coupled decay, one momentum buffer)."""
    momentum: float | None = None
    """SGD's momentum, in [0, 1) (default SGD_MOMENTUM, 0.9); only an sgd stage may give it."""
    name: str = ""
    """A short name, used in logs, charts and checkpoint file names (default: the strategy)."""
    strategy: str = "full"
    """The strategy: a name from the registry (``minift/strategies/``: full, layers, prompt, ...)."""
    data: str = "all"
    """Which examples: 'all' (the task's mix), a subset name (e.g. 'kitchen', 'headline'), or a JSONL path."""
    examples: int | None = None
    """Training examples to use (default: the run's --examples, else 1000)."""
    epochs: float | None = None
    """A budget that follows the data: steps = round(epochs * examples / batch_size), at least
    min_steps and at most max_steps (the cap). Unset: the stage trains max_steps steps."""
    min_steps: int | None = None
    """With epochs: the floor on steps, so a small data set still gets a real run (default 1)."""
    dropout: float = 0.0
    """Dropout in the model during this stage."""
    eval_examples: int = 64
    """Validation examples for the loss and for generated-text metrics during the stage."""
    length_buckets: int = 1
    """Batches of similar lengths: the examples are cut into this many groups by length, and each
    batch draws its rows from one group (1: every batch from all examples, the default). Less
    padding per batch, the same chance for every example (``finetune.stage_batches``)."""
    options: object = None
    """The strategy's own fields (its ``Options`` dataclass); None: its defaults."""

    def __post_init__(self):
        if self.options is None:
            self.options = strategies.get(self.strategy).Options()

    @property
    def method(self) -> strategies.Strategy:
        """The registered strategy this stage runs."""
        return strategies.get(self.strategy)


RECIPE_FIELDS = {
    "name": "the recipe's name",
    "description": "one line on what it does",
    "base": "the model to start from: 'base' (shipped), a checkpoint or run folder, 'gpt2:PATH', or 'scratch'",
    "task": "translation | summarization | qa (default: translation); --task overrides",
    "data": "a JSONL file to use instead of a generated task; --data overrides",
    "examples": "training examples per stage unless a stage says otherwise; --examples overrides",
    "seed": "random seed (default 0); --seed overrides",
    "protocol": "how `minift finetune` budgets the stages: 'fixed' (each stage's own max_steps) or 'fair' "
                "(the strategy experiment's: epochs with a floor and a cap, early stopping); default fixed; "
                "--protocol overrides",
    "lr_scale": "multiply every stage's lr when `minift finetune` runs it: a number > 0, or 'tuned' (the "
                "multiplier the strategy grid trained this recipe at, for the task and the nearest size, on "
                "the shipped base); default 1; --lr-scale overrides",
    "defaults": "a table of stage fields shared by every stage",
    "stages": "the list of [[stages]]",
}
STAGE_FIELDS = {f.name: f for f in fields(Stage) if f.name != "options"}
"""The fields every stage has, whatever its strategy; each strategy adds its ``Options`` fields."""
TYPES = {"int": (int,), "float": (int, float), "str": (str,), "bool": (bool,), "list": (list,)}


@dataclass
class Recipe:
    name: str
    stages: list[Stage]
    base: str = "base"
    task: str = "translation"
    data: str | None = None
    examples: int | None = None
    seed: int = 0
    description: str = ""
    source: str = "<recipe>"
    # How `minift finetune` budgets and scales the stages (``run_recipe`` runs them as written):
    protocol: str = "fixed"  # "fixed": each stage's own max_steps; "fair": the strategy experiment's budget
    lr_scale: float | str = 1.0  # every stage's lr times this; "tuned": the multiplier the grid chose


def _expected(f) -> tuple[str, bool]:
    """(type name, optional) from a dataclass field's annotation string."""
    text = str(f.type)
    optional = "None" in text
    for name in ("bool", "int", "float", "str", "list"):
        if text.startswith(name):
            return name, optional
    return "str", optional


def _check_value(source, where, key, value, f):
    kind, optional = _expected(f)
    ok = isinstance(value, TYPES[kind]) and not (kind in ("int", "float") and isinstance(value, bool))
    if not ok:
        extra = " (or leave it out)" if optional else ""
        raise MiniftError(f"{source}: {where}.{key} must be {'an' if kind == 'int' else 'a'} {kind}{extra}, "
                          f"got {type(value).__name__} {value!r}")


def _convert(f, value):
    return float(value) if _expected(f)[0] == "float" else value


def all_stage_fields() -> list[str]:
    """Every field a stage may hold: the common ones, then each registered strategy's."""
    out = list(STAGE_FIELDS)
    for s in strategies.REGISTRY.values():
        out += [k for k in s.option_fields() if k not in out]
    return out


# Names people reach for from other libraries, and the field minift calls them.
SYNONYMS = {"learning_rate": "lr", "steps": "max_steps", "num_steps": "max_steps", "wd": "weight_decay",
            "batch": "batch_size", "type": "strategy", "method": "strategy", "layers": "blocks",
            "num_virtual_tokens": "prompt_tokens", "n_prompt_tokens": "prompt_tokens", "early_stopping": "patience"}


def _unknown(source, where, key, allowed):
    close = [SYNONYMS[key]] if SYNONYMS.get(key) in allowed else difflib.get_close_matches(key, allowed, n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    raise MiniftError(f"{source}: unknown field {where}.{key}{hint}; allowed: {', '.join(allowed)}")


def parse_stage(source, index, table: dict, defaults: dict) -> Stage:
    """One [[stages]] table (over the recipe's ``defaults``) as a checked Stage.

    A stage's own table may hold the common fields and its strategy's; a field of another strategy
    is refused. The ``defaults`` table is shared by every stage, so its fields of other strategies
    simply do not apply to this one.
    """
    where = f"stages[{index}]"
    name = table.get("strategy", defaults.get("strategy", "full"))
    if not isinstance(name, str):
        raise MiniftError(f"{source}: {where}.strategy must be a str, got {type(name).__name__} {name!r}")
    method = strategies.get(name, f"{source}: {where}.strategy")
    own = method.option_fields()
    merged = {k: v for k, v in defaults.items() if k in STAGE_FIELDS or k in own}
    merged.update(table)
    for key, value in method.defaults.items():  # e.g. prompt tuning's high rate, no decay
        merged.setdefault(key, value)
    common, options = {}, {}
    for key, value in merged.items():
        if key in STAGE_FIELDS:
            _check_value(source, where, key, value, STAGE_FIELDS[key])
            common[key] = _convert(STAGE_FIELDS[key], value)
        elif key in own:
            _check_value(source, where, key, value, own[key])
            options[key] = _convert(own[key], value)
        elif strategies.owners(key):
            users = " or ".join(f"'{o}'" for o in strategies.owners(key))
            raise MiniftError(f"{source}: {where}.{key} = {value!r}: only a {users} stage uses it "
                              f"(this stage is '{name}')")
        else:
            _unknown(source, where, key, list(STAGE_FIELDS) + list(own))
    stage = Stage(**common, options=method.Options(**options))
    stage.name = stage.name or stage.strategy
    _check_stage(source, where, stage)
    return stage


def make_stage(**fields) -> Stage:
    """A checked Stage from keyword fields, as a recipe would give them (for code and tests)."""
    return parse_stage("<stage>", 0, fields, {})


def _refuser(source, where, s: Stage):
    """``bad(field, what is allowed)`` for one stage: raises the one-line error naming the field and
    its value, whether the field is the stage's own or its strategy's (``s.options``)."""
    def bad(key, allowed):
        value = getattr(s, key) if hasattr(s, key) else getattr(s.options, key)
        raise MiniftError(f"{source}: {where}.{key} = {value!r}: {allowed}")

    return bad


def _check_stage(source, where, s: Stage):
    bad = _refuser(source, where, s)

    if s.lr <= 0:
        bad("lr", "the learning rate must be > 0")
    if s.optimizer not in OPTIMIZERS:
        bad("optimizer", f"unknown optimizer; allowed: {', '.join(OPTIMIZERS)}")
    if s.momentum is not None and s.optimizer != "sgd":
        bad("momentum", f"only an 'sgd' stage uses it (this stage's optimizer is '{s.optimizer}'; "
                        f"AdamW has betas instead)")
    if s.momentum is not None and not 0 <= s.momentum < 1:
        bad("momentum", "must be in [0, 1) (0 = plain SGD, 0.9 = the default)")
    for key in ("max_steps", "batch_size", "eval_every", "log_every", "eval_examples", "length_buckets"):
        if getattr(s, key) < 1:
            bad(key, "must be >= 1")
    for key in ("examples", "patience"):
        if getattr(s, key) is not None and getattr(s, key) < (0 if key == "patience" else 1):
            bad(key, "must be >= 1" if key != "patience" else "must be >= 0")
    for key in ("warmup_steps",):
        if getattr(s, key) < 0:
            bad(key, "must be >= 0")
    for key in ("weight_decay", "l2", "l1", "min_delta", "grad_clip", "min_lr_ratio"):
        if getattr(s, key) < 0:
            bad(key, "must be >= 0")
    if not 0 <= s.dropout < 1:
        bad("dropout", "must be in [0, 1)")
    if s.epochs is not None and s.epochs <= 0:
        bad("epochs", "must be > 0")
    if s.min_steps is not None:
        if s.epochs is None:
            bad("min_steps", "the floor of an epochs budget: set epochs too (or leave min_steps out)")
        if not 1 <= s.min_steps <= s.max_steps:
            bad("min_steps", f"must be >= 1 and <= max_steps ({s.max_steps}), the cap")
    s.method.check(s.options, bad)


def parse_recipe(doc: dict, source: str) -> Recipe:
    for key in doc:
        if key not in RECIPE_FIELDS:
            _unknown(source, "recipe", key, list(RECIPE_FIELDS))
    defaults = doc.get("defaults", {})
    if not isinstance(defaults, dict):
        raise MiniftError(f"{source}: 'defaults' must be a table of stage fields")
    every = all_stage_fields()
    for key in defaults:
        if key not in every:
            _unknown(source, "defaults", key, every)
    tables = doc.get("stages")
    if not isinstance(tables, list) or not tables:
        raise MiniftError(f"{source}: 'stages' must be a non-empty list of [[stages]] tables")
    stages = []
    for i, table in enumerate(tables):
        if not isinstance(table, dict):
            raise MiniftError(f"{source}: stages[{i}] must be a table")
        stages.append(parse_stage(source, i, table, defaults))
    names = [s.name for s in stages]
    for name in names:
        if names.count(name) > 1:
            raise MiniftError(f"{source}: two stages are named '{name}'; give each a distinct name")
    for key, kind in (("name", str), ("description", str), ("base", str), ("task", str), ("data", str),
                      ("examples", int), ("seed", int)):
        if key in doc and (not isinstance(doc[key], kind) or isinstance(doc[key], bool)):
            raise MiniftError(f"{source}: recipe.{key} must be a {kind.__name__}, got {doc[key]!r}")
    if doc.get("examples") is not None and doc["examples"] < 1:
        raise MiniftError(f"{source}: recipe.examples must be >= 1")
    if doc.get("protocol", "fixed") not in PROTOCOLS:
        raise MiniftError(f"{source}: recipe.protocol must be one of {', '.join(PROTOCOLS)}, got {doc['protocol']!r}")
    scale = doc.get("lr_scale", 1.0)
    if scale != "tuned" and (isinstance(scale, bool) or not isinstance(scale, (int, float))
                             or not math.isfinite(scale) or scale <= 0):
        raise MiniftError(f"{source}: recipe.lr_scale must be a number > 0 or \"tuned\", got {scale!r}")
    return Recipe(name=doc.get("name", Path(source).stem), stages=stages, base=doc.get("base", "base"),
                  task=doc.get("task", "translation"), data=doc.get("data"), examples=doc.get("examples"),
                  seed=doc.get("seed", 0), description=doc.get("description", ""), source=source,
                  protocol=doc.get("protocol", "fixed"), lr_scale=scale if scale == "tuned" else float(scale))


def builtin_recipes() -> list[str]:
    return sorted(p.stem for p in RECIPE_DIR.glob("*.toml"))


def load_recipe(name_or_path) -> Recipe:
    """A built-in recipe by name (``hybrid``) or a TOML file by path."""
    text = str(name_or_path)
    path = Path(text)
    if not path.suffix and not path.exists():
        path = RECIPE_DIR / f"{text}.toml"
        if not path.exists():
            raise MiniftError(f"unknown recipe '{text}': built-in recipes are {', '.join(builtin_recipes())}, "
                              f"or give a path to a .toml file")
    if not path.is_file():
        raise MiniftError(f"{path}: no such recipe file")
    if tomllib is None:  # pragma: no cover
        raise MiniftError("reading TOML recipes on Python 3.10 needs the 'tomli' package (pip install tomli)")
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise MiniftError(f"{path}: not valid TOML ({exc})") from None
    return parse_recipe(doc, str(path))


def check_against_model(recipe: Recipe, config) -> None:
    """The checks that need the model (its ``GPTConfig``): block indices in range, prompts that fit
    the block, a LoRA rank the layers can hold, biases for BitFit. Each strategy says its own
    (``check_model``)."""
    for i, s in enumerate(recipe.stages):
        s.method.check_model(s.options, config, _refuser(recipe.source, f"stages[{i}]", s))
