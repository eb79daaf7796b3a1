"""Exercise: the forward pass with a soft prompt (Lesson 08, "Prompt tuning").

Write ``forward_with_prompt(model, prompt, input_ids, attention_mask=None)``: the logits of the
tokens when P trained vectors sit *before* the token embeddings,

    text    = model.embed(input_ids)                      (B, T, C)
    x       = cat([prompt repeated B times, text], 1)     (B, P + T, C)   the prompt goes first
    logits  = model.forward_embeds(x, ...)[:, P:]         (B, T, V)       its own outputs dropped

Inputs: ``model``, a ``minift.model.GPT`` (frozen; use ``model.embed`` and ``model.forward_embeds``);
``prompt``, a float tensor (P, C), the soft prompt (it may require grad: the gradient must reach
it); ``input_ids``, a long tensor (B, T); ``attention_mask``, None (no padding) or a bool tensor
(B, T), False on left padding. With padding, mark the real slots of the joined sequence,
``real = cat([ones(B, P), attention_mask], 1)`` (B, P + T), pass it as ``key_padding_mask`` and
give ``positions = minift.model.positions_from_mask(real, P + T, device)``, so the prompt takes
positions 0..P-1 and each row's first real token comes right after it. Return the logits (B, T, V)
of the T token positions (those on padding are not graded).

It must equal ``minift.strategies.prompt.forward_with_prompts(model, {"p": soft_prompt}, input_ids,
["p"] * B, attention_mask)`` for a ``SoftPrompt`` holding ``prompt``; do not call it.

Grade it: ``minift grade soft_prompt`` (add ``--path DIR`` if this file is elsewhere).
"""
import torch  # noqa: F401


def forward_with_prompt(model, prompt, input_ids, attention_mask=None):
    """Logits (B, T, V) of the tokens, with the soft prompt (P, C) placed before them."""
    raise NotImplementedError("write forward_with_prompt: put the prompt before model.embed(input_ids), run "
                              "model.forward_embeds, keep the last T positions")
