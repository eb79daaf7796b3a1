"""Full-parameter fine-tuning: every weight of the model trains.

The idea
--------
Start from the pretrained weights θ₀ and minimise the task's loss over all of them, exactly as in
pretraining but on the task's examples (Howard & Ruder 2018, Radford et al. 2018):

    θ ← θ − lr · AdamW(∇θ L(θ))            θ: every tensor of the GPT, 957,440 numbers in the shipped base

It is the strongest strategy when there is enough data, and the most expensive: every weight
needs its gradient and two AdamW moments (8 bytes each in float32), and backward runs through every
block. With little data it can overwrite what pretraining taught (forgetting), which is what the
cheaper strategies (``layers.py``, ``prompt.py``, ``lora.py``, ...) are compared against.

Recipe fields: none of its own; every stage field (``lr``, ``weight_decay``, ``epochs``, ...) is the
trainer's (``minift/recipes/README.md``). Recipe: ``minift/recipes/full.toml``.

Tutorial 06 (full fine-tuning) runs it.
"""
from __future__ import annotations

from minift.optim import param_groups
from minift.strategies.base import StageSetup, Strategy


class Full(Strategy):
    name = "full"
    summary = "every weight trains"
    paper = "Howard & Ruder 2018 (ULMFiT); Radford et al. 2018 (GPT)"

    def setup(self, stage, bundle, examples, log, seed: int) -> StageSetup:
        for p in bundle.model.parameters():
            p.requires_grad_(True)
        return StageSetup(groups=param_groups(bundle.model, stage.weight_decay), row_names=[None] * len(examples))


STRATEGY = Full()
