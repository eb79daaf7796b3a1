"""Prompt tuning (``strategy = "prompt"``): learn a few input vectors, leave every weight of the model as it was.

The idea (Lester et al. 2021, "The Power of Scale for Parameter-Efficient Prompt Tuning")
----------------------------------------------------------------------------------------
A frozen GPT reads input embeddings. Instead of writing an instruction in words, we put P free
vectors, a *soft prompt*, in front of the embeddings of the text and train only those vectors:

    prompt  = SoftPrompt(P, C)(B)                    (B, P, C)    the only trainable numbers
    text    = model.embed(input_ids)                 (B, T, C)    frozen
    x       = cat([prompt, text], dim=1)             (B, P+T, C)
    logits  = model.forward_embeds(x)[:, P:]         (B, T, V)    the P prompt outputs are dropped

Positions 0..P-1 belong to the prompt, so the text starts at position P and only block_size − P
positions are left for it (``check_budget``). Loss and metrics see only the T token positions.

Why the learning rate is large (~1e-2 to 3e-1). Only P×C numbers train (8×64 = 512 here, against a
million in the model), and the gradient reaching them has passed through the whole frozen stack, so
it is small; a rate of 1e-4 barely moves them. Lester used 0.3 with Adafactor.

Why no weight decay by default. Decay pulls every vector towards zero, and the zero vector is not a
neutral token: it is an input the model never saw in pretraining. Give the prompt's optimizer group
``weight_decay=0``.

Where to start (``init``):
  "vocab"   rows of the token embedding ``wte`` sampled from ordinary tokens (no special ones):
            the prompt starts as real, if random, words. Lester's best start; the default.
  "text"    the embeddings of a text's tokens ("Translate to French:"), repeated or cut to P.
  "random"  uniform(−a, a), with a = √3·std(wte) so the vectors have the scale of real tokens.

Several prompts, one model. A prompt is a few KB (``save_prompt``) tied to the exact base weights
it was trained on by a fingerprint. One batch may mix rows with different prompts, and rows with
none: ``build_prefix`` right-aligns each row's prompt in a (B, Pmax, C) prefix and masks the unused
slots, and ``positions_from_mask`` numbers each row from its own first real slot, so every row
reads exactly as it would alone (tested, for training and for generation).

Per-row state, two kinds. ``bundle.prompts`` (name -> state) holds soft prompts and the prefixes of
``prefix.py``; each says what it is. ``kind = "input"`` (a soft prompt): P vectors before the text's
embeddings, taking P of the block's ``positions``. ``kind = "layers"`` (a prefix): keys and values
at every layer, taking no positions (``positions = 0``). ``forward_with_prompts`` gives each row
what its state is: ``build_prefix`` lays out the soft prompts, ``build_prefix_kv`` the prefixes
(``model.forward_embeds(prefix_kv=...)``), and a row with neither reads the text alone.

What minift measured. A tiny model gains little from prompt tuning *alone*. In the fair strategy
grid (``data/experiments/strategies/fair/results.md``, made by the command at its top; mean ± 95%
half-width over three seeds; partial: N = 50, 200, 1000) the ``prompt`` recipe on the 1M-parameter
base scored 1.5–2.5 BLEU on translation at every size, at or below the ``scratch`` floor, where
``full`` reached 42.0 ± 2.4 at N=1000: there is no translation skill in the base for a prompt to
draw out, only "write French". Lester et al. found the gap closing with scale. In a hybrid schedule
the prompt stage belongs *after* full fine-tuning, to steer style or domain on top of a skilled
model — and even there it need not pay (``minift demo``, README.md: summarization's style prompts
take ROUGE-L from 79.8 after the top-layers stage to 76.8).

Tutorial 08 (prompt tuning: soft prompts, several prompts on one model) steps through this file.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn as nn

from minift.checkpoint import fingerprint, read_torch_file
from minift.errors import MiniftError
from minift.io import atomic_torch_save
from minift.model import positions_from_mask
from minift.strategies.base import StageSetup, Strategy

FORMAT = "minift-soft-prompt"
VERSION = 1
INITS = ("vocab", "text", "random")


class SoftPrompt(nn.Module):
    """P learned vectors of width C, placed before a frozen model's input embeddings."""

    kind = "input"
    """Per-row state of the model's input (the prefix of prefix.py is "layers")."""

    def __init__(self, n_tokens: int, n_embd: int, init: str = "vocab", model=None, tokenizer=None,
                 text: str | None = None, seed: int = 0):
        super().__init__()
        if not isinstance(n_tokens, int) or isinstance(n_tokens, bool) or n_tokens < 1:
            raise MiniftError(f"SoftPrompt: n_tokens must be an integer >= 1, got {n_tokens!r}")
        if init not in INITS:
            raise MiniftError(f"SoftPrompt: init must be one of {', '.join(INITS)}, got {init!r}")
        if model is not None and model.config.n_embd != n_embd:
            raise MiniftError(f"SoftPrompt: n_embd {n_embd} does not match the model's n_embd "
                              f"{model.config.n_embd}")
        self.n_tokens, self.n_embd, self.init = n_tokens, n_embd, init
        self.name, self.meta = None, {}  # filled in by load_prompt
        generator = torch.Generator().manual_seed(seed)
        if init == "vocab":
            weight = _vocab_init(n_tokens, model, tokenizer, generator)
        elif init == "text":
            weight = _text_init(n_tokens, model, tokenizer, text)
        else:
            std = 0.02 if model is None else float(model.transformer.wte.weight.detach().float().std())
            a = math.sqrt(3.0) * std  # uniform(−a, a) has std a/√3
            weight = (torch.rand(n_tokens, n_embd, generator=generator) * 2 - 1) * a
        self.weight = nn.Parameter(weight.detach().float().cpu().clone())  # (P, C)

    @classmethod
    def from_weight(cls, weight: torch.Tensor, init: str = "random") -> "SoftPrompt":
        """A prompt holding a copy of ``weight`` (P, C); ``init`` only records where it started."""
        prompt = cls(weight.size(0), weight.size(1), init="random")
        with torch.no_grad():
            prompt.weight.copy_(weight)
        prompt.init = init
        return prompt

    @property
    def positions(self) -> int:
        """Positions of the block the prompt takes: all P (the text starts after it)."""
        return self.n_tokens

    def forward(self, batch_size: int) -> torch.Tensor:
        """The same P vectors for every row: (B, P, C). expand makes no copy; grads sum over rows."""
        return self.weight.unsqueeze(0).expand(batch_size, -1, -1)

    def extra_repr(self) -> str:
        return f"n_tokens={self.n_tokens}, n_embd={self.n_embd}, init={self.init!r}"


def _need(init: str, **things) -> None:
    missing = [name for name, value in things.items() if value is None]
    if missing:
        raise MiniftError(f"SoftPrompt: init={init!r} needs {' and '.join(missing)}")


def _vocab_init(n_tokens, model, tokenizer, generator) -> torch.Tensor:
    """Rows of wte for P token ids drawn (without repeats while possible) from the ordinary tokens."""
    _need("vocab", model=model)
    wte = model.transformer.wte.weight.detach()
    n = wte.size(0)
    if tokenizer is not None and hasattr(tokenizer, "mergeable_ranks"):
        n = min(n, len(tokenizer.mergeable_ranks))  # 256 bytes + merges; specials come after
    special = set()
    if tokenizer is not None:
        special = {getattr(tokenizer, "eot_id", None), getattr(tokenizer, "pad_id", None)}
        special |= set(getattr(tokenizer, "special_tokens", {}).values())
    ordinary = torch.tensor([i for i in range(n) if i not in special], dtype=torch.long)
    if len(ordinary) >= n_tokens:
        picks = torch.randperm(len(ordinary), generator=generator)[:n_tokens]
    else:  # a prompt longer than the vocabulary: some words must repeat
        picks = torch.randint(len(ordinary), (n_tokens,), generator=generator)
    return wte[ordinary[picks].to(wte.device)]


def _text_init(n_tokens, model, tokenizer, text) -> torch.Tensor:
    """Embeddings of the text's tokens, repeated to fill P slots or cut to the first P."""
    _need("text", model=model, tokenizer=tokenizer, text=text)
    ids = tokenizer.encode(text)
    if not ids:
        raise MiniftError("SoftPrompt: init='text' needs a text with at least one token, got an empty one")
    ids = (ids * math.ceil(n_tokens / len(ids)))[:n_tokens]
    wte = model.transformer.wte.weight.detach()
    return wte[torch.tensor(ids, dtype=torch.long, device=wte.device)]


def freeze_base(model) -> None:
    """Every base weight stops learning; only the soft prompts (not in the model) will."""
    for p in model.parameters():
        p.requires_grad_(False)


def check_budget(model, n_tokens: int) -> int:
    """Positions left for text once a prompt of ``n_tokens`` vectors takes the first ones."""
    block_size = model.config.block_size
    if n_tokens >= block_size:
        raise MiniftError(f"a prompt of {n_tokens} vectors leaves no room in block_size {block_size}: "
                          f"use fewer than {block_size} prompt tokens")
    return block_size - n_tokens


def build_prefix(prompts: dict, names: list, device=None):
    """The soft-prompt prefix of a batch: (prefix (B, Pmax, C), mask (B, Pmax)) or (None, None).

    Each row's prompt is right-aligned, so it sits just before the text, and left-padded with zero
    vectors that the mask marks False (attention never reads them). mask is None when no slot is
    padding (every row has a prompt of the same length), and (None, None) when no row has a prompt.
    A row whose state is not a soft prompt (a prefix, ``build_prefix_kv``) gets none here.
    """
    _check_known(prompts, names)
    names = [n if n is not None and prompts[n].kind == "input" else None for n in names]
    used = [prompts[n] for n in names if n is not None]
    if not used:
        return None, None
    device = used[0].weight.device if device is None else device
    dtype = used[0].weight.dtype
    p_max = max(p.n_tokens for p in used)
    n_embd = used[0].n_embd
    rows, mask = [], torch.zeros(len(names), p_max, dtype=torch.bool, device=device)
    for row, name in enumerate(names):
        if name is None:
            rows.append(torch.zeros(p_max, n_embd, dtype=dtype, device=device))
            continue
        weight = prompts[name].weight.to(device=device, dtype=dtype)  # (P, C); .to keeps the graph
        pad = p_max - weight.size(0)
        rows.append(torch.cat([weight.new_zeros(pad, n_embd), weight], 0))
        mask[row, pad:] = True
    prefix = torch.stack(rows)  # (B, Pmax, C): stack, not in-place writes, so grads reach each prompt
    # Whether any slot is padding is known from the lengths, Python ints: reading it off the mask
    # tensor (bool(mask.all())) would make torch.compile break the graph at every batch.
    padded = any(n is None or prompts[n].n_tokens < p_max for n in names)
    return prefix, (mask if padded else None)


def _check_known(prompts: dict, names: list) -> None:
    unknown = sorted({n for n in names if n is not None and n not in prompts})
    if unknown:
        known = ", ".join(sorted(prompts)) or "(none loaded)"
        raise MiniftError(f"unknown soft prompt {unknown[0]!r}; known prompts: {known}")


def build_prefix_kv(prompts: dict, names: list, n_head: int, device=None):
    """The key/value prefix of a batch's rows whose state is a prefix (kind "layers", prefix.py):
    (prefix_kv, mask (B, Pmax)) or (None, None), for ``model.forward_embeds(prefix_kv=...)``.

    prefix_kv is n_layer pairs (k, v), each (B, nh, Pmax, hs). As in ``build_prefix``, each row's
    prefix is right-aligned and left-padded with zeros the mask marks False; rows with no prefix
    (None, or a soft prompt) have every slot False. mask is None when no slot is padding.
    """
    _check_known(prompts, names)
    names = [n if n is not None and prompts[n].kind == "layers" else None for n in names]
    used = {n: prompts[n].layer_kv(n_head) for n in dict.fromkeys(names) if n is not None}  # each (L, 2, nh, P, hs)
    if not used:
        return None, None
    first = next(iter(used.values()))
    p_max = max(kv.size(3) for kv in used.values())
    device = first.device if device is None else device
    rows, mask = [], torch.zeros(len(names), p_max, dtype=torch.bool, device=device)
    for row, name in enumerate(names):
        if name is None:
            rows.append(first.new_zeros(*first.shape[:3], p_max, first.size(4)).to(device))
            continue
        kv = used[name].to(device=device, dtype=first.dtype)
        pad = p_max - kv.size(3)
        rows.append(torch.cat([kv.new_zeros(*kv.shape[:3], pad, kv.size(4)), kv], 3))
        mask[row, pad:] = True
    kv = torch.stack(rows)  # (B, L, 2, nh, Pmax, hs); stack keeps every row's graph
    padded = any(n is None or used[n].size(3) < p_max for n in names)  # from the lengths, as in build_prefix
    return [(kv[:, layer, 0], kv[:, layer, 1]) for layer in range(kv.size(1))], (mask if padded else None)


def forward_with_prompts(model, prompts: dict, input_ids: torch.Tensor, prompt_names: list,
                         attention_mask: torch.Tensor | None = None, return_hidden: bool = False) -> torch.Tensor:
    """Logits (B, T, V) for the token positions of a batch whose rows may use different prompts.

    A row's state may be a soft prompt (its vectors go before the text), a prefix (its keys and
    values go into every layer, ``build_prefix_kv``), or nothing.
    return_hidden: the final hidden states (B, T, C) of those positions instead, for ``model.head_loss``.
    """
    if len(prompt_names) != input_ids.size(0):
        raise MiniftError(f"prompt_names has {len(prompt_names)} entries for a batch of {input_ids.size(0)} rows")
    prefix, prefix_mask = build_prefix(prompts, prompt_names, device=input_ids.device)
    prefix_kv, kv_mask = build_prefix_kv(prompts, prompt_names, model.config.n_head, device=input_ids.device)
    x = model.embed(input_ids)  # (B, T, C)
    B, T, _ = x.shape
    P = 0 if prefix is None else prefix.size(1)
    if P:
        check_budget(model, P)
        x = torch.cat([prefix.to(x.dtype), x], dim=1)  # (B, P + T, C)
    real = None  # (B, P + T) True on real slots; None when nothing is padding
    if prefix_mask is not None or (attention_mask is not None and not bool(attention_mask.all())):
        ones = torch.ones(B, P, dtype=torch.bool, device=x.device)
        tokens = (attention_mask.to(torch.bool) if attention_mask is not None
                  else torch.ones(B, T, dtype=torch.bool, device=x.device))
        real = torch.cat([prefix_mask if prefix_mask is not None else ones, tokens], 1)
    # Each row counts positions from its own first real slot: a row without a prompt starts at 0.
    positions = positions_from_mask(real, P + T, x.device)
    keys_real = real  # what the attention may read: the prefix's slots come first, and take no positions
    if prefix_kv is not None and (kv_mask is not None or real is not None):
        def everywhere(width):
            return torch.ones(B, width, dtype=torch.bool, device=x.device)

        keys_real = torch.cat([everywhere(prefix_kv[0][0].size(2)) if kv_mask is None else kv_mask,
                               everywhere(P + T) if real is None else real], 1)  # (B, Pk + P + T)
    out = model.forward_embeds(x, positions=positions, key_padding_mask=keys_real, return_hidden=return_hidden,
                               prefix_kv=prefix_kv)
    return out[:, P:]  # the prompt's own outputs predict nothing: drop them


def _field(batch, name, default=None):
    """Batches are ``tasks.Batch`` objects; plain dicts work too."""
    if isinstance(batch, dict):
        return batch.get(name, default)
    return getattr(batch, name, default)


def prompt_loss_fn(prompts: dict):
    """loss_fn(model, batch) -> (mean loss over graded tokens, their count), for trainer.train_stage.

    A batch without prompt names (an empty list) uses the only prompt when there is exactly one.
    """

    def loss_fn(model, batch):
        model = model if hasattr(model, "forward_embeds") else model.module  # unwrap DDP
        input_ids, targets = _field(batch, "input_ids"), _field(batch, "targets")
        names = _field(batch, "prompt_names")
        if not names:
            if len(prompts) != 1:
                raise MiniftError(f"batch has no prompt_names and there are {len(prompts)} soft prompts: "
                                  "name one per row")
            names = [next(iter(prompts))] * input_ids.size(0)
        hidden = forward_with_prompts(model, prompts, input_ids, list(names), _field(batch, "attention_mask"),
                                      return_hidden=True)
        return model.head_loss(hidden, targets), int((targets != -100).sum())  # chunked: no logits held

    return loss_fn


def save_prompt(path, prompt: SoftPrompt, model, name: str, meta: dict | None = None) -> None:
    """Write the prompt, its name and the fingerprint of ``model`` (its base) to ``path`` atomically."""
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "name": name,
        "weight": prompt.weight.detach().float().cpu().clone(),  # clone: save only P×C, not a view's storage
        "fingerprint": fingerprint(model),
        "n_embd": prompt.n_embd,
        "init": prompt.init,
        "meta": meta or {},
    }
    atomic_torch_save(path, payload)


def load_prompt(path, model) -> SoftPrompt:
    """Read a prompt saved by ``save_prompt`` and check that ``model`` is the base it was trained on."""
    path = Path(path)
    payload = read_torch_file(path, "soft prompt", FORMAT, VERSION)
    weight = payload.get("weight")
    if not isinstance(weight, torch.Tensor) or weight.dim() != 2 or weight.size(0) < 1:
        raise MiniftError(f"{path}: soft prompt 'weight' must be a (P, C) tensor")
    n_embd = model.config.n_embd
    if payload.get("n_embd") != weight.size(1) or weight.size(1) != n_embd:
        raise MiniftError(f"{path}: soft prompt has width {weight.size(1)}, this model has n_embd {n_embd}")
    theirs, ours = payload.get("fingerprint"), fingerprint(model)
    if theirs != ours:
        raise MiniftError(f"{path}: this soft prompt was trained on base {theirs}, not on this model ({ours}); "
                          "load it onto the model it was trained with")
    prompt = SoftPrompt.from_weight(weight.float(), init=str(payload.get("init", "random")))
    prompt.name, prompt.meta = payload.get("name"), dict(payload.get("meta") or {})
    return prompt


# --- the recipe's 'prompt' stage -----------------------------------------------------------------
@dataclass
class Options:
    """The recipe fields of a ``strategy = "prompt"`` stage."""

    prompt_tokens: int = 16
    """P, the number of soft-prompt vectors."""
    prompt_init: str = "vocab"
    """vocab (sampled token embeddings) | text (embeddings of prompt_text) | random."""
    prompt_text: str = ""
    """The text whose token embeddings start the prompt (prompt_init = 'text')."""
    prompts: list = field(default_factory=list)
    """One soft prompt per name, each trained on that subset's examples; empty = one per subset
    present in the data (or a single prompt named after the task when there are no subsets)."""


def row_state_names(wanted: list, stage_name: str, examples, noun: str = "prompts") -> list:
    """The per-row state each training example reads: the only one when there is one, else the one
    named after its subset (None for rows of no wanted subset, which then train nothing).
    prefix.py shares it: prefixes are chosen per row exactly like soft prompts."""
    if len(wanted) == 1:
        return [wanted[0]] * len(examples)
    rows = [e.subset if e.subset in wanted else None for e in examples]
    if not any(rows):
        raise MiniftError(f"stage '{stage_name}': no training example belongs to the {noun} {', '.join(wanted)} "
                          f"(subsets present: {', '.join(sorted({str(e.subset) for e in examples}))})")
    return rows


def wanted_names(names: list, examples) -> list[str]:
    """The names a stage trains: the recipe's list, else one per subset present, else the task's name."""
    if names:
        return list(names)
    subsets = sorted({e.subset for e in examples if e.subset})
    return subsets or [examples[0].task]


def train_only(bundle, wanted: list) -> None:
    """Every per-row state of the bundle frozen but the wanted ones (the others ride along, unchanged).
    Each is a module: all its parameters (a prefix's reparameterising MLP too) follow."""
    for state in bundle.prompts.values():
        state.requires_grad_(False)
    for name in wanted:
        bundle.prompts[name].requires_grad_(True)


class Prompt(Strategy):
    name = "prompt"
    summary = "the model is frozen; soft prompts before the input train, one per subset"
    paper = "Lester et al. 2021"
    Options = Options
    # A high rate and no decay (the module docstring says why).
    defaults = {"lr": 0.1, "weight_decay": 0.0}
    changes_base = False

    def check(self, o, bad) -> None:
        if o.prompt_tokens < 1:
            bad("prompt_tokens", "must be >= 1")
        if o.prompt_init not in INITS:
            bad("prompt_init", f"allowed: {', '.join(INITS)}")
        if o.prompt_init == "text" and not o.prompt_text:
            bad("prompt_text", "prompt_init = 'text' needs a prompt_text")

    def check_model(self, o, config, bad) -> None:
        if o.prompt_tokens >= config.block_size:
            bad("prompt_tokens", f"a prompt must be shorter than the block ({config.block_size}) to leave room "
                                 f"for text")

    def setup(self, stage, bundle, examples, log, seed: int) -> StageSetup:
        from minift.optim import param_groups

        o, model = stage.options, bundle.model
        freeze_base(model)
        check_budget(model, o.prompt_tokens)
        wanted = wanted_names(o.prompts, examples)
        for i, name in enumerate(wanted):
            bundle.prompts[name] = SoftPrompt(o.prompt_tokens, model.config.n_embd, init=o.prompt_init, model=model,
                                              tokenizer=bundle.tokenizer, text=o.prompt_text or None,
                                              seed=seed + i).to(model.transformer.wte.weight.device)
        train_only(bundle, wanted)
        groups = param_groups([(f"prompts.{n}.weight", bundle.prompts[n].weight) for n in wanted], stage.weight_decay)
        return StageSetup(groups=groups, row_names=row_state_names(wanted, stage.name, examples), find_unused=True)

    def bench_cases(self):
        return [("prompt (16 vectors)", Options(prompt_tokens=16, prompt_init="random"))]


STRATEGY = Prompt()
