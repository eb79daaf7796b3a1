"""Exercise: a Transformer block's forward pass (Lesson 03, "The Transformer block and the GPT").

Write ``block_forward(block, x, mask=None)``: what ``minift.model.Block.forward`` does, pre-LayerNorm
with two residual ("shortcut") connections,

    x = x + block.attn(block.ln_1(x), mask=mask)      talk to the other positions
    x = x + block.mlp(block.ln_2(x))                  think about what was heard

Inputs: ``block``, a ``minift.model.Block`` (use its four sub-modules ``ln_1``, ``attn``, ``ln_2``,
``mlp``; do not call ``block`` or ``block.forward`` itself); ``x``, the residual stream, a float
tensor (B, T, C); ``mask``, None (plain causal attention) or a bool tensor (B or 1, 1, T, T), True
where a query may look at a key (padding), which must reach the attention unchanged. Return the new
residual stream, (B, T, C).

It must equal ``block(x, mask=mask)`` in value and in the gradients of x and of every weight.

Grade it: ``minift grade block`` (add ``--path DIR`` if this file is elsewhere).
"""


def block_forward(block, x, mask=None):
    """x (B, T, C) -> (B, T, C): x + attn(ln_1(x)), then + mlp(ln_2(x))."""
    raise NotImplementedError("write block_forward: add block.attn(block.ln_1(x), mask=mask) to x, "
                              "then add block.mlp(block.ln_2(x))")
