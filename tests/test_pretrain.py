"""Pretraining: the loss falls, bits per character are computed right, and the run folder is complete."""
import json
import math
import re

import pytest

from minift.bundle import load_model
from minift.pretrain import bits_per_char, encode_stream, pretrain, stream_loss


def test_bits_per_character_worked_example():
    # 2 nats per token, 100 tokens for 400 characters: 2 / ln 2 bits per token, 4 characters each.
    assert math.isclose(bits_per_char(2.0, 100, 400), 2.0 / math.log(2) / 4)


@pytest.fixture(scope="module")
def text_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pretrain")
    lines = []
    for i in range(300):  # a tiny language with structure to learn
        who = ["the cat", "a dog", "my friend", "the old man"][i % 4]
        what = ["eats bread", "sees the sea", "reads a book", "sings loudly"][(i * 7) % 4]
        lines.append(f"{who} {what} on day {i % 7}.")
    text = folder / "book.txt"
    text.write_text("\n\n".join(lines), encoding="utf-8")
    summary = pretrain(folder / "run", preset="tiny", text_file=text, max_steps=60, quiet=True, vocab=300)
    return folder / "run", summary


def test_pretraining_loss_falls_on_a_tiny_config(text_run):
    run, summary = text_run
    records = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    evals = [r["val_loss"] for r in records if r["event"] == "eval"]
    assert len(evals) >= 3
    assert evals[-1] < 0.6 * evals[0]  # from ~ln(vocab) = 5.7 nats to well below
    assert summary["val_loss"] == pytest.approx(min(evals), abs=1e-3)  # the best weights were kept
    assert summary["val_bpc"] > 0 and summary["steps"] == 60


def test_run_folder_holds_a_loadable_model_and_its_tokenizer(text_run):
    run, summary = text_run
    for name in ("model.pt", "tokenizer.json", "log.jsonl", "loss.svg", "summary.json"):
        assert (run / name).exists(), name
    bundle = load_model(run)
    assert bundle.tokenizer.vocab_size == summary["tokenizer_vocab"]
    assert bundle.meta["val_loss"] == summary["val_loss"]
    # The loaded model scores the same validation loss it reported.
    val = (run.parent / "book.txt").read_text().split("\n\n")[270:]
    stream = encode_stream(bundle.tokenizer, val)
    loss = stream_loss(bundle.model.eval(), stream, bundle.model.config.block_size, "cpu")
    assert loss == pytest.approx(summary["val_loss"], abs=0.02)


def test_loaded_model_generates_text_of_the_language(text_run):
    """Greedy continuations finish a sentence of the tiny language: its words, its "on day N." ending.

    A fresh, untrained model of the same shape writes repeats or bytes instead ("cat cat cat ...").
    """
    run, _ = text_run
    bundle = load_model(run)
    words = set(re.findall(r"[a-z0-9]+", (run.parent / "book.txt").read_text()))
    for prompt in ("the cat", "a dog", "my friend"):
        out = bundle.generate(prompt, max_new_tokens=24)
        assert re.fullmatch(r"[a-z ]*on day [0-6]\.", out), (prompt, out)
        assert set(re.findall(r"[a-z0-9]+", out)) <= words, (prompt, out)
