"""Choosing where tensors live: CUDA, Apple's MPS, or the CPU.

``--device auto`` picks the fastest available: a CUDA GPU, then MPS, then the CPU. On CUDA,
training runs under bf16 autocast (``trainer.autocast_for``) and allows TF32 matmuls: both use the
tensor cores while the weights and the optimizer stay in float32. Tutorial 12 covers GPUs.
"""
from __future__ import annotations

import torch

from minift.errors import MiniftError


def resolve_device(name: str = "auto") -> str:
    """'auto' | 'cpu' | 'cuda' | 'cuda:N' | 'mps' -> a device string that works here."""
    name = (name or "auto").lower()
    mps = getattr(torch.backends, "mps", None)
    mps_ok = bool(mps and mps.is_available())
    if name == "auto":
        if torch.cuda.is_available():
            name = "cuda"
        elif mps_ok:
            name = "mps"
        else:
            name = "cpu"
    if name == "cpu":
        return "cpu"
    if name == "mps":
        if not mps_ok:
            raise MiniftError("--device mps: Apple's MPS backend is not available on this machine")
        return "mps"
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise MiniftError(f"--device {name}: no CUDA GPU is available here (try --device cpu)")
        if ":" in name:
            index = name.split(":", 1)[1]
            if not index.isdigit() or int(index) >= torch.cuda.device_count():
                raise MiniftError(f"--device {name}: this machine has {torch.cuda.device_count()} CUDA device(s)")
        torch.backends.cuda.matmul.allow_tf32 = True  # TF32 tensor cores for any fp32 matmul left
        torch.backends.cudnn.allow_tf32 = True
        return name
    raise MiniftError(f"--device {name}: choose auto, cpu, cuda, cuda:N or mps")
