"""What a fine-tuning strategy is, as code: the interface every file in ``minift/strategies/`` fills in.

A strategy answers four questions about one stage of a recipe, and nothing else:

    1. which recipe fields are mine?     ``Options``, a small dataclass (its docstrings are the docs),
                                          checked by ``check`` (alone) and ``check_model`` (against
                                          the model's shape), before any training starts;
    2. what trains?                       ``setup``: set ``requires_grad``, add any new weights (a
                                          soft prompt, a LoRA adapter), return the optimizer's groups;
    3. what does each row read?           ``StageSetup.row_names``: most strategies change weights
                                          shared by every row (None per row); prompt and prefix
                                          tuning train *per-row state* of the model's input, one
                                          named tensor per sub-domain, kept in ``bundle.prompts``
                                          and chosen per row by ``evaluate.choose_prompt``;
    4. what is left when the stage ends?  ``finish``: LoRA merges its update into the weights, so
                                          the next stage and ``model.pt`` see a plain GPT.

The loop that runs a stage (``finetune.run_stage``) calls these and knows no strategy by name; the
recipe parser (``schedule.py``), ``minift bench --only strategies``, ``minift experiment`` and
``minift advise`` read the registry (``minift/strategies/__init__.py``). The base weights a stage
may change are said by one flag, ``changes_base``: a soft prompt or prefix is tuned to the exact
weights below it, so a stage that changes them drops the ones it inherited.

``minift/strategies/README.md`` says how to add a strategy.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Callable


@dataclass
class NoOptions:
    """A strategy with no recipe fields of its own (full fine-tuning)."""


@dataclass
class StageSetup:
    """What ``Strategy.setup`` hands the training loop."""

    groups: list
    """The optimizer's parameter groups (``optim.param_groups``), over exactly the weights that train."""
    row_names: list
    """One name per training example: the per-row state (soft prompt, prefix) it reads, or None."""
    before_step: Callable[[int], None] | None = None
    """Called with the step number before every step (gradual unfreezing widens what trains)."""
    find_unused: bool = False
    """DDP: some parameters of the module get no gradient (a frozen base, unused prompts)."""
    state: dict = field(default_factory=dict)
    """Whatever ``finish`` needs back (the LoRA layers to merge)."""


class Strategy:
    """One fine-tuning strategy. Subclasses set the class attributes and override what they need."""

    name: str = ""
    """The recipe word: ``strategy = "NAME"`` in a recipe means ``minift/strategies/NAME.py``."""
    summary: str = ""
    """One line for ``--help`` and the docs: what trains."""
    Options: type = NoOptions
    """The dataclass of the recipe fields only this strategy reads (``lora_rank``, ``blocks``, ...)."""
    defaults: dict = {}
    """Stage fields whose default differs for this strategy (prompt tuning: lr 0.1, no decay)."""
    changes_base: bool = True
    """Whether the stage changes the base's weights (then inherited soft prompts and prefixes are stale)."""
    paper: str = ""
    """Where the idea comes from."""

    def check(self, options, bad: Callable[[str, str], None]) -> None:
        """Refuse bad field values before the model is loaded: ``bad(field, what is allowed)`` raises."""

    def check_model(self, options, config, bad: Callable[[str, str], None]) -> None:
        """Refuse what does not fit this model (``GPTConfig``): a block outside it, a prompt too long."""

    def setup(self, stage, bundle, examples, log, seed: int) -> StageSetup:
        """Make the stage's weights trainable (and only those); return the optimizer groups and row names."""
        raise NotImplementedError

    def finish(self, stage, bundle, setup: StageSetup, folder) -> dict:
        """After the stage's best weights are restored: leave the bundle as the next stage should see
        it; ``folder`` is the stage's checkpoint folder. Returns extra fields for the stage's summary."""
        return {}

    def bench_cases(self) -> list[tuple[str, object]]:
        """(label, Options) pairs that ``minift bench --only strategies`` measures."""
        return [(self.name, self.Options())]

    # --- helpers every strategy shares ------------------------------------------------------------
    def option_fields(self) -> dict[str, dataclasses.Field]:
        return {f.name: f for f in dataclasses.fields(self.Options)}

    def __repr__(self) -> str:
        return f"<strategy {self.name}: {self.summary}>"
