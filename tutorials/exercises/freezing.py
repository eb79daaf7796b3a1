"""Exercise: freezing by block (Lesson 07, "Specific-layer fine-tuning").

Write ``freeze_blocks(model, keep)``: train only the Transformer blocks listed in ``keep``, freeze
every other parameter, by setting ``requires_grad``.

Inputs: ``model``, a ``minift.model.GPT`` whose blocks are ``model.transformer.h`` (L of them); its
parameters are named ``transformer.wte.weight``, ``transformer.h.3.mlp.c_fc.weight``, ...
(``model.named_parameters()``); ``keep``, a list of block indices, where a negative index counts from
the top as in Python (-1 is the last block, -L the first) and an index may repeat. Set
``requires_grad = True`` on every parameter of the kept blocks and ``False`` on all others: the
other blocks, the embeddings ``wte`` and ``wpe`` (hence the tied head), and ``ln_f``, whatever
their flags were before. Return the names of the trained parameters, in the order of
``model.named_parameters()``.

It must equal ``minift.strategies.layers.freeze_blocks(model, keep)`` (which is ``select_parameters``
then ``set_trainable``); do not call those. After it, backward gives gradients to the kept blocks
only.

Grade it: ``minift grade freezing`` (add ``--path DIR`` if this file is elsewhere).
"""


def freeze_blocks(model, keep):
    """requires_grad=True exactly on the blocks in keep (negative = from the top); returns the trained names."""
    raise NotImplementedError("write freeze_blocks: turn keep into block indices 0..L-1, then set each "
                              "parameter's requires_grad by whether its name is in a kept block")
