"""The training loss without the logits: the head and the cross-entropy, chunk by chunk.

The problem
-----------
The last step of a GPT turns each final hidden state into one score per vocabulary token and the
loss compares those scores with the next token:

    h        = ln_f(x)                                     (N, C)   N = B·T positions
    logits   = h Wᵀ                                        (N, V)   W = lm_head.weight = wte (V, C)
    loss     = mean over graded rows n of  lse_n − logits[n, y_n]
    lse_n    = log Σ_v exp(logits[n, v])                   (N,)     the log-sum-exp of each row

For GPT-2-124M at batch 16 × block 1024, N = 16,384 and V = 50,304: the logits are 824M numbers,
1.6 GB in bf16 and 3.3 GB once cast to float32 for a stable softmax. ``model.lm_loss`` holds them
all, autograd saves the float32 log-softmax for backward (another 3.3 GB), and backward builds a
gradient of the same size. Nothing in the maths needs them all at once: each row's loss depends
only on its own row of logits.

The idea
--------
Walk over the N rows in chunks of R (``CHUNK_ROWS``). Forward, per chunk of rows a..b:

    z      = h[a:b] Wᵀ                                     (R, V)   float32, then thrown away
    lse    = logsumexp(z, dim=1)                           (R,)     kept: 4 bytes a row
    total += Σ_graded (lse − z[n, y_n])

and save only h, W, the targets and lse. Backward recomputes the chunk's logits (one extra matmul,
2·R·V·C FLOPs) and uses the gradient of cross-entropy with respect to the logits,

    ∂loss/∂z = g · (softmax(z) − onehot(y))                (R, V)   softmax(z) = exp(z − lse)
    g        = upstream gradient / count on graded rows, 0 on ignored ones
    dh[a:b]  = (∂loss/∂z) W                                (R, C)
    dW      += (∂loss/∂z)ᵀ h[a:b]                          (V, C)   summed over the chunks

so at any moment only one (R, V) chunk of logits exists. At GPT-2 shape with R = 2048 that is
412 MB in float32 instead of the 3.3 GB tensor, the 3.3 GB saved log-softmax and the 3.3 GB
gradient; what is saved for backward shrinks from N·V·4 bytes to 13 bytes a row (the logsumexp,
the target, whether it is graded; ``minift bench --only loss`` measures both ways).

Precision. The row sums (logsumexp, softmax, the loss, the dW accumulator) are always float32.
The two matmuls run in the dtype the plain ``lm_head`` would have used: under bf16 autocast that is
bf16 on tensor cores (the same rounding as ``lm_loss(model(x), y)``), otherwise the inputs' dtype.

Rows whose target is ``ignore_index`` (-100: the prompt part of a fine-tuning example, padding),
or whose ``mask`` entry is False, add nothing and get zero gradient; the mean divides by the number
of graded rows. If none is graded, the loss is 0 with zero gradients (``lm_loss`` would give NaN, 0/0;
the trainer skips such a batch before backward either way).

Used by every training loss: ``GPT.forward(idx, targets)`` and ``GPT.head_loss`` (pretraining,
``minift/pretrain.py``), ``finetune.Trainable`` (every fine-tuning stage, DDP and ``--compile``
included), ``prompt_tuning.prompt_loss_fn``, and the ``train`` and ``strategies`` benches.
Evaluation and generation still compute logits (``model.lm_loss``): they run without gradients,
where nothing is saved for backward. ``tests/test_chunked_loss.py`` proves the value and both
gradients equal ``F.cross_entropy`` on the full logits.
"""
from __future__ import annotations

import torch

CHUNK_ROWS = 2048
"""Rows of logits computed at once: (2048, V) float32 is 412 MB at V = 50,304, 8 MB at V = 1,026."""


AUTOCAST_TAKES_DEVICE = hasattr(torch, "get_autocast_dtype")  # torch >= 2.4


def row_chunks(n_rows, chunk_rows: int) -> list[tuple]:
    """The (start, end) bounds of the chunks of rows, R at a time.

    One chunk when the rows fit in one, without a Python ``range``: under ``torch.compile`` with
    dynamic shapes n_rows = B·T is a symbol, and ``range`` over a symbol forces it to one value,
    so every new padded length T would compile the whole step again (8 recompiles, then dynamo
    gives up and runs eagerly). ``n_rows <= chunk_rows`` is a guard on a range of sizes instead,
    one graph for all of them (``tests/test_chunked_loss.py`` counts the graphs).
    """
    if n_rows <= chunk_rows:
        return [(0, n_rows)]
    return [(start, min(start + chunk_rows, n_rows)) for start in range(0, n_rows, chunk_rows)]


def matmul_dtype(h: torch.Tensor, weight: torch.Tensor) -> torch.dtype:
    """The dtype ``F.linear(h, weight)`` would compute in here: autocast's if it is on, else the inputs'.

    torch 2.4 gave autocast's queries a device argument; 2.1-2.3 (pyproject allows them) have one pair
    of functions for the CPU and one for CUDA.
    """
    device = h.device.type
    if AUTOCAST_TAKES_DEVICE:
        on, dtype = torch.is_autocast_enabled(device), (lambda: torch.get_autocast_dtype(device))
    elif device == "cpu":
        on, dtype = torch.is_autocast_cpu_enabled(), torch.get_autocast_cpu_dtype
    else:
        on, dtype = torch.is_autocast_enabled(), torch.get_autocast_gpu_dtype
    return dtype() if on else torch.promote_types(h.dtype, weight.dtype)


class LinearCrossEntropy(torch.autograd.Function):
    """Σ over graded rows of cross-entropy(h Wᵀ, targets), computed R rows at a time (the module docstring).

    forward(h (N, C), weight (V, C), targets (N,) with ignored rows already set to any valid id,
    graded (N,) bool, chunk_rows, dtype) -> the float32 sum (a 0-dim tensor).
    """

    @staticmethod
    def forward(ctx, h, weight, targets, graded, chunk_rows: int, dtype: torch.dtype):
        n_rows = h.size(0)
        with torch.autocast(h.device.type, enabled=False):  # the casts below are explicit
            w = weight.to(dtype)
            total = torch.zeros((), dtype=torch.float32, device=h.device)
            lse_parts = []
            for start, end in row_chunks(n_rows, chunk_rows):
                z = (h[start:end].to(dtype) @ w.t()).float()  # (R, V)
                lse = torch.logsumexp(z, dim=1)  # (R,)
                picked = z.gather(1, targets[start:end, None]).squeeze(1)  # z[n, y_n], (R,)
                total = total + torch.where(graded[start:end], lse - picked, 0.0).sum()
                lse_parts.append(lse)
        ctx.save_for_backward(h, weight, targets, graded, torch.cat(lse_parts))
        ctx.chunk_rows, ctx.dtype = chunk_rows, dtype
        return total

    @staticmethod
    def backward(ctx, grad_total):
        h, weight, targets, graded, lse = ctx.saved_tensors
        need_h, need_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        dtype, chunk_rows, n_rows = ctx.dtype, ctx.chunk_rows, h.size(0)
        dh = torch.empty_like(h) if need_h else None
        dw = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device) if need_w else None
        scale = graded.to(torch.float32) * grad_total.to(torch.float32)  # (N,): 0 on ignored rows
        with torch.autocast(h.device.type, enabled=False):
            w = weight.to(dtype)
            for start, end in row_chunks(n_rows, chunk_rows):
                hc = h[start:end].to(dtype)
                z = (hc @ w.t()).float()  # the chunk's logits again, (R, V)
                dz = torch.exp(z - lse[start:end, None])  # softmax(z)
                dz.scatter_add_(1, targets[start:end, None], dz.new_full((end - start, 1), -1.0))  # − onehot(y)
                dz = (dz * scale[start:end, None]).to(dtype)
                if need_h:
                    dh[start:end] = (dz @ w).to(h.dtype)
                if need_w:
                    dw += (dz.t() @ hc).float()
        return dh, (dw.to(weight.dtype) if need_w else None), None, None, None, None


def linear_cross_entropy(h: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor,
                         mask: torch.Tensor | None = None, chunk_rows: int = CHUNK_ROWS,
                         ignore_index: int = -100, reduction: str = "mean") -> torch.Tensor:
    """Cross-entropy of the logits ``h @ weight.T`` against ``targets``, never holding all the logits.

    h (..., C) hidden states (after ln_f); weight (V, C), the head (tied to wte); targets (...) ids,
    ``ignore_index`` where a position is not graded; mask (...) bool, False to skip a position too.
    reduction "mean" divides the sum by the number of graded positions (1 if there are none);
    "sum" returns the sum (distributed.py divides by the global count itself).
    Equal to ``F.cross_entropy(h @ weight.T, targets, ignore_index=...)`` in value and gradients.
    """
    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be >= 1, got {chunk_rows}")
    h2 = h.reshape(-1, h.size(-1))  # (N, C)
    flat = targets.reshape(-1)  # (N,)
    if flat.numel() != h2.size(0):
        raise ValueError(f"{h2.size(0)} hidden rows but {flat.numel()} targets")
    graded = flat != ignore_index
    if mask is not None:
        graded = graded & mask.reshape(-1).to(torch.bool)
    safe = torch.where(graded, flat, torch.zeros_like(flat))  # an ignored row still needs a valid column
    total = LinearCrossEntropy.apply(h2, weight, safe, graded, int(chunk_rows), matmul_dtype(h2, weight))
    if reduction == "sum":
        return total
    return total / graded.sum().clamp(min=1)
