"""BitFit (``strategy = "bitfit"``): only the bias vectors train; every weight matrix stays the base's.

The idea (Ben Zaken, Ravfogel & Goldberg 2021, "BitFit: Simple Parameter-efficient Fine-tuning
for Transformer-based Masked Language-models")
-----------------------------------------------------------------------------------------------
Every linear layer of a Transformer computes

    y = W x + b          x: (B, T, in)   W: (out, in) frozen   b: (out,) trainable   y: (B, T, out)

BitFit freezes every W (and the embeddings) and trains only the b's. A bias cannot rotate or
rescale what a layer reads; it only *shifts* what the layer writes, the same shift for every token
and every row. That is very little freedom, yet on BERT the paper matched full fine-tuning on much
of GLUE with small to medium data, changing under 0.1% of the weights: evidence that fine-tuning
mostly *exposes* what pretraining learned rather than learning something new. The paper also
trains a new classification layer; a GPT's output layer is its (tied) token embedding, already
fit to write text, so here it stays frozen with the other matrices.

Which biases a minift GPT has (C = n_embd), per block:

    attn.c_attn   3C    the query, key and value projections' biases, side by side
    attn.c_proj    C    the attention's output projection
    mlp.c_fc      4C    the MLP's widening layer (with the query's, the bias the paper saw change most)
    mlp.c_proj     C    the MLP's output projection

The embeddings and the head (``lm_head``, built with ``bias=False``) have no bias. For the shipped
base (n_embd 128, 4 blocks) that is

    4 × (384 + 128 + 512 + 128) = 4 × 1,152 = 4,608 trainable numbers of 957,440 (0.48%).

One third of c_attn's bias learns nothing: the key bias b_k adds q·b_k to *every* score of a
query, the same number for each key it looks at, and softmax ignores a shift shared by all its
inputs, so the gradient of b_k is zero (rounding noise only). The paper saw the key bias change
least.

LayerNorm (``bitfit_layernorm``). A LayerNorm computes ``γ ⊙ (x − μ) / σ + β``: β (C) is its
bias, γ (C) its gain. With ``bitfit_layernorm = true`` BOTH of them train, in every LayerNorm of
the model: ``ln_1`` and ``ln_2`` of each block and the final ``ln_f``, so 2 × C each. For the
shipped base that adds (4 × 2 + 1) × 2 × 128 = 2,304, for 6,912 in all (0.72%). The paper's own set
lies between the two: it counts LayerNorm's β among the bias terms and leaves γ alone. Here the
default (false) is the plain rule "the bias of every linear layer", and true adds all of LayerNorm.

What a stage costs. AdamW keeps two float32 moments per trainable number: 2 × 4 × 4,608 = 36,864
bytes for the shipped base, 0.48% of full fine-tuning's state. Backward still runs through every
block (the first block's biases need a gradient), so a step costs about what the full step does
minus the weight gradients; the saving is memory: no gradient and no moments for any matrix.

No weight decay. Every tensor BitFit trains is 1-D, and ``optim.param_groups`` gives 1-D tensors
``weight_decay = 0`` (decay of biases and gains does no regularizing worth having), so a BitFit
stage trains with no decay whatever ``weight_decay`` says, and ``l1`` (over the decayed weights
only) adds nothing; ``l2`` (over every trainable weight) does apply. The default ``weight_decay``
is therefore 0, so the stage's record says what really happens.

The learning rate. The paper searched 1e-4..1e-3 on BERT, well above the rates of its full
fine-tuning: few numbers, each must move far. On the shipped base the default is 3e-2, 30 times
full's 1e-3: on translation from 200 examples, 100 steps, 3e-3 / 1e-2 / 3e-2 / 1e-1 reached
val loss 1.687 / 1.622 / 1.605 / 1.636 and BLEU 2.4 / 3.9 / 5.0 / 2.8 (``minift/recipes/bitfit.toml``
gives the command). Full fine-tuning got 1.454 and 13.2 on the same budget: on a base this small,
shifting activations is far from enough to learn a new language pair.

A model without biases (``GPTConfig(bias=False)``, as in many modern LLMs) has nothing for BitFit
to train: the recipe is refused before training starts, naming the config's ``bias`` field.

Recipe: ``minift/recipes/bitfit.toml``. Lesson 08 (section 11: the biases listed from the model,
the key bias's zero gradient, a stage) steps through this file.
"""
from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from minift.errors import MiniftError
from minift.optim import param_groups
from minift.strategies.base import StageSetup, Strategy
from minift.strategies.layers import set_trainable

LR = 3e-2
"""A BitFit stage's default peak learning rate (see the module docstring)."""


@dataclass
class Options:
    """The recipe fields of a ``strategy = "bitfit"`` stage."""

    bitfit_layernorm: bool = False
    """Also train every LayerNorm's gain γ and shift β (ln_1, ln_2 of each block, ln_f)."""


def bias_names(model: nn.Module, layernorm: bool = False) -> list[str]:
    """The names of the parameters BitFit trains, in model order: the bias of every ``nn.Linear``
    that has one, and with ``layernorm`` the weight (γ) and bias (β) of every ``nn.LayerNorm``."""
    wanted = set()
    for prefix, module in model.named_modules():
        dot = prefix + "." if prefix else ""
        if isinstance(module, nn.Linear) and module.bias is not None:
            wanted.add(dot + "bias")
        elif layernorm and isinstance(module, nn.LayerNorm):
            wanted.update(dot + name for name, _ in module.named_parameters(recurse=False))
    return [name for name, _ in model.named_parameters() if name in wanted]


class BitFit(Strategy):
    name = "bitfit"
    summary = "only the bias vectors train (optionally LayerNorm's gain and shift too)"
    paper = "Ben Zaken, Ravfogel & Goldberg 2021 (BitFit)"
    Options = Options
    defaults = {"lr": LR, "weight_decay": 0.0}

    def check_model(self, o, config, bad) -> None:
        if not config.bias:
            bad("strategy", "the model has no bias vectors to train: its config has bias = False "
                            "(GPTConfig.bias); BitFit needs a base built with bias = True")

    def setup(self, stage, bundle, examples, log, seed: int) -> StageSetup:
        model = bundle.model
        names = bias_names(model, stage.options.bitfit_layernorm)
        if not names:  # check_model refuses this for a recipe; a direct call lands here
            raise MiniftError("bitfit: the model has no bias vectors to train (GPTConfig.bias = False)")
        set_trainable(model, names)
        return StageSetup(groups=param_groups(model, stage.weight_decay), row_names=[None] * len(examples))

    def bench_cases(self):
        return [("bitfit", Options()), ("bitfit + LayerNorm", Options(bitfit_layernorm=True))]


STRATEGY = BitFit()
