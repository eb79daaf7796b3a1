"""``minift bench --only finetune``: the fine-tuning step on real task batches (no timing assertions).

Pins: the token counts each timed step reports (graded = targets != -100, all = non-padding inputs,
padded = B·T) equal a count by hand from the same rows of the task's training split, tokenized here
with the base's tokenizer, not through the library's collate; graded <= all <= padded; the rates
and the padding fraction are those totals over the measured time; the step is the trainer's
(``step_loss`` then ``apply_update`` with the full recipe's gradient clip), warm-up included; the
table puts the fine-tuning row beside the train row; and a bad ``--task`` exits 2 before any
section runs.
"""
import json

import pytest
import torch

from minift import trainer
from minift.bundle import load_model
from minift.cli import main
from minift.finetune_bench import bench_finetune
from minift.schedule import load_recipe
from minift.tasks import load_examples


def hand_counts(examples, tok, rows):
    """(graded, all, padded) of a batch of these rows, counted from the token lists themselves."""
    graded = all_tokens = longest = 0
    for r in rows:
        p, c = tok.encode(examples[r].prompt), tok.encode(examples[r].completion)
        graded += len(c) + 1  # every completion token, then <|endoftext|>: the prompt is not graded
        all_tokens += len(p) + len(c)  # inputs are ids[:-1]: the prompt and the completion, not the eot
        longest = max(longest, len(p) + len(c))
    return graded, all_tokens, len(rows) * longest


def test_each_step_counts_graded_all_and_padded_tokens_as_a_hand_count_of_the_same_batches():
    B, steps = 3, 2
    r = bench_finetune("cpu", steps=steps, task="translation", base="base", batch=B, examples=40)
    assert r["skipped_examples"] == 0 and r["truncated_prompts"] == 0  # so row i is example i, uncut
    examples = load_examples(task="translation", split="train", n=40, seed=0)
    tok = load_model("base").tokenizer
    assert r["examples"] == len(examples) and r["batch"] == B and len(r["steps"]) == steps
    # The stage's draw with the generator seeded 0: the first batch is the warm-up's, then one per step.
    g = torch.Generator().manual_seed(0)
    draws = [torch.randint(0, len(examples), (B,), generator=g).tolist() for _ in range(steps + 1)]
    for rows, step in zip(draws[1:], r["steps"]):
        graded, all_tokens, padded = hand_counts(examples, tok, rows)
        assert (step["graded"], step["tokens"], step["positions"]) == (graded, all_tokens, padded)
        assert step["T"] * B == padded
        assert 0 < step["graded"] < step["tokens"] <= step["positions"]
    seconds = sum(s["seconds"] for s in r["steps"])
    for rate, key in (("graded_tokens_per_s", "graded"), ("tokens_per_s", "tokens"),
                      ("padded_positions_per_s", "positions")):
        assert r[rate] == pytest.approx(sum(s[key] for s in r["steps"]) / seconds)
    assert r["padding_fraction"] == pytest.approx(
        1 - sum(s["tokens"] for s in r["steps"]) / sum(s["positions"] for s in r["steps"]))
    assert r["step_seconds"] == pytest.approx(seconds / steps)


def test_the_step_is_the_trainers_at_the_full_recipes_batch_and_clip_warm_up_included(monkeypatch):
    calls = []
    real_loss, real_update = trainer.step_loss, trainer.apply_update

    def counting_loss(*args, **kwargs):
        calls.append("loss")
        return real_loss(*args, **kwargs)

    def counting_update(loss, optimizer, trainable, grad_clip):
        calls.append(("update", grad_clip, len(trainable)))
        return real_update(loss, optimizer, trainable, grad_clip)

    monkeypatch.setattr(trainer, "step_loss", counting_loss)
    monkeypatch.setattr(trainer, "apply_update", counting_update)
    r = bench_finetune("cpu", steps=1, base="base")
    n_tensors = len(list(load_model("base").model.parameters()))  # full: every weight trains
    stage = load_recipe("full").stages[0]
    assert stage.grad_clip > 0 and calls == ["loss", ("update", stage.grad_clip, n_tensors)] * 2  # warm-up + 1
    assert r["batch"] == stage.batch_size == 16
    assert all(torch.isfinite(torch.tensor(s["loss"])) for s in r["steps"])


def test_the_cli_prints_the_finetune_row_beside_the_train_row_and_writes_json(tmp_path, capsys):
    out = tmp_path / "b.json"
    assert main(["bench", "--device", "cpu", "--only", "train,finetune", "--steps", "1", "--batch", "1",
                 "--task", "qa", "--json", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("step ") and "graded tok/s" in line)
    assert lines[header + 2].startswith("train (pretraining shape)")
    assert lines[header + 3].startswith("finetune (qa)")
    saved = json.loads(out.read_text())
    assert set(saved) == {"train", "finetune"} and saved["finetune"]["task"] == "qa"
    assert saved["finetune"]["batch"] == 1 and len(saved["finetune"]["steps"]) == 1


def test_a_bad_task_is_refused_with_exit_2_before_any_section_runs(capsys):
    assert main(["bench", "--device", "cpu", "--only", "train,finetune", "--task", "poetry"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""  # the train section did not run first
    assert "--task: unknown task 'poetry'; choose one of translation, summarization, qa" in captured.err


def test_length_buckets_lower_the_padding_of_the_benched_step_and_a_bad_count_exits_2(capsys):
    """The bench draws its batches as a stage with length_buckets does, so it measures the padding
    they save; on translation's batches that is most of it."""
    plain = bench_finetune("cpu", steps=4, task="translation", base="base", batch=4, examples=200)
    bucketed = bench_finetune("cpu", steps=4, task="translation", base="base", batch=4, examples=200,
                              length_buckets=8)
    assert bucketed["length_buckets"] == 8 and plain["length_buckets"] == 1
    assert bucketed["padding_fraction"] < 0.5 * plain["padding_fraction"]
    assert main(["bench", "--device", "cpu", "--only", "train,finetune", "--length-buckets", "0"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""  # refused before the train section ran
    assert "--length-buckets and --examples must be >= 1" in captured.err and "Traceback" not in captured.err
