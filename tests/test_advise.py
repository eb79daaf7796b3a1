"""The advisor: measured winners, log-N interpolation, memory arithmetic, and helpful refusals.

Then the edges of each rule, against worked examples: a measured size predicts exactly what was
measured; the 90% memory line and the gap-equals-standard-error line; one seed means no noise;
the least memory wins among strategies within the noise; the command carries the experiment's
settings; results.json is read as UTF-8 on any locale; and the text's table layout.
"""
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

import minift.advise
from minift.advise import (advise, default_results_dir, format_advice, grid_agreement, interpolate, load_results,
                           memory_bytes)
from minift.errors import MiniftError
from minift.io import atomic_write_json

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
    # Between a later pair too: sqrt(1000 * 5000) is halfway in ln N from 1000 to 5000. One size: that value.
    assert interpolate(MEANS["full"], math.sqrt(1000 * 5000)) == pytest.approx(70.0, abs=1e-12)
    assert interpolate(MEANS["full"], 2000) == pytest.approx(60 + 20 * math.log(2) / math.log(5), abs=1e-12)
    assert interpolate({50: 7.0}, 10) == interpolate({50: 7.0}, 100) == 7.0


def test_sizes_outside_the_measured_range_are_clamped_and_said_so(results_dir):
    low = advise("translation", 10, results_dir=results_dir)
    assert low["predicted"] == 30 and low["strategy"] == "prompt"
    assert "below the smallest measured size (50)" in low["reasons"][0]
    high = advise("translation", 100_000, results_dir=results_dir)
    assert high["predicted"] == 80 and "above the largest measured size (5000)" in high["reasons"][0]
    # The reason names the size whose values are used: the nearest end.
    assert "the predictions are the values measured at 50, clamped" in low["reasons"][0]
    assert "the predictions are the values measured at 5000, clamped" in high["reasons"][0]


def test_memory_is_weights_gradients_optimizer_state_and_activations():
    full = memory_bytes(COSTS["full"], MODEL, 1_000_000)
    # activations: 4 bytes * B 16 * T 128 * (L 4 * (16 C + H T) + 2 V) = 8192 * (4 * 2560 + 2048)
    assert full["activations"] == 8192 * 12288 == 100_663_296
    assert (full["weights"], full["gradients"], full["optimizer"]) == (4e6, 4e6, 8e6)  # no measurement: AdamW's 8 B
    assert full["total"] == 116_663_296
    layers = memory_bytes(COSTS["layers"], MODEL, 1_000_000)
    assert layers["total"] == pytest.approx(4e6 + 1.8e6 + 3.6e6 + 8192 * (2 * 2560 + 2048))
    # A model 4x larger: trainable scales with P, the width with sqrt(P / P0) = 2.
    big = memory_bytes(COSTS["full"], MODEL, 4_000_000)
    assert big["optimizer"] == 32e6 and big["activations"] == 8192 * (4 * (16 * 256 + 512) + 2048)
    # A stage whose optimizer state was measured (an SGD stage: one momentum buffer, 4 B a weight).
    sgd = [{**COSTS["full"][0], "trainable_params": 250_000, "optimizer_state_bytes": 1_000_000}]
    assert memory_bytes(sgd, MODEL, 1_000_000)["optimizer"] == 4e6


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
    # ... and says where the memory goes, in MB: 4e6 + 4e6 + 8e6 + 100_663_296 bytes.
    assert "full does not fit in 110 MB: it needs about 116.7 MB (weights 4.0, gradients 4.0, optimizer state 8.0, " \
           "activations 100.7)." in advice["reasons"]
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


def test_on_the_measured_grid_advice_from_the_other_sizes_names_the_winner_in_80_percent_of_cells():
    """Leave-one-size-out: the advice at each measured (task, N) computed without N's own cells."""
    path = default_results_dir() / "results.json"
    if not path.exists():
        pytest.skip(f"no committed experiment results at {path} (run `minift experiment strategies`)")
    check = grid_agreement(leave_one_out=True)
    for line in check["disagreements"]:
        print("advice from the other sizes differs:", line)
    assert check["agree"] >= 0.8 * check["total"]


def test_leave_one_size_out_hides_the_size_being_advised():
    # layers wins at 50 and 200, full at 1000. Without 200, the log-N line between 50 and 1000 puts
    # full ahead there (10 + 0.46 * 50 = 33.1 against 20 + 0.46 * 5 = 22.3); without 1000, the advice
    # holds 200's values beyond it (layers); without 50, 200's values below it (layers, right).
    results = noisy_results({"full": {50: 10.0, 200: 30.0, 1000: 60.0}, "layers": {50: 20.0, 200: 50.0, 1000: 25.0}},
                            std=0.1)
    assert grid_agreement(results=results) == {"agree": 3, "total": 3, "disagreements": []}
    check = grid_agreement(results=results, leave_one_out=True)
    assert (check["agree"], check["total"]) == (1, 3)
    assert [d.split(" (")[0] for d in check["disagreements"]] == [
        "translation N=200: advice full, measured winner layers", "translation N=1000: advice layers, measured winner full"]
    assert sorted(results["results"]["translation"]["layers"]) == ["1000", "200", "50"]  # the input is kept


# --- the edges of each rule, one behaviour per test ------------------------------------------------


def test_a_measured_size_predicts_exactly_what_was_measured():
    # 42.9 + 1 * (6.8 - 42.9) is 6.799999999999997: the formula misses a measured value by a rounding,
    # and a NaN next door (time not recorded at 50) would spread into a cell that has its own.
    points = {50: 42.9, 200: 6.8, 1000: 3.0}
    assert [interpolate(points, n) for n in (50, 200, 1000)] == [42.9, 6.8, 3.0]
    assert interpolate({50: math.nan, 200: 12.0, 1000: math.nan}, 200) == 12.0
    assert interpolate({50: 1.0, 200: 12.0}, 50) == 1.0 and interpolate({50: math.nan, 200: 12.0}, 200) == 12.0


def test_the_reason_says_measured_directly_at_the_smallest_and_largest_size(results_dir):
    # The ends of the range are measured sizes, not clamped ones.
    assert advise("translation", 50, results_dir=results_dir)["reasons"][0] == \
        "N=50 was measured directly (bleu, mean over seeds)."
    assert advise("translation", 5000, results_dir=results_dir)["reasons"][0] == \
        "N=5000 was measured directly (bleu, mean over seeds)."


def test_the_default_results_are_where_the_experiment_writes_them(tmp_path, monkeypatch):
    # `minift experiment strategies` writes to --out data/experiments/strategies/fair by default.
    from minift.cli_tasks import EXPERIMENT_OUT

    monkeypatch.setenv("MINIFT_DATA", str(tmp_path))
    (tmp_path / "experiments" / "strategies" / "fair").mkdir(parents=True)
    (tmp_path / "experiments" / "strategies" / "fair" / "results.json").write_text(json.dumps(make_results()))
    assert default_results_dir() == tmp_path / "experiments" / "strategies" / "fair"
    assert Path(EXPERIMENT_OUT).parts == ("data", *default_results_dir().relative_to(tmp_path).parts)
    assert advise("translation", 200)["strategy"] == "layers"


def test_results_are_read_as_utf8_whatever_the_locale(tmp_path):
    # The experiment writes results.json in UTF-8 (non-ASCII kept as is); on a machine whose locale is
    # plain ASCII it must still read (the default encoding there would fail on the first accent).
    results = make_results()
    results["settings"] = {"base": "modèles/base.pt"}
    atomic_write_json(tmp_path / "results.json", results)
    assert "modèles".encode("utf-8") in (tmp_path / "results.json").read_bytes()
    assert load_results(tmp_path)["settings"]["base"] == "modèles/base.pt"
    code = ("import sys; from minift.advise import advise; "
            "print(ascii(advise('translation', 200, results_dir=sys.argv[1])['command']))")
    root = str(Path(minift.advise.__file__).resolve().parents[1])
    env = {**os.environ, "LC_ALL": "C", "LANG": "C", "PYTHONUTF8": "0", "PYTHONCOERCECLOCALE": "0", "PYTHONPATH": root}
    env.pop("PYTHONIOENCODING", None)
    run = subprocess.run([sys.executable, "-c", code, str(tmp_path)], env=env, capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == ascii("minift finetune --recipe layers --task translation --examples 200 "
                                       "--base modèles/base.pt --out runs/translation-layers-200")


def test_results_without_a_task_say_so_and_name_the_file(tmp_path):
    (tmp_path / "results.json").write_text(json.dumps({"model": MODEL, "results": {}, "costs": {}}))
    with pytest.raises(MiniftError, match=r"results\.json: the experiment results hold no task"):
        advise("translation", 100, results_dir=tmp_path)


def test_the_command_carries_the_experiments_base_and_step_cap():
    results = make_results()
    results["settings"] = {"base": "runs/pre/model.pt", "max_steps": 50, "data": None, "test_limit": 200}
    assert advise("translation", 200, results=results)["command"] == (
        "minift finetune --recipe layers --task translation --examples 200 --base runs/pre/model.pt "
        "--max-steps 50 --out runs/translation-layers-200")
    # scratch is the full recipe from fresh weights: its own --base, never the experiment's.
    results = make_results({"scratch": {50: 90}, "full": {50: 10}})
    results["settings"] = {"base": "runs/pre/model.pt", "max_steps": None}
    assert advise("translation", 50, results=results)["command"] == (
        "minift finetune --recipe full --task translation --examples 50 --base scratch "
        "--out runs/translation-scratch-50")


def test_under_the_fair_protocol_the_command_trains_the_recipe_as_the_experiment_trained_its_cell(monkeypatch):
    """The printed flags, parsed by minift's own command line and passed through cmd_finetune, give the
    stages that experiment.apply_protocol gave the cell: the budget (epochs, floor, cap, patience,
    min_delta, monitor) and the rate multiplier of the sweep nearest N."""
    import shlex

    from minift import cli_tasks, finetune
    from minift.cli import build_parser
    from minift.experiment import apply_protocol, resolve_protocol
    from minift.schedule import load_recipe

    protocol, cap = resolve_protocol("fair", epochs=5, min_steps=20, max_steps=900, patience=3)
    results = make_results()
    results["settings"] = {"base": None, "max_steps": cap, "data": None, "test_limit": 200, "protocol": protocol}
    results["lr_scales_by_size"] = {n: {"translation": {s: x for s in MEANS}} for n, x in (("50", 3.0), ("1000", 0.3))}
    command = advise("translation", 200, results=results)["command"]
    assert "--protocol fair --epochs 5 --min-steps 20 --max-steps 900 --patience 3" in command
    assert "--lr-scale 3 " in command  # 200 is nearer 50 than 1000 on a log scale
    assert "--lr-scale 0.3 " in advise("translation", 700, results=results)["command"]

    trained = {}
    monkeypatch.setattr(finetune, "run_recipe", lambda recipe, opts: trained.update(recipe=recipe, opts=opts) or {})
    monkeypatch.setattr(cli_tasks, "print_stage_table", lambda summary: None)
    args = build_parser().parse_args(shlex.split(command)[1:])
    args.func(args)
    want, want_cap = apply_protocol(load_recipe("layers"), protocol, cap, "translation", 3.0)
    assert want_cap is None and trained["opts"].max_steps is None  # the fair budget lives in the stages
    assert trained["recipe"].stages == want.stages
    assert trained["opts"].examples == 200 and trained["recipe"].stages[0].epochs == 5.0


def test_tuned_lr_scale_is_the_grids_multiplier_at_the_nearest_size_on_its_own_base_only(tmp_path):
    from minift.advise import tuned_lr_scale

    results = make_results()
    results["settings"] = {"base": None, "protocol": {"name": "fair"}}
    results["lr_scales_by_size"] = {"50": {"translation": {"full": 1.0, "layers": 3.0}},
                                    "1000": {"translation": {"full": 10.0}}}
    (tmp_path / "results.json").write_text(json.dumps(results))
    scale, why = tuned_lr_scale("full", "translation", 700, "base", results_dir=tmp_path)
    assert scale == 10.0 and "N=1000, the measured size nearest 700" in why and str(tmp_path / "results.json") in why
    assert tuned_lr_scale("full", "translation", 150, None, results_dir=tmp_path)[0] == 1.0  # nearer 50 (x3 < x6.7)
    assert tuned_lr_scale("layers", "translation", 60, None, results_dir=tmp_path)[0] == 3.0  # None: the shipped base
    # The rates were tuned on the grid's base: another base, a strategy or task it never ran, no grid: x1.
    for args, reason in ((("full", "translation", 700, "gpt2:/models/gpt2"), "tuned on the base 'base', not"),
                         (("layers", "translation", 700, "base"), "no tuned rate for layers on translation"),
                         (("full", "qa", 700, "base"), "no tuned rate for full on qa")):
        scale, why = tuned_lr_scale(*args, results_dir=tmp_path)
        assert scale == 1.0 and why.startswith("the recipe's own rates") and reason in why, why
    assert tuned_lr_scale("full", "translation", 700, "base", results_dir=tmp_path / "none")[0] == 1.0
    results["lr_scales_by_size"]["1000"]["translation"]["scratch"] = 3.0  # fresh weights of the base's shape
    (tmp_path / "results.json").write_text(json.dumps(results))
    assert tuned_lr_scale("scratch", "translation", 1000, "scratch", results_dir=tmp_path)[0] == 3.0
    # A grid run on another base tunes rates for that base, not for the shipped one.
    results["settings"]["base"] = "/models/other"
    (tmp_path / "results.json").write_text(json.dumps(results))
    assert tuned_lr_scale("full", "translation", 1000, "/models/other", results_dir=tmp_path)[0] == 10.0
    scale, why = tuned_lr_scale("full", "translation", 1000, None, results_dir=tmp_path)
    assert scale == 1.0 and "tuned on the base '/models/other', not None" in why


def test_a_shipped_recipe_trains_as_the_grid_trained_it_unless_told_otherwise(monkeypatch, capsys, tmp_path):
    """The shipped recipes say protocol = "fair" and lr_scale = "tuned": `minift finetune --recipe R`
    trains the experiment's budget at the committed grid's rate for R, the task and the nearest size;
    --protocol fixed --lr-scale 1 gives the stages as written."""
    from minift import cli_tasks, finetune
    from minift.advise import default_results_dir
    from minift.cli import build_parser
    from minift.experiment import apply_protocol, resolve_protocol, tuned_at
    from minift.schedule import builtin_recipes, load_recipe

    assert {(r.protocol, r.lr_scale) for r in map(load_recipe, builtin_recipes())} == {("fair", "tuned")}
    grid = json.loads((default_results_dir() / "results.json").read_text())["lr_scales_by_size"]
    trained = {}
    monkeypatch.setattr(finetune, "run_recipe", lambda recipe, opts: trained.update(recipe=recipe, opts=opts) or {})
    monkeypatch.setattr(cli_tasks, "print_stage_table", lambda summary: None)

    def run(*flags):
        args = build_parser().parse_args(["finetune", *flags, "--out", str(tmp_path / "run")])
        args.func(args)

    for recipe, task, n, flags in (("full", "translation", 1000, []), ("lora", "qa", 300, ["--task", "qa"]),
                                   ("full", "summarization", 60, ["--task", "summarization", "--base", "scratch"])):
        run("--recipe", recipe, "--examples", str(n), *flags)
        arm = "scratch" if "scratch" in flags else recipe
        scale = grid[str(tuned_at([int(k) for k in grid], n))][task][arm]
        want, _ = apply_protocol(load_recipe(recipe), resolve_protocol("fair")[0], 2000, task, scale)
        assert trained["recipe"].stages == want.stages, (recipe, task, n)
        assert f"lr x{scale:g}: the multiplier of the recipe's rates the strategy grid trained {arm} on {task}" in (
            capsys.readouterr().err)
    run("--recipe", "full", "--protocol", "fixed", "--lr-scale", "1")
    assert trained["recipe"].stages == load_recipe("full").stages and capsys.readouterr().err == ""
    run("--recipe", "full", "--base", "elsewhere")  # rates tuned on the shipped base are not applied to another
    assert [s.lr for s in trained["recipe"].stages] == [s.lr for s in load_recipe("full").stages]
    assert "lr x1: the recipe's own rates: the grid's rates were tuned on the base 'base'" in capsys.readouterr().err


def test_finetune_refuses_a_fair_budget_field_without_the_fair_protocol_and_a_bad_lr_scale(capsys, tmp_path):
    from minift.cli import main

    # The shipped recipes say protocol = "fair"; --protocol fixed trains their own steps, and refuses --epochs.
    assert main(["finetune", "--recipe", "full", "--protocol", "fixed", "--epochs", "5", "--out",
                 str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "--epochs belongs to the fair protocol" in err
    for bad in ("0", "-1", "nan", "x", "Tuned"):
        assert main(["finetune", "--recipe", "full", "--lr-scale", bad, "--out", str(tmp_path / "r")]) == 2
        assert "argument --lr-scale: expected a number > 0 or 'tuned'" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_examples_must_be_a_whole_number_from_one(results_dir):
    for bad in (True, 2.5, -3):
        with pytest.raises(MiniftError, match="--examples must be a whole number >= 1"):
            advise("translation", bad, results_dir=results_dir)
    one = advise("translation", 1, results_dir=results_dir)  # one example is few, but allowed
    assert one["strategy"] == "prompt" and one["examples"] == 1


def test_params_and_memory_must_be_positive(results_dir):
    with pytest.raises(MiniftError, match="--params must be > 0"):
        advise("translation", 10, params=0, results_dir=results_dir)
    assert advise("translation", 10, params=1, results_dir=results_dir)["params"] == 1.0
    with pytest.raises(MiniftError, match="--memory must be > 0 MB, got 0"):
        advise("translation", 10, memory_mb=0, results_dir=results_dir)
    # 1 MB is a valid (if hopeless) budget: the answer is that nothing fits, not that 1 is bad input.
    with pytest.raises(MiniftError, match="no strategy fits in 1 MB"):
        advise("translation", 10, memory_mb=1, results_dir=results_dir)


def test_the_advice_reports_the_model_size_memory_budget_and_measured_sizes(results_dir):
    advice = advise("translation", 5000, params=4_000_000, memory_mb=300, results_dir=results_dir)
    assert advice["params"] == 4e6 and advice["memory_mb"] == 300
    assert advice["measured_sizes"] == [50, 200, 1000, 5000]
    # full at 4x: weights 16e6 + gradients 16e6 + AdamW 32e6 + activations 8192 * (4 * (16 * 256 + 512) + 2048)
    full = advice["table"][0]
    assert full["strategy"] == "full" and full["memory_mb"] == pytest.approx(231.77216)
    assert advice["reasons"][1].startswith("Memory is scaled from the measured model (1,000,000 parameters) "
                                           "to 4,000,000")
    plain = advise("translation", 5000, results_dir=results_dir)
    assert plain["params"] == 1e6 and plain["memory_mb"] is None
    assert not any(r.startswith("Memory is scaled") for r in plain["reasons"])


def test_the_metric_is_called_score_when_the_results_do_not_name_it(results_dir):
    results = make_results()
    del results["main_metric"]
    advice = advise("translation", 5000, results=results)
    assert advice["metric"] == "score"
    assert "full predicts the highest score: 80.0 (next: layers at 50.0)." in advice["reasons"]
    assert format_advice(advice).startswith("recommended: full for translation with 5000 examples "
                                            "(predicted score 80.0)")


def test_the_best_reason_names_the_runner_up_only_when_there_is_one(results_dir):
    two = advise("translation", 5000, memory_mb=110, results_dir=results_dir)  # layers and prompt fit
    assert two["reasons"][-1] == "layers predicts the highest bleu: 50.0 (next: prompt at 35.0)."
    one = advise("translation", 5000, memory_mb=80, results_dir=results_dir)  # only layers (68.1 MB) fits
    assert one["reasons"][-1] == "layers predicts the highest bleu: 50.0."


def test_a_strategy_needing_exactly_the_memory_given_fits(results_dir):
    advice = advise("translation", 5000, memory_mb=116.663296, results_dir=results_dir)  # what full needs
    assert advice["table"][0]["fits"] and advice["strategy"] == "full"


def test_without_time_records_the_time_column_is_blank(results_dir):
    results = make_results()
    for cells in results["results"]["translation"].values():
        for cell in cells.values():
            del cell["seconds_mean"]
    for n in (200, 300):  # measured, and interpolated
        advice = advise("translation", n, results=results)
        assert all(math.isnan(r["seconds"]) for r in advice["table"])
        row = next(line for line in format_advice(advice).splitlines() if line.startswith("layers "))
        predicted = 40 + 5 * math.log(n / 200) / math.log(1000 / 200)  # 40 at 200, 45 at 1000
        assert row.split() == ["layers", f"{predicted:.1f}", "0.5", "68.1", "yes"]  # no time in between


def test_the_memory_peak_is_the_largest_stage_and_names_it():
    prompt, full = COSTS["prompt"][0], COSTS["full"][0]
    hybrid = memory_bytes([prompt, full], MODEL, 1_000_000)  # prompt tuning, then everything
    assert hybrid["stage"] == "full" and hybrid["total"] == 116_663_296
    assert memory_bytes([full, prompt], MODEL, 1_000_000)["stage"] == "full"
    # At a tie the first stage that reaches the peak is named; an unnamed stage is "".
    assert memory_bytes([{**full, "name": "a"}, {**full, "name": "b"}], MODEL, 1_000_000)["stage"] == "a"
    unnamed = {k: v for k, v in full.items() if k != "name"}
    assert memory_bytes([unnamed], MODEL, 1_000_000)["stage"] == ""
    # Weights scale with P like the rest: 4 bytes * 4e6.
    assert memory_bytes(COSTS["full"], MODEL, 4_000_000)["weights"] == 16e6


def noisy_results(means, std=3.0, n=3, costs=None):
    results = make_results(means, std=std, n=n)
    results["costs"]["translation"].update(costs or {})
    return results


def test_among_cheaper_strategies_within_the_noise_the_least_memory_wins_then_the_higher_prediction():
    # SE = sqrt(9/3 + 9/3) = 2.45: all four are within the noise of full (40.0).
    means = {"full": {50: 40.0}, "prompt": {50: 39.8}, "layers": {50: 39.0}, "top": {50: 38.5}}
    results = noisy_results(means, costs={"top": COSTS["layers"]})  # top: the layers recipe's memory
    advice = advise("translation", 50, results=results)
    # prompt (104.7 MB) is under 90% of full's 116.7 too, but layers and top need only 68.1 MB;
    # of those two, layers predicts more.
    assert advice["strategy"] == "layers" and advice["best_measured"] == "full"
    assert advice["reasons"][-1].startswith("layers is within the noise of full (gap 1.0 <= standard error 2.4")


def test_clearly_less_memory_means_under_90_percent_of_the_best():
    # A toy shape where every byte is a round number: activations 4 * B 10 * T 100 * (16 * 50 + 100 + 2 * 5050)
    # = 44e6; full: weights 4e6 + gradients 4e6 + AdamW 8e6 = 60 MB; half trainable: 54 MB = exactly 90%.
    model = {"params": 1_000_000, "n_layer": 1, "n_head": 1, "n_embd": 50, "block_size": 100, "vocab_size": 5050}

    def stage(fraction):
        return [{"name": "s", "trainable_fraction": fraction, "total_params": 1_000_000, "batch_size": 10,
                 "backward_fraction": 1.0}]

    def pick(fraction):
        results = noisy_results({"full": {50: 40.0}, "half": {50: 39.5}},
                                costs={"full": stage(1.0), "half": stage(fraction)})
        results["model"] = model
        return advise("translation", 50, results=results)

    at_90 = pick(0.5)
    assert [r["memory_mb"] for r in at_90["table"]] == [60.0, 54.0]
    assert at_90["strategy"] == "full"  # 90% is not clearly less
    assert pick(0.4999)["strategy"] == "half"  # 53.9988 MB is


def test_a_gap_equal_to_the_standard_error_is_within_the_noise():
    # Two seeds each, std 3: SE = sqrt(9/2 + 9/2) = 3.0 exactly, and the gap is 3.0.
    advice = advise("translation", 50, results=noisy_results({"full": {50: 43.0}, "layers": {50: 40.0}}, n=2))
    assert advice["strategy"] == "layers"
    assert "(gap 3.0 <= standard error 3.0 over seeds)" in advice["reasons"][-1]
    wider = advise("translation", 50, results=noisy_results({"full": {50: 43.5}, "layers": {50: 40.0}}, n=2))
    assert wider["strategy"] == "full"


def test_a_single_seed_has_no_noise_estimate_so_the_best_is_kept():
    # One seed gives no standard deviation to trust: the standard error is 0 and only the best counts,
    # even for a gap of 0.5 that three seeds each (SE 2.45) would call noise.
    for seeds in ({"full": 1, "layers": 3}, {"full": 3, "layers": 1}):
        results = noisy_results({"full": {50: 40.0}, "layers": {50: 39.5}})
        for s, n in seeds.items():
            results["results"]["translation"][s]["50"]["n"] = n
        advice = advise("translation", 50, results=results)
        assert advice["strategy"] == "full", seeds
        assert advice["table"][0]["seeds"] == seeds["full"]


def test_grid_agreement_counts_a_tie_as_agreement_and_reports_each_disagreement_with_its_reason(monkeypatch):
    # full wins N=500 clearly; at N=50 full 40.0 and layers 39.5 are tied (their 95% intervals overlap).
    results = noisy_results({"full": {50: 40.0, 500: 60.0}, "layers": {50: 39.5, 500: 45.0}})
    check = grid_agreement(results=results)  # the results given, not the committed ones
    assert advise("translation", 50, results=results)["strategy"] == "layers"  # a tie member: agrees
    assert (check["agree"], check["total"], check["disagreements"]) == (2, 2, [])
    # An advisor that names a strategy outside the tie at N=500 disagrees there, and says why.
    real = minift.advise.advise

    def stubborn(task, n, results):
        return {"strategy": "layers", "reasons": ["a stub's reason"]} if n == 500 else real(task, n, results=results)

    monkeypatch.setattr(minift.advise, "advise", stubborn)
    check = grid_agreement(results=results)
    assert (check["agree"], check["total"]) == (1, 2)
    assert check["disagreements"] == ["translation N=500: advice layers, measured winner full (a stub's reason)"]


def test_the_advice_text_is_a_left_aligned_table_between_the_recommendation_and_the_reasons():
    advice = {"strategy": "layers", "task": "qa", "examples": 300, "metric": "f1", "predicted": 41.3,
              "reasons": ["first reason.", "second reason."],
              "command": "minift finetune --recipe layers --task qa --examples 300 --out runs/qa-layers-300",
              "table": [{"strategy": "full", "predicted": 44.0, "std": 2.3, "seconds": math.nan,
                         "memory_mb": 116.663296, "fits": False},
                        {"strategy": "layers", "predicted": 41.3, "std": 1.0, "seconds": 125400.4,
                         "memory_mb": 68.120256, "fits": True}]}
    # Each column as wide as its widest cell or heading (35 CPU hours, in the last row, are wider than
    # "CPU s"), two spaces apart, all left-aligned; a missing time is blank.
    assert [line.rstrip() for line in format_advice(advice).split("\n")] == [
        "recommended: layers for qa with 300 examples (predicted f1 41.3)",
        "",
        "strategy  predicted f1  ± std  CPU s   memory MB  fits",
        "--------  ------------  -----  ------  ---------  ----",
        "full      44.0          2.3            116.7      no",
        "layers    41.3          1.0    125400  68.1       yes",
        "",
        "why:",
        "  - first reason.",
        "  - second reason.",
        "",
        "run:",
        "  minift finetune --recipe layers --task qa --examples 300 --out runs/qa-layers-300",
    ]


def test_grid_agreement_knows_strategies_beyond_the_shipped_five():
    # A strategy the experiment's default list does not name (a user's recipe) can win a cell too.
    results = noisy_results({"full": {50: 10.0, 500: 20.0}, "mine": {50: 40.0, 500: 60.0}}, std=0.1)
    assert advise("translation", 50, results=results)["strategy"] == "mine"
    assert grid_agreement(results=results) == {"agree": 2, "total": 2, "disagreements": []}
