"""Optimization: AdamW with decoupled weight decay, SGD with momentum, L2 and L1, schedules, clipping.

The idea. Adam keeps two running averages per weight: ``m``, the mean of recent gradients (which
way to go), and ``v``, the mean of recent squared gradients (how noisy that direction is). Each
weight then moves by about ``lr`` in the direction of ``m``, divided by ``sqrt(v)`` so that every
weight takes steps of similar size, whatever the scale of its gradient. Weight decay pulls every
weight a little towards zero each step. *AdamW* (Loshchilov & Hutter, "Decoupled Weight Decay
Regularization") does that pull directly on the weight instead of through the gradient, and the
two are not the same under Adam; see ``l2_penalty`` for why.

One step, for a parameter ``p`` and its gradient ``g`` (both of the parameter's shape, say (C, 4C)),
step count ``t`` = 1, 2, ..., all operations elementwise::

    p  = p * (1 - lr * wd)                  # decoupled decay: shrink first, gradient plays no part
    m  = b1 * m + (1 - b1) * g              # first moment,  same shape as p
    v  = b2 * v + (1 - b2) * g**2           # second moment, same shape as p
    m_hat = m / (1 - b1**t)                 # bias corrections: m and v start at zero, so early
    v_hat = v / (1 - b2**t)                 #   averages are too small; this undoes it exactly
    p  = p - lr * m_hat / (sqrt(v_hat) + eps)   # eps after the root: it only guards v_hat = 0

The optimizer state is therefore two tensors of ``p``'s shape, plus the step count:
``optimizer_state_bytes`` measures it (twice the model, in float32).

Two paths, one meaning. ``AdamW._step_loop`` walks the parameters one by one and is the one to
read. ``AdamW._step_foreach`` does the same arithmetic on whole lists with ``torch._foreach_*``,
which launches a handful of GPU kernels per step instead of a handful per parameter. The tests
prove the two equal, and both equal ``torch.optim.AdamW``. Even so, each of its nine lines reads
and writes every weight once: nine passes over memory. ``AdamW(..., compile=True)`` (what
``--compile`` asks for) hands the same lines to ``torch.compile`` (``_adamw_compiled``), which
fuses them into a few kernels that read p, g, m, v once and write p, m, v once. The numbers that
change every step (the rate, the bias corrections) go in as a tensor, not as Python numbers:
``torch.compile`` bakes a Python number into the code, so a new rate would mean a new compile.

Plain gradient descent is the other optimizer, ``SGD``: step against the gradient, optionally
along a running sum of past gradients (momentum), exactly as ``torch.optim.SGD`` documents it::

    g = g + wd * p                          # coupled weight decay: the pull joins the gradient
    b = g                 on the first step  # momentum buffer, same shape as p
    b = mu * b + (1 - dampening) * g  after
    g = g + mu * b  if nesterov, else  g = b
    p = p - lr * g

Its state is one tensor of ``p``'s shape (the buffer ``b``), none at all without momentum.

Regularizers added to the loss: ``l2_penalty`` (0.5 * l2 * sum p^2, which shrinks weights in
proportion to their size) and ``l1_penalty`` (l1 * sum |p|, which pulls every weight by the same
amount and so drives the useless ones to zero). Their docstrings compare them with decay.

Around the optimizer: ``param_groups`` (which weights decay, per-weight learning-rate multipliers),
``decayed`` (the rule: matrices decay, vectors do not), ``set_lr`` and ``lr_at`` (warmup + cosine
schedule), ``clip_grad_norm``.

Used by tutorial 04 (optimization: AdamW versus Adam + L2, L1 versus L2 versus decay, dropout,
learning-rate schedules) and tutorial 07 (discriminative learning rates: each block lower learns
at rate / 2.6).
"""
from __future__ import annotations

import math
import numbers

import torch
from torch import nn

from minift.errors import MiniftError


def _check_finite(name: str, value, lowest: float, allow_equal: bool) -> None:
    """Raise MiniftError unless ``value`` is a finite number above ``lowest`` (or equal, if allowed)."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (value >= lowest if allow_equal else value > lowest)
    if not ok:
        bound = f">= {lowest}" if allow_equal else f"> {lowest}"
        raise MiniftError(f"{name} must be a finite number {bound}, got {value!r}")


class _ScaledOptimizer(torch.optim.Optimizer):
    """What AdamW and SGD share: no empty parameter list, checked hyperparameters, and groups that
    may name an ``lr_scale`` instead of a rate (``param_groups(..., lr_scales=...)``, ``set_lr``)."""

    def __init__(self, params, defaults: dict):
        params = list(params)
        name = type(self).__name__
        if not params:
            raise MiniftError(f"{name} got no parameters to optimize (is everything frozen?)")
        self._base_lr = defaults["lr"]  # lets a group that gives only "lr_scale" start at lr * lr_scale
        self._check(defaults, where=name)
        super().__init__(params, defaults)

    @staticmethod
    def _check_hyperparameters(group: dict, where: str) -> None:
        """Each optimizer's own hyperparameters (MiniftError naming the bad one)."""
        raise NotImplementedError

    def _check(self, group: dict, where: str) -> None:
        self._check_hyperparameters(group, where)
        if "lr_scale" in group:
            _check_finite(f"{where}: lr_scale", group["lr_scale"], 0.0, allow_equal=False)

    @staticmethod
    def _closure_loss(closure):
        """torch.optim's step(closure) contract: re-evaluate the loss, with gradients on, if asked."""
        if closure is None:
            return None
        with torch.enable_grad():
            return closure()

    def add_param_group(self, param_group: dict) -> None:
        # A group from param_groups(..., lr=None, lr_scales=...) names a scale but no rate: give it
        # lr * lr_scale now, the same rule set_lr applies later, so the scale is never silently ignored.
        if "lr_scale" in param_group and "lr" not in param_group:
            param_group = dict(param_group, lr=self._base_lr * param_group["lr_scale"])
        # Check before adding, so a rejected group never ends up half-registered.
        self._check({**self.defaults, **param_group}, where=f"{type(self).__name__} param group {len(self.param_groups)}")
        super().add_param_group(param_group)


class AdamW(_ScaledOptimizer):
    """Adam with decoupled weight decay. Groups may carry their own ``lr``, ``weight_decay`` and
    ``lr_scale`` (a multiplier of the base rate, see ``set_lr``); extra keys such as ``names`` are kept.

    ``foreach=None`` picks the multi-tensor path when all of a group's parameters are on CUDA.
    ``compile=True`` updates every group in one call of a ``torch.compile``d function instead.
    """

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2, foreach: bool | None = None, compile: bool = False):
        self._compiled = torch.compile(_adamw_compiled) if compile else None
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, foreach=foreach))

    @staticmethod
    def _check_hyperparameters(group: dict, where: str) -> None:
        _check_finite(f"{where}: lr", group["lr"], 0.0, allow_equal=False)
        _check_finite(f"{where}: eps", group["eps"], 0.0, allow_equal=True)
        _check_finite(f"{where}: weight_decay", group["weight_decay"], 0.0, allow_equal=True)
        betas = group["betas"]
        if not (isinstance(betas, (tuple, list)) and len(betas) == 2
                and all(isinstance(b, (int, float)) and 0.0 <= b < 1.0 for b in betas)):
            raise MiniftError(f"{where}: betas must be two numbers in [0, 1), got {betas!r}")
        if group["foreach"] not in (None, True, False):
            raise MiniftError(f"{where}: foreach must be None, True or False, got {group['foreach']!r}")

    @torch.no_grad()
    def step(self, closure=None):
        loss = self._closure_loss(closure)
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]  # frozen or unused: skip
            if not params:
                continue
            for p in params:
                if p.grad.is_sparse:
                    raise MiniftError("AdamW does not support sparse gradients (build nn.Embedding with sparse=False)")
                if not self.state[p]:  # first step for this parameter: m = v = 0
                    self.state[p]["step"] = 0
                    self.state[p]["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    self.state[p]["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            if self._compiled is not None:
                continue  # all groups go together, below
            use_foreach = group["foreach"]
            if use_foreach is None:
                use_foreach = all(p.is_cuda for p in params)
            (self._step_foreach if use_foreach else self._step_loop)(group, params)
        if self._compiled is not None:
            self._step_compiled()
        return loss

    def _step_loop(self, group: dict, params: list[torch.Tensor]) -> None:
        """The readable path: the six lines of the module docstring, once per parameter."""
        lr, wd, eps = group["lr"], group["weight_decay"], group["eps"]
        beta1, beta2 = group["betas"]
        for p in params:
            state = self.state[p]
            state["step"] += 1
            t = state["step"]
            g, m, v = p.grad, state["exp_avg"], state["exp_avg_sq"]
            p.mul_(1 - lr * wd)
            m.mul_(beta1).add_(g, alpha=1 - beta1)
            v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
            bias1 = 1 - beta1 ** t
            bias2 = 1 - beta2 ** t
            # sqrt(v_hat) = sqrt(v) / sqrt(1 - b2^t); the lr / (1 - b1^t) factor folds m_hat in.
            denom = v.sqrt().div_(math.sqrt(bias2)).add_(eps)
            p.addcdiv_(m, denom, value=-lr / bias1)

    def _step_foreach(self, group: dict, params: list[torch.Tensor]) -> None:
        """The fast path: the same arithmetic, each line applied to all parameters at once."""
        lr, wd, eps = group["lr"], group["weight_decay"], group["eps"]
        beta1, beta2 = group["betas"]
        states = [self.state[p] for p in params]
        grads = [p.grad for p in params]
        ms = [s["exp_avg"] for s in states]
        vs = [s["exp_avg_sq"] for s in states]
        for s in states:
            s["step"] += 1
        # Step counts can differ within a group (a parameter that had no gradient for a while),
        # so the bias corrections are per-parameter lists of numbers.
        root_bias2 = [math.sqrt(1 - beta2 ** s["step"]) for s in states]
        step_sizes = [-lr / (1 - beta1 ** s["step"]) for s in states]
        _foreach_update(params, grads, ms, vs, 1 - lr * wd, beta1, beta2, eps, root_bias2, step_sizes)

    def _step_compiled(self) -> None:
        """Every group's parameters in one call of the compiled update (groups sharing betas and eps).

        One call for all groups matters: ``torch.compile`` specializes on its inputs, so a call per
        group (discriminative rates give one per block) would compile once per group.
        """
        batches: dict[tuple, tuple[list, list]] = {}  # (beta1, beta2, eps) -> (params, per-param scalars)
        for group in self.param_groups:
            lr, wd, eps = group["lr"], group["weight_decay"], group["eps"]
            beta1, beta2 = group["betas"]
            params, scalars = batches.setdefault((beta1, beta2, eps), ([], []))
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                state["step"] += 1
                t = state["step"]
                params.append(p)
                # The three numbers of _step_loop: decay factor, sqrt(1 - b2^t), -lr / (1 - b1^t).
                scalars.append((1 - lr * wd, math.sqrt(1 - beta2 ** t), -lr / (1 - beta1 ** t)))
        for (beta1, beta2, eps), (params, scalars) in batches.items():
            if not params:
                continue
            table = torch.tensor(scalars, dtype=params[0].dtype).T.contiguous()  # (3, n)
            if params[0].is_cuda:  # through pinned memory, so the copy does not wait for the GPU
                table = table.pin_memory().to(params[0].device, non_blocking=True)
            else:
                table = table.to(params[0].device)
            self._compiled(params, [p.grad for p in params], [self.state[p]["exp_avg"] for p in params],
                           [self.state[p]["exp_avg_sq"] for p in params], table, beta1, beta2, eps)


class SGD(_ScaledOptimizer):
    """Stochastic gradient descent with momentum: ``torch.optim.SGD``'s update, written out.

    Same signature and meaning as ``torch.optim.SGD(params, lr, momentum, dampening, weight_decay,
    nesterov)`` (the module docstring gives the five lines); the tests hold the two equal. Unlike
    AdamW's, ``weight_decay`` here is *coupled*: ``wd * p`` is added to the gradient, so with
    momentum it is accumulated in the buffer like the gradient is. Groups may carry ``lr_scale``,
    as for ``AdamW`` (see ``set_lr``); extra keys such as ``names`` are kept.

    State per parameter: ``momentum_buffer`` (p's shape), created on the parameter's first step
    with a gradient, and only when the group's momentum is not 0. One loop over the parameters,
    no multi-tensor or compiled path: ``--compile`` fuses AdamW's update only.
    """

    def __init__(self, params, lr: float = 1e-3, momentum: float = 0.0, dampening: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False):
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                                      nesterov=nesterov))

    @staticmethod
    def _check_hyperparameters(group: dict, where: str) -> None:
        _check_finite(f"{where}: lr", group["lr"], 0.0, allow_equal=False)
        _check_finite(f"{where}: momentum", group["momentum"], 0.0, allow_equal=True)
        _check_finite(f"{where}: dampening", group["dampening"], float("-inf"), allow_equal=False)
        _check_finite(f"{where}: weight_decay", group["weight_decay"], 0.0, allow_equal=True)
        if group["nesterov"] not in (True, False):
            raise MiniftError(f"{where}: nesterov must be True or False, got {group['nesterov']!r}")
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            # torch refuses the same: Nesterov's look-ahead is defined for undamped momentum only.
            raise MiniftError(f"{where}: nesterov needs momentum > 0 and dampening = 0, got "
                              f"momentum={group['momentum']!r}, dampening={group['dampening']!r}")

    @torch.no_grad()
    def step(self, closure=None):
        loss = self._closure_loss(closure)
        for group in self.param_groups:
            lr, mu, wd = group["lr"], group["momentum"], group["weight_decay"]
            dampening, nesterov = group["dampening"], group["nesterov"]
            for p in group["params"]:
                if p.grad is None:  # frozen or unused: not touched, no state
                    continue
                if p.grad.is_sparse:
                    raise MiniftError("SGD does not support sparse gradients (build nn.Embedding with sparse=False)")
                g = p.grad
                if wd != 0:
                    g = g.add(p, alpha=wd)  # a new tensor: p.grad itself is left as backward made it
                if mu != 0:
                    state = self.state[p]
                    if "momentum_buffer" not in state:  # first step: the buffer is the gradient itself
                        state["momentum_buffer"] = g.detach().clone()
                    else:
                        state["momentum_buffer"].mul_(mu).add_(g, alpha=1 - dampening)
                    b = state["momentum_buffer"]
                    g = g.add(b, alpha=mu) if nesterov else b
                p.add_(g, alpha=-lr)
        return loss


def _foreach_update(params, grads, ms, vs, decay, beta1, beta2, eps, root_bias2, step_sizes) -> None:
    """The update of ``_step_loop``, each line applied to whole lists of tensors.

    decay: 1 - lr·wd; root_bias2: sqrt(1 - b2^t) per parameter; step_sizes: -lr / (1 - b1^t) per
    parameter. Python numbers on the eager path; 0-d tensors under ``torch.compile`` (then decay is
    a list too, one per parameter, since the compiled call takes every group at once).
    """
    torch._foreach_mul_(params, decay)
    torch._foreach_mul_(ms, beta1)
    torch._foreach_add_(ms, grads, alpha=1 - beta1)
    torch._foreach_mul_(vs, beta2)
    torch._foreach_addcmul_(vs, grads, grads, value=1 - beta2)
    denoms = torch._foreach_sqrt(vs)
    torch._foreach_div_(denoms, root_bias2)
    torch._foreach_add_(denoms, eps)
    if isinstance(step_sizes[0], torch.Tensor):
        # _foreach_addcdiv_ takes per-parameter factors only as numbers: scale m first instead.
        torch._foreach_addcdiv_(params, torch._foreach_mul(ms, step_sizes), denoms)
    else:
        torch._foreach_addcdiv_(params, ms, denoms, step_sizes)


def _adamw_compiled(params, grads, ms, vs, table, beta1: float, beta2: float, eps: float) -> None:
    """What ``torch.compile`` compiles: ``_foreach_update`` with its changing numbers as tensors.

    table (3, n): per parameter, the decay factor, sqrt(1 - b2^t) and -lr / (1 - b1^t).
    """
    decay, root_bias2, step_sizes = (list(row.unbind()) for row in table)
    _foreach_update(params, grads, ms, vs, decay, beta1, beta2, eps, root_bias2, step_sizes)


def _unique_trainable(params) -> list[torch.Tensor]:
    """The parameters that require grad, each once (tied weights appear twice in a plain list)."""
    if isinstance(params, nn.Module):
        params = params.parameters()
    elif isinstance(params, torch.Tensor):
        params = [params]
    seen, out = set(), []
    for p in params:
        if p.requires_grad and id(p) not in seen:
            seen.add(id(p))
            out.append(p)
    return out


def l2_penalty(params, weight: float) -> torch.Tensor:
    """``0.5 * weight * sum ||p||^2`` over the trainable ``params`` (a module or an iterable of tensors).

    Add it to the loss and its gradient, ``weight * p``, joins the data gradient: this is the
    *coupled* L2 that ``torch.optim.Adam(weight_decay=weight)`` applies. Under plain SGD that is the
    same as shrinking the weights, but Adam divides the whole gradient by ``sqrt(v_hat)``::

        Adam + L2:  p -= lr * adam(g + weight * p)      # the pull is rescaled per weight
        AdamW:      p -= lr * adam(g) + lr * wd * p     # the pull is the same fraction for all

    With L2, a weight whose gradients are large (large ``v``) is decayed *less*, one with small
    gradients more: the regularizer ends up tangled with the gradient history. Decoupling restores
    "every weight shrinks by the same fraction each step", which is why AdamW generalizes better
    (Loshchilov & Hutter). Tutorial 04 measures the difference.
    """
    _check_finite("l2_penalty: weight", weight, 0.0, allow_equal=True)
    params = _unique_trainable(params)
    if not params:
        return torch.zeros(())
    return 0.5 * weight * sum(p.pow(2).sum() for p in params)


def l1_penalty(params, weight: float) -> torch.Tensor:
    """``weight * sum |p|`` over the trainable ``params`` (a module or an iterable of tensors).

    The trainer adds it over the *decayed* weights only (``decayed``: the matrices; biases and
    LayerNorm are left alone, as weight decay leaves them). Give this function the weights to
    penalize: it sums over every trainable tensor it is handed, each tied tensor once.

    Its gradient is ``weight * sign(p)``. ``|p|`` has no derivative at 0; autograd's backward of
    ``abs`` returns the subgradient ``sign(0) = 0`` there, so a weight that is exactly 0 feels no
    pull. The pull is the same size, ``weight``, however small the weight is, while L2's,
    ``l2 * p``, fades as the weight shrinks: under plain gradient descent L2 scales every weight by
    ``(1 - lr * l2)`` each step (on top of the data's step) and never brings one to 0, whereas L1
    moves every weight ``lr * weight`` towards 0 each step, so a weight whose data gradient stays
    below ``weight`` goes all the way. It does not stop there: a subgradient step overshoots zero
    and the weight jitters around it, by about ``lr * weight`` (more with momentum), until the rate
    itself decays (proximal methods, soft-thresholding, would set it to exactly 0 instead). That is
    why L1 selects features: the weights the data does not need end near zero, the useful ones keep
    a value shrunk by a constant.

    Under Adam the penalty's gradient is divided by ``sqrt(v_hat)`` like the rest of the gradient
    (the same tangle ``l2_penalty`` explains). For a weight the data barely uses, ``v_hat`` is made
    mostly of the penalty's own ``weight**2``, so the step is about ``lr * sign(p)``, not
    ``lr * weight``: a weak L1 pushes such weights as hard as a strong one would, and at a constant
    rate they hover within about ``lr`` of zero. Under either optimizer, a schedule that decays the
    rate towards 0 (``lr_at`` with a small ``min_lr_ratio``) lets them settle.
    Tutorial 04 counts the weights that end near zero under L1, L2 and decoupled decay.
    """
    _check_finite("l1_penalty: weight", weight, 0.0, allow_equal=True)
    params = _unique_trainable(params)
    if not params:
        return torch.zeros(())
    return weight * sum(p.abs().sum() for p in params)


def decayed(p: torch.Tensor) -> bool:
    """Whether ``p`` is a weight that decay and the trainer's L1 act on: a matrix (``p.dim() >= 2``).

    Linear layers, embeddings and soft prompts are; biases, LayerNorm gains and shifts and scalars
    are not (``param_groups`` explains why).
    """
    return p.dim() >= 2


def param_groups(model_or_named_params, weight_decay: float, lr: float | None = None,
                 lr_scales: dict[str, float] | None = None) -> list[dict]:
    """Split the trainable parameters into optimizer groups.

    Parameters with ``p.dim() < 2`` (biases, LayerNorm gains and shifts, a scalar) get
    ``weight_decay=0``: shrinking them towards zero has no regularizing effect worth having and
    can hurt, while matrices (linear layers, embeddings, soft prompts) get ``weight_decay``.
    ``lr_scales`` maps a parameter name to a multiplier of the base rate (discriminative rates,
    tutorial 07); parameters with different multipliers land in different groups. Every group
    records ``weight_decay``, ``lr_scale`` and ``names`` (the parameter names in it), and ``lr``
    (= lr * lr_scale) when ``lr`` is given; otherwise ``AdamW`` derives it from its own ``lr``.
    """
    _check_finite("param_groups: weight_decay", weight_decay, 0.0, allow_equal=True)
    if lr is not None:
        _check_finite("param_groups: lr", lr, 0.0, allow_equal=False)
    lr_scales = dict(lr_scales or {})
    for name, scale in lr_scales.items():
        _check_finite(f"param_groups: lr_scales[{name!r}]", scale, 0.0, allow_equal=False)
    if isinstance(model_or_named_params, nn.Module):
        named = list(model_or_named_params.named_parameters())  # tied weights already appear once
    else:
        named = list(model_or_named_params)
    unknown = sorted(set(lr_scales) - {name for name, _ in named})
    if unknown:
        raise MiniftError(f"param_groups: lr_scales names unknown parameters {unknown}")

    groups: dict[tuple[float, float], dict] = {}  # (weight_decay, lr_scale) -> group, in first-seen order
    seen: set[int] = set()
    for name, p in named:
        if not p.requires_grad or id(p) in seen:
            continue
        seen.add(id(p))
        decay = weight_decay if decayed(p) else 0.0
        scale = float(lr_scales.get(name, 1.0))
        if (decay, scale) not in groups:
            group = {"params": [], "names": [], "weight_decay": decay, "lr_scale": scale}
            if lr is not None:
                group["lr"] = lr * scale
            groups[(decay, scale)] = group
        groups[(decay, scale)]["params"].append(p)
        groups[(decay, scale)]["names"].append(name)
    if not groups:
        raise MiniftError("param_groups: no trainable parameters (every parameter has requires_grad=False)")
    return list(groups.values())


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set every group's rate to ``lr * lr_scale`` (scale 1 when the group has none)."""
    _check_finite("set_lr: lr", lr, 0.0, allow_equal=True)  # 0 is fine here: a schedule may end there
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)


def lr_at(step: int, max_lr: float, warmup_steps: int, total_steps: int, min_lr_ratio: float = 0.1) -> float:
    """Learning rate at optimizer step ``step`` (0-based): linear warmup, cosine decay, then flat.

    - warmup, ``step < warmup_steps``:  ``max_lr * (step + 1) / warmup_steps``
      (so the very first step already moves, and step ``warmup_steps - 1`` reaches ``max_lr``);
    - decay, ``warmup_steps <= step < total_steps``, with ``q = (step - warmup_steps) / (total_steps - warmup_steps)``:
      ``min_lr + 0.5 * (max_lr - min_lr) * (1 + cos(pi * q))`` where ``min_lr = min_lr_ratio * max_lr``;
    - after, ``step >= total_steps``: ``min_lr``.

    Worked values for ``max_lr=1e-3, warmup_steps=10, total_steps=110, min_lr_ratio=0.1``:
    step 0 -> 1e-4, step 4 -> 5e-4, step 9 -> 1e-3, step 10 -> 1e-3 (cosine starts at its peak),
    step 60 -> 5.5e-4 (halfway: the mean of 1e-3 and 1e-4), step 110 -> 1e-4, step 500 -> 1e-4.
    """
    if not isinstance(step, numbers.Integral) or step < 0:
        raise MiniftError(f"lr_at: step must be an integer >= 0, got {step!r}")
    _check_finite("lr_at: max_lr", max_lr, 0.0, allow_equal=False)
    integers = isinstance(warmup_steps, numbers.Integral) and isinstance(total_steps, numbers.Integral)
    if not (integers and 0 <= warmup_steps <= total_steps):
        raise MiniftError(f"lr_at: need integers 0 <= warmup_steps <= total_steps, "
                          f"got warmup_steps={warmup_steps!r}, total_steps={total_steps!r}")
    if not (isinstance(min_lr_ratio, (int, float)) and 0.0 <= min_lr_ratio <= 1.0):
        raise MiniftError(f"lr_at: min_lr_ratio must be in [0, 1], got {min_lr_ratio!r}")
    min_lr = min_lr_ratio * max_lr
    if step < warmup_steps:
        return max_lr * (step + 1) / warmup_steps
    if step >= total_steps:
        return min_lr
    progress = (step - warmup_steps) / (total_steps - warmup_steps)
    return min_lr + 0.5 * (max_lr - min_lr) * (1.0 + math.cos(math.pi * progress))


def clip_grad_norm(params, max_norm: float) -> float:
    """Rescale gradients so that their global L2 norm is at most ``max_norm``; return the norm before.

    ``norm = sqrt(sum over params of ||g||^2)``, as if all gradients were one long vector. If it
    exceeds ``max_norm`` every gradient is multiplied by ``max_norm / (norm + 1e-6)``: the direction
    of the step is kept, only its length is capped, so one bad batch cannot throw the weights far.
    """
    _check_finite("clip_grad_norm: max_norm", max_norm, 0.0, allow_equal=False)
    if isinstance(params, torch.Tensor):
        params = [params]
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return 0.0
    device = grads[0].device
    # Norm of the per-tensor norms = norm of everything concatenated, without building the concatenation.
    per_tensor = torch.stack([torch.linalg.vector_norm(g, 2).to(device) for g in grads])
    total = torch.linalg.vector_norm(per_tensor, 2)
    if total > max_norm:
        scale = max_norm / (total + 1e-6)  # a tensor: stays on the device, in the gradients' precision
        for g in grads:
            g.mul_(scale.to(g.device))
    return total.item()


def optimizer_state_bytes(optimizer: torch.optim.Optimizer) -> int:
    """Bytes held by the tensors in ``optimizer.state``.

    For AdamW: m and v, twice the trained weights; for SGD with momentum: the buffer, once; for SGD
    without momentum: nothing.
    """
    return sum(value.numel() * value.element_size()
               for state in optimizer.state.values()
               for value in state.values()
               if isinstance(value, torch.Tensor))
