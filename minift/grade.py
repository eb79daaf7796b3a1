"""The course's autograder: ``minift grade`` checks a student's hand-built piece against minift's own.

The idea
--------
Each lesson builds a piece by hand and then shows that the library agrees. ``tutorials/exercises/``
turns ten of those pieces into exercises a teacher can hand out: one file per piece, a function
with the same signature as minift's (or, where minift's piece is a method or needs a model, a plain
function that must equal a named minift function), whose body raises ``NotImplementedError``. The
student fills the body in; this module checks it, the way course harnesses such as Stanford
CS336's do: a stub, and tests against a reference.

Each exercise below is a list of *checks*. A check builds its inputs from a fixed seed, calls the
student's function and minift's reference on the same inputs, and compares: values with a
tolerance, shapes, gradients through autograd where the piece is differentiable, and the edge cases
that separate a correct piece from one that only looks right (scores of size 1e4 that overflow a
naive softmax, rows whose targets are all ignored, left padding, repeated words that must be
clipped, strings that normalise to nothing). A check passes or fails with one line that says what
differed. The reference is always minift's own code (or PyTorch's, where minift calls it), never a
copy of it kept here.

Loading a student's file is part of grading, and every way it can go wrong is a failing line, never
a traceback: a missing file, a syntax error, no function of the expected name, a wrong signature
(the parameter names, in order), an exception raised by the function (``NotImplementedError``, the
untouched stub, reads "not implemented: <its message>"). The file is imported by path into a fresh
module (``importlib.util.spec_from_file_location``), present in ``sys.modules`` only while it runs; what
it prints goes to stderr, so stdout holds only the result lines. The student's function gets copies
of the tensors it is given (an in-place change cannot alter what the grader compares with), and a
check that runs past ``CHECK_SECONDS`` (an endless loop) is stopped and fails.

``grade(names, folder)`` returns the results; ``run(names, folder)`` prints them, one line per check
(``PASS exercise: check`` or ``FAIL exercise: check: what differed``) and a score line, and returns
the exit status: 0 when every check passes, 1 otherwise. Every check seeds its own generators, so a
rerun prints the same lines. ``tutorials/exercises/README.md`` lists the exercises for teachers;
``tests/test_grade.py`` proves that the stubs fail, minift's own pieces pass, and a planted bug in
each exercise is caught.
"""
from __future__ import annotations

import ast
import contextlib
import copy
import functools
import importlib.util
import inspect
import math
import numbers
import random
import signal
import sys
import threading
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from minift.errors import MiniftError


class CheckFailed(Exception):
    """A check's verdict: what differed, in one line."""


class LoadFailed(Exception):
    """The student's file or function could not be used: why, in one line."""


class CheckTimeout(BaseException):
    """A check ran past CHECK_SECONDS. A BaseException, so a student's ``except Exception`` cannot swallow it."""


CHECK_SECONDS = 10.0
"""The longest one check (or the import of one file) may run; the checks themselves take milliseconds,
so only an endless loop reaches it, and it becomes a failing line instead of a grader that hangs."""


@dataclass(frozen=True)
class Check:
    title: str
    run: Callable  # run(student_function) -> None, raises CheckFailed


@dataclass(frozen=True)
class Exercise:
    name: str
    """The command-line name, also the file's stem: tutorials/exercises/<name>.py."""
    function: str
    """The function the file must define."""
    signature: str
    """Its parameters, as written in the stub: "q, k, v, causal=True"."""
    lesson: str
    teaches: str
    reference: str
    """The minift piece it must equal."""
    checks: tuple[Check, ...]

    @property
    def file(self) -> str:
        return f"{self.name}.py"

    @property
    def parameters(self) -> list[str]:
        args = ast.parse(f"def f({self.signature}): pass").body[0].args
        return [a.arg for a in args.posonlyargs + args.args]


@dataclass(frozen=True)
class Result:
    exercise: str
    check: str
    passed: bool
    detail: str = ""

    def line(self) -> str:
        if self.passed:
            return f"PASS {self.exercise}: {self.check}"
        return f"FAIL {self.exercise}: {self.check}: {self.detail}"


# --- comparing ------------------------------------------------------------------------------------
def _tensor(name: str, got) -> torch.Tensor:
    if not isinstance(got, torch.Tensor):
        raise CheckFailed(f"{name} should be a torch.Tensor, got {type(got).__name__}")
    return got


def _close(name: str, got, want: torch.Tensor, atol: float = 1e-5, rtol: float = 1e-4) -> None:
    """Raise CheckFailed naming the first way ``got`` differs from ``want``: type, shape, values."""
    got = _tensor(name, got)
    if tuple(got.shape) != tuple(want.shape):
        raise CheckFailed(f"{name} has shape {tuple(got.shape)}, expected {tuple(want.shape)}")
    if got.is_complex() or not (got.is_floating_point() or got.dtype == want.dtype):
        raise CheckFailed(f"{name} has dtype {got.dtype}, expected {want.dtype}")
    g, w = got.detach().double().cpu(), want.detach().double().cpu()
    finite = torch.isfinite(g)
    if not bool(finite.all()) and bool(torch.isfinite(w).all()):
        if g.dim() == 0:
            raise CheckFailed(f"{name} is {float(g)}, expected {float(w):.6g}")
        where = tuple(int(i) for i in (~finite).nonzero()[0])
        raise CheckFailed(f"{name} is nan or inf at {int((~finite).sum())} of {g.numel()} entries, the first at "
                          f"index {where}; expected finite values")
    excess = (g - w).abs() - (atol + rtol * w.abs())
    if bool((excess > 0).any()):
        flat = int(excess.reshape(-1).argmax())
        where = tuple(int(i) for i in torch.unravel_index(torch.tensor(flat), g.shape)) if g.dim() else ()
        at = f" at index {where}" if where else ""
        raise CheckFailed(f"{name}{at}: got {float(g.reshape(-1)[flat]):.6g}, expected "
                          f"{float(w.reshape(-1)[flat]):.6g} (largest difference {float((g - w).abs().max()):.3g}; "
                          f"tolerance {atol:g} + {rtol:g}·|expected|)")


def _number(name: str, got, want: float, atol: float = 1e-9, rtol: float = 1e-9) -> None:
    if isinstance(got, torch.Tensor) and got.numel() == 1:
        got = got.item()
    if isinstance(got, bool) or not isinstance(got, numbers.Real):
        raise CheckFailed(f"{name} should be a number, got {type(got).__name__}")
    if not math.isfinite(float(got)) or abs(float(got) - want) > atol + rtol * abs(want):
        raise CheckFailed(f"{name}: got {float(got):.6g}, expected {want:.6g}")


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _randn(g: torch.Generator, *shape, scale: float = 1.0, dtype=torch.float32) -> torch.Tensor:
    return torch.randn(*shape, generator=g, dtype=dtype) * scale


def _leaf(t: torch.Tensor) -> torch.Tensor:
    return t.detach().clone().requires_grad_(True)


def _grads_of(output, inputs: list[torch.Tensor], weight: torch.Tensor, name: str) -> list:
    """d(sum(output · weight))/d input for each input (None where the output does not depend on it)."""
    output = _tensor(name, output)
    if tuple(output.shape) != tuple(weight.shape):
        raise CheckFailed(f"{name} has shape {tuple(output.shape)}, expected {tuple(weight.shape)}")
    if not output.requires_grad:
        raise CheckFailed(f"{name} is not connected to the inputs' autograd graph (was it detached, or "
                          f"computed under torch.no_grad?)")
    return list(torch.autograd.grad((output * weight).sum(), inputs, allow_unused=True))


def _compare_grads(names: list[str], got: list, want: list, atol=1e-5, rtol=1e-4) -> None:
    for name, g, w in zip(names, got, want):
        if w is None:
            continue
        if g is None:
            raise CheckFailed(f"no gradient reaches {name}: the output does not depend on it")
        _close(f"the gradient of {name}", g, w, atol=atol, rtol=rtol)


# --- the registry -----------------------------------------------------------------------------------
_CHECKS: dict[str, list[Check]] = {}


def _check(exercise: str, title: str):
    def register(fn):
        _CHECKS.setdefault(exercise, []).append(Check(title, fn))
        return fn

    return register


# === 1. attention: one head with the causal mask (lesson 02) ========================================
def _ref_attention(q, k, v, causal):
    # minift's sdpa path calls exactly this; tests/test_model.py proves the manual path equal to it.
    return F.scaled_dot_product_attention(q, k, v, is_causal=causal)


def _qkv(seed: int, *shape, scale: float = 1.0):
    g = _gen(seed)
    return tuple(_randn(g, *shape, scale=scale) for _ in range(3))


@_check("attention", "shapes: (B, T, hs) and (B, nh, T, hs) in, the same shape out")
def _attention_shapes(fn):
    for shape in ((2, 5, 4), (2, 3, 5, 4)):
        q, k, v = _qkv(1, *shape)
        got = _tensor("y", fn(q, k, v, True))
        if tuple(got.shape) != shape:
            raise CheckFailed(f"inputs of shape {shape} gave y of shape {tuple(got.shape)}, expected {shape}")


@_check("attention", "values with the causal mask, against F.scaled_dot_product_attention")
def _attention_causal(fn):
    q, k, v = _qkv(2, 2, 6, 8)
    _close("y", fn(q, k, v, True), _ref_attention(q, k, v, True))


@_check("attention", "values with causal=False (every position sees every key)")
def _attention_full(fn):
    q, k, v = _qkv(3, 2, 6, 8)
    _close("y", fn(q, k, v, False), _ref_attention(q, k, v, False))


@_check("attention", "the causal mask: no position sees a later one")
def _attention_future(fn):
    q, k, v = _qkv(4, 1, 6, 4)
    y = _tensor("y", fn(q, k, v, True)).detach()
    if y.shape != q.shape:
        raise CheckFailed(f"y has shape {tuple(y.shape)}, expected {tuple(q.shape)}")
    _close("y at position 0 (it may look only at itself, so y[0] = v[0])", y[:, 0], v[:, 0])
    k2, v2 = k.clone(), v.clone()
    k2[:, 3:] += 5.0
    v2[:, 3:] += 5.0  # change only positions 3, 4, 5
    y2 = _tensor("y", fn(q, k2, v2, True)).detach()
    changed = [t for t in range(3) if not torch.allclose(y[:, t], y2[:, t], atol=1e-6)]
    if changed:
        raise CheckFailed(f"the output at position {changed[0]} changed when only keys and values at positions "
                          f">= 3 changed: the mask lets a position see the future")


@_check("attention", "large scores (about 1e4): no overflow in the softmax")
def _attention_large(fn):
    q, k, v = _qkv(5, 2, 6, 4, scale=100.0)  # q·k/√hs has a standard deviation of about 1e4
    _close("y", fn(q, k, v, True), _ref_attention(q, k, v, True), atol=1e-4, rtol=1e-3)


@_check("attention", "gradients of q, k and v (autograd)")
def _attention_grads(fn):
    q, k, v = (_leaf(t) for t in _qkv(6, 2, 5, 4))
    w = _randn(_gen(60), 2, 5, 4)
    got = _grads_of(fn(q, k, v, True), [q, k, v], w, "y")
    want = _grads_of(_ref_attention(q, k, v, True), [q, k, v], w, "y")
    _compare_grads(["q", "k", "v"], got, want)


@_check("attention", "used per head inside minift's CausalSelfAttention, it gives the same output")
def _attention_in_module(fn):
    from minift.model import CausalSelfAttention, GPTConfig

    torch.manual_seed(7)
    attn = CausalSelfAttention(GPTConfig(vocab_size=10, block_size=8, n_layer=1, n_head=2, n_embd=8,
                                         attn_impl="manual")).eval()
    x = _randn(_gen(70), 2, 5, 8)
    B, T, C = x.shape
    with torch.no_grad():
        heads = [t.view(B, T, 2, C // 2).transpose(1, 2) for t in attn.c_attn(x).split(C, dim=2)]
        y = _tensor("y", fn(*heads, True))
        if tuple(y.shape) != (B, 2, T, C // 2):
            raise CheckFailed(f"y has shape {tuple(y.shape)}, expected {(B, 2, T, C // 2)}")
        out = attn.c_proj(y.transpose(1, 2).reshape(B, T, C))
        _close("c_proj(y)", out, attn(x))


# === 2. block: a Transformer block's forward (lesson 03) =============================================
def _tiny_block(seed: int):
    from minift.model import Block, GPTConfig

    torch.manual_seed(seed)
    block = Block(GPTConfig(vocab_size=10, block_size=8, n_layer=1, n_head=2, n_embd=8)).eval()
    g = _gen(seed + 1)
    with torch.no_grad():  # LayerNorms that are not the identity, so ln_1 and ln_2 differ
        for ln in (block.ln_1, block.ln_2):
            ln.weight.copy_(torch.rand(8, generator=g) + 0.5)
            ln.bias.copy_(_randn(g, 8, scale=0.3))
    return block


def _padding_mask(pad: list[int], T: int) -> torch.Tensor:
    """(B, 1, T, T): causal, no padded key, and each query sees itself (as GPT.forward_embeds builds it)."""
    real = torch.tensor([[t >= p for t in range(T)] for p in pad])
    causal = torch.ones(T, T, dtype=torch.bool).tril()
    return (causal & real[:, None, None, :]) | torch.eye(T, dtype=torch.bool)


@_check("block", "shape: x (B, T, C) in, (B, T, C) out")
def _block_shape(fn):
    block = _tiny_block(10)
    x = _randn(_gen(11), 2, 5, 8)
    with torch.no_grad():
        got = _tensor("the output", fn(block, x, None))
    if tuple(got.shape) != (2, 5, 8):
        raise CheckFailed(f"the output has shape {tuple(got.shape)}, expected (2, 5, 8)")


@_check("block", "values equal minift's Block.forward")
def _block_values(fn):
    block = _tiny_block(12)
    x = _randn(_gen(13), 2, 5, 8)
    with torch.no_grad():
        want = block(x)  # first: whatever the student's code does to the block comes after
        _close("the output", fn(block, x, None), want)


@_check("block", "a padding mask is passed on to the attention")
def _block_mask(fn):
    block = _tiny_block(14)
    x = _randn(_gen(15), 2, 5, 8)
    mask = _padding_mask([2, 0], 5)
    with torch.no_grad():
        want = block(x, mask=mask)
        _close("the output with a padding mask", fn(block, x, mask), want)


@_check("block", "gradients of x and of every weight (autograd)")
def _block_grads(fn):
    block = _tiny_block(16)
    x = _leaf(_randn(_gen(17), 2, 5, 8))
    w = _randn(_gen(18), 2, 5, 8)
    names, params = zip(*block.named_parameters())
    inputs = [x, *params]
    want = _grads_of(block(x), inputs, w, "the output")
    got = _grads_of(fn(block, x, None), inputs, w, "the output")
    _compare_grads(["x", *names], got, want)


# === 3. cross_entropy: with the ignore index (lessons 05 and 06) ======================================
def _ref_ce(logits: torch.Tensor, targets: torch.Tensor, ignore_index: int = -100) -> torch.Tensor:
    # minift's training loss on the logits themselves: hidden = logits, head = the identity matrix
    # (a product with the identity is exact). Where something is graded it equals model.lm_loss.
    from minift.loss import linear_cross_entropy

    V = logits.size(-1)
    eye = torch.eye(V, dtype=logits.dtype)
    return linear_cross_entropy(logits.reshape(-1, V), eye, targets.reshape(-1), ignore_index=ignore_index)


def _ce_inputs(seed: int, B=2, T=5, V=7, scale=3.0, ignored=0.0):
    g = _gen(seed)
    logits = _randn(g, B, T, V, scale=scale)
    targets = torch.randint(0, V, (B, T), generator=g)
    if ignored:
        targets[torch.rand(B, T, generator=g) < ignored] = -100
    return logits, targets


@_check("cross_entropy", "returns a 0-dim tensor, the mean")
def _ce_shape(fn):
    logits, targets = _ce_inputs(20)
    got = _tensor("the loss", fn(logits, targets, -100))
    if got.dim() != 0:
        raise CheckFailed(f"the loss has shape {tuple(got.shape)}, expected a 0-dim tensor (one number)")


@_check("cross_entropy", "values with nothing ignored")
def _ce_values(fn):
    logits, targets = _ce_inputs(21)
    _close("the loss", fn(logits, targets, -100), _ref_ce(logits, targets))


@_check("cross_entropy", "targets -100 add nothing, and the mean is over graded positions")
def _ce_ignored(fn):
    logits, targets = _ce_inputs(22, ignored=0.4)
    _close("the loss", fn(logits, targets, -100), _ref_ce(logits, targets))


@_check("cross_entropy", "a row whose targets are all -100: the mean over the batch's graded positions")
def _ce_ignored_row(fn):
    logits, targets = _ce_inputs(23, B=3)
    targets[1] = -100
    targets[0, :2] = -100
    _close("the loss", fn(logits, targets, -100), _ref_ce(logits, targets))


@_check("cross_entropy", "every target ignored: loss 0 and zero gradient, not nan")
def _ce_all_ignored(fn):
    logits, targets = _ce_inputs(24)
    targets[:] = -100
    logits = _leaf(logits)
    got = _tensor("the loss", fn(logits, targets, -100))
    _close("the loss", got, torch.zeros(()))
    if got.requires_grad:
        (grad,) = torch.autograd.grad(got, [logits], allow_unused=True)
        if grad is not None:
            _close("the gradient of the logits", grad, torch.zeros_like(logits))


@_check("cross_entropy", "large logits (about 1e4): no overflow")
def _ce_large(fn):
    logits, targets = _ce_inputs(25, scale=1e4, ignored=0.3)
    _close("the loss", fn(logits, targets, -100), _ref_ce(logits, targets), atol=1e-3, rtol=1e-5)


@_check("cross_entropy", "another ignore_index (3) is honoured")
def _ce_other_index(fn):
    logits, targets = _ce_inputs(26)
    targets[0, :3] = 3
    _close("the loss with ignore_index=3", fn(logits, targets, 3), _ref_ce(logits, targets, ignore_index=3))


@_check("cross_entropy", "the gradient of the logits (autograd; zero on ignored positions)")
def _ce_grads(fn):
    logits, targets = _ce_inputs(27, ignored=0.4)
    logits = _leaf(logits)
    one = torch.ones(())
    got = _grads_of(fn(logits, targets, -100), [logits], one, "the loss")
    want = _grads_of(_ref_ce(logits, targets), [logits], one, "the loss")
    _compare_grads(["the logits"], got, want)


# === 4. adamw: one AdamW step (lesson 04) =============================================================
def _ref_adamw(p, grad, m, v, t, lr, betas, eps, weight_decay):
    """minift.optim.AdamW's step (the readable loop) from a state of step t - 1 with moments m, v."""
    from minift.optim import AdamW

    param = torch.nn.Parameter(p.detach().clone())
    opt = AdamW([param], lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, foreach=False)
    param.grad = grad.detach().clone()
    opt.state[param] = {"step": t - 1, "exp_avg": m.detach().clone(), "exp_avg_sq": v.detach().clone()}
    opt.step()
    state = opt.state[param]
    return param.detach(), state["exp_avg"], state["exp_avg_sq"]


ADAMW_TOL = dict(atol=1e-10, rtol=1e-7)  # float64 inputs: the only differences are roundings


def _adamw_call(fn, p, grad, m, v, t, **hyper):
    out = fn(p.clone(), grad.clone(), m.clone(), v.clone(), t, **hyper) if hyper else \
        fn(p.clone(), grad.clone(), m.clone(), v.clone(), t)
    if not isinstance(out, (tuple, list)) or len(out) != 3:
        raise CheckFailed(f"adamw_step should return the tuple (p, m, v), got {type(out).__name__}"
                          + (f" of length {len(out)}" if isinstance(out, (tuple, list)) else ""))
    return out


def _adamw_compare(fn, p, grad, m, v, t, lr, betas, eps, weight_decay, what=""):
    hyper = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
    got = _adamw_call(fn, p, grad, m, v, t, **hyper)
    want = _ref_adamw(p, grad, m, v, t, **hyper)
    for name, g, w in zip(("p", "m", "v"), got, want):
        _close(f"{name}{what}", g, w, **ADAMW_TOL)


def _adamw_inputs(seed: int, t: int, shape=(3, 4)):
    g = _gen(seed)
    p, grad = _randn(g, *shape, dtype=torch.float64), _randn(g, *shape, dtype=torch.float64)
    if t == 1:
        return p, grad, torch.zeros(shape, dtype=torch.float64), torch.zeros(shape, dtype=torch.float64)
    m = _randn(g, *shape, scale=0.1, dtype=torch.float64)
    v = _randn(g, *shape, scale=0.1, dtype=torch.float64) ** 2
    return p, grad, m, v


@_check("adamw", "returns (p, m, v), each of p's shape")
def _adamw_shapes(fn):
    p, grad, m, v = _adamw_inputs(30, 1)
    for name, got in zip(("p", "m", "v"), _adamw_call(fn, p, grad, m, v, 1, lr=1e-3, betas=(0.9, 0.999),
                                                      eps=1e-8, weight_decay=0.0)):
        got = _tensor(name, got)
        if tuple(got.shape) != tuple(p.shape):
            raise CheckFailed(f"{name} has shape {tuple(got.shape)}, expected {tuple(p.shape)}")


@_check("adamw", "the first step (t = 1 from m = v = 0): the bias corrections")
def _adamw_first(fn):
    _adamw_compare(fn, *_adamw_inputs(31, 1), 1, lr=1e-2, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)


@_check("adamw", "a later step (t = 7, m and v from earlier steps)")
def _adamw_later(fn):
    _adamw_compare(fn, *_adamw_inputs(32, 7), 7, lr=1e-2, betas=(0.8, 0.99), eps=1e-8, weight_decay=0.01)


@_check("adamw", "decoupled weight decay: a zero gradient only shrinks p by (1 - lr·wd)")
def _adamw_decay(fn):
    p, _, m, v = _adamw_inputs(33, 1)
    _adamw_compare(fn, p, torch.zeros_like(p), m, v, 1, lr=0.05, betas=(0.9, 0.999), eps=1e-8,
                   weight_decay=0.1, what=" after a step with a zero gradient")
    _adamw_compare(fn, *_adamw_inputs(34, 3), 3, lr=0.05, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.1)


@_check("adamw", "eps is added after the square root (tiny gradients)")
def _adamw_eps(fn):
    p, grad, m, v = _adamw_inputs(35, 1)
    _adamw_compare(fn, p, grad * 1e-8, m, v, 1, lr=1e-2, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)


@_check("adamw", "the default hyperparameters are minift.optim.AdamW's (lr 1e-3, betas (0.9, 0.999), "
                 "eps 1e-8, weight_decay 1e-2)")
def _adamw_defaults(fn):
    p, grad, m, v = _adamw_inputs(36, 4)
    got = _adamw_call(fn, p, grad, m, v, 4)
    want = _ref_adamw(p, grad, m, v, 4, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2)
    for name, g, w in zip(("p", "m", "v"), got, want):
        _close(name, g, w, **ADAMW_TOL)


@_check("adamw", "five steps in a row equal torch.optim.AdamW")
def _adamw_torch(fn):
    g = _gen(37)
    p = _randn(g, 4, 3, dtype=torch.float64)
    grads = [_randn(g, 4, 3, dtype=torch.float64) for _ in range(5)]
    hyper = dict(lr=1e-2, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1)
    param = torch.nn.Parameter(p.clone())
    opt = torch.optim.AdamW([param], foreach=False, **hyper)
    ours, m, v = p.clone(), torch.zeros_like(p), torch.zeros_like(p)
    for t, grad in enumerate(grads, start=1):
        param.grad = grad.clone()
        opt.step()
        ours, m, v = _adamw_call(fn, _tensor("p", ours).detach(), grad, _tensor("m", m).detach(),
                                 _tensor("v", v).detach(), t, **hyper)
        _close(f"p after step {t}", ours, param.detach(), **ADAMW_TOL)


# === 5. bpe_merge: one BPE merge, as train_bpe applies it (lesson 01) =================================
def _words(*texts: str) -> list[list[bytes]]:
    return [[piece.encode() for piece in text.split("|")] if text else [] for text in texts]


def _merge_cases(fn, cases) -> None:
    from minift.tokenizer import merge_pair

    for word, a, b in cases:
        got = fn(list(word), a, b)
        if not isinstance(got, list) or not all(isinstance(tok, bytes) for tok in got):
            raise CheckFailed(f"merge_pair({word!r}, {a!r}, {b!r}) should return a list of bytes, got {got!r}")
        want = merge_pair(list(word), a, b)
        if got != want:
            raise CheckFailed(f"merge_pair({word!r}, {a!r}, {b!r}) gave {got!r}, expected {want!r}")


@_check("bpe_merge", "worked examples: a pair in the middle, at either end, absent, an empty word")
def _bpe_examples(fn):
    h, e, l, o = b"h", b"e", b"l", b"o"
    _merge_cases(fn, [([h, e, l, l, o], l, l), ([h, e, l, l, o], h, e), ([h, e, l, l, o], l, o),
                      ([h, e, l, l, o], o, h), ([], h, e), ([h], h, e)])


@_check("bpe_merge", "overlapping pairs merge left to right (aaa -> aa, a)")
def _bpe_overlap(fn):
    a, b = b"a", b"b"
    _merge_cases(fn, [([a, a, a], a, a), ([a, a, a, a], a, a), ([a, a, a, b], a, a), ([b, a, a, a], a, a),
                      ([a, b, a, b, a], a, b), ([a, b, a, b, a], b, a)])


@_check("bpe_merge", "tokens of several bytes are matched as tokens, not as joined bytes")
def _bpe_multibyte(fn):
    _merge_cases(fn, [(w, b"th", b"e") for w in _words("th|e| |th|e", "t|he|th|e")]
                 + [(w, b"ab", b"c") for w in _words("a|bc", "ab|c|a|bc|ab|c")])


@_check("bpe_merge", "random words against minift.tokenizer.merge_pair")
def _bpe_random(fn):
    rng = random.Random(40)
    alphabet = [b"a", b"b", b"ab", b"c"]
    cases = [([rng.choice(alphabet) for _ in range(rng.randint(0, 9))], rng.choice(alphabet), rng.choice(alphabet))
             for _ in range(300)]
    _merge_cases(fn, cases)


@_check("bpe_merge", "the word passed in is left unchanged (train_bpe still reads it)")
def _bpe_no_mutation(fn):
    word = [b"a", b"a", b"b", b"a", b"a"]
    before = list(word)
    fn(word, b"a", b"a")
    if word != before:
        raise CheckFailed(f"the input word changed from {before!r} to {word!r}: return a new list instead")


@_check("bpe_merge", "train_bpe using your merge_pair learns minift's vocabulary")
def _bpe_train(fn):
    from minift import tokenizer

    text = "the cat sat on the mat. that hat? the hat that sat; aaaa banana bandana " * 3
    want = tokenizer.train_bpe(text, 256 + 40)
    original = tokenizer.merge_pair
    tokenizer.merge_pair = fn  # train_bpe looks merge_pair up in its module at each merge
    try:
        got = tokenizer.train_bpe(text, 256 + 40)
    finally:
        tokenizer.merge_pair = original
    order = lambda ranks: sorted(ranks, key=ranks.__getitem__)  # noqa: E731
    got_order, want_order = order(got), order(want)
    for rank, (g, w) in enumerate(zip(got_order, want_order)):
        if g != w:
            raise CheckFailed(f"merge {rank - 255} learned {g!r}, train_bpe with minift's merge_pair learns {w!r}")
    if len(got_order) != len(want_order):
        raise CheckFailed(f"learned {len(got_order)} tokens, expected {len(want_order)}")


# === 6. lr_schedule: warmup, cosine, floor (lesson 04) ================================================
def _lr_compare(fn, steps, max_lr, warmup, total, ratio=None) -> None:
    from minift.optim import lr_at

    for step in steps:
        args = (step, max_lr, warmup, total) if ratio is None else (step, max_lr, warmup, total, ratio)
        want = lr_at(*args)
        got = fn(*args)
        shown = ", ".join(map(str, args))
        _number(f"lr_at({shown})", got, want, atol=1e-15, rtol=1e-9)


@_check("lr_schedule", "returns a Python number")
def _lr_type(fn):
    got = fn(3, 1e-3, 10, 110, 0.1)
    if isinstance(got, bool) or not isinstance(got, numbers.Real):
        raise CheckFailed(f"lr_at should return a number (float), got {type(got).__name__}")


@_check("lr_schedule", "the worked values of minift.optim.lr_at's docstring (warmup 10, total 110)")
def _lr_worked(fn):
    _lr_compare(fn, (0, 4, 9, 10, 60, 110, 500), 1e-3, 10, 110, 0.1)


@_check("lr_schedule", "warmup: step s < warmup gives max_lr·(s + 1)/warmup (the first step already moves)")
def _lr_warmup(fn):
    _lr_compare(fn, range(0, 6), 2e-3, 6, 40, 0.1)


@_check("lr_schedule", "cosine decay from max_lr to the floor between warmup and total")
def _lr_cosine(fn):
    _lr_compare(fn, range(5, 40), 3e-4, 5, 40, 0.2)


@_check("lr_schedule", "the floor: min_lr_ratio·max_lr from total_steps on (and 0 with ratio 0)")
def _lr_floor(fn):
    _lr_compare(fn, (40, 41, 100, 10_000), 3e-4, 5, 40, 0.2)
    _lr_compare(fn, range(0, 30, 3), 1e-3, 4, 20, 0.0)


@_check("lr_schedule", "no warmup (warmup_steps 0) and no decay (warmup_steps = total_steps)")
def _lr_edges(fn):
    _lr_compare(fn, range(0, 25), 1e-3, 0, 20, 0.1)
    _lr_compare(fn, range(0, 25), 1e-3, 20, 20, 0.1)


@_check("lr_schedule", "min_lr_ratio defaults to 0.1")
def _lr_default(fn):
    _lr_compare(fn, (0, 7, 20, 30), 1e-3, 2, 20)


# === 7. freezing: requires_grad by block (lesson 07) ==================================================
def _tiny_gpt(seed: int, n_layer: int = 4):
    from minift.model import GPT, GPTConfig

    torch.manual_seed(seed)
    return GPT(GPTConfig(vocab_size=16, block_size=8, n_layer=n_layer, n_head=2, n_embd=8)).eval()


def _flags(model) -> dict[str, bool]:
    return {name: p.requires_grad for name, p in model.named_parameters()}


def _set_flags(model, seed: int) -> None:
    rng = random.Random(seed)
    for p in model.parameters():
        p.requires_grad_(rng.random() < 0.5)


def _freeze_compare(fn, keep, start_seed: int = 0) -> list[str]:
    from minift.strategies.layers import freeze_blocks

    theirs = _tiny_gpt(50)
    ours = copy.deepcopy(theirs)
    _set_flags(theirs, start_seed)
    _set_flags(ours, start_seed)
    got = fn(theirs, list(keep))
    want = freeze_blocks(ours, keep=list(keep))
    got_flags, want_flags = _flags(theirs), _flags(ours)
    for name, flag in want_flags.items():
        if got_flags[name] != flag:
            raise CheckFailed(f"keep={list(keep)}: {name} has requires_grad={got_flags[name]}, expected {flag}")
    return [got, want]


@_check("freezing", "keep=[-1]: only the top block trains")
def _freeze_top(fn):
    _freeze_compare(fn, [-1])


@_check("freezing", "keep=[0, 2]: two blocks train, the others, the embeddings and ln_f are frozen")
def _freeze_two(fn):
    _freeze_compare(fn, [0, 2])


@_check("freezing", "keep=[]: everything is frozen")
def _freeze_none(fn):
    _freeze_compare(fn, [])


@_check("freezing", "negative and repeated indices (keep=[-4, 0, 3] in 4 blocks)")
def _freeze_negative(fn):
    _freeze_compare(fn, [-4, 0, 3])


@_check("freezing", "flags set before are overwritten, True and False alike")
def _freeze_overwrite(fn):
    for seed in (1, 2, 3):
        _freeze_compare(fn, [1], start_seed=seed)


@_check("freezing", "returns the trained parameter names in model order")
def _freeze_names(fn):
    got, want = _freeze_compare(fn, [-1, 1])
    if not isinstance(got, list) or got != want:
        raise CheckFailed(f"returned {got!r}, expected {want!r}")


@_check("freezing", "backward gives gradients to the kept blocks only (autograd)")
def _freeze_backward(fn):
    model = _tiny_gpt(51)
    fn(model, [1, 3])
    idx = torch.randint(0, 16, (2, 6), generator=_gen(52))
    model(idx, idx).backward()
    for name, p in model.named_parameters():
        kept = name.startswith(("transformer.h.1.", "transformer.h.3."))
        if kept and p.grad is None:
            raise CheckFailed(f"keep=[1, 3]: {name} got no gradient")
        if not kept and p.grad is not None:
            raise CheckFailed(f"keep=[1, 3]: {name} got a gradient, so it would train")


# === 8. soft_prompt: the forward pass with a soft prompt (lesson 08) ===================================
def _ref_prompt(model, prompt, input_ids, attention_mask=None):
    from minift.strategies.prompt import SoftPrompt, forward_with_prompts

    soft = SoftPrompt.from_weight(prompt.detach())
    out = forward_with_prompts(model, {"p": soft}, input_ids, ["p"] * input_ids.size(0), attention_mask)
    return out, soft.weight


def _prompt_inputs(seed: int, P: int = 3, B: int = 2, T: int = 5):
    model = _tiny_gpt(seed, n_layer=2)
    for p in model.parameters():
        p.requires_grad_(False)  # the base is frozen in prompt tuning; only the prompt learns
    g = _gen(seed + 1)
    prompt = _randn(g, P, 8, scale=0.5)
    ids = torch.randint(0, 16, (B, T), generator=g)
    return model, prompt, ids


@_check("soft_prompt", "shape: logits (B, T, V) for the T tokens only")
def _prompt_shape(fn):
    model, prompt, ids = _prompt_inputs(60)
    got = _tensor("the logits", fn(model, prompt, ids, None))
    if tuple(got.shape) != (2, 5, 16):
        raise CheckFailed(f"the logits have shape {tuple(got.shape)}, expected (2, 5, 16): B, T and V "
                          f"(the prompt's own P positions are dropped)")


@_check("soft_prompt", "values equal minift's forward_with_prompts")
def _prompt_values(fn):
    model, prompt, ids = _prompt_inputs(61)
    with torch.no_grad():
        want = _ref_prompt(model, prompt, ids)[0]
        _close("the logits", fn(model, prompt, ids, None), want)


@_check("soft_prompt", "a prompt of one vector (P = 1)")
def _prompt_one(fn):
    model, prompt, ids = _prompt_inputs(62, P=1)
    with torch.no_grad():
        want = _ref_prompt(model, prompt, ids)[0]
        _close("the logits", fn(model, prompt, ids, None), want)


@_check("soft_prompt", "left padding (attention_mask): the real tokens' logits")
def _prompt_padding(fn):
    model, prompt, ids = _prompt_inputs(63)
    mask = torch.ones(2, 5, dtype=torch.bool)
    mask[0, :2] = False
    with torch.no_grad():
        want = _ref_prompt(model, prompt, ids, mask)[0]
        got = _tensor("the logits", fn(model, prompt, ids, mask))
    if tuple(got.shape) != tuple(want.shape):
        raise CheckFailed(f"the logits have shape {tuple(got.shape)}, expected {tuple(want.shape)}")
    _close("the logits of row 0 (2 padding tokens, then 3 real ones)", got[0, 2:], want[0, 2:])
    _close("the logits of row 1 (no padding)", got[1], want[1])


@_check("soft_prompt", "the gradient reaches the prompt (autograd)")
def _prompt_grads(fn):
    model, prompt, ids = _prompt_inputs(64)
    w = _randn(_gen(65), 2, 5, 16)
    out, weight = _ref_prompt(model, prompt, ids)
    want = _grads_of(out, [weight], w, "the logits")
    mine = _leaf(prompt)
    got = _grads_of(fn(model, mine, ids, None), [mine], w, "the logits")
    _compare_grads(["the prompt"], got, want)


# === 9. bleu_precision: BLEU's clipped n-gram precision (lesson 10) ====================================
def _ref_clipped(hyp: list[str], ref: list[str], n: int) -> tuple[int, int]:
    # bleu_details works on whole sentences; these tokens (lowercase words) tokenize to themselves.
    from minift.metrics import bleu_details

    details = bleu_details([" ".join(hyp)], [" ".join(ref)])
    return details["counts"][n - 1], details["totals"][n - 1]


def _clipped_cases(fn, cases) -> None:
    for hyp, ref, n in cases:
        got = fn(list(hyp), list(ref), n)
        want = _ref_clipped(hyp, ref, n)
        if (not isinstance(got, (tuple, list)) or len(got) != 2
                or not all(isinstance(x, numbers.Integral) and not isinstance(x, bool) for x in got)):
            raise CheckFailed(f"clipped_precision should return two whole numbers (matches, total), got {got!r}")
        if tuple(got) != want:
            raise CheckFailed(f"hypothesis {' '.join(hyp)!r}, reference {' '.join(ref)!r}, n={n}: got "
                              f"(matches, total) = {tuple(got)}, expected {want}")


@_check("bleu_precision", "the worked example of minift/metrics.py (5/6, 3/5, 1/4, 0/3)")
def _bleu_worked(fn):
    hyp, ref = "the cat sat on the mat".split(), "the cat is on the mat".split()
    _clipped_cases(fn, [(hyp, ref, n) for n in (1, 2, 3, 4)])


@_check("bleu_precision", "clipping: a word counts at most as often as the reference has it")
def _bleu_clip(fn):
    _clipped_cases(fn, [("the the the the the the the".split(), "the cat is on the mat".split(), 1),
                        ("on the on the on the".split(), "on the mat".split(), 2)])


@_check("bleu_precision", "ties at the clip: as many in the hypothesis as in the reference")
def _bleu_ties(fn):
    same = "the cat the cat".split()
    _clipped_cases(fn, [(same, same, n) for n in (1, 2, 3)]
                   + [("a b a b".split(), "b a b a".split(), n) for n in (1, 2)])


@_check("bleu_precision", "short and empty sides: (0, 0) for an empty or too short hypothesis")
def _bleu_empty(fn):
    _clipped_cases(fn, [([], "the cat".split(), 1), (["the"], "the cat".split(), 2),
                        ("the cat".split(), [], 1), ("the cat sat".split(), ["the"], 3)])


@_check("bleu_precision", "random sentences against minift.metrics.bleu_details, n = 1..4")
def _bleu_random(fn):
    rng = random.Random(70)
    vocab = ["the", "cat", "dog", "sat", "on", "mat"]
    def sentence():
        return [rng.choice(vocab) for _ in range(rng.randint(0, 9))]

    cases = [(sentence(), sentence(), rng.randint(1, 4)) for _ in range(80)]
    _clipped_cases(fn, cases)


# === 10. squad_f1: SQuAD's token F1 (lesson 10) =========================================================
def _f1_cases(fn, cases) -> None:
    from minift.metrics import token_f1

    for prediction, answer in cases:
        want = token_f1(prediction, answer)
        got = fn(prediction, answer)
        if isinstance(got, bool) or not isinstance(got, numbers.Real):
            raise CheckFailed(f"token_f1({prediction!r}, {answer!r}) should return a number, got {type(got).__name__}")
        if abs(float(got) - want) > 1e-6:
            hint = " (a fraction: give a percentage, 0-100)" if want and abs(float(got) * 100 - want) < 1e-6 else ""
            raise CheckFailed(f"token_f1({prediction!r}, {answer!r}) = {float(got):.6g}, expected {want:.6g}{hint}")


@_check("squad_f1", "the worked example: 'in Paris, France' vs 'Paris' is 50")
def _f1_worked(fn):
    _f1_cases(fn, [("in Paris, France", "Paris"), ("Paris", "in Paris, France")])


@_check("squad_f1", "normalisation: case, punctuation, articles and spaces do not count")
def _f1_normalise(fn):
    _f1_cases(fn, [("The Eiffel Tower!", "eiffel tower"), ("  Paris   France ", "paris france"),
                   ("an apple", "Apple."), ("U.S.", "us"), ("the cat", "a cat"), ("Rock-n-roll", "rocknroll")])


@_check("squad_f1", "articles only as whole words (the theater, Anna)")
def _f1_articles(fn):
    _f1_cases(fn, [("the theater", "theater"), ("Anna and the other", "anna and other"), ("athens", "thens")])


@_check("squad_f1", "empty after normalisation scores 0 (even '' vs '', and 'the' vs 'a')")
def _f1_empty(fn):
    _f1_cases(fn, [("", ""), ("the", "a"), ("", "paris"), ("paris", ""), ("!!!", "?")])


@_check("squad_f1", "repeated tokens are clipped ('paris paris' vs 'paris')")
def _f1_repeats(fn):
    _f1_cases(fn, [("paris paris", "paris"), ("paris", "paris paris"), ("a b b c", "b b b")])


@_check("squad_f1", "random answers against minift.metrics.token_f1")
def _f1_random(fn):
    rng = random.Random(80)
    words = ["Paris", "paris", "the", "a", "an", "France", "city,", "of", "light!", "Lyon", "U.S."]

    def answer():
        return (" " * rng.randint(0, 2)).join(rng.choice(words) for _ in range(rng.randint(0, 6)))

    _f1_cases(fn, [(answer(), answer()) for _ in range(120)])


# --- the exercises ----------------------------------------------------------------------------------
def _exercise(name, function, signature, lesson, teaches, reference) -> Exercise:
    return Exercise(name, function, signature, lesson, teaches, reference, tuple(_CHECKS[name]))


EXERCISES: dict[str, Exercise] = {ex.name: ex for ex in (
    _exercise("attention", "attention_head", "q, k, v, causal=True", "02",
              "one attention head: scores q kᵀ/√hs, the causal mask, softmax, the weighted sum of v",
              "F.scaled_dot_product_attention (minift's sdpa path); per head, CausalSelfAttention"),
    _exercise("block", "block_forward", "block, x, mask=None", "03",
              "the pre-LayerNorm block: x + attn(ln_1(x)), then + mlp(ln_2(x)), the residual stream",
              "minift.model.Block.forward"),
    _exercise("cross_entropy", "cross_entropy", "logits, targets, ignore_index=-100", "05, 06",
              "the language-model loss: a stable log-softmax, the target's score, -100 positions left out",
              "minift.loss.linear_cross_entropy (= minift.model.lm_loss where something is graded)"),
    _exercise("adamw", "adamw_step", "p, grad, m, v, t, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2",
              "04", "AdamW: the two moments, the bias corrections, eps after the root, decoupled decay",
              "minift.optim.AdamW.step (its readable loop) and torch.optim.AdamW"),
    _exercise("bpe_merge", "merge_pair", "word, a, b", "01",
              "the merge step of BPE training: rewrite a word with a new token, left to right",
              "minift.tokenizer.merge_pair (what train_bpe applies at each merge)"),
    _exercise("lr_schedule", "lr_at", "step, max_lr, warmup_steps, total_steps, min_lr_ratio=0.1", "04",
              "the learning-rate schedule: linear warmup, cosine decay, a floor",
              "minift.optim.lr_at"),
    _exercise("freezing", "freeze_blocks", "model, keep", "07",
              "freezing by block: requires_grad by parameter name, what backward then reaches",
              "minift.strategies.layers.freeze_blocks (select_parameters + set_trainable)"),
    _exercise("soft_prompt", "forward_with_prompt", "model, prompt, input_ids, attention_mask=None", "08",
              "prompt tuning's forward: P vectors before the token embeddings, positions, dropping P outputs",
              "minift.strategies.prompt.forward_with_prompts with one prompt for every row"),
    _exercise("bleu_precision", "clipped_precision", "hypothesis, reference, n", "10",
              "BLEU's modified n-gram precision: n-gram counts clipped by the reference's",
              "the counts and totals of minift.metrics.bleu_details"),
    _exercise("squad_f1", "token_f1", "prediction, answer", "10",
              "SQuAD's answer normalisation and bag-of-tokens F1",
              "minift.metrics.token_f1"),
)}


# --- loading a student's file ---------------------------------------------------------------------
def _first_line(exc: BaseException, limit: int = 200) -> str:
    text = (str(exc).strip().splitlines() or [""])[0]
    return text if len(text) <= limit else text[:limit] + "..."


def _where(exc: BaseException, path: Path) -> str:
    """' (file.py, line N)' for the deepest frame of the traceback in the student's file, else ''."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if Path(f.filename) == path]
    return f" ({path.name}, line {frames[-1].lineno})" if frames else ""


def describe_exception(exc: BaseException, path: Path) -> str:
    """One line for an exception raised while running a student's code."""
    if isinstance(exc, NotImplementedError):
        return "not implemented: " + (_first_line(exc) or "the function raises NotImplementedError")
    message = _first_line(exc)
    return f"raised {type(exc).__name__}" + (f": {message}" if message else "") + _where(exc, path)


def _check_signature(fn, ex: Exercise) -> None:
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        raise LoadFailed(f"{ex.function} has no readable signature; expected {ex.function}({ex.signature})") from None
    params = list(sig.parameters.values())
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    wanted = ex.parameters
    names = [p.name for p in positional]
    extra_required = [p.name for p in positional[len(wanted):] if p.default is p.empty]
    extra_required += [p.name for p in params if p.kind == p.KEYWORD_ONLY and p.default is p.empty]
    if names[:len(wanted)] != wanted or extra_required:
        raise LoadFailed(f"wrong signature: expected {ex.function}({ex.signature}), got {ex.function}{sig}")


def load_function(ex: Exercise, folder: Path) -> tuple[Callable, Path]:
    """Import ``folder/<name>.py`` into a fresh module and return its function; LoadFailed says why not."""
    path = (Path(folder) / ex.file).resolve()
    if not path.is_file():
        raise LoadFailed(f"file not found: {Path(folder) / ex.file}")
    module_name = f"_minift_exercise_{ex.name}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise LoadFailed(f"cannot import {path.name}")
    module = importlib.util.module_from_spec(spec)
    was_writing = sys.dont_write_bytecode
    sys.dont_write_bytecode = True  # no __pycache__ inside the student's folder
    sys.modules[module_name] = module  # only while it runs (dataclasses look their module up)
    try:
        with _time_limit(CHECK_SECONDS), contextlib.redirect_stdout(sys.stderr):
            spec.loader.exec_module(module)
    except CheckTimeout:
        raise LoadFailed(f"importing {path.name} {_timeout_message()}") from None
    except SyntaxError as e:
        raise LoadFailed(f"syntax error: {e.msg} ({path.name}, line {e.lineno})") from None
    except (Exception, SystemExit) as e:  # the file's top level ran and failed
        raise LoadFailed(f"importing {path.name} {describe_exception(e, path)}") from None
    finally:
        sys.modules.pop(module_name, None)
        sys.dont_write_bytecode = was_writing
    fn = getattr(module, ex.function, None)
    if fn is None:
        raise LoadFailed(f"{path.name} defines no function {ex.function}")
    if not callable(fn):
        raise LoadFailed(f"{ex.function} in {path.name} is a {type(fn).__name__}, not a function")
    _check_signature(fn, ex)
    return fn, path


# --- grading ------------------------------------------------------------------------------------------
@contextlib.contextmanager
def _time_limit(seconds: float):
    """Raise CheckTimeout in the block after ``seconds`` (SIGALRM: Unix, main thread; else no limit)."""
    if not hasattr(signal, "setitimer") or threading.current_thread() is not threading.main_thread():
        yield
        return

    def alarm(signum, frame):
        raise CheckTimeout

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _with_copies(fn: Callable) -> Callable:
    """``fn`` called with copies of its tensor arguments, so that a student's in-place change (``q /= ...``)
    cannot alter the inputs the grader compares with. A copy made by ``clone`` keeps the autograd graph."""

    def copied(value):
        return value.clone() if isinstance(value, torch.Tensor) else value

    @functools.wraps(fn)
    def call(*args, **kwargs):
        return fn(*map(copied, args), **{key: copied(value) for key, value in kwargs.items()})

    return call


def _timeout_message() -> str:
    return f"still running after {CHECK_SECONDS:g} s: stopped (an endless loop?)"


def run_check(ex: Exercise, check: Check, fn: Callable, path: Path) -> Result:
    """One check, whatever the student's code does (except Ctrl-C): a Result, never an exception."""
    try:
        # fork_rng: the seeds set here (and by the checks) leave the caller's random state as it was.
        with torch.random.fork_rng(devices=[]), _time_limit(CHECK_SECONDS), torch.enable_grad(), \
                contextlib.redirect_stdout(sys.stderr):
            torch.manual_seed(0)  # for student code that draws random numbers: the same every run
            check.run(_with_copies(fn))
    except CheckFailed as e:
        return Result(ex.name, check.title, False, str(e))
    except CheckTimeout:
        return Result(ex.name, check.title, False, _timeout_message())
    except (Exception, SystemExit) as e:
        return Result(ex.name, check.title, False, describe_exception(e, path))
    return Result(ex.name, check.title, True)


def grade_exercise(ex: Exercise, folder: Path) -> list[Result]:
    try:
        fn, path = load_function(ex, folder)
    except LoadFailed as e:
        return [Result(ex.name, check.title, False, f"cannot load: {e}") for check in ex.checks]
    return [run_check(ex, check, fn, path) for check in ex.checks]


def default_folder() -> Path:
    """The repository's ``tutorials/exercises/`` (present in a source checkout)."""
    return Path(__file__).resolve().parent.parent / "tutorials" / "exercises"


def resolve(names, folder) -> tuple[list[Exercise], Path]:
    """The exercises to grade and the folder; MiniftError (exit 2) for an unknown name or a bad folder."""
    names = list(names or [])
    unknown = [n for n in names if n not in EXERCISES]
    if unknown:
        raise MiniftError(f"unknown exercise {unknown[0]!r}; the exercises are: {', '.join(EXERCISES)}")
    chosen = [EXERCISES[n] for n in dict.fromkeys(names)] if names else list(EXERCISES.values())
    if folder is None:
        folder = default_folder()
        if not folder.is_dir():
            raise MiniftError(f"no exercises folder at {folder}; pass --path DIR (the folder holding "
                              f"{chosen[0].file} ...)")
    folder = Path(folder)
    if not folder.is_dir():
        raise MiniftError(f"--path {folder}: not a folder" + (" (it does not exist)" if not folder.exists() else ""))
    return chosen, folder


def grade(names=None, folder=None) -> list[Result]:
    """Results of every check of the named exercises (all if none) on the files in ``folder``."""
    chosen, folder = resolve(names, folder)
    return [result for ex in chosen for result in grade_exercise(ex, folder)]


def score_line(results: list[Result]) -> str:
    passed = sum(r.passed for r in results)
    by_exercise: dict[str, bool] = {}
    for r in results:
        by_exercise[r.exercise] = by_exercise.get(r.exercise, True) and r.passed
    done = sum(by_exercise.values())
    return (f"score: {passed}/{len(results)} checks passed; {done}/{len(by_exercise)} exercises complete")


def run(names=None, folder=None, out=None) -> int:
    """Print a line per check and the score; return the exit status (0 all pass, 1 some fail)."""
    out = out or sys.stdout
    chosen, folder = resolve(names, folder)
    results = []
    for ex in chosen:
        for result in grade_exercise(ex, folder):
            print(result.line(), file=out, flush=True)
            results.append(result)
    print(score_line(results), file=out)
    return 0 if all(r.passed for r in results) else 1
