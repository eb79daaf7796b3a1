"""Prefix tuning (``strategy = "prefix"``): learn keys and values that every layer reads before the text.

The idea (Li & Liang 2021, "Prefix-Tuning"; "deep prompts" in Liu et al.'s P-tuning v2)
--------------------------------------------------------------------------------------
A soft prompt (``prompt.py``) acts at the input only: P vectors before the text's embeddings, which
the frozen blocks must carry up the stack themselves. A prefix acts at every layer: for each block
l it learns P keys and P values that the attention reads as if some earlier text had left them
there. Every base weight stays frozen. At layer l, with the text's own q, k, v (B, nh, T, hs):

    Pk_l, Pv_l = prefix[l, 0], prefix[l, 1]          (P, C) each, split into heads: (B, nh, P, hs)
    K = cat([Pk_l, k], dim=2)                        (B, nh, P + T, hs)
    V = cat([Pv_l, v], dim=2)                        (B, nh, P + T, hs)
    y = softmax(q Kᵀ / √hs + M) V                    (B, nh, T, hs); queries are only the text's

M lets text query i see all P prefix keys and text keys 0..i, exactly as a KV cache's past would
(``model.forward_embeds(prefix_kv=...)``, ``KVCache.add_prefix``).

The block budget is what it really is. Prefix keys take NO input positions: the text still starts
at position 0 and may use the whole block (all block_size positions). A soft prompt of P vectors
takes P of the block's positions, leaving block_size − P for text. (The ``positions`` of each
per-row state says it: P for a soft prompt, 0 for a prefix; the training and validation rows
reserve that much, no more.)

What trains, counted. Prompt tuning trains P·C numbers; a prefix trains n_layer·2·P·C (a key and
a value per position, at every layer). For the shipped base (P = 16, C = 128, 4 layers):

    prompt   16 · 128          =  2,048
    prefix   4 · 2 · 16 · 128  = 16,384      (8x the prompt; still 0.002 of the base's weights)

(``tests/test_prefix.py`` counts both on one model.)

The reparameterisation (``prefix_reparameterize = true``). Li & Liang found that training the
prefix directly was unstable, and trained it through a small MLP instead:

    E       (P, C)                                   a learned P×C embedding
    h       = tanh(E W1 + b1)                        (P, hidden), W1: Linear(C, hidden)
    prefix  = h W2 + b2                              (P, n_layer·2·C) -> (n_layer, 2, P, C)

At the stage's end (``finish``) the MLP is run once and only its output, the plain prefix, is
kept: the saved file and the next stage hold n_layer·2·P·C numbers, not the MLP.

Where it starts. A plain prefix starts as the keys and values the frozen model itself makes for
P vectors sampled from its token embeddings (as ``prompt.py``'s "vocab" init): the model at step 0
reads as if P real, if random, words came before the text. A reparameterised one starts from those
P embeddings as E and a freshly initialised MLP.

Why the rate is high and there is no decay. As for a soft prompt, few numbers train and their
gradient has come through a frozen stack; decay would pull the keys and values towards zero, which
is no neutral prefix. Measured on the shipped base (translation, 200 examples, 100 steps, batch 16,
``minift finetune --recipe R --examples 200 --max-steps 100``): validation loss 2.09, 1.73, 1.60,
1.49, 1.52 at lr 0.003, 0.01, 0.03, 0.1, 0.3 (prompt tuning at its 0.1: 1.68), so the default is
0.1. The reparameterised prefix trains the MLP's weights too (HIDDEN = 512: 593,408 numbers per
prefix on the shipped base, more than during a plain stage by far) and wants a smaller rate: at 0.1
it diverged (its best was step 0), at 0.01 it reached 2.17.

One prefix per subset, chosen per row like the soft prompts (``evaluate.choose_prompt``), kept in
``bundle.prompts`` with them; one batch may mix rows with prefixes, soft prompts and nothing
(``prompt.forward_with_prompts``, ``prompt.build_prefix_kv``). A prefix is tied to the exact base
weights it was trained on by a fingerprint (``save_prefix`` / ``load_prefix``).

Lesson 08 (section 9: one block's attention with a prefix by hand, every layer reached, a stage) steps
through this file.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn as nn

from minift.checkpoint import fingerprint, read_torch_file
from minift.errors import MiniftError
from minift.io import atomic_torch_save
from minift.model import KVCache
from minift.strategies.base import StageSetup, Strategy
from minift.strategies.prompt import (SoftPrompt, freeze_base, load_prompt, row_state_names, save_prompt,
                                      train_only, wanted_names)

FORMAT = "minift-prefix"
VERSION = 1
HIDDEN = 512
"""The reparameterising MLP's width (P-tuning v2's default; Li & Liang used 512 and 800)."""


class KVPrefix(nn.Module):
    """A key and a value for each of P slots at every layer: a (n_layer, 2, P, C) tensor.

    With ``reparameterize`` the tensor is the output of a small MLP (module docstring) until
    ``drop_reparameterization`` keeps only that output.
    """

    kind = "layers"
    """Per-row state inside every layer (a soft prompt is "input")."""
    positions = 0
    """Positions of the block it takes: none; the text still starts at 0."""

    def __init__(self, n_tokens: int, n_layer: int, n_embd: int, reparameterize: bool = False,
                 hidden: int = HIDDEN, start: torch.Tensor | None = None, seed: int = 0):
        super().__init__()
        if not isinstance(n_tokens, int) or isinstance(n_tokens, bool) or n_tokens < 1:
            raise MiniftError(f"KVPrefix: n_tokens must be an integer >= 1, got {n_tokens!r}")
        self.n_tokens, self.n_layer, self.n_embd = n_tokens, n_layer, n_embd
        self.name, self.meta = None, {}  # filled in by load_prefix
        shape = (n_tokens, n_embd) if reparameterize else (n_layer, 2, n_tokens, n_embd)
        if start is not None and tuple(start.shape) != shape:
            raise MiniftError(f"KVPrefix: start must be {shape}, got {tuple(start.shape)}")
        generator = torch.Generator().manual_seed(seed)
        if reparameterize:
            # start: the P embeddings E; without one, small random ones.
            if start is None:
                start = torch.randn(n_tokens, n_embd, generator=generator) * 0.02
            self.embedding = nn.Parameter(start.detach().float().cpu().clone())  # (P, C)
            with torch.random.fork_rng(devices=[]):  # the MLP's default init, seeded, leaving the global RNG alone
                torch.manual_seed(seed)
                self.mlp = nn.Sequential(nn.Linear(n_embd, hidden), nn.Tanh(), nn.Linear(hidden, n_layer * 2 * n_embd))
            self.register_parameter("weight", None)
        else:
            # start: the (n_layer, 2, P, C) keys and values; without one, small random ones.
            if start is None:
                start = torch.randn(n_layer, 2, n_tokens, n_embd, generator=generator) * 0.02
            weight = start
            self.weight = nn.Parameter(weight.detach().float().cpu().clone())
            self.register_parameter("embedding", None)
            self.mlp = None

    @property
    def reparameterized(self) -> bool:
        return self.mlp is not None

    def prefix(self) -> torch.Tensor:
        """The keys and values, (n_layer, 2, P, C): the parameter, or the MLP's output."""
        if self.mlp is None:
            return self.weight
        out = self.mlp(self.embedding)  # (P, n_layer·2·C)
        return out.view(self.n_tokens, self.n_layer, 2, self.n_embd).permute(1, 2, 0, 3)

    def layer_kv(self, n_head: int) -> torch.Tensor:
        """The prefix split into heads as the attention reads it: (n_layer, 2, nh, P, hs)."""
        w = self.prefix()
        return w.view(self.n_layer, 2, self.n_tokens, n_head, self.n_embd // n_head).transpose(2, 3)

    def drop_reparameterization(self) -> None:
        """Keep only the MLP's output, as a plain (n_layer, 2, P, C) parameter; the MLP goes."""
        if self.mlp is None:
            return
        with torch.no_grad():
            weight = self.prefix().detach().clone().contiguous()
        self.mlp, self.embedding = None, None
        self.weight = nn.Parameter(weight)

    def extra_repr(self) -> str:
        return (f"n_tokens={self.n_tokens}, n_layer={self.n_layer}, n_embd={self.n_embd}, "
                f"reparameterized={self.reparameterized}")


def model_keys_values(model, x: torch.Tensor) -> torch.Tensor:
    """The keys and values the frozen model makes for input vectors x (P, C): (n_layer, 2, P, C).

    Read off a KVCache filled by one forward pass (heads merged back to C).
    """
    cfg, P = model.config, x.size(0)
    was_training = model.training
    model.eval()
    cache = KVCache(cfg, 1, P, x.device, x.dtype)
    with torch.no_grad():
        model.forward_embeds(x[None], cache=cache)
    model.train(was_training)
    k = torch.stack(cache.k)[:, 0]  # (n_layer, nh, P, hs)
    v = torch.stack(cache.v)[:, 0]
    kv = torch.stack([k, v], 1)  # (n_layer, 2, nh, P, hs)
    return kv.transpose(2, 3).reshape(cfg.n_layer, 2, P, cfg.n_embd)


def start_prefix(model, n_tokens: int, reparameterize: bool, tokenizer=None, seed: int = 0) -> KVPrefix:
    """A prefix for ``model``, started as the module docstring says, on the model's device."""
    cfg = model.config
    device = model.transformer.wte.weight.device
    words = SoftPrompt(n_tokens, cfg.n_embd, init="vocab", model=model, tokenizer=tokenizer, seed=seed).weight
    words = words.detach().to(device)  # (P, C): P sampled token embeddings
    start = words if reparameterize else model_keys_values(model, words)
    return KVPrefix(n_tokens, cfg.n_layer, cfg.n_embd, reparameterize=reparameterize, start=start,
                    seed=seed).to(device)


# --- files ---------------------------------------------------------------------------------------
def save_prefix(path, prefix: KVPrefix, model, name: str, meta: dict | None = None) -> None:
    """Write the prefix tensor (never an MLP), its name and the fingerprint of its base atomically."""
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "name": name,
        "weight": prefix.prefix().detach().float().cpu().clone(),  # (n_layer, 2, P, C)
        "fingerprint": fingerprint(model),
        "n_layer": prefix.n_layer,
        "n_embd": prefix.n_embd,
        "meta": meta or {},
    }
    atomic_torch_save(path, payload)


def load_prefix(path, model) -> KVPrefix:
    """Read a prefix saved by ``save_prefix`` and check that ``model`` is the base it was trained on."""
    path = Path(path)
    payload = read_torch_file(path, "prefix", FORMAT, VERSION)
    weight = payload.get("weight")
    cfg = model.config
    if not isinstance(weight, torch.Tensor) or weight.dim() != 4 or weight.size(1) != 2 or weight.size(2) < 1:
        raise MiniftError(f"{path}: prefix 'weight' must be a (n_layer, 2, P, C) tensor")
    if (weight.size(0), weight.size(3)) != (cfg.n_layer, cfg.n_embd):
        raise MiniftError(f"{path}: prefix is for {weight.size(0)} layers of width {weight.size(3)}, this model has "
                          f"{cfg.n_layer} of width {cfg.n_embd}")
    theirs, ours = payload.get("fingerprint"), fingerprint(model)
    if theirs != ours:
        raise MiniftError(f"{path}: this prefix was trained on base {theirs}, not on this model ({ours}); "
                          "load it onto the model it was trained with")
    prefix = KVPrefix(weight.size(2), cfg.n_layer, cfg.n_embd, start=weight.float())
    prefix.name, prefix.meta = payload.get("name"), dict(payload.get("meta") or {})
    return prefix


def save_state(path, state, model, name: str) -> None:
    """Save one per-row state of a bundle by its kind: a prefix, or a soft prompt."""
    (save_prefix if state.kind == "layers" else save_prompt)(path, state, model, name)


def load_state(path, model):
    """Load a per-row state file by its format marker: a prefix, or a soft prompt (whose loader
    also names every other kind of broken file)."""
    try:
        is_prefix = torch.load(path, map_location="cpu", weights_only=True).get("format") == FORMAT
    except Exception:
        is_prefix = False
    return (load_prefix if is_prefix else load_prompt)(path, model)


# --- the recipe's 'prefix' stage -----------------------------------------------------------------
@dataclass
class Options:
    """The recipe fields of a ``strategy = "prefix"`` stage."""

    prefix_tokens: int = 16
    """P, the prefix's slots at every layer (keys and values; they take no positions)."""
    prefix_reparameterize: bool = False
    """Train the prefix through a small MLP (Li & Liang); only its output is kept at the stage's end."""
    prefixes: list = field(default_factory=list)
    """One prefix per name, each trained on that subset's examples; empty = one per subset present
    in the data (or a single prefix named after the task when there are no subsets)."""


class Prefix(Strategy):
    name = "prefix"
    summary = "the model is frozen; a key/value prefix at every layer trains, one per subset"
    paper = "Li & Liang 2021"
    Options = Options
    # A high rate and no decay, like the soft prompts' (the module docstring says why and what was measured).
    defaults = {"lr": 0.1, "weight_decay": 0.0}
    changes_base = False

    def check(self, o, bad) -> None:
        if o.prefix_tokens < 1:
            bad("prefix_tokens", "must be >= 1")

    def check_model(self, o, config, bad) -> None:
        # The prefix takes no positions, yet a limit remains: the KV cache holds block + P keys,
        # and every query reads P + T keys, so a prefix as long as the block doubles the attention.
        if o.prefix_tokens >= config.block_size:
            bad("prefix_tokens", f"a prefix must be shorter than the block ({config.block_size}): it takes no "
                                 f"positions, but the cache and every query's attention grow with it")

    def setup(self, stage, bundle, examples, log, seed: int) -> StageSetup:
        from minift.optim import param_groups

        o, model = stage.options, bundle.model
        freeze_base(model)
        wanted = wanted_names(o.prefixes, examples)
        for i, name in enumerate(wanted):
            bundle.prompts[name] = start_prefix(model, o.prefix_tokens, o.prefix_reparameterize,
                                                tokenizer=bundle.tokenizer, seed=seed + i)
        train_only(bundle, wanted)
        named = [(f"prompts.{n}.{k}", p) for n in wanted for k, p in bundle.prompts[n].named_parameters()]
        return StageSetup(groups=param_groups(named, stage.weight_decay), find_unused=True,
                          row_names=row_state_names(wanted, stage.name, examples, noun="prefixes"),
                          state={"prefixes": wanted})

    def finish(self, stage, bundle, setup, folder) -> dict:
        for name in setup.state["prefixes"]:  # the MLP, if any, was only a way to train the prefix
            bundle.prompts[name].drop_reparameterization()
        return {}

    def bench_cases(self):
        return [("prefix (16 slots)", Options(prefix_tokens=16))]


STRATEGY = Prefix()
