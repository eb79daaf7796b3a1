"""Held-out data and the scratch floor: what a run validates and is scored on, and where it starts.

What this file pins:

* a stage's validation examples are disjoint from its training examples, with a generated task
  (train and val splits, compared by input text) and with a user's JSONL (``--data``: the last
  tenth, at least one line, is held out; compared by file:line and by text);
* the examples the experiment scores on are disjoint from what it trained on: the test split of a
  generated task, the held-out tail of a data file (``experiment.scoring_examples``);
* end to end, in one real ``experiment.run_experiment`` of the ``scratch`` arm on the tiny base: the
  examples the stage trained on, the ones it validated on (``teacher_forced_loss`` during training,
  ``evaluate_examples`` before and after the stage) and the ones the experiment scored (what
  ``run_one`` passes to ``evaluate_examples`` from ``cfg["tests"]``) are recorded where they are
  used, and the trained ones are disjoint from all the others;
* the ``scratch`` arm starts from freshly initialised weights, in ``finetune.start_bundle("scratch")``
  in ``experiment.scratch_base``, and in the run above (the weights its training starts from): the
  base's config, shapes and tokenizer, weights unlike the base's, equal to ``GPT(config)`` built
  under the same seed, with the statistics of GPT-2's init.

User files are compared by file:line (``Example.where``): the fixture's pairs.jsonl repeats some
pairs, and holding out *lines* is the documented policy for a user's file.
"""
import dataclasses
import json

import pytest
import torch

from minift import experiment, finetune
from minift.bundle import load_model
from minift.finetune import RunOptions, stage_examples, start_bundle
from minift.model import GPT, GPTConfig
from minift.schedule import load_recipe
from minift.tasks.data import FIELDS

TASKS = ("translation", "summarization", "qa")


def inputs(examples):
    """The input text of each example (source / document / context): what the splits keep apart."""
    return {e.fields[FIELDS[e.task][0]] for e in examples}


@pytest.fixture
def recipe():
    return load_recipe("full")


# --- a stage's validation set ------------------------------------------------------------------------
@pytest.mark.parametrize("task,subset", [("translation", "all"), ("summarization", "all"), ("qa", "all"),
                                         ("translation", "kitchen")])
def test_stage_validation_is_disjoint_from_training_on_a_generated_task(recipe, task, subset):
    stage = dataclasses.replace(recipe.stages[0], data=subset)
    opts = RunOptions(out="unused", task=task)
    train = stage_examples(recipe, stage, opts, "train", 100, seed=0)
    val = stage_examples(recipe, stage, opts, "val", 30, seed=0)
    assert len(train) == 100 and len(val) == 30
    assert {e.task for e in train + val} == {task}
    assert not inputs(train) & inputs(val)


@pytest.fixture
def unique_pairs(tmp_path):
    """A user's file of 30 distinct translation pairs (no text repeats, so texts can be compared too)."""
    path = tmp_path / "pairs.jsonl"
    with open(path, "w") as f:
        for i in range(30):
            f.write(json.dumps({"source": f"line {i} in english.", "target": f"ligne {i} en francais."}) + "\n")
    return path


def test_with_a_data_file_the_last_tenth_is_held_out_for_validation(recipe, unique_pairs):
    stage = recipe.stages[0]
    opts = RunOptions(out="unused", data=str(unique_pairs))
    train = stage_examples(recipe, stage, opts, "train", None, seed=0)
    val = stage_examples(recipe, stage, opts, "val", None, seed=0)
    lines = lambda examples: [int(e.where.rsplit(":", 1)[1]) for e in examples]  # noqa: E731
    assert lines(train) == list(range(1, 28)) and lines(val) == [28, 29, 30]  # 30 // 10 = 3 held out
    assert not inputs(train) & inputs(val)
    # A size asked for takes the first examples of each side, never crossing the cut.
    assert lines(stage_examples(recipe, stage, opts, "train", 10, seed=0)) == list(range(1, 11))
    assert lines(stage_examples(recipe, stage, opts, "val", 100, seed=0)) == [28, 29, 30]


def test_a_small_data_file_still_holds_out_one_line(recipe, tmp_path):
    path = tmp_path / "five.jsonl"
    path.write_text("".join(json.dumps({"prompt": f"p{i}", "completion": f"c{i}"}) + "\n" for i in range(5)))
    opts = RunOptions(out="unused", data=str(path))
    train = stage_examples(recipe, recipe.stages[0], opts, "train", None, seed=0)
    val = stage_examples(recipe, recipe.stages[0], opts, "val", None, seed=0)
    assert [e.prompt for e in train] == ["p0", "p1", "p2", "p3"] and [e.prompt for e in val] == ["p4"]


# --- what the experiment scores on -----------------------------------------------------------------------
@pytest.mark.parametrize("task", TASKS)
def test_the_experiment_scores_a_generated_task_on_its_test_split(recipe, task):
    scored = experiment.scoring_examples(task, None, 30)
    assert len(scored) == 30
    opts = RunOptions(out="unused", task=task)
    for seed in (0, 1):  # the experiment's seeds draw different training sets; none reaches the test split
        trained = stage_examples(recipe, recipe.stages[0], opts, "train", 100, seed=seed)
        assert not inputs(scored) & inputs(trained)
    validated = stage_examples(recipe, recipe.stages[0], opts, "val", 30, seed=0)
    assert not inputs(scored) & inputs(validated)  # model selection never saw the test split either


def test_the_experiment_scores_a_data_file_on_its_held_out_tail(recipe, unique_pairs):
    scored = experiment.scoring_examples("translation", unique_pairs, 100)
    opts = RunOptions(out="unused", data=str(unique_pairs))
    trained = stage_examples(recipe, recipe.stages[0], opts, "train", None, seed=0)
    assert [e.where for e in scored] == [f"{unique_pairs}:{n}" for n in (28, 29, 30)]
    assert not {e.where for e in scored} & {e.where for e in trained}
    assert not inputs(scored) & inputs(trained)


# --- one real run of the experiment's scratch arm, with every use of data recorded -----------------------
@pytest.fixture(scope="module")
def scratch_run(tiny_setup, tmp_path_factory):
    """The experiment's scratch arm on the tiny base (one size, one seed, 2 steps), with every use of
    data recorded where it happens: trained, validated, scored; and the weights training starts from."""
    seen = {"train": [], "val": [], "scored": [], "start": [], "cfg": []}

    def recording(name, fn, pick):
        def wrapper(*args, **kwargs):
            seen[name].append(pick(*args, **kwargs))
            return fn(*args, **kwargs)
        return wrapper

    def examples_arg(bundle, examples, *args, **kwargs):
        return list(examples)

    start = finetune.start_bundle

    def start_recorded(*args, **kwargs):
        bundle = start(*args, **kwargs)
        seen["start"].append({k: v.clone() for k, v in bundle.model.state_dict().items()})
        return bundle

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models run fastest on one thread
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(finetune, "setup_strategy", recording(
            "train", finetune.setup_strategy, lambda stage, bundle, train_examples, *a: list(train_examples)))
        mp.setattr(finetune, "teacher_forced_loss", recording("val", finetune.teacher_forced_loss, examples_arg))
        mp.setattr(finetune, "evaluate_examples", recording("val", finetune.evaluate_examples, examples_arg))
        mp.setattr(experiment, "evaluate_examples", recording("scored", experiment.evaluate_examples, examples_arg))
        mp.setattr(experiment, "run_one", recording("cfg", experiment.run_one, lambda *a: a[-1]))
        mp.setattr(finetune, "start_bundle", start_recorded)
        try:
            agg = experiment.run_experiment(
                tasks=["translation"], sizes=[20], seeds=1, out=tmp_path_factory.mktemp("exp"), max_steps=2,
                base=tiny_setup / "base", data=tiny_setup / "pairs.jsonl", test_limit=8, quiet=True,
                strategies=["scratch"])
        finally:
            torch.set_num_threads(threads)
    return seen, agg, load_model(tiny_setup / "base")


def test_a_run_validates_and_is_scored_only_on_examples_it_did_not_train_on(scratch_run):
    seen, agg, _ = scratch_run
    assert agg["results"]["translation"]["scratch"]["20"]["n"] == 1
    assert len(seen["train"]) == 1 and len(seen["train"][0]) == 20
    assert len(seen["val"]) >= 3  # before the stage, during it (the loss), after it (the metrics)
    # run_one scores exactly the experiment's test examples (cfg["tests"]), all 8 of them.
    assert seen["scored"] == [seen["cfg"][0]["tests"]["translation"]] and len(seen["scored"][0]) == 8
    trained = {e.where for e in seen["train"][0]}
    for examples in seen["val"] + seen["scored"]:
        assert examples and not trained & {e.where for e in examples}


def fresh(config, seed):
    torch.manual_seed(seed)
    return GPT(GPTConfig(**config.to_dict()))


def assert_fresh_init(state, base_model, seed):
    """state: the weights a scratch arm starts from; base_model: the pretrained model it must not be."""
    reference = fresh(base_model.config, seed).state_dict()
    base = base_model.state_dict()
    assert state.keys() == reference.keys() == base.keys()
    for name in reference:
        assert state[name].shape == base[name].shape, name
        assert torch.equal(state[name], reference[name]), name  # GPT(config) under the same seed
    for name in ("transformer.wte.weight", "transformer.h.0.attn.c_attn.weight", "transformer.h.0.mlp.c_fc.weight"):
        assert not torch.allclose(state[name], base[name], atol=1e-3), name  # not the pretrained weights
    # GPT-2's init, as the model's docstring gives it: normal(0, 0.02) weights, zero biases.
    wte = state["transformer.wte.weight"]
    assert abs(float(wte.std()) - 0.02) < 0.002 and abs(float(wte.mean())) < 0.002
    assert all(float(v.abs().max()) == 0 for k, v in state.items() if k.endswith("bias") and "ln_" not in k)


def test_the_experiments_scratch_arm_trains_from_fresh_weights(scratch_run):
    seen, _, base = scratch_run
    assert len(seen["start"]) == 1
    assert_fresh_init(seen["start"][0], base.model, seed=0)  # the experiment's only seed here


def test_experiment_scratch_base_is_the_base_shape_and_tokenizer_with_fresh_weights(tiny_setup, tmp_path):
    base = load_model(tiny_setup / "base")
    path = experiment.scratch_base(tiny_setup / "base", 3, tmp_path)
    scratch = load_model(path)
    assert scratch.model.config == base.model.config
    assert scratch.tokenizer.to_dict() == base.tokenizer.to_dict()
    assert_fresh_init(scratch.model.state_dict(), base.model, seed=3)


def test_finetune_start_bundle_scratch_is_the_base_shape_and_tokenizer_with_fresh_weights(tiny_setup, monkeypatch):
    monkeypatch.setenv("MINIFT_DATA", str(tiny_setup))  # the name "base" now means the tiny base
    base = load_model("base")
    scratch = start_bundle("scratch", "cpu", seed=4)
    assert scratch.model.config == base.model.config
    assert scratch.tokenizer.to_dict() == base.tokenizer.to_dict()
    assert scratch.meta == {"kind": "scratch"}
    assert_fresh_init(scratch.model.state_dict(), base.model, seed=4)
