"""LoRA (``strategy = "lora"``): freeze every weight, learn a low-rank update beside chosen linear layers.

The idea (Hu et al. 2021, "LoRA: Low-Rank Adaptation of Large Language Models")
-------------------------------------------------------------------------------
Fine-tuning changes a pretrained matrix W (out, in) by some ΔW. Hu et al. observed that the ΔW a
task needs has a low "intrinsic rank", so they write it as a product of two thin matrices and
train only those, leaving W frozen:

    y = W x + b + (alpha / r) · B (A dropout(x))

    x  (..., in)      the layer's input
    W  (out, in)      frozen, as pretrained;  b (out) frozen too
    A  (r, in)        trains; starts Kaiming-uniform (a = √5), as nn.Linear initialises its own weight
    B  (out, r)       trains; starts at ZERO
    r                 the rank (``lora_rank``), r <= min(in, out); alpha (``lora_alpha``, default r)
                      sets the scale alpha / r, so a change of r need not retune the learning rate

Why B = 0 makes step 0 identical to the base. With B = 0 the extra term is B (A x) = 0 exactly,
and W x + b + 0 is W x + b bit for bit: the wrapped model's logits equal the base's (tested with
``torch.equal``). A is random so that the gradient reaching B, (alpha/r) · g (A x)ᵀ, is not zero;
if both started at zero neither would ever move.

Why merging costs nothing at inference. B A is one (out, in) matrix, the shape of W, so at the end
of the stage ``LoRALinear.merged`` folds it in, W' = W + (alpha/r) · B A, and the layer is a plain
nn.Linear again: no extra matmul, no extra parameters, the base's keys and shapes in ``model.pt``.
The unmerged and merged models agree to float rounding (1e-5, tested).

What trains, counted. A layer of shape (in -> out) adds r·in + out·r numbers. Rank 8 on
``attn.c_attn`` (128 -> 384) of the shipped base (n_embd 128, 4 blocks):

    4 blocks × (8·128 + 384·8) = 4 × (1,024 + 3,072) = 16,384      of 957,440 (1.7%)

and the default targets (``attn.c_attn`` and ``attn.c_proj``, 128 -> 128) add 4 × (8·128 + 128·8)
= 8,192, 24,576 in all. AdamW keeps two float32 moments per trained number: 196,608 bytes against
full fine-tuning's 7.7 MB (2.6%). Every base weight gets no gradient, so no weight-gradient matmul
either; backward still runs through every block down to the lowest wrapped one, to reach its A and B.

The stage's adapter alone (the A and B of every wrapped layer, the rank, alpha, the targets and the
fingerprint of the weights it was trained on) is saved as ``adapter.pt`` in the stage's folder: about
100 kB on the shipped base (lesson 08 prints 103,539 bytes against model.pt's 3,863,367) that
``load_adapter`` merges onto that same base, and refuses on any other.

Recipe fields: ``Options`` below (``minift/recipes/README.md``); recipe: ``minift/recipes/lora.toml``.
Lesson 08 (section 10: one layer by hand, the whole model, a stage and its adapter) steps through this file.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from minift.checkpoint import fingerprint, read_torch_file
from minift.errors import MiniftError
from minift.io import atomic_torch_save
from minift.model import Block
from minift.strategies import layers
from minift.strategies.base import StageSetup, Strategy

FORMAT = "minift-lora-adapter"
VERSION = 1
TARGETS = ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj")
"""The linear layers of a block LoRA may wrap (names inside ``transformer.h.N``)."""


def merge_weight(weight: torch.Tensor, lora_A: torch.Tensor, lora_B: torch.Tensor, scale: float) -> torch.Tensor:
    """W + scale · B @ A, in W's dtype: the one formula ``merged`` and ``load_adapter`` both use."""
    delta = scale * (lora_B.detach().float() @ lora_A.detach().float())  # (out, r) @ (r, in) = (out, in)
    return (weight.detach().float() + delta.to(weight.device)).to(weight.dtype)


class LoRALinear(nn.Module):
    """A frozen nn.Linear (``self.base``) plus the trainable low-rank update (alpha/r) · B A."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float | None = None, dropout: float = 0.0,
                 generator: torch.Generator | None = None):
        super().__init__()
        if not isinstance(base, nn.Linear):
            raise MiniftError(f"LoRALinear wraps an nn.Linear, got {type(base).__name__}")
        if not isinstance(rank, numbers.Integral) or isinstance(rank, bool) or not 1 <= rank <= min(base.weight.shape):
            raise MiniftError(f"LoRALinear: rank must be an integer 1..{min(base.weight.shape)} (the smaller "
                              f"dimension of a {base.in_features} -> {base.out_features} layer), got {rank!r}")
        alpha = float(rank if alpha is None else alpha)
        if not math.isfinite(alpha) or alpha <= 0:
            raise MiniftError(f"LoRALinear: alpha must be a finite number > 0, got {alpha!r}")
        if not 0 <= dropout < 1:
            raise MiniftError(f"LoRALinear: dropout must be in [0, 1), got {dropout!r}")
        self.base = base
        for p in base.parameters():
            p.requires_grad_(False)
        self.rank, self.alpha, self.scale = int(rank), alpha, alpha / rank
        # A float, not an nn.Dropout: finetune.set_dropout sets every nn.Dropout to the stage's
        # model dropout, and this rate is the adapter's own (lora_dropout).
        self.lora_dropout = float(dropout)
        w = base.weight
        # Drawn on the CPU, so the same generator gives the same A on any device.
        a = torch.empty(self.rank, base.in_features, dtype=w.dtype)
        nn.init.kaiming_uniform_(a, a=math.sqrt(5), generator=generator)  # nn.Linear's own default
        self.lora_A = nn.Parameter(a.to(w.device))  # (r, in)
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, self.rank, dtype=w.dtype, device=w.device))  # (out, r)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.dropout(x, self.lora_dropout, self.training) if self.lora_dropout else x
        # Scale the (..., r) middle, the smallest tensor on the path; B = 0 makes the term exactly 0.
        return self.base(x) + F.linear(F.linear(h, self.lora_A) * self.scale, self.lora_B)

    def merged(self) -> nn.Linear:
        """A plain nn.Linear computing the same map: weight W + scale · B @ A, the base's bias."""
        base = self.base
        # Built on the meta device: nn.Linear's random init would draw from the global generator.
        out = nn.Linear(base.in_features, base.out_features, bias=base.bias is not None, device="meta")
        out.weight = nn.Parameter(merge_weight(base.weight, self.lora_A, self.lora_B, self.scale),
                                  requires_grad=base.weight.requires_grad)
        if base.bias is not None:
            out.bias = nn.Parameter(base.bias.detach().clone(), requires_grad=base.bias.requires_grad)
        return out

    def extra_repr(self) -> str:
        return f"rank={self.rank}, alpha={self.alpha:g}, scale={self.scale:g}, dropout={self.lora_dropout:g}"


def _replace(model: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, module)


def wrapped_layers(model: nn.Module) -> dict[str, LoRALinear]:
    """Every LoRALinear inside ``model``, by module name."""
    return {name: m for name, m in model.named_modules() if isinstance(m, LoRALinear)}


def target_shapes(config) -> dict[str, tuple[int, int]]:
    """(in, out) of each target in a block of this ``GPTConfig``, read off a block built on the meta
    device (no memory, no random numbers): the model's own code says the shapes."""
    with torch.device("meta"):
        block = Block(config)
    return {t: (block.get_submodule(t).in_features, block.get_submodule(t).out_features) for t in TARGETS}


def chosen_blocks(o, model) -> list[int]:
    """The blocks a stage wraps: those ``blocks`` / ``top_k`` / ``top_fraction`` name, else every block."""
    n_layer = model.config.n_layer
    top_k = layers.chosen_top_k(o, n_layer)
    if not o.blocks and top_k is None:
        return list(range(n_layer))
    return layers.block_indices(model, o.blocks, top_k)


def add_lora(model, targets, blocks, rank: int, alpha: float | None = None, dropout: float = 0.0,
             seed: int = 0) -> dict[str, LoRALinear]:
    """Freeze every weight of ``model``, wrap ``targets`` of ``blocks`` in place; returns the wrappers by name."""
    for p in model.parameters():
        p.requires_grad_(False)
    generator = torch.Generator().manual_seed(seed)
    out = {}
    for i in blocks:
        for target in targets:
            name = f"transformer.h.{i}.{target}"
            linear = model.get_submodule(name)
            if isinstance(linear, LoRALinear):
                raise MiniftError(f"{name} already holds a LoRA adapter: merge it first")
            out[name] = LoRALinear(linear, rank, alpha, dropout, generator=generator)
            _replace(model, name, out[name])
    return out


def merge_lora(model) -> dict[str, dict]:
    """Fold every LoRALinear of ``model`` back into a plain nn.Linear; returns the A/B tensors by name."""
    adapters = {}
    for name, layer in wrapped_layers(model).items():
        adapters[name] = {"A": layer.lora_A.detach().cpu().clone(), "B": layer.lora_B.detach().cpu().clone()}
        _replace(model, name, layer.merged())
    return adapters


def load_adapter(path, model) -> dict:
    """Merge the adapter saved at ``path`` into ``model``, the base it was trained on; returns its
    facts (rank, alpha, targets, blocks, fingerprint). Another base is refused, naming both fingerprints."""
    path = Path(path)
    payload = read_torch_file(path, "LoRA adapter", FORMAT, VERSION)
    if wrapped_layers(model):
        raise MiniftError(f"{path}: this model still holds LoRA layers; load an adapter onto a plain model")
    theirs, ours = payload.get("fingerprint"), fingerprint(model)
    if theirs != ours:
        raise MiniftError(f"{path}: this LoRA adapter was trained on base {theirs}, not on this model ({ours}); "
                          "load it onto the model it was trained with")
    rank, alpha, tensors = payload.get("rank"), payload.get("alpha"), payload.get("layers")
    if not isinstance(rank, int) or rank < 1 or not isinstance(alpha, float) or alpha <= 0 or not isinstance(tensors, dict):
        raise MiniftError(f"{path}: LoRA adapter lacks a valid rank, alpha or layers entry")
    merged = {}
    for name, ab in tensors.items():
        try:
            linear = model.get_submodule(name)
        except AttributeError:
            linear = None
        if not isinstance(linear, nn.Linear):
            raise MiniftError(f"{path}: LoRA adapter names {name!r}, not a linear layer of this model")
        A, B = ab.get("A"), ab.get("B")
        if (not isinstance(A, torch.Tensor) or not isinstance(B, torch.Tensor)
                or tuple(A.shape) != (rank, linear.in_features) or tuple(B.shape) != (linear.out_features, rank)):
            raise MiniftError(f"{path}: LoRA adapter's {name} needs A ({rank}, {linear.in_features}) and "
                              f"B ({linear.out_features}, {rank})")
        merged[name] = merge_weight(linear.weight, A, B, alpha / rank)
    with torch.no_grad():  # only once every layer checked out: a bad file leaves the model as it was
        for name, weight in merged.items():
            model.get_submodule(name).weight.copy_(weight)
    return {k: payload.get(k) for k in ("rank", "alpha", "targets", "blocks", "fingerprint")}


# --- the recipe's 'lora' stage -------------------------------------------------------------------
@dataclass
class Options:
    """The recipe fields of a ``strategy = "lora"`` stage."""

    lora_rank: int = 8
    """r, the rank of the update B A; at most the smaller dimension of every targeted layer."""
    lora_alpha: float | None = None
    """alpha: the update is scaled by alpha / r (default alpha = r, a scale of 1)."""
    lora_dropout: float = 0.0
    """Dropout on the LoRA path's input only (the frozen W x is untouched), in [0, 1)."""
    lora_targets: list = field(default_factory=lambda: ["attn.c_attn", "attn.c_proj"])
    """The linear layers of each chosen block to wrap: attn.c_attn, attn.c_proj, mlp.c_fc, mlp.c_proj."""
    blocks: list = field(default_factory=list)
    """Only these blocks (negative counts from the top); with top_k / top_fraction, their union.
    None of the three: every block."""
    top_k: int | None = None
    """Only the top k blocks."""
    top_fraction: float | None = None
    """Only the top fraction of blocks, at least one."""


class Lora(Strategy):
    name = "lora"
    summary = "every weight frozen; a low-rank update B·A beside chosen linear layers trains, merged at the end"
    paper = "Hu et al. 2021"
    Options = Options

    def check(self, o, bad) -> None:
        if o.lora_rank < 1:
            bad("lora_rank", "must be >= 1")
        if o.lora_alpha is not None and not (math.isfinite(o.lora_alpha) and o.lora_alpha > 0):
            bad("lora_alpha", "must be > 0 (leave it out for alpha = the rank)")
        if not 0 <= o.lora_dropout < 1:
            bad("lora_dropout", "must be in [0, 1)")
        if not o.lora_targets:
            bad("lora_targets", f"name at least one layer; allowed: {', '.join(TARGETS)}")
        for t in o.lora_targets:
            if t not in TARGETS:
                bad("lora_targets", f"{t!r} is not a linear layer of a block; allowed: {', '.join(TARGETS)}")
        if len(set(o.lora_targets)) != len(o.lora_targets):
            bad("lora_targets", "a layer is named twice")
        layers.check_block_choice(o, bad)

    def check_model(self, o, config, bad) -> None:
        layers.check_blocks_in_model(o, config.n_layer, bad)
        for target, (n_in, n_out) in target_shapes(config).items():
            if target in o.lora_targets and o.lora_rank > min(n_in, n_out):
                bad("lora_rank", f"must be <= {min(n_in, n_out)}, the smaller dimension of {target} "
                                 f"({n_in} -> {n_out}) in this model")

    def setup(self, stage, bundle, examples, log, seed: int) -> StageSetup:
        from minift.optim import param_groups

        o, model = stage.options, bundle.model
        base_fingerprint = fingerprint(model)  # of the weights this stage starts from, before any training
        blocks = chosen_blocks(o, model)
        wrapped = add_lora(model, o.lora_targets, blocks, o.lora_rank, o.lora_alpha, o.lora_dropout, seed=seed)
        named = [(f"{n}.{w}", getattr(layer, w)) for n, layer in wrapped.items() for w in ("lora_A", "lora_B")]
        return StageSetup(groups=param_groups(named, stage.weight_decay), row_names=[None] * len(examples),
                          state={"fingerprint": base_fingerprint, "blocks": blocks})

    def finish(self, stage, bundle, setup: StageSetup, folder) -> dict:
        o = stage.options
        alpha = float(o.lora_rank if o.lora_alpha is None else o.lora_alpha)
        adapters = merge_lora(bundle.model)  # the next stage and model.pt see a plain GPT
        path = None
        if folder is not None:
            path = Path(folder) / "adapter.pt"
            atomic_torch_save(path, {"format": FORMAT, "version": VERSION, "fingerprint": setup.state["fingerprint"],
                                     "rank": o.lora_rank, "alpha": alpha, "targets": list(o.lora_targets),
                                     "blocks": list(setup.state["blocks"]), "layers": adapters})
        return {"adapter": None if path is None else str(path), "lora_rank": o.lora_rank, "lora_alpha": alpha}

    def bench_cases(self):
        return [("lora r8 (attention)", Options())]


STRATEGY = Lora()
