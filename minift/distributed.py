"""Several processes, one model: data parallelism with ``torch.distributed``.

``torchrun --nproc_per_node N -m minift finetune ...`` starts N copies of minift. Each copy (a
*rank*) holds the whole model, reads a different slice of every global batch, and computes its own
gradients; ``DistributedDataParallel`` then averages the gradients across ranks during backward,
so every rank takes the same optimizer step and the copies never drift apart.

The slice: all ranks draw the *same* global batch of B example indices (same seed, same
generator), and rank r keeps rows r, r + N, r + 2N, ... So N processes see exactly the examples
one process would see with batch B.

The loss, made exact. One process computes ``sum of token losses / n_tokens`` over the global
batch. DDP averages per-rank gradients, so if rank r used its own mean (dividing by its own token
count n_r), rows would be weighted differently whenever ranks grade different numbers of tokens.
Instead every rank divides its sum by the *global* token count (one all-reduce of a number) and
multiplies by N, which DDP's averaging divides away:

    mean over r of  grad( N · sum_r / n_total )  =  grad( sum over all tokens / n_total )

``tests/test_distributed.py`` launches 2 CPU processes (gloo) and checks the result equals one
process with the same global batch. Rank 0 alone writes logs and checkpoints; every rank evaluates
the same validation set, so all of them take the same early-stopping decision.

Backends: NCCL between GPUs, gloo on CPUs. Tutorial 12 shows the launch.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str = ""

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_from_env(device: str) -> tuple[DistContext, str]:
    """Join the process group torchrun describes in the environment; returns (context, device).

    Without torchrun (WORLD_SIZE unset or 1) this is a single process and nothing happens.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistContext(), device
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if torch.device(device).type == "cuda":
        device = f"cuda:{local_rank}"
        torch.cuda.set_device(local_rank)
        backend = "nccl"
    else:
        backend = "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    return DistContext(rank, world, local_rank, backend), device


def all_reduce_sum(value: float | int, ctx: DistContext, device="cpu") -> float:
    """The sum of ``value`` over all ranks (the value itself in a single process)."""
    if not ctx.enabled:
        return value
    t = torch.tensor([float(value)], dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return float(t.item())


def barrier(ctx: DistContext) -> None:
    if ctx.enabled:
        dist.barrier()


def shard_rows(rows: list, ctx: DistContext) -> list:
    """Rank r's share of a global batch: rows r, r + N, r + 2N, ..."""
    return rows[ctx.rank:: ctx.world_size] if ctx.enabled else rows


def wrap(module: torch.nn.Module, ctx: DistContext, device, find_unused: bool = False):
    """DistributedDataParallel around ``module`` when there are several ranks; else the module itself."""
    if not ctx.enabled:
        return module
    from torch.nn.parallel import DistributedDataParallel

    ids = [torch.device(device).index] if torch.device(device).type == "cuda" else None
    return DistributedDataParallel(module, device_ids=ids, find_unused_parameters=find_unused)


def shutdown(ctx: DistContext) -> None:
    if ctx.enabled and dist.is_initialized():
        dist.destroy_process_group()
