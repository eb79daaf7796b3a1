"""The hand-written GPT against references: the attention formula, causality, the KV cache."""
import math

import pytest
import torch
import torch.nn.functional as F

from minift.errors import MiniftError
from minift.model import GPT, GPTConfig, lm_loss


def tiny(attn_impl="sdpa", **kw):
    torch.manual_seed(0)
    cfg = dict(vocab_size=61, block_size=24, n_layer=2, n_head=4, n_embd=32, attn_impl=attn_impl)
    cfg.update(kw)
    return GPT(GPTConfig(**cfg)).eval()


def set_impl(model, impl):
    for block in model.transformer.h:
        block.attn.attn_impl = impl


def naive_attention(attn, x):
    """Causal self-attention one query position at a time, straight from the formula."""
    B, T, C = x.shape
    nh, hs = attn.n_head, C // attn.n_head
    q, k, v = attn.c_attn(x).split(C, dim=2)
    out = torch.zeros(B, T, C)
    for b in range(B):
        for h in range(nh):
            sl = slice(h * hs, (h + 1) * hs)
            for t in range(T):
                scores = torch.stack([q[b, t, sl] @ k[b, s, sl] / math.sqrt(hs) for s in range(t + 1)])
                weights = torch.softmax(scores, dim=0)
                out[b, t, sl] = sum(weights[s] * v[b, s, sl] for s in range(t + 1))
    return attn.c_proj(out)


def test_manual_and_sdpa_attention_equal_a_naive_per_position_loop():
    model = tiny()
    attn = model.transformer.h[0].attn
    x = torch.randn(2, 7, 32)
    with torch.no_grad():
        expected = naive_attention(attn, x)
        attn.attn_impl = "manual"
        manual = attn(x)
        attn.attn_impl = "sdpa"
        sdpa = attn(x)
    torch.testing.assert_close(manual, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(sdpa, expected, atol=1e-5, rtol=1e-5)


def test_manual_and_sdpa_give_the_same_logits_and_gradients():
    model = tiny().train()  # dropout is 0, so train mode is deterministic
    idx = torch.randint(0, 61, (3, 20))
    targets = torch.randint(0, 61, (3, 20))
    grads = {}
    for impl in ("manual", "sdpa"):
        model.zero_grad()
        set_impl(model, impl)
        logits = model(idx)
        lm_loss(logits, targets).backward()
        grads[impl] = (logits.detach(), [p.grad.clone() for p in model.parameters()])
    torch.testing.assert_close(grads["manual"][0], grads["sdpa"][0], atol=1e-5, rtol=1e-5)
    for gm, gs in zip(grads["manual"][1], grads["sdpa"][1]):
        torch.testing.assert_close(gm, gs, atol=1e-5, rtol=1e-4)


def test_sdpa_without_a_mask_tensor_equals_manual_in_every_cache_case():
    """The SDPA path skips the mask tensor when it can (past == 0: is_causal; T == 1: no mask).

    Fed in pieces through a KV cache (8 at once, then 1, then 3 at once, then 1), both paths must
    agree with each other and with one uncached pass over all 13 tokens, for every piece.
    """
    from minift.model import KVCache

    model = tiny("sdpa")
    idx = torch.randint(0, 61, (2, 13))
    with torch.no_grad():
        whole = {}
        pieces = {}
        for impl in ("manual", "sdpa"):
            set_impl(model, impl)
            whole[impl] = model(idx)
            cache = KVCache(model.config, 2, 13, "cpu", torch.float32)
            pieces[impl] = torch.cat([model.forward_embeds(model.embed(idx[:, a:b]), cache=cache)
                                      for a, b in ((0, 8), (8, 9), (9, 12), (12, 13))], dim=1)
    torch.testing.assert_close(whole["sdpa"], whole["manual"], atol=1e-5, rtol=1e-5)
    for impl in ("manual", "sdpa"):
        torch.testing.assert_close(pieces[impl], whole["manual"], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("impl", ["manual", "sdpa"])
def test_changing_a_future_token_leaves_earlier_logits_unchanged(impl):
    model = tiny(impl)
    idx = torch.randint(0, 61, (1, 12))
    changed = idx.clone()
    changed[0, 8] = (idx[0, 8] + 1) % 61
    with torch.no_grad():
        a, b = model(idx), model(changed)
    torch.testing.assert_close(a[:, :8], b[:, :8], rtol=0, atol=0)
    assert not torch.allclose(a[:, 8:], b[:, 8:])  # the change does reach later positions


def test_logits_shape_and_tied_head():
    model = tiny()
    logits = model(torch.randint(0, 61, (2, 5)))
    assert logits.shape == (2, 5, 61)
    assert model.lm_head.weight.data_ptr() == model.transformer.wte.weight.data_ptr()
    # Parameters are counted once: the head adds nothing of its own.
    C, V, L, T = 32, 61, 2, 24
    per_block = 2 * 2 * C + (3 * C * C + 3 * C) + (C * C + C) + (4 * C * C + 4 * C) + (4 * C * C + C)
    assert model.num_parameters() == V * C + T * C + L * per_block + 2 * C


def test_forward_embeds_equals_forward_on_ids():
    model = tiny()
    idx = torch.randint(0, 61, (2, 9))
    with torch.no_grad():
        torch.testing.assert_close(model(idx), model.forward_embeds(model.embed(idx)))


@pytest.mark.parametrize("impl", ["manual", "sdpa"])
def test_kv_cache_generation_gives_exactly_the_tokens_of_generation_without_it(impl):
    model = tiny(impl)
    idx = torch.randint(0, 61, (3, 5))
    # 30 new tokens from 5 overflows block_size 24: the cropped-window path is exercised too.
    for temperature, top_k in ((0.0, None), (0.8, 5)):
        g1 = torch.Generator().manual_seed(1)
        g2 = torch.Generator().manual_seed(1)
        with_cache = model.generate(idx, 30, temperature=temperature, top_k=top_k, use_cache=True, generator=g1)
        without = model.generate(idx, 30, temperature=temperature, top_k=top_k, use_cache=False, generator=g2)
        assert torch.equal(with_cache, without)
        assert with_cache.shape == (3, 35)


def test_left_padded_rows_generate_what_they_generate_alone():
    model = tiny()
    short = torch.randint(0, 61, (1, 3))
    long = torch.randint(0, 61, (1, 6))
    alone_short = model.generate(short, 8, temperature=0.0)
    alone_long = model.generate(long, 8, temperature=0.0)
    batch = torch.zeros(2, 6, dtype=torch.long)
    batch[0, 3:] = short[0]
    batch[1] = long[0]
    mask = torch.ones(2, 6, dtype=torch.bool)
    mask[0, :3] = False
    for use_cache in (True, False):
        out = model.generate(batch, 8, temperature=0.0, attention_mask=mask, use_cache=use_cache)
        assert torch.equal(out[0, 3:], alone_short[0])
        assert torch.equal(out[1], alone_long[0])


def test_prefix_embeds_generation_is_the_same_with_and_without_cache():
    model = tiny()
    prefix = torch.randn(1, 4, 32)
    idx = torch.randint(0, 61, (2, 5))
    a = model.generate(idx, 10, temperature=0.0, prefix_embeds=prefix, use_cache=True)
    b = model.generate(idx, 10, temperature=0.0, prefix_embeds=prefix, use_cache=False)
    assert torch.equal(a, b)
    plain = model.generate(idx, 10, temperature=0.0)
    assert not torch.equal(a, plain)  # the prefix really steers the model


def test_lm_loss_ignores_masked_targets():
    logits = torch.randn(1, 3, 5)
    targets = torch.tensor([[-100, 2, -100]])
    expected = -torch.log_softmax(logits[0, 1], dim=-1)[2]
    torch.testing.assert_close(lm_loss(logits, targets), expected)
    assert math.isclose(float(lm_loss(logits, targets)), float(F.cross_entropy(logits[0, 1:2], targets[0, 1:2])), rel_tol=1e-6)


@pytest.mark.parametrize(
    "field, kw",
    [
        ("n_embd", dict(n_embd=30, n_head=4)),
        ("block_size", dict(block_size=0)),
        ("attn_impl", dict(attn_impl="flash")),
        ("dropout", dict(dropout=1.5)),
    ],
)
def test_config_that_does_not_fit_names_the_field(field, kw):
    with pytest.raises(MiniftError, match=field):
        GPTConfig(**kw).validate()


def test_the_model_compiles_into_one_graph_for_every_sequence_length():
    """torch.compile(fullgraph=True, dynamic=True): any graph break is an error, and the sequence
    length is symbolic, as it becomes after a batch of another length is seen. A condition on the
    length passed to SDPA (``is_causal=T > 1``) is a SymBool that SDPA refuses: dynamo breaks the
    graph there and, inside the block loop, drops the whole forward back to eager without a word.
    Backend aot_eager: dynamo and AOT autograd trace, no C++ is generated (seconds)."""
    torch._dynamo.reset()
    model = tiny("sdpa").train()
    compiled = torch.compile(model, backend="aot_eager", fullgraph=True, dynamic=True)
    for T in (9, 14, 1):  # T == 1: one query, the plain causal case all the same
        idx = torch.randint(0, 61, (2, T))
        model.zero_grad()
        eager = model(idx)
        lm_loss(eager, idx).backward()
        eager_grads = [p.grad.clone() for p in model.parameters()]
        model.zero_grad()
        logits = compiled(idx)
        lm_loss(logits, idx).backward()
        torch.testing.assert_close(logits, eager)
        for a, b in zip(eager_grads, [p.grad for p in model.parameters()], strict=True):
            torch.testing.assert_close(b, a)
    torch._dynamo.reset()
