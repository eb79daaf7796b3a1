"""The chunked head + cross-entropy (minift/loss.py) equals F.cross_entropy on the full logits.

Pinned: the value and the gradients for h and W to 1e-5 in float32, for chunk sizes that divide N,
do not divide it, are 1 row, or exceed N; ignored targets (-100) and a loss mask; the all-ignored
batch (loss 0, zero gradients, where F.cross_entropy gives NaN); the "sum" reduction DDP uses;
bf16 autocast (matmuls in bf16 like the plain head, the softmax in float32); a training step
through GPT and through finetune.Trainable gives the loss and gradients of the unchunked path;
and ``minift bench --only loss`` reports both paths with chunked saving less for backward.
"""
import json

import pytest
import torch
import torch.nn.functional as F

from minift.bench import bench_loss
from minift.cli import main
from minift.finetune import Trainable
from minift.loss import linear_cross_entropy
from minift.model import GPT, GPTConfig, lm_loss
from minift.strategies.prompt import SoftPrompt

N, C, V = 50, 12, 37


def inputs(seed=0, ignore_every=3):
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(N, C, generator=g).requires_grad_(True)
    w = torch.randn(V, C, generator=g).requires_grad_(True)
    targets = torch.randint(0, V, (N,), generator=g)
    targets[::ignore_every] = -100  # the prompt part of fine-tuning examples, padding
    return h, w, targets


def value_and_grads(loss, h, w):
    gh, gw = torch.autograd.grad(loss, (h, w))
    return loss.detach(), gh, gw


def reference(h, w, targets, reduction="mean"):
    """The plain way: every logit at once, torch's cross-entropy."""
    return value_and_grads(F.cross_entropy(h @ w.t(), targets, ignore_index=-100, reduction=reduction), h, w)


def assert_same(got, expected, tol=1e-5):
    for a, b in zip(got, expected):
        torch.testing.assert_close(a, b, atol=tol, rtol=tol)


@pytest.mark.parametrize("chunk_rows", [1, 7, 16, 25, 50, 64])  # 7, 16: do not divide 50; 64 > N
def test_value_and_gradients_equal_cross_entropy_on_the_full_logits(chunk_rows):
    h, w, targets = inputs()
    got = value_and_grads(linear_cross_entropy(h, w, targets, chunk_rows=chunk_rows), h, w)
    assert_same(got, reference(h, w, targets))


def test_leading_dimensions_are_flattened_like_lm_loss():
    h, w, targets = inputs(seed=1)
    got = linear_cross_entropy(h.reshape(5, 10, C), w, targets.reshape(5, 10), chunk_rows=8)
    torch.testing.assert_close(got.detach(), lm_loss((h @ w.t()).reshape(5, 10, V), targets.reshape(5, 10)).detach())


def test_a_loss_mask_grades_only_the_rows_it_keeps():
    h, w, targets = inputs(seed=2)
    mask = torch.rand(N, generator=torch.Generator().manual_seed(3)) > 0.4
    got = value_and_grads(linear_cross_entropy(h, w, targets, mask=mask, chunk_rows=9), h, w)
    # The same as ignoring the masked-out rows' targets.
    assert_same(got, reference(h, w, torch.where(mask, targets, -100)))


def test_sum_reduction_is_the_sum_over_graded_rows():
    h, w, targets = inputs(seed=4)
    got = value_and_grads(linear_cross_entropy(h, w, targets, chunk_rows=11, reduction="sum"), h, w)
    assert_same(got, reference(h, w, targets, reduction="sum"), tol=1e-4)  # sums of ~33 terms


def test_a_batch_with_nothing_graded_has_loss_zero_and_zero_gradients():
    h, w, _ = inputs(seed=5)
    targets = torch.full((N,), -100)
    assert torch.isnan(F.cross_entropy(h @ w.t(), targets, ignore_index=-100))  # 0/0: why not copy it
    loss, gh, gw = value_and_grads(linear_cross_entropy(h, w, targets, chunk_rows=8), h, w)
    assert float(loss) == 0.0
    assert torch.equal(gh, torch.zeros_like(gh)) and torch.equal(gw, torch.zeros_like(gw))
    everything_masked = linear_cross_entropy(h, w, torch.randint(0, V, (N,)), mask=torch.zeros(N, dtype=torch.bool))
    assert float(everything_masked.detach()) == 0.0


def test_under_bf16_autocast_the_matmuls_are_bf16_like_the_plain_head_and_the_softmax_float32():
    h, w, targets = inputs(seed=6, ignore_every=4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        plain = F.linear(h, w)  # what the unchunked path computes: bf16 logits ...
        expected = value_and_grads(lm_loss(plain, targets), h, w)  # ... cross-entropy in float32
        loss = linear_cross_entropy(h, w, targets, chunk_rows=7)
    assert plain.dtype == torch.bfloat16 and loss.dtype == torch.float32
    got = value_and_grads(loss, h, w)
    # A float32 matmul would differ from the bf16 head by ~1e-2 here, a bf16 softmax by more.
    torch.testing.assert_close(got[0], expected[0], atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(got[1], expected[1], atol=1e-5, rtol=1e-5)  # dh: the same bf16 products
    # dW: the plain head rounds the whole sum to bf16 once; the chunks add bf16 partial sums in float32.
    torch.testing.assert_close(got[2], expected[2], atol=2e-3, rtol=1e-2)
    assert got[1].dtype == h.dtype and got[2].dtype == w.dtype


def tiny_gpt(seed=0):
    torch.manual_seed(seed)
    return GPT(GPTConfig(vocab_size=61, block_size=32, n_layer=2, n_head=2, n_embd=16)).train()


def grads_of(model, loss):
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    return loss.detach(), dict(zip(names, torch.autograd.grad(loss, [p for p in model.parameters() if p.requires_grad])))


def assert_same_step(got, expected):
    torch.testing.assert_close(got[0], expected[0], atol=1e-5, rtol=1e-5)
    assert got[1].keys() == expected[1].keys()
    for name in expected[1]:
        torch.testing.assert_close(got[1][name], expected[1][name], atol=1e-5, rtol=1e-5, msg=name)


def test_the_compute_dtype_follows_autocast_on_torch_before_2_4_too(monkeypatch):
    """pyproject allows torch 2.1: there autocast's queries take no device (one pair per device)."""
    import warnings
    from types import SimpleNamespace

    from minift import loss
    from minift.loss import matmul_dtype

    w = torch.zeros(3, 2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert matmul_dtype(torch.zeros(1, 2), w) == torch.bfloat16  # this torch's own API
    monkeypatch.setattr(loss, "AUTOCAST_TAKES_DEVICE", False)  # as on torch 2.1-2.3
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the old CPU queries are deprecated on this torch
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert matmul_dtype(torch.zeros(1, 2), w) == torch.bfloat16
        assert matmul_dtype(torch.zeros(1, 2, dtype=torch.float64), w) == torch.float64  # off: the inputs'
    cuda_h = SimpleNamespace(device=torch.device("cuda"), dtype=torch.float32)  # no GPU needed: only its type
    monkeypatch.setattr(torch, "is_autocast_enabled", lambda *device: not device)  # the old no-argument form
    monkeypatch.setattr(torch, "get_autocast_gpu_dtype", lambda: torch.float16)
    assert matmul_dtype(cuda_h, w) == torch.float16


def test_a_training_step_through_the_model_equals_the_unchunked_loss():
    model = tiny_gpt()
    idx = torch.randint(0, 61, (3, 20))
    targets = torch.randint(0, 61, (3, 20))
    targets[:, :6] = -100
    expected = grads_of(model, lm_loss(model(idx), targets))
    assert_same_step(grads_of(model, model(idx, targets=targets)), expected)  # the tied wte gets both parts
    hidden = model.forward_embeds(model.embed(idx), return_hidden=True)
    assert hidden.shape == (3, 20, 16)
    torch.testing.assert_close(model.lm_head(hidden), model(idx))


def test_a_fine_tuning_step_through_trainable_equals_the_unchunked_loss_in_mean_and_sum():
    model = tiny_gpt(seed=1)
    prompt = SoftPrompt(4, 16, init="random", model=model)
    module = Trainable(model, {"p": prompt})
    ids = torch.randint(0, 61, (3, 12))
    targets = torch.randint(0, 61, (3, 12))
    targets[0, :5] = -100
    names = ["p", None, "p"]  # rows with and without a soft prompt
    for reduction, scale in (("mean", 1.0), ("sum", float((targets != -100).sum()))):
        expected = grads_of(module, lm_loss(module(ids, names), targets) * scale)
        assert_same_step(grads_of(module, module(ids, names, targets=targets, reduction=reduction)), expected)


def test_bench_loss_section_reports_both_paths_and_chunked_saves_less(tmp_path, capsys):
    shape = dict(vocab_size=97, block_size=16, n_embd=8)
    r = bench_loss("cpu", steps=1, shape=shape, batch=2, chunk_rows=[5])
    full, chunked = r["variants"]
    assert (full["loss"], chunked["loss"], chunked["chunk_rows"]) == ("full", "chunked", 5)
    assert r["logits_fp32_bytes"] == 32 * 97 * 4 and full["peak_bytes"] is None  # no CPU allocator counter
    # Saved for backward besides h and W: the full path keeps the float32 log-softmax (N, V).
    assert full["saved_bytes"] >= r["logits_fp32_bytes"] > chunked["saved_bytes"]
    assert chunked["value"] == pytest.approx(full["value"], abs=1e-5) and chunked["grad_max_diff"] < 1e-5
    out = tmp_path / "loss.json"
    assert main(["bench", "--device", "cpu", "--only", "loss", "--steps", "1", "--batch", "1",
                 "--chunk-rows", "64,1000", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "chunked" in printed and "full" in printed
    saved = json.loads(out.read_text())["loss"]
    full, *chunks = saved["variants"]
    assert [c["chunk_rows"] for c in chunks] == [64, 1000] and all(c["saved_bytes"] < full["saved_bytes"] for c in chunks)


def test_bench_refuses_an_unknown_section_and_a_bad_chunk_list(capsys):
    assert main(["bench", "--device", "cpu", "--only", "los"]) == 2
    assert "unknown section 'los'" in capsys.readouterr().err
    assert main(["bench", "--device", "cpu", "--only", "loss", "--chunk-rows", "64,x"]) == 2
    assert "--chunk-rows must be a comma list of integers" in capsys.readouterr().err


def test_compiling_the_training_loss_keeps_one_graph_for_every_padded_length():
    """Fine-tuning batches are padded to their longest example, so T changes at every step. Under
    torch.compile the chunked loss must not fix T: a Python range over the rows (B·T, a symbol
    once the shape is dynamic) once did, and every new length compiled the whole step again (the
    bench's compiled fine-tuning step spent 17 s a step compiling). One graph for the first
    shape, one dynamic graph for all the others; the chunked path (rows > chunk_rows) still gives
    the same value."""
    import torch._dynamo
    from torch._dynamo.utils import counters

    model = tiny_gpt(seed=2)
    module = Trainable(model, {})
    torch._dynamo.reset()
    counters.clear()
    compiled = torch.compile(module, backend="aot_eager")
    lengths = (9, 14, 20, 11, 30, 17)
    for T in lengths:
        ids = torch.randint(0, 61, (3, T))
        targets = torch.randint(0, 61, (3, T))
        loss = compiled(ids, [None] * 3, targets=targets)
        torch.testing.assert_close(loss, module(ids, [None] * 3, targets=targets))
        loss.backward()
    graphs = counters["stats"]["unique_graphs"]
    torch._dynamo.reset()
    assert graphs == 2, f"{graphs} graphs for {len(lengths)} lengths"
    h, w = torch.randn(50, 16), torch.randn(61, 16)
    y = torch.randint(0, 61, (50,))
    torch.testing.assert_close(linear_cross_entropy(h, w, y, chunk_rows=7), F.cross_entropy(h @ w.t(), y))
