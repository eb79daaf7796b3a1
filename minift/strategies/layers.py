"""Specific-layer fine-tuning (``strategy = "layers"``): freezing blocks, gradual unfreezing,
discriminative rates, weight tying.

Why freeze
----------
A pretrained GPT's lower blocks hold general knowledge (spelling, word classes, agreement) and its
upper blocks the more task-like features (Yosinski et al. 2014 measured this layer by layer for
images). With little data, updating everything can overwrite that knowledge ("catastrophic
forgetting"); freezing the lower blocks keeps it, and is cheaper: a frozen parameter gets no
gradient and no AdamW moments m and v (``optim.AdamW`` creates them lazily, for parameters that
get a gradient), so optimizer memory shrinks to the trained part.

Freezing is one flag: ``p.requires_grad = False``. Everything here sets that flag by *name*
(``transformer.h.3.mlp.c_fc.weight``, ...), so what trains can be printed, tested and stored in a
recipe: ``select_parameters`` turns a specification (blocks, top k, named parts) into names and
``set_trainable`` applies it.

Why backward stops below the lowest trainable block
---------------------------------------------------
Autograd records an operation only when one of its inputs requires grad. If the embeddings and
blocks 0 .. k-1 are frozen, their outputs are plain tensors: the graph *begins* at block k. So
``loss.backward()`` walks down only to block k, and the activations below are not kept for it:
the saving grows with the frozen depth. The converse surprises: train *only* the token embedding
(or a tied head, see below) and backward must walk through every block to reach it.

ULMFiT (Howard & Ruder 2018): two gentler ways than all-or-nothing
------------------------------------------------------------------
* **Gradual unfreezing**: start with the top block trainable, unfreeze one more block below
  every ``every`` steps. The top adapts first, while the layers under it still hold still.
  ``GradualUnfreezer`` does this from the trainer's ``before_step`` hook.
* **Discriminative learning rates**: lower blocks learn more slowly, block l gets
  ``lr_l = lr_(l+1) / 2.6``, so block i of L gets ``lr * 2.6 ** -(L-1-i)``.
  ``discriminative_lr_scales`` gives these multipliers to ``optim.param_groups(lr_scales=...)``.

Weight tying: the head IS the embedding
---------------------------------------
With ``GPTConfig.tie_weights=True`` (GPT-2's choice) ``lm_head.weight`` and
``transformer.wte.weight`` are one Parameter: freezing the embedding freezes the head, and training
the "head" trains the embedding, with backward through every block. ``describe`` says so whenever
the weights are tied; ``untie_head`` gives the head its own copy, for a linear probe ("head only")
that leaves the input embedding alone.

What it costs. The shipped ``layers`` recipe trains the top half of the blocks (two of the base's
four) and ``ln_f``, with the embedding, so the head too, frozen. In the fair strategy grid
(``data/experiments/strategies/fair/results.md``, made by the command at its top; mean ± 95%
half-width over three seeds; partial) it scored 29.2 ± 3.4 BLEU on translation at N=1000, below
``full`` (42.0 ± 2.4) and tied with training from scratch (34.8 ± 6.0); at N=200 it tied ``full``
(11.5 ± 3.9 against 13.5 ± 2.9). Tutorial 07 runs the comparison, and the same recipe with the
embedding trainable.

Tutorial 07 (specific-layer fine-tuning) uses every function here.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field

from torch import nn

from minift.errors import MiniftError
from minift.model import GPT
from minift.strategies.base import StageSetup, Strategy

PARTS = ("embeddings", "wte", "wpe", "ln_f", "head")
"""Named parts besides the blocks. "embeddings" = wte + wpe. With tied weights "head" IS wte."""


def _find_gpt(model: nn.Module) -> tuple[str, GPT]:
    """The GPT inside ``model`` and the name prefix of its parameters ("" when model is the GPT).

    A wrapper (say, a GPT plus a soft prompt) works too: names then read "gpt.transformer.h.0...".
    """
    for name, module in model.named_modules():
        if isinstance(module, GPT):
            return (name + "." if name else ""), module
    raise MiniftError(f"freezing: expected a minift GPT (or a module containing one), got {type(model).__name__}")


def _is_tied(gpt: GPT) -> bool:
    # Ask the tensors, not the config: identity is what decides whether training one moves the other.
    return gpt.lm_head.weight is gpt.transformer.wte.weight


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """(trainable, total) numbers of parameters, each tensor counted once (a tied head is wte)."""
    unique = {id(p): p for p in model.parameters()}.values()
    return sum(p.numel() for p in unique if p.requires_grad), sum(p.numel() for p in unique)


def trainable_names(model: nn.Module) -> list[str]:
    """Names of the parameters that require grad, each tensor once, in model order."""
    return [name for name, p in model.named_parameters() if p.requires_grad]


def resolve_blocks(model: nn.Module, blocks) -> list[int]:
    """Block indices (negative ones count from the top, -1 = the last) -> sorted distinct indices."""
    L = len(_find_gpt(model)[1].transformer.h)
    if isinstance(blocks, numbers.Integral):
        blocks = [blocks]
    out = set()
    for b in blocks:
        if not isinstance(b, numbers.Integral) or isinstance(b, bool):
            raise MiniftError(f"block index must be an integer, got {b!r}")
        if not -L <= b < L:
            raise MiniftError(f"block index {b} is outside the model: it has {L} blocks "
                              f"(0..{L - 1}, or -{L}..-1)")
        out.add(int(b) % L)
    return sorted(out)


def _part_names(model: nn.Module, part: str) -> list[str]:
    prefix, gpt = _find_gpt(model)
    if part == "embeddings":
        return _part_names(model, "wte") + _part_names(model, "wpe")
    if part in ("wte", "wpe"):
        return [f"{prefix}transformer.{part}.weight"]
    if part == "ln_f":
        return [f"{prefix}transformer.ln_f.{n}" for n, _ in gpt.transformer.ln_f.named_parameters()]
    if part == "head":
        if _is_tied(gpt):  # the head's matrix is the embedding's: name it by its one (first) name
            return [f"{prefix}transformer.wte.weight"]
        return [f"{prefix}lm_head.{n}" for n, _ in gpt.lm_head.named_parameters()]
    raise MiniftError(f"unknown part {part!r}: parts are {', '.join(PARTS)}")


def _block_names(model: nn.Module, i: int) -> list[str]:
    prefix, gpt = _find_gpt(model)
    return [f"{prefix}transformer.h.{i}.{n}" for n, _ in gpt.transformer.h[i].named_parameters()]


def block_indices(model: nn.Module, blocks=(), top_k: int | None = None) -> list[int]:
    """The sorted block indices that ``blocks`` (negative from the top) and the top ``top_k`` name together.

    ``select_parameters`` turns them into parameter names; ``lora.py`` wraps these blocks' layers.
    """
    L = len(_find_gpt(model)[1].transformer.h)
    chosen = set(resolve_blocks(model, blocks))
    if top_k is not None:
        if not isinstance(top_k, numbers.Integral) or isinstance(top_k, bool) or not 0 <= top_k <= L:
            raise MiniftError(f"top_k must be an integer 0..{L} (the model has {L} blocks), got {top_k!r}")
        chosen.update(range(L - top_k, L))
    return sorted(chosen)


def select_parameters(model: nn.Module, blocks=(), top_k: int | None = None, parts=()) -> list[str]:
    """The parameter names a specification trains, in model order.

    blocks: indices (negative from the top); top_k=k adds the top k blocks; parts: names from PARTS.
    WITH TIED WEIGHTS, "head" SELECTS transformer.wte.weight: the head and the token embedding are
    one matrix, so training the head trains the embedding (and "wte" trains the head).
    """
    chosen = block_indices(model, blocks, top_k)
    if isinstance(parts, str):  # "ln_f" alone, not the letters l, n, _, f
        parts = [parts]
    wanted = {n for part in parts for n in _part_names(model, part)}
    wanted.update(n for i in chosen for n in _block_names(model, i))
    return [name for name, _ in model.named_parameters() if name in wanted]


def set_trainable(model: nn.Module, names) -> None:
    """requires_grad=True exactly for ``names``, False for every other parameter."""
    # remove_duplicate=False also knows the alias "lm_head.weight" of a tied head (same tensor).
    every = dict(model.named_parameters(remove_duplicate=False))
    names = [names] if isinstance(names, str) else list(names)
    for name in names:
        if name not in every:
            raise MiniftError(f"unknown parameter name {name!r}: names come from model.named_parameters(), "
                              f"e.g. {next(iter(every))!r}")
    # Decide per tensor, not per name: a tied tensor has two names and one flag.
    keep = {id(every[name]) for name in names}
    for p in every.values():
        p.requires_grad_(id(p) in keep)


def freeze_blocks(model: nn.Module, keep=(-1,), parts=()) -> list[str]:
    """Train only the blocks in ``keep`` (plus ``parts``), freeze the rest; returns the trained names."""
    names = select_parameters(model, blocks=keep, parts=parts)
    set_trainable(model, names)
    return names


def untie_head(model: nn.Module) -> None:
    """Give lm_head its own Parameter, a copy of wte, and set config.tie_weights = False.

    Afterwards "head" and "wte" are separate choices: a linear probe can train the output layer and
    leave the input embedding bit-identical. Build the optimizer *after* untying (an old one still
    holds only the shared tensor). No-op if already untied.
    """
    _, gpt = _find_gpt(model)
    if _is_tied(gpt):
        wte = gpt.transformer.wte.weight
        gpt.lm_head.weight = nn.Parameter(wte.detach().clone(), requires_grad=wte.requires_grad)
    gpt.config.tie_weights = False  # checkpoints then store (and reload) the head as its own matrix


def discriminative_lr_scales(model: nn.Module, factor: float = 2.6, names=None) -> dict[str, float]:
    """ULMFiT's per-layer rate multipliers: block i of L gets ``factor ** -(L-1-i)`` (top block 1).

    Parts above the blocks (ln_f, an untied head) get 1; wte and wpe, below block 0, get
    ``factor ** -L``. Parameters outside the GPT (a soft prompt) get 1: they are new, there is no
    pretrained knowledge in them to protect. Only ``names`` if given, else the trainable ones.
    """
    if (not isinstance(factor, numbers.Real) or isinstance(factor, bool)
            or not math.isfinite(factor) or factor <= 0):
        raise MiniftError(f"factor must be a finite number > 0, got {factor!r}")
    prefix, gpt = _find_gpt(model)
    L = len(gpt.transformer.h)
    known = dict(model.named_parameters())
    names = trainable_names(model) if names is None else list(names)
    scales = {}
    for name in names:
        if name not in known:
            raise MiniftError(f"unknown parameter name {name!r}: names come from model.named_parameters()")
        local = name[len(prefix):] if name.startswith(prefix) else None
        if local is not None and local.startswith("transformer.h."):
            i = int(local.split(".")[2])
            scales[name] = factor ** -(L - 1 - i)
        elif local == "transformer.wte.weight" and _is_tied(gpt):
            # A tied wte is also the head, the very top of the model. Its slow rate as an embedding
            # would also slow the output layer, the part a new task most needs to move: give it 1.
            scales[name] = 1.0
        elif local in ("transformer.wte.weight", "transformer.wpe.weight"):
            scales[name] = factor ** -L
        else:  # ln_f, an untied head, or a parameter outside the GPT
            scales[name] = 1.0
    return scales


class GradualUnfreezer:
    """ULMFiT gradual unfreezing: at step s the top ``min(L, start + s // every)`` blocks train.

    ``parts`` (from PARTS) train from step 0. Pass it as the trainer's ``before_step`` hook; it sets
    requires_grad before each step. The optimizer must hold every parameter that will *ever* train
    (``all_names()``; ``param_groups`` below builds the groups for you). AdamW skips parameters whose
    grad is None, so the still-frozen ones neither move nor decay until their turn.

        unfreezer = GradualUnfreezer(model, every=50)
        optimizer = AdamW(unfreezer.param_groups(weight_decay=0.1), lr=1e-3)
        train_stage(model, optimizer, ..., before_step=unfreezer)
    """

    def __init__(self, model: nn.Module, every: int, parts=(), start: int = 1):
        self.model = model
        self.L = len(_find_gpt(model)[1].transformer.h)
        if not isinstance(every, numbers.Integral) or isinstance(every, bool) or every < 1:
            raise MiniftError(f"every must be an integer >= 1 (steps between unfreezings), got {every!r}")
        if not isinstance(start, numbers.Integral) or isinstance(start, bool) or not 0 <= start <= self.L:
            raise MiniftError(f"start must be an integer 0..{self.L} (blocks trainable at step 0), got {start!r}")
        self.parts = [parts] if isinstance(parts, str) else list(parts)
        if start == 0 and not self.parts:
            raise MiniftError("start=0 with no parts would train nothing at step 0: give start >= 1 or parts")
        self.every, self.start = int(every), int(start)
        select_parameters(model, parts=self.parts)  # reject an unknown part now, not at step 0
        self(0)

    def n_blocks(self, step: int) -> int:
        """How many top blocks train at ``step``."""
        return min(self.L, self.start + step // self.every)

    def current_names(self, step: int) -> list[str]:
        return select_parameters(self.model, top_k=self.n_blocks(step), parts=self.parts)

    def all_names(self) -> list[str]:
        """Every parameter that trains at some step: what the optimizer must be built over."""
        return select_parameters(self.model, top_k=self.L, parts=self.parts)

    def __call__(self, step: int) -> None:
        set_trainable(self.model, self.current_names(step))

    def param_groups(self, weight_decay: float, lr: float | None = None, lr_scales=None) -> list[dict]:
        """``optim.param_groups`` over ``all_names()`` (it only takes requires_grad parameters, so
        they are switched on for the call), then back to step 0's selection."""
        from minift.optim import param_groups

        set_trainable(self.model, self.all_names())
        try:
            return param_groups(self.model, weight_decay, lr=lr, lr_scales=lr_scales)
        finally:
            self(0)

    def schedule(self) -> list[tuple[int, int]]:
        """[(step, blocks trainable from that step on)], one entry per change, for printing."""
        return [(k * self.every, self.start + k) for k in range(self.L - self.start + 1)]


def _backward_floor(model: nn.Module) -> str:
    """Where loss.backward() stops going down, as a sentence."""
    _, gpt = _find_gpt(model)
    if gpt.transformer.wte.weight.requires_grad or gpt.transformer.wpe.weight.requires_grad:
        return "backward goes down to the embeddings: every block is backpropagated through"
    for i in range(len(gpt.transformer.h)):
        if any(p.requires_grad for p in gpt.transformer.h[i].parameters()):
            if i == 0:
                return "backward stops at block 0"
            below = "block 0 runs" if i == 1 else f"blocks 0..{i - 1} run"  # one block is not a range
            return f"backward stops at block {i}: {below} forward only"
    return "backward stops above the blocks: every block runs forward only"


def describe(model: nn.Module) -> str:
    """A table of what trains: one row per part and per block, with parameter counts."""
    prefix, gpt = _find_gpt(model)
    tied = _is_tied(gpt)
    named = dict(model.named_parameters())
    rows = [("wte" + " = head (tied)" * tied, _part_names(model, "wte")), ("wpe", _part_names(model, "wpe"))]
    rows += [(f"block {i}", _block_names(model, i)) for i in range(len(gpt.transformer.h))]
    rows += [("ln_f", _part_names(model, "ln_f"))]
    if not tied:
        rows.append(("head", _part_names(model, "head")))
    listed = {n for _, names in rows for n in names}
    others = [n for n in named if n not in listed]
    if others:  # e.g. a soft prompt in a wrapper
        rows.append(("other", others))
    lines = [f"{'part':<18}{'state':>10}{'trainable':>12}{'total':>12}"]
    for label, names in rows:
        total = sum(named[n].numel() for n in names)
        train = sum(named[n].numel() for n in names if named[n].requires_grad)
        state = "trainable" if train == total else "frozen" if train == 0 else "partial"
        lines.append(f"{label:<18}{state:>10}{train:>12,}{total:>12,}")
    trainable, total = count_parameters(model)
    lines.append(f"{'all':<18}{'':>10}{trainable:>12,}{total:>12,}  ({100 * trainable / total:.1f}% trainable)")
    if tied:
        lines.append("note: the head is tied to the embedding (lm_head.weight IS transformer.wte.weight): "
                     "freezing one freezes the other; untie_head() splits them")
    lines.append(_backward_floor(model))
    return "\n".join(lines)


# --- the recipe's 'layers' stage -----------------------------------------------------------------
@dataclass
class Options:
    """The recipe fields of a ``strategy = "layers"`` stage (say at least one of the first four)."""

    blocks: list = field(default_factory=list)
    """Block indices that train; negative counts from the top (-1 = top block)."""
    top_k: int | None = None
    """Train the top k blocks (alternative to blocks)."""
    top_fraction: float | None = None
    """Train the top fraction of blocks, at least one (0.25 = the top quarter)."""
    parts: list = field(default_factory=list)
    """Named parts that also train: embeddings, wte, wpe, ln_f, head."""
    untie_head: bool = False
    """Give the head its own weights first (a linear probe can then train the head alone)."""
    discriminative: float | None = None
    """ULMFiT rates: each block down learns at the rate of the block above / this factor (2.6)."""
    unfreeze_every: int | None = None
    """ULMFiT gradual unfreezing: start with the top block, unfreeze one more every this many steps."""


def check_block_choice(o, bad) -> None:
    """The checks of ``blocks``, ``top_k`` and ``top_fraction`` (lora.py limits itself by them too)."""
    for b in o.blocks:
        if not isinstance(b, numbers.Integral) or isinstance(b, bool):
            bad("blocks", f"{b!r} is not a block index (an integer)")
    if o.top_k is not None and o.top_k < 1:
        bad("top_k", "must be >= 1")
    if o.top_fraction is not None and not 0 < o.top_fraction <= 1:
        bad("top_fraction", "must be in (0, 1]")


def check_blocks_in_model(o, n_layer: int, bad) -> None:
    for b in o.blocks:
        if not -n_layer <= b < n_layer:
            bad("blocks", f"block {b} is outside the model: it has {n_layer} blocks (0..{n_layer - 1}, "
                          f"or -{n_layer}..-1)")
    if o.top_k is not None and o.top_k > n_layer:
        bad("top_k", f"the model has {n_layer} blocks")


def chosen_top_k(o, n_layer: int) -> int | None:
    """top_k, or top_fraction of the blocks (at least one) turned into a top_k."""
    if o.top_fraction is not None:
        return max(1, round(n_layer * o.top_fraction))
    return o.top_k


class Layers(Strategy):
    name = "layers"
    summary = "chosen blocks and parts train (gradual unfreezing, discriminative rates)"
    paper = "Yosinski et al. 2014; Howard & Ruder 2018 (ULMFiT)"
    Options = Options

    def check(self, o, bad) -> None:
        check_block_choice(o, bad)
        for part in o.parts:
            if part not in PARTS:
                bad("parts", f"unknown part {part!r}; allowed: {', '.join(PARTS)}")
        if not (o.blocks or o.top_k or o.top_fraction or o.parts):
            bad("strategy", "a 'layers' stage must say what trains: blocks, top_k, top_fraction or parts")
        if o.discriminative is not None and o.discriminative <= 0:
            bad("discriminative", "the factor must be > 0 (ULMFiT uses 2.6)")
        if o.unfreeze_every is not None and o.unfreeze_every < 1:
            bad("unfreeze_every", "must be >= 1")

    def check_model(self, o, config, bad) -> None:
        check_blocks_in_model(o, config.n_layer, bad)

    def setup(self, stage, bundle, examples, log, seed: int) -> StageSetup:
        from minift.optim import param_groups

        o, model = stage.options, bundle.model
        if o.untie_head:
            untie_head(model)
        names = select_parameters(model, blocks=o.blocks, top_k=chosen_top_k(o, model.config.n_layer), parts=o.parts)
        before_step = None
        if o.unfreeze_every:
            before_step = GradualUnfreezer(model, every=o.unfreeze_every, parts=o.parts)
            names = before_step.all_names()
        set_trainable(model, names)
        scales = discriminative_lr_scales(model, o.discriminative, names) if o.discriminative else None
        groups = param_groups(model, stage.weight_decay, lr_scales=scales)
        if before_step is not None:
            before_step(0)
        return StageSetup(groups=groups, row_names=[None] * len(examples), before_step=before_step)

    def bench_cases(self):
        return [("layers: top quarter", Options(top_fraction=0.25)),
                ("layers: top half + ln_f", Options(top_fraction=0.5, parts=["ln_f"])),
                ("head only (untied)", Options(parts=["head"], untie_head=True))]


STRATEGY = Layers()
