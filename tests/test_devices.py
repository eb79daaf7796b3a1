"""The device logic and the benchmark arithmetic, checked on the CPU (no timing assertions)."""
from contextlib import nullcontext

import pytest
import torch

from minift.bench import flops_per_token
from minift.device import resolve_device
from minift.errors import MiniftError
from minift.model import GPTConfig
from minift.optim import AdamW
from minift.trainer import autocast_for


def test_auto_picks_cpu_here_and_cuda_is_refused_without_a_gpu():
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    assert resolve_device("auto") == "cpu"
    with pytest.raises(MiniftError, match="no CUDA GPU is available"):
        resolve_device("cuda")
    with pytest.raises(MiniftError, match="choose auto, cpu, cuda, cuda:N or mps"):
        resolve_device("gpu0")


@pytest.mark.filterwarnings("ignore:CUDA is not available:UserWarning")  # building it on a CPU machine warns
def test_bf16_autocast_is_used_on_cuda_only():
    ctx = autocast_for("cuda")
    assert isinstance(ctx, torch.autocast) and ctx.fast_dtype == torch.bfloat16
    assert isinstance(autocast_for("cpu"), nullcontext)


def test_flops_per_token_counts_six_n_plus_attention_by_hand():
    # C=768, L=12, T=1024, V=50304 (GPT-2 124M padded vocab): per block 12·C² weights.
    c = GPTConfig(vocab_size=50304, block_size=1024, n_layer=12, n_head=12, n_embd=768)
    n = 12 * 12 * 768 * 768 + 50304 * 768
    assert flops_per_token(c) == 6 * n + 12 * 12 * 1024 * 768


def test_foreach_adamw_path_equals_the_loop_on_this_device():
    # On CUDA the optimizer defaults to the multi-tensor path; both paths must agree everywhere.
    torch.manual_seed(0)
    params = [torch.randn(4, 3, requires_grad=True), torch.randn(3, requires_grad=True)]
    twins = [p.detach().clone().requires_grad_(True) for p in params]
    loop, multi = AdamW(params, lr=1e-2, foreach=False), AdamW(twins, lr=1e-2, foreach=True)
    for step in range(5):
        for ps in (params, twins):
            torch.manual_seed(step)
            loss = sum((p * torch.randn_like(p)).sum() for p in ps)
            loss.backward()
        loop.step()
        multi.step()
        loop.zero_grad()
        multi.zero_grad()
    for a, b in zip(params, twins):
        assert torch.equal(a, b)


def test_profile_names_the_matmuls_and_a_bad_batch_is_refused():
    from minift.bench import build_train_step, profile_train

    small = dict(vocab_size=64, block_size=16, n_layer=1, n_head=2, n_embd=16)
    step, config, batch = build_train_step("cpu", shape=small, batch=3)
    assert batch == 3 and config.n_embd == 16
    step()  # one real step runs
    table = profile_train("cpu", batch=1, steps=1, rows=40)
    assert "Self CPU" in table and ("aten::mm" in table or "aten::addmm" in table)
    with pytest.raises(MiniftError, match="--batch must be >= 1"):
        build_train_step("cpu", shape=small, batch=0)


def test_side_by_side_runs_time_two_independent_one_thread_processes_over_the_same_moments():
    """The bench behind minift demo's side-by-side tasks: two timings back, and the gain is the two
    runs' steps/s together over one process's (a worked example: 0.1 s alone, 0.15 s each side by
    side: 2/0.15 against 1/0.1 steps a second, 1.33x)."""
    import time

    from minift.ddp_bench import side_by_side, side_by_side_gain

    assert side_by_side_gain(0.1, [0.15, 0.15]) == pytest.approx(4 / 3)
    assert side_by_side_gain(0.1, [0.2, 0.2]) == pytest.approx(1.0)  # no gain: each runs at half speed
    t0 = time.time()
    times = side_by_side(steps=2, delay=6)
    assert len(times) == 2 and all(0 < t < 5 for t in times)
    assert time.time() - t0 >= 6  # neither timed before the common start
