"""The fine-tuning strategies, one file each, and the one registry that lists them.

``strategy = "X"`` in a recipe always means ``minift/strategies/X.py``:

    full     every weight trains                                        (full.py)
    layers   chosen blocks and parts train; ULMFiT's gradual unfreezing and
             discriminative rates                                       (layers.py)
    prompt   the model is frozen; soft prompts before the input train   (prompt.py)
    prefix   the model is frozen; a key/value prefix at every layer
             trains (prefix tuning)                                     (prefix.py)
    lora     the model is frozen; a low-rank update B·A beside chosen
             linear layers trains, merged into them at the end          (lora.py)
    bitfit   only the bias vectors train (optionally LayerNorm's too)   (bitfit.py)

Each file holds the mechanism, its recipe fields (an ``Options`` dataclass), the checks of those
fields and how a stage sets it up and finishes it (the interface: ``base.py``). Everything that
needs to know the strategies reads ``REGISTRY`` below: recipe parsing and its errors
(``schedule.py``), the training loop (``finetune.py``), ``minift bench --only strategies``,
``minift experiment``, ``minift advise`` and the CLI's help. None of them compares a strategy's
name as a string. Adding one is its file, a line here, a recipe, its docs and its test
(``README.md`` in this folder).
"""
from __future__ import annotations

from minift.errors import MiniftError
from minift.strategies import bitfit, full, layers, lora, prefix, prompt
from minift.strategies.base import NoOptions, StageSetup, Strategy

REGISTRY: dict[str, Strategy] = {s.name: s for s in (
    full.STRATEGY,
    layers.STRATEGY,
    prompt.STRATEGY,
    prefix.STRATEGY,
    lora.STRATEGY,
    bitfit.STRATEGY,
)}


def names() -> tuple[str, ...]:
    """Every registered strategy, in registry order."""
    return tuple(REGISTRY)


def get(name, where: str = "strategy") -> Strategy:
    """The strategy registered as ``name``; an unknown one is refused, listing every registered one."""
    try:
        return REGISTRY[name]
    except (KeyError, TypeError):
        raise MiniftError(f"{where} = {name!r}: unknown strategy; allowed: {', '.join(REGISTRY)}") from None


def owners(field_name: str) -> list[str]:
    """The strategies whose recipe fields include ``field_name`` (for "only a 'layers' stage uses it")."""
    return [s.name for s in REGISTRY.values() if field_name in s.option_fields()]


def help_text() -> str:
    """One line per strategy, for ``--help``."""
    return "; ".join(f"{s.name}: {s.summary}" for s in REGISTRY.values())


__all__ = ["REGISTRY", "NoOptions", "StageSetup", "Strategy", "get", "help_text", "names", "owners"]
