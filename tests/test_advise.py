"""The advisor: measured winners, log-N interpolation, memory arithmetic, and helpful refusals."""
import json
import math

import pytest

from minift.advise import advise, default_results_dir, format_advice, grid_agreement, interpolate, memory_bytes
from minift.errors import MiniftError

MODEL = {"params": 1_000_000, "n_layer": 4, "n_head": 4, "n_embd": 128, "block_size": 128, "vocab_size": 1024}
# prompt wins at 50, layers at 200, full at 1000 and 5000.
MEANS = {"full": {50: 10, 200: 30, 1000: 60, 5000: 80},
         "layers": {50: 20, 200: 40, 1000: 45, 5000: 50},
         "prompt": {50: 30, 200: 32, 1000: 34, 5000: 35}}
COSTS = {"full": [{"name": "full", "trainable_fraction": 1.0, "total_params": 1_000_000, "batch_size": 16,
                   "backward_fraction": 1.0}],
         "layers": [{"name": "top-layers", "trainable_fraction": 0.45, "total_params": 1_000_000, "batch_size": 16,
                     "backward_fraction": 0.5}],
         "prompt": [{"name": "prompt", "trainable_fraction": 0.002, "total_params": 1_002_000, "batch_size": 16,
                     "backward_fraction": 1.0}]}


def make_results(means=MEANS, std=0.5, n=3):
    return {"model": MODEL, "main_metric": {"translation": "bleu"},
            "results": {"translation": {s: {str(size): {"mean": m, "std": std, "n": n, "seconds_mean": size / 10,
                                                        "trainable_params": 1}
                                            for size, m in cells.items()} for s, cells in means.items()}},
            "costs": {"translation": {s: COSTS.get(s, COSTS["full"]) for s in means}}}


@pytest.fixture
def results_dir(tmp_path):
    (tmp_path / "results.json").write_text(json.dumps(make_results()))
    return tmp_path


def test_advice_at_measured_sizes_is_the_measured_winner(results_dir):
    for n, winner in ((50, "prompt"), (200, "layers"), (1000, "full"), (5000, "full")):
        advice = advise("translation", n, results_dir=results_dir)
        assert advice["strategy"] == winner
        assert advice["predicted"] == MEANS[winner][n]
    assert grid_agreement(results_dir) == {"agree": 4, "total": 4, "disagreements": []}


def test_interpolation_between_sizes_is_linear_in_log_n(results_dir):
    advice = advise("translation", 100, results_dir=results_dir)  # ln 100 is halfway between ln 50 and ln 200
    predicted = {r["strategy"]: r["predicted"] for r in advice["table"]}
    assert predicted == pytest.approx({"full": 20.0, "layers": 30.0, "prompt": 31.0}, abs=1e-12)
    assert advice["strategy"] == "prompt"
    t = math.log(70 / 50) / math.log(200 / 50)  # 0.2427...
    assert interpolate({50: 20, 200: 40}, 70) == pytest.approx(20 + 20 * t, abs=1e-12)
    assert "between the measured sizes 50 and 200" in advice["reasons"][0]


def test_sizes_outside_the_measured_range_are_clamped_and_said_so(results_dir):
    low = advise("translation", 10, results_dir=results_dir)
    assert low["predicted"] == 30 and low["strategy"] == "prompt"
    assert "below the smallest measured size (50)" in low["reasons"][0]
    high = advise("translation", 100_000, results_dir=results_dir)
    assert high["predicted"] == 80 and "above the largest measured size (5000)" in high["reasons"][0]


def test_memory_is_weights_gradients_adamw_state_and_activations():
    full = memory_bytes(COSTS["full"], MODEL, 1_000_000)
    # activations: 4 bytes * B 16 * T 128 * (L 4 * (16 C + H T) + 2 V) = 8192 * (4 * 2560 + 2048)
    assert full["activations"] == 8192 * 12288 == 100_663_296
    assert (full["weights"], full["gradients"], full["adamw"]) == (4e6, 4e6, 8e6)
    assert full["total"] == 116_663_296
    layers = memory_bytes(COSTS["layers"], MODEL, 1_000_000)
    assert layers["total"] == pytest.approx(4e6 + 1.8e6 + 3.6e6 + 8192 * (2 * 2560 + 2048))
    # A model 4x larger: trainable scales with P, the width with sqrt(P / P0) = 2.
    big = memory_bytes(COSTS["full"], MODEL, 4_000_000)
    assert big["adamw"] == 32e6 and big["activations"] == 8192 * (4 * (16 * 256 + 512) + 2048)


def test_activation_estimate_is_within_half_again_of_what_autograd_saves():
    import torch

    from minift.model import GPT, GPTConfig, lm_loss
    from minift.strategy_bench import saved_activation_bytes

    config = GPTConfig(vocab_size=282, block_size=64, n_layer=2, n_head=2, n_embd=32)
    torch.manual_seed(0)
    model = GPT(config)
    x = torch.randint(0, 282, (16, 64))
    real = saved_activation_bytes(lambda: lm_loss(model(x), x))
    shape = {"params": model.num_parameters(), **{k: getattr(config, k) for k in MODEL if k != "params"}}
    stage = [{"trainable_fraction": 1.0, "total_params": shape["params"], "batch_size": 16, "backward_fraction": 1.0}]
    estimate = memory_bytes(stage, shape, shape["params"])["activations"]
    assert 0.67 < estimate / real < 1.5


def test_too_little_memory_excludes_full_and_picks_the_best_that_fits(results_dir):
    advice = advise("translation", 5000, memory_mb=110, results_dir=results_dir)  # full needs 116.7 MB
    fits = {r["strategy"]: r["fits"] for r in advice["table"]}
    assert fits == {"full": False, "layers": True, "prompt": True}
    assert advice["strategy"] == "layers" and advice["predicted"] == 50
    assert any(r.startswith("full does not fit in 110 MB: it needs about 116.7 MB") for r in advice["reasons"])
    tight = advise("translation", 5000, memory_mb=80, results_dir=results_dir)  # prompt needs 104.7 MB
    assert tight["strategy"] == "layers"
    with pytest.raises(MiniftError, match="no strategy fits in 10 MB: the smallest, layers, needs about 68.1 MB"):
        advise("translation", 5000, memory_mb=10, results_dir=results_dir)


def test_a_cheaper_strategy_within_the_noise_is_preferred(tmp_path):
    means = {"full": {50: 40.0, 500: 60.0}, "layers": {50: 39.5, 500: 45.0}}
    (tmp_path / "results.json").write_text(json.dumps(make_results(means, std=3.0, n=3)))
    advice = advise("translation", 50, results_dir=tmp_path)  # gap 0.5 < sqrt(9/3 + 9/3) = 2.45
    assert advice["best_measured"] == "full" and advice["strategy"] == "layers"
    assert "within the noise of full (gap 0.5 <= standard error 2.4" in advice["reasons"][-1]
    assert advise("translation", 500, results_dir=tmp_path)["strategy"] == "full"  # gap 15: not noise
    # Checked against the grid, layers at N=50 agrees with the measured winner: their 95% intervals,
    # 40 ± 4.30 * 3 / sqrt(3) and 39.5 ± 7.45, overlap, so the experiment's tables call it a tie.
    assert grid_agreement(tmp_path) == {"agree": 2, "total": 2, "disagreements": []}


def test_the_command_runs_the_recommended_recipe(results_dir):
    advice = advise("translation", 200, results_dir=results_dir)
    assert advice["command"] == ("minift finetune --recipe layers --task translation --examples 200 "
                                 "--out runs/translation-layers-200")
    text = format_advice(advice)
    assert text.startswith("recommended: layers for translation with 200 examples (predicted bleu 40.0)")
    assert "memory MB" in text and text.rstrip().endswith(advice["command"])
    # The time column is CPU seconds when the results have them (wall time is inflated by a shared machine).
    results = make_results()
    results["results"]["translation"]["layers"]["200"]["cpu_seconds_mean"] = 7.0
    assert advise("translation", 200, results=results)["table"][1]["seconds"] == 7.0
    assert advice["table"][1]["seconds"] == 20.0  # only seconds_mean recorded: that is used
    means = {"scratch": {50: 90}, "full": {50: 10}}
    scratch = advise("translation", 50, results=make_results(means))
    assert scratch["command"].startswith("minift finetune --recipe full --task translation --examples 50 --base scratch")


def test_bad_input_raises_a_helpful_minift_error(results_dir, tmp_path):
    with pytest.raises(MiniftError, match="no measurements for task 'qa': the results hold translation"):
        advise("qa", 100, results_dir=results_dir)
    with pytest.raises(MiniftError, match="--examples must be a whole number >= 1"):
        advise("translation", 0, results_dir=results_dir)
    with pytest.raises(MiniftError, match="--params must be > 0"):
        advise("translation", 10, params=-5, results_dir=results_dir)
    with pytest.raises(MiniftError, match="run `minift experiment strategies` first, or pass --results DIR"):
        advise("translation", 100, results_dir=tmp_path / "nowhere")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "results.json").write_text("{not json")
    with pytest.raises(MiniftError, match="not readable JSON.*minift experiment strategies"):
        advise("translation", 100, results_dir=tmp_path / "bad")
    (tmp_path / "bad" / "results.json").write_text(json.dumps({"results": {}}))
    with pytest.raises(MiniftError, match="malformed experiment results.*--results DIR"):
        advise("translation", 100, results_dir=tmp_path / "bad")


def test_on_the_measured_grid_the_advice_matches_the_measured_winner_in_most_cells():
    path = default_results_dir() / "results.json"
    if not path.exists():
        pytest.skip(f"no committed experiment results at {path} (run `minift experiment strategies`)")
    check = grid_agreement()
    for line in check["disagreements"]:
        print("advice differs:", line)
    print(f"advice matches the measured winner in {check['agree']} of {check['total']} cells")
    assert check["agree"] >= 0.75 * check["total"]
