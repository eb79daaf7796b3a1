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


import torch

from minift import strategies
from minift.model import GPT, GPTConfig
from minift.optim import AdamW, optimizer_state_bytes

def cases() -> list[tuple[str, str, object]]:
    """(label, strategy, Options) for every case the registered strategies ask to be measured."""
    return [(label, method.name, options) for method in strategies.REGISTRY.values()
            for label, options in method.bench_cases()]


def build(strategy: str, options, config: GPTConfig, device, batch: int):
    """A fresh model set up for one strategy, as a stage sets it up: (module, row names, optimizer)."""
    from minift.bundle import ModelBundle
    from minift.finetune import Trainable
    from minift.schedule import Stage
    from minift.tasks.data import Example

    torch.manual_seed(0)
    method = strategies.get(strategy)
    bundle = ModelBundle(model=GPT(config).to(device), tokenizer=None)
    stage = Stage(strategy=strategy, options=options, lr=1e-4, weight_decay=method.defaults.get("weight_decay", 0.1))
    rows = [Example(task="bench", fields={}, subset=None, prompt="", completion="")] * batch
    setup = method.setup(stage, bundle, rows, log=None, seed=0)
    module = Trainable(bundle.model, dict(bundle.prompts))
    return module, setup.row_names, AdamW(setup.groups, lr=stage.lr)


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
    from minift.timing import GPT2_SHAPE, TRAIN_SHAPE, best_time
    from minift.trainer import autocast_for

    cuda = torch.device(device).type == "cuda"
    config = GPTConfig(**(shape or (GPT2_SHAPE if cuda else TRAIN_SHAPE)))
    x = torch.randint(0, config.vocab_size, (batch, config.block_size - 16), device=device)
    y = torch.randint(0, config.vocab_size, (batch, config.block_size - 16), device=device)
    rows = []
    for label, strategy, options in cases():
        if cuda:
            torch.cuda.empty_cache()
            before_build = torch.cuda.memory_allocated()  # x, y and anything still alive: not this strategy's
        module, row_names, optimizer = build(strategy, options, config, device, batch)

        def forward_loss():
            # As a fine-tuning stage computes it: bf16 autocast on CUDA, the loss chunked from the hidden states.
            with autocast_for(device):
                return module(x, row_names, targets=y)

        def step():
            forward_loss().backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

        if cuda:
            torch.cuda.reset_peak_memory_stats()
        seconds = best_time(step, steps, device)
        trainable = [p for g in optimizer.param_groups for p in g["params"]]
        n_trainable = sum(p.numel() for p in trainable)
        weights = sum(p.numel() * p.element_size() for p in module.parameters())
        grads = sum(p.numel() * p.element_size() for p in trainable)
        activations = saved_activation_bytes(forward_loss)
        state = optimizer_state_bytes(optimizer)
        if torch.device(device).type == "cuda":
            memory, how = torch.cuda.max_memory_allocated() - before_build, "CUDA peak allocated by the strategy"
        else:
            memory, how = weights + grads + state + activations, "weights + grads + optimizer state + saved activations"
        rows.append({"strategy": label, "method": strategy, "step_seconds": seconds, "memory_bytes": memory, "memory_how": how,
                     "activation_bytes": activations, "trainable_params": n_trainable,
                     "optimizer_state_bytes": state, "tokens_per_s": x.numel() / seconds})
        module = optimizer = None  # freed before the next strategy is built (its CUDA peak is its own)
    full = rows[0]
    for r in rows:
        for key in ("step_seconds", "memory_bytes", "trainable_params", "optimizer_state_bytes", "activation_bytes"):
            r[f"{key}_ratio"] = r[key] / full[key] if full[key] else float("nan")
    return rows


def print_strategies(rows: list[dict]) -> None:
    from minift.tables import print_table

    print(f"strategies  step cost per strategy ({rows[0]['memory_how']}); ratios are to full fine-tuning")
    table = [{"strategy": r["strategy"], "ms/step": r["step_seconds"] * 1000, "x time": r["step_seconds_ratio"],
              "MB": r["memory_bytes"] / 1e6, "x mem": r["memory_bytes_ratio"],
              "trainable": r["trainable_params"], "x params": r["trainable_params_ratio"],
              "opt state B": r["optimizer_state_bytes"], "x state": r["optimizer_state_bytes_ratio"]}
             for r in rows]
    print_table(table, list(table[0]))
