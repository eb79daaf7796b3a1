"""What each fine-tuning strategy costs per step: time, memory, trainable weights, optimizer state.

Part of ``minift bench`` (section ``strategies``). Every figure is also given as a ratio to full
fine-tuning, which is what a student should remember. The step is a fine-tuning stage's: the
bench's train shape (GPT-2-124M shaped, bf16 autocast on CUDA), the loss chunked from the hidden
states (``minift/loss.py``).

* **step time** — freezing the lower blocks saves their backward pass (autograd never builds it:
  no input below the lowest trainable block requires a gradient), so training the top quarter of
  the blocks should cost well under the full step (target: at most 0.6x).
* **memory** — on CUDA, the allocator's peak. On the CPU there is no such counter, so minift adds
  what a step must hold: weights + gradients of trainable weights + optimizer state (2 floats per
  trainable weight) + the activations autograd *saves for backward*, counted exactly with
  ``torch.autograd.graph.saved_tensors_hooks``. Frozen lower blocks save nothing.
* **optimizer state** — AdamW's two moments, for trainable weights only: a soft prompt's is a few KB.

Tutorial 07 and 08 quote these ratios.
"""
from __future__ import annotations

import time

import torch

from minift import freezing, prompt_tuning
from minift.model import GPT, GPTConfig
from minift.optim import AdamW, optimizer_state_bytes, param_groups

STRATEGIES = ("full", "layers: top quarter", "layers: top half + ln_f", "head only (untied)", "prompt (16 vectors)")


def build(strategy: str, config: GPTConfig, device):
    """A fresh model set up for one strategy; returns (model, prompts, optimizer)."""
    torch.manual_seed(0)
    model = GPT(config).to(device)
    prompts = {}
    L = config.n_layer
    if strategy == "full":
        names = [n for n, _ in model.named_parameters()]
    elif strategy == "layers: top quarter":
        names = freezing.select_parameters(model, top_k=max(1, L // 4))
    elif strategy == "layers: top half + ln_f":
        names = freezing.select_parameters(model, top_k=max(1, L // 2), parts=["ln_f"])
    elif strategy == "head only (untied)":
        freezing.untie_head(model)
        names = freezing.select_parameters(model, parts=["head"])
    else:
        prompt_tuning.freeze_base(model)
        prompts = {"p": prompt_tuning.SoftPrompt(16, config.n_embd, init="random").to(device)}
        names = None
    if names is not None:
        freezing.set_trainable(model, names)
        groups = param_groups(model, 0.1)
    else:
        groups = param_groups([("prompts.p.weight", prompts["p"].weight)], 0.0)
    return model, prompts, AdamW(groups, lr=1e-4)


def saved_activation_bytes(fn) -> int:
    """Bytes of the distinct tensors autograd saves for backward while ``fn`` runs its forward."""
    seen = {}

    def pack(t):
        seen[(t.untyped_storage().data_ptr(), t.device)] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return sum(seen.values())


def bench_strategies(device="cpu", steps: int = 10, shape=None, batch: int = 8) -> list[dict]:
    """One row per strategy, at the bench's train shape (GPT-2-124M shaped on CUDA)."""
    from minift.bench import GPT2_SHAPE, TRAIN_SHAPE, best_time
    from minift.trainer import autocast_for

    cuda = torch.device(device).type == "cuda"
    config = GPTConfig(**(shape or (GPT2_SHAPE if cuda else TRAIN_SHAPE)))
    x = torch.randint(0, config.vocab_size, (batch, config.block_size - 16), device=device)
    y = torch.randint(0, config.vocab_size, (batch, config.block_size - 16), device=device)
    rows = []
    for strategy in STRATEGIES:
        if cuda:
            torch.cuda.empty_cache()
            before_build = torch.cuda.memory_allocated()  # x, y and anything still alive: not this strategy's
        model, prompts, optimizer = build(strategy, config, device)

        def forward_loss():
            # As a fine-tuning stage computes it: bf16 autocast on CUDA, the loss chunked from the hidden states.
            with autocast_for(device):
                hidden = prompt_tuning.forward_with_prompts(model, prompts, x, ["p"] * batch if prompts else
                                                            [None] * batch, return_hidden=True)
                return model.head_loss(hidden, y)

        def step():
            forward_loss().backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

        if cuda:
            torch.cuda.reset_peak_memory_stats()
        seconds = best_time(step, steps, device)
        trainable = [p for g in optimizer.param_groups for p in g["params"]]
        n_trainable = sum(p.numel() for p in trainable)
        weights = sum(p.numel() * p.element_size() for p in model.parameters()) + sum(
            p.weight.numel() * p.weight.element_size() for p in prompts.values())
        grads = sum(p.numel() * p.element_size() for p in trainable)
        activations = saved_activation_bytes(forward_loss)
        state = optimizer_state_bytes(optimizer)
        if torch.device(device).type == "cuda":
            memory, how = torch.cuda.max_memory_allocated() - before_build, "CUDA peak allocated by the strategy"
        else:
            memory, how = weights + grads + state + activations, "weights + grads + optimizer state + saved activations"
        rows.append({"strategy": strategy, "step_seconds": seconds, "memory_bytes": memory, "memory_how": how,
                     "activation_bytes": activations, "trainable_params": n_trainable,
                     "optimizer_state_bytes": state, "tokens_per_s": x.numel() / seconds})
        del model, prompts, optimizer
    full = rows[0]
    for r in rows:
        for key in ("step_seconds", "memory_bytes", "trainable_params", "optimizer_state_bytes", "activation_bytes"):
            r[f"{key}_ratio"] = r[key] / full[key] if full[key] else float("nan")
    return rows


def print_strategies(rows: list[dict]) -> None:
    from minift.cli import print_table

    print(f"strategies  step cost per strategy ({rows[0]['memory_how']}); ratios are to full fine-tuning")
    table = [{"strategy": r["strategy"], "ms/step": r["step_seconds"] * 1000, "x time": r["step_seconds_ratio"],
              "MB": r["memory_bytes"] / 2**20, "x mem": r["memory_bytes_ratio"],
              "trainable": r["trainable_params"], "x params": r["trainable_params_ratio"],
              "opt state B": r["optimizer_state_bytes"], "x state": r["optimizer_state_bytes_ratio"]}
             for r in rows]
    print_table(table, list(table[0]))
