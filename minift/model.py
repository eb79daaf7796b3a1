"""A GPT written out by hand: embeddings, causal self-attention, MLP, blocks, generation.

The idea
--------
A GPT reads a sequence of token ids and, at every position, predicts the next token. It does so
with a stack of identical *blocks*. Each block lets every position look at the positions before it
(self-attention) and then think on its own (an MLP). Both steps are added to a running "residual
stream", so that information can pass through the stack unchanged when a block has nothing to add.

Shapes used throughout (nanoGPT's letters):
    B batch size, T sequence length, C = n_embd width, nh = n_head heads, hs = C // nh head size,
    V vocabulary size.

    x = wte[idx] + wpe[pos]                          (B, T, C)  token + learned position embeddings
    for each block:
        x = x + attn(ln_1(x))                        pre-LayerNorm, residual ("shortcut") connection
        x = x + mlp(ln_2(x))
    logits = ln_f(x) @ wte.T                         (B, T, V)  the head is tied to wte

Training asks for the loss, not the logits: ``model(idx, targets)`` and ``head_loss`` take ln_f(x)
straight to the mean cross-entropy, a chunk of rows at a time, without ever holding the (B, T, V)
logits (``minift/loss.py``). ``lm_loss`` on the logits is kept for evaluation and for reading.

Self-attention, one head, written as the formula:
    q, k, v = x Wq, x Wk, x Wv                       each (B, T, hs)
    att = softmax(q kᵀ / √hs + M)                    (B, T, T), M = −∞ above the diagonal (causal)
    y = att v                                        (B, T, hs)
The nh heads run side by side as one (B, nh, T, hs) tensor, and their outputs are concatenated
back to (B, T, C) and mixed by c_proj.

Two attention paths live side by side. ``attn_impl="manual"`` computes the formula line by line:
this is the one to read and step through. ``attn_impl="sdpa"`` (the default) calls PyTorch's fused
``scaled_dot_product_attention``, which computes the same numbers faster and with less memory;
``tests/test_model.py`` proves the two equal, and equal to a naive per-position loop. For plain
causal attention the sdpa path passes ``is_causal=True`` instead of a (T, T) mask tensor: a mask
tensor would rule out FlashAttention, the fastest kernel on a GPU.

Names copy GPT-2's (``transformer.wte``, ``transformer.h.0.attn.c_attn``, ...), so that real GPT-2
weights can be loaded by key (``minift/pretrained.py``).

The model knows nothing about fine-tuning strategies. Freezing (``strategies/layers.py``), soft
prompts (``strategies/prompt.py``) and prefixes (``strategies/prefix.py``) act on it from outside,
through general doors it offers: ``forward_embeds`` (feed input embeddings instead of ids), its
``prefix_kv`` argument (keys and values the attention of every layer treats as already seen, before
the text) and the ``prefix_embeds`` / ``prefix_kv`` arguments of ``generate``.

A key/value prefix at layer l is a pair (Pk_l, Pv_l), each (B, nh, P, hs). The attention reads

    K = cat([Pk_l, k], dim=2),  V = cat([Pv_l, v], dim=2)     (B, nh, P + T, hs); q stays (B, nh, T, hs)

and query i sees all P prefix keys and the text's keys 0..i, as if they were a cache's past. The
prefix slots have no positions of their own: the text still starts at position 0.

Generation and the KV cache
---------------------------
Without a cache, generating each new token re-runs the whole sequence: O(T²) work for T tokens.
Keys and values of past positions never change (attention is causal), so ``KVCache`` keeps them and
each step feeds only the newest token. ``generate(..., use_cache=True)`` gives exactly the tokens
that ``use_cache=False`` gives (tested), just faster (``minift bench`` measures how much).

Tutorials 02 (self-attention) and 03 (the block and the GPT) step through this file.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from minift.errors import MiniftError
from minift.loss import linear_cross_entropy

ATTN_IMPLS = ("manual", "sdpa")


@dataclass
class GPTConfig:
    """The shape of a GPT. Every field is checked by ``validate`` with a message naming it."""

    vocab_size: int = 1026
    """Number of token ids the embedding table holds (tokenizer size, specials included)."""
    block_size: int = 256
    """Longest sequence the model can read: the number of learned position embeddings."""
    n_layer: int = 4
    """Number of Transformer blocks."""
    n_head: int = 4
    """Attention heads per block; must divide n_embd."""
    n_embd: int = 128
    """Width C of the residual stream."""
    dropout: float = 0.0
    """Dropout rate on embeddings, attention weights and residual branches (0 = off)."""
    bias: bool = True
    """Whether Linear and LayerNorm layers have biases (GPT-2 has them)."""
    attn_impl: str = "sdpa"
    """'manual' (the formula, written out) or 'sdpa' (PyTorch's fused kernel, same numbers)."""
    tie_weights: bool = True
    """The LM head shares the token embedding matrix (GPT-2 does). freezing.untie_head splits them."""

    def validate(self) -> "GPTConfig":
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise MiniftError(f"model config: {name} must be an integer >= 1, got {value!r}")
        if self.n_embd % self.n_head != 0:
            raise MiniftError(
                f"model config: n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})"
            )
        if not (0.0 <= float(self.dropout) < 1.0):
            raise MiniftError(f"model config: dropout must be in [0, 1), got {self.dropout!r}")
        if self.attn_impl not in ATTN_IMPLS:
            raise MiniftError(
                f"model config: attn_impl must be one of {', '.join(ATTN_IMPLS)}, got {self.attn_impl!r}"
            )
        return self

    def to_dict(self) -> dict:
        return asdict(self)


class KVCache:
    """Keys and values of the positions seen so far, one preallocated buffer per layer.

    k[layer], v[layer]: (B, nh, max_len, hs). ``length`` is how many positions are filled.
    Preallocating avoids re-copying the whole cache at every step (``torch.cat`` would).
    ``n_prefix`` of the filled slots hold a key/value prefix (``add_prefix``): they come first and
    take no positions, so the next token's position is ``length - n_prefix``.
    """

    def __init__(self, config: GPTConfig, batch_size: int, max_len: int, device, dtype):
        hs = config.n_embd // config.n_head
        shape = (batch_size, config.n_head, max_len, hs)
        self.k = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(config.n_layer)]
        self.v = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(config.n_layer)]
        self.length = 0
        self.max_len = max_len
        self.n_prefix = 0

    def add_prefix(self, prefix_kv) -> None:
        """Write a per-layer key/value prefix (n_layer pairs, each (B or 1, nh, P, hs)) into the empty
        cache, so that every later step sees it without being given it again."""
        if self.length:
            raise ValueError("a key/value prefix goes into an empty cache, before any token")
        for layer, (k, v) in enumerate(prefix_kv):
            P = k.size(2)
            self.k[layer][:, :, :P] = k
            self.v[layer][:, :, :P] = v
        self.length = self.n_prefix = P

    def append(self, layer: int, k: torch.Tensor, v: torch.Tensor):
        """Store k, v (B, nh, T_new, hs) after the filled part; return all keys and values so far."""
        start, end = self.length, self.length + k.size(2)
        self.k[layer][:, :, start:end] = k
        self.v[layer][:, :, start:end] = v
        return self.k[layer][:, :, :end], self.v[layer][:, :, :end]


class CausalSelfAttention(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.n_head = config.n_head
        self.n_embd = config.n_embd
        self.attn_impl = config.attn_impl
        self.dropout = config.dropout
        # One matrix makes q, k and v at once: (C) -> (3C). GPT-2 stores it this way too.
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.attn_dropout = nn.Dropout(config.dropout)
        self.resid_dropout = nn.Dropout(config.dropout)

    def forward(self, x, mask=None, cache: KVCache | None = None, layer: int = 0, prefix=None):
        """x (B, T, C) -> (B, T, C). ``mask`` (B or 1, 1, T, S) is True where a query may look.

        prefix: this layer's (k, v), each (B or 1, nh, P, hs): keys and values already seen, placed
            before the text's own (a cache cannot be given too: ``KVCache.add_prefix`` holds one).
        With ``mask=None`` the plain causal mask is used; S = T, past + T (cache) or P + T (prefix).
        """
        B, T, C = x.size()
        hs = C // self.n_head
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)  # each (B, T, C)
        # Split C into nh heads of size hs and move heads next to the batch: (B, nh, T, hs).
        q = q.view(B, T, self.n_head, hs).transpose(1, 2)
        k = k.view(B, T, self.n_head, hs).transpose(1, 2)
        v = v.view(B, T, self.n_head, hs).transpose(1, 2)
        past = 0  # keys seen before the text's first query: a cache's, or a prefix's
        if prefix is not None:
            pk, pv = prefix
            k = torch.cat([pk.to(k.dtype).expand(B, -1, -1, -1), k], dim=2)  # (B, nh, P + T, hs)
            v = torch.cat([pv.to(v.dtype).expand(B, -1, -1, -1), v], dim=2)
            past = pk.size(2)
        if cache is not None:
            past = cache.length
            k, v = cache.append(layer, k, v)  # (B, nh, past + T, hs)
        S = k.size(2)
        dropout_p = self.dropout if self.training else 0.0
        if self.attn_impl == "sdpa" and mask is None and (past == 0 or T == 1):
            # The two common cases need no mask tensor, and without one SDPA may pick its fastest
            # kernel (FlashAttention on CUDA; a tensor mask rules it out):
            #   past == 0  training and the first pass of generation: plain causal, S = T;
            #   T == 1     one new token after a cache or a prefix: it may look at every key.
            # (With past > 0 and T > 1, is_causal would be wrong: SDPA aligns it top-left, as if S = T.)
            # is_causal reads only `past`, a Python int: with T = S = 1 the causal mask is the
            # 1 x 1 mask that lets the query see its key, so `past == 0` alone is exact, and a test
            # of T (symbolic under torch.compile once lengths vary) would break the graph.
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p, is_causal=past == 0)
        else:
            if mask is None:
                # Query i (the key after the past ones) may look at keys 0 .. past + i.
                mask = torch.ones(T, S, dtype=torch.bool, device=x.device).tril(diagonal=past)
                mask = mask.view(1, 1, T, S)
            if self.attn_impl == "manual":
                att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hs))  # (B, nh, T, S)
                att = att.masked_fill(~mask, float("-inf"))  # a masked score gets weight exactly 0
                att = F.softmax(att, dim=-1)
                att = self.attn_dropout(att)
                y = att @ v  # (B, nh, T, S) @ (B, nh, S, hs) -> (B, nh, T, hs)
            else:
                y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # heads side by side again: (B, T, C)
        return self.resid_dropout(self.c_proj(y))


class MLP(nn.Module):
    """Position-wise feed-forward: C -> 4C -> GELU -> C."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.gelu = nn.GELU(approximate="tanh")  # GPT-2's GELU uses the tanh approximation
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x):
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))


class Block(nn.Module):
    """One Transformer block, pre-LayerNorm: normalise, transform, add back (the residual)."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x, mask=None, cache=None, layer=0, prefix=None):
        x = x + self.attn(self.ln_1(x), mask=mask, cache=cache, layer=layer, prefix=prefix)  # talk to other positions
        x = x + self.mlp(self.ln_2(x))  # think about what was heard
        return x


class GPT(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = config.validate()
        self.transformer = nn.ModuleDict(
            dict(
                wte=nn.Embedding(config.vocab_size, config.n_embd),
                wpe=nn.Embedding(config.block_size, config.n_embd),
                drop=nn.Dropout(config.dropout),
                h=nn.ModuleList([Block(config) for _ in range(config.n_layer)]),
                ln_f=nn.LayerNorm(config.n_embd, bias=config.bias),
            )
        )
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.apply(self._init_weights)
        if config.tie_weights:
            # Weight tying: the head that turns a vector into token scores is the same matrix that
            # turns a token into a vector. Fewer parameters, and in fine-tuning a consequence worth
            # knowing: freezing the embedding also freezes the head.
            self.lm_head.weight = self.transformer.wte.weight
        # GPT-2's scaled init: each residual branch's output projection gets std 0.02/√(2·n_layer),
        # so that the sum of 2·n_layer branches does not grow with depth.
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    @staticmethod
    def _init_weights(module):
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def num_parameters(self) -> int:
        """Parameters counted once each (the tied head is the embedding, not a second matrix)."""
        return sum(p.numel() for p in self.parameters())

    # --- the two doors: ids in, or embeddings in -------------------------------------------------
    def embed(self, idx: torch.Tensor) -> torch.Tensor:
        """Token embeddings only, (B, T) -> (B, T, C); positions are added in forward_embeds."""
        return self.transformer.wte(idx)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None) -> torch.Tensor:
        """idx (B, T) LongTensor -> logits (B, T, V).

        With targets (B, T) (-100 where not graded) it returns the training loss instead, the mean
        cross-entropy, computed from the final hidden states by ``head_loss`` without the logits.
        """
        if targets is None:
            return self.forward_embeds(self.embed(idx))
        return self.head_loss(self.forward_embeds(self.embed(idx), return_hidden=True), targets)

    def head_loss(self, hidden: torch.Tensor, targets: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
        """Cross-entropy of the head's logits for hidden (B, T, C) against targets (B, T), chunk by chunk.

        Equals ``lm_loss(self.lm_head(hidden), targets)`` but never holds the (B, T, V) logits
        (``minift/loss.py``). reduction "sum" gives the sum over graded positions (for DDP).
        """
        return linear_cross_entropy(hidden, self.lm_head.weight, targets, reduction=reduction)

    def forward_embeds(self, x, positions=None, key_padding_mask=None, cache: KVCache | None = None,
                       return_hidden: bool = False, prefix_kv=None):
        """Input embeddings x (B, T, C) -> logits (B, T, V).

        positions: (B, T) or (T,) absolute positions; default past .. past + T − 1 (a cache's
            prefix slots do not count: they have no positions).
        key_padding_mask: (B, S) bool, True for real tokens, False for padding, over all S keys seen
            so far (prefix + cached + new, in that order). Lets one batch hold prompts of different
            lengths (left-padded), and prefixes of different lengths, or none, in its rows.
        cache: a KVCache to read past keys/values from and append the new ones to.
        return_hidden: return the final hidden states ln_f(x) (B, T, C) instead of the logits, for
            ``head_loss`` (training never needs the logits themselves).
        prefix_kv: n_layer pairs (k, v), each (B or 1, nh, P, hs): a key/value prefix every layer's
            attention sees before the text (module docstring). Not with a cache: ``KVCache.add_prefix``.
        """
        B, T, _ = x.size()
        if prefix_kv is not None and cache is not None:
            raise ValueError("forward_embeds: give the prefix to the cache (KVCache.add_prefix), not both")
        if prefix_kv is not None and len(prefix_kv) != self.config.n_layer:
            raise ValueError(f"forward_embeds: prefix_kv has {len(prefix_kv)} layers, the model {self.config.n_layer}")
        past = cache.length if cache is not None else 0
        n_prefix = prefix_kv[0][0].size(2) if prefix_kv is not None else 0
        if positions is None:
            start = past - cache.n_prefix if cache is not None else 0
            positions = torch.arange(start, start + T, device=x.device)
            last = start + T - 1  # known without reading the tensor: no GPU sync, no graph break
        elif positions.device.type == "cpu" and not _compiling():
            last = int(positions.max())  # cheap on the CPU; on a GPU the lookup itself would assert
        else:
            last = -1
        if last >= self.config.block_size:
            raise ValueError(f"position {last} is beyond block_size {self.config.block_size}")
        x = self.transformer.drop(x + self.transformer.wpe(positions))
        mask = None
        seen = past + n_prefix  # keys before the first new one: the cache's, or the prefix's
        if key_padding_mask is not None:
            S = seen + T
            causal = torch.ones(T, S, dtype=torch.bool, device=x.device).tril(diagonal=seen)
            # Each query also sees itself, so a padding row never has all its scores masked
            # (softmax of all −∞ is NaN); real rows never look at padding.
            own = torch.zeros(T, S, dtype=torch.bool, device=x.device)
            own[torch.arange(T), seen + torch.arange(T)] = True
            mask = (causal & key_padding_mask[:, None, None, :S]) | own  # (B, 1, T, S)
        for i, block in enumerate(self.transformer.h):
            x = block(x, mask=mask, cache=cache, layer=i, prefix=None if prefix_kv is None else prefix_kv[i])
        if cache is not None:
            cache.length += T
        hidden = self.transformer.ln_f(x)
        return hidden if return_hidden else self.lm_head(hidden)

    # --- generation ---------------------------------------------------------------------------------
    @torch.no_grad()
    def generate(
        self,
        idx: torch.Tensor,
        max_new_tokens: int,
        temperature: float = 1.0,
        top_k: int | None = None,
        use_cache: bool = True,
        eos_id: int | None = None,
        prefix_embeds: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        prefix_mask: torch.Tensor | None = None,
        prefix_kv: list | None = None,
        prefix_kv_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Continue idx (B, T) by up to max_new_tokens tokens; returns (B, T + new).

        temperature=0.0 is greedy decoding (argmax). top_k keeps the k most likely tokens.
        eos_id: a row that produced it keeps producing it, and generation stops when all rows have.
        prefix_embeds: (B or 1, P, C) vectors placed before the tokens (a soft prompt).
        attention_mask: (B, T) bool/0-1, False on left padding, so prompts of different lengths batch.
        prefix_mask: (B, P) bool, False on prefix slots a row does not use (rows whose soft prompts
            are shorter, or that have none, are left-padded inside the prefix).
        prefix_kv: n_layer pairs (k, v), each (B or 1, nh, Pk, hs): a key/value prefix at every
            layer (``forward_embeds``). It takes no positions. With the cache it is written into the
            cache once, before the prompt (the cache holds block_size + Pk keys); without, every
            step is given it again. The tokens are the same either way.
        prefix_kv_mask: (B, Pk) bool, False on prefix slots a row does not use.
        Keys are laid out [key/value prefix][soft prompt][tokens]; a row may use either prefix, or none.
        """
        B, T0 = idx.shape
        P = 0 if prefix_embeds is None else prefix_embeds.size(1)
        if prefix_embeds is not None and prefix_embeds.size(0) == 1 and B > 1:
            prefix_embeds = prefix_embeds.expand(B, -1, -1)
        n_kv = 0 if prefix_kv is None else prefix_kv[0][0].size(2)
        pad = None  # (B, n_kv + P + T) True on real keys; None when nothing is padded
        if attention_mask is not None or prefix_mask is not None or prefix_kv_mask is not None:
            def real(mask, width):
                return mask.to(torch.bool) if mask is not None else torch.ones(B, width, dtype=torch.bool,
                                                                                device=idx.device)

            pad = torch.cat([real(prefix_kv_mask, n_kv), real(prefix_mask, P), real(attention_mask, T0)], 1)
        done = torch.zeros(B, dtype=torch.bool, device=idx.device)
        cache = None
        for _ in range(max_new_tokens):
            total = P + idx.size(1)  # positions in use (the key/value prefix takes none)
            if use_cache and total <= self.config.block_size:
                if cache is None:  # first step: run the whole prompt once, filling the cache
                    cache = KVCache(self.config, B, self.config.block_size + n_kv, idx.device,
                                    self.transformer.wte.weight.dtype)
                    if n_kv:
                        cache.add_prefix(prefix_kv)  # later steps then need nothing new
                    logits = self._forward_window(idx, prefix_embeds, pad, cache=cache, n_kv=n_kv)
                else:  # later steps: only the newest token goes through the model
                    new_pos = positions_from_mask(None if pad is None else pad[:, n_kv:], total, idx.device)[:, -1:]
                    logits = self.forward_embeds(self.embed(idx[:, -1:]), positions=new_pos,
                                                 key_padding_mask=pad, cache=cache)
            else:
                # No cache, or the sequence has outgrown the block: re-run the last block_size
                # positions. Learned absolute positions cannot slide, so a cache cannot be reused.
                logits = self._forward_window(idx, prefix_embeds, pad, cache=None, prefix_kv=prefix_kv, n_kv=n_kv)
            next_id = self._pick(logits[:, -1, :], temperature, top_k, generator)  # (B,)
            if eos_id is not None:
                next_id = torch.where(done, torch.full_like(next_id, eos_id), next_id)
                done |= next_id == eos_id
            idx = torch.cat([idx, next_id[:, None]], dim=1)
            if pad is not None:
                pad = torch.cat([pad, torch.ones(B, 1, dtype=torch.bool, device=idx.device)], 1)
            if eos_id is not None and bool(done.all()):
                break
        return idx

    def _forward_window(self, idx, prefix_embeds, pad, cache, prefix_kv=None, n_kv: int = 0):
        """Forward the prefix + tokens, cropped from the left to the block if needed.

        pad covers [n_kv key/value prefix slots][soft prompt][tokens]; only the last two take positions.
        """
        P = 0 if prefix_embeds is None else prefix_embeds.size(1)
        keep = self.config.block_size - P
        if keep < 1:
            raise ValueError(f"prefix of {P} vectors leaves no room in block_size {self.config.block_size}")
        tokens = idx[:, -keep:]
        x = self.embed(tokens)
        window_pad = None
        if pad is not None:
            window_pad = torch.cat([pad[:, :n_kv + P], pad[:, n_kv + P:][:, -keep:]], 1)
        if P:
            x = torch.cat([prefix_embeds.to(x.dtype), x], dim=1)
        positions = positions_from_mask(None if window_pad is None else window_pad[:, n_kv:], x.size(1), x.device)
        return self.forward_embeds(x, positions=positions, key_padding_mask=window_pad, cache=cache,
                                   prefix_kv=prefix_kv)

    @staticmethod
    def _pick(logits, temperature, top_k, generator):
        """logits (B, V) -> next token ids (B,)."""
        if temperature == 0.0:
            return logits.argmax(dim=-1)
        logits = logits / temperature
        if top_k is not None:
            kth = torch.topk(logits, min(top_k, logits.size(-1))).values[:, -1:]
            logits = logits.masked_fill(logits < kth, float("-inf"))
        probs = F.softmax(logits.float(), dim=-1)
        return torch.multinomial(probs, 1, generator=generator).squeeze(1)


def _compiling() -> bool:
    """True while torch.compile traces the model (then Python-side checks must not read tensors)."""
    compiler = getattr(torch, "compiler", None)
    return bool(compiler and getattr(compiler, "is_compiling", lambda: False)())


def positions_from_mask(mask: torch.Tensor | None, total: int, device) -> torch.Tensor:
    """Absolute positions (B or 1, total). With left padding (mask False), the first real position
    of each row is 0, so a padded row reads exactly as it would alone."""
    if mask is None:
        return torch.arange(total, device=device).expand(1, total)
    return (mask.long().cumsum(1) - 1).clamp(min=0)


def lm_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over positions whose target is not -100.

    logits (B, T, V), targets (B, T). Positions marked -100 (the prompt part of a fine-tuning
    example, padding) contribute nothing: the model is graded only on what it should write.
    Like ``F.cross_entropy``, it is NaN (0 / 0) when no position is graded; a caller that averages
    over batches weights each by its graded count and skips a batch with none (``evaluate``).
    ``model(x, targets=y)`` (``loss.linear_cross_entropy``) gives 0 there instead: a training
    step with nothing to learn moves nothing.
    """
    return F.cross_entropy(
        logits.reshape(-1, logits.size(-1)).float(), targets.reshape(-1), ignore_index=-100
    )
