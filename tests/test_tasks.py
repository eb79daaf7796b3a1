"""Task formatting, the loss mask, JSONL reading and its errors."""
import json

import pytest
import torch

from minift.errors import MiniftError
from minift.model import GPT, GPTConfig, lm_loss
from minift.tasks import collate, encode_example, format_example, load_examples, read_jsonl
from minift.tokenizer import Tokenizer


@pytest.fixture(scope="module")
def byte_tok():
    """No merges: every byte is one token, so ids can be written down by hand (eot 256, pad 257)."""
    return Tokenizer({bytes([i]): i for i in range(256)})


def test_loss_mask_grades_only_the_completion_on_a_worked_example(byte_tok):
    enc = encode_example(byte_tok, "ab", "cd", max_len=16)
    eot = byte_tok.eot_id
    assert enc.ids == [97, 98, 99, 100, eot] and enc.n_prompt == 2
    batch = collate([enc], byte_tok.pad_id)
    # inputs  a  b  c  d          targets: after 'a' comes 'b' (prompt: not graded),
    # targets -100 c d eot                 after 'b' comes 'c' (the first answer token) ...
    assert batch.input_ids.tolist() == [[97, 98, 99, 100]]
    assert batch.targets.tolist() == [[-100, 99, 100, eot]]
    assert batch.attention_mask.tolist() == [[True, True, True, True]]


def test_padding_rows_are_right_padded_and_never_graded(byte_tok):
    short = encode_example(byte_tok, "a", "b", max_len=16)
    long = encode_example(byte_tok, "abc", "de", max_len=16)
    batch = collate([short, long], byte_tok.pad_id)
    pad, eot = byte_tok.pad_id, byte_tok.eot_id
    assert batch.input_ids.tolist() == [[97, 98, pad, pad, pad], [97, 98, 99, 100, 101]]
    assert batch.targets.tolist() == [[98, eot, -100, -100, -100], [-100, -100, 100, 101, eot]]
    assert batch.attention_mask[0].tolist() == [True, True, False, False, False]


def test_masked_loss_equals_the_loss_on_completion_tokens_alone(byte_tok):
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=byte_tok.vocab_size, block_size=32, n_layer=1, n_head=2, n_embd=16))
    batch = collate([encode_example(byte_tok, "xyz", "ok", max_len=16)], byte_tok.pad_id)
    logits = model(batch.input_ids)
    # Graded positions are 2, 3, 4 (predicting 'o', 'k', eot): average their cross-entropies by hand.
    logp = torch.log_softmax(logits[0], dim=-1)
    by_hand = -(logp[2, ord("o")] + logp[3, ord("k")] + logp[4, byte_tok.eot_id]) / 3
    torch.testing.assert_close(lm_loss(logits, batch.targets), by_hand)


def test_too_long_prompts_are_cut_from_the_left_never_the_answer(byte_tok):
    enc = encode_example(byte_tok, "0123456789", "ab", max_len=6)
    # room for ids: max_len + 1 = 7; the answer + eot takes 3, so 4 prompt tokens remain: "6789".
    assert enc.truncated and enc.ids == [54, 55, 56, 57, 97, 98, byte_tok.eot_id]
    assert encode_example(byte_tok, "p", "abcdefgh", max_len=6) is None  # the answer alone does not fit


def test_templates_leave_the_style_to_the_model():
    prompt, completion = format_example("summarization", {"document": "A cat sat.", "summary": "Cat Sits"})
    assert prompt == "Story: A cat sat.\nSummary:" and completion == " Cat Sits"
    prompt, completion = format_example("qa", {"context": "C.", "question": "Who?", "answer": "Tom"})
    assert prompt == "Context: C.\nQuestion: Who?\nAnswer:" and completion == " Tom"


def write(tmp_path, lines):
    path = tmp_path / "data.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_jsonl_fields_choose_the_task(tmp_path):
    path = write(tmp_path, [json.dumps({"source": "the cat", "target": "le chat", "subset": "general"}),
                            json.dumps({"prompt": "2+2=", "completion": " 4"})])
    first, second = load_examples(data=path)
    assert first.task == "translation" and first.reference == "le chat" and first.subset == "general"
    assert second.task == "text" and second.prompt == "2+2=" and second.completion == " 4"


@pytest.mark.parametrize("lines, message", [
    (['{"source": "a", "target": "b"}', "not json"], r"data.jsonl:2: not valid JSON"),
    (['{"source": "a", "target": "b"}', "", '{"source": "c", "target": "d"}'], r"data.jsonl:2: empty line"),
    (['{"context": "a", "question": "b"}'], r"data.jsonl:1: no task's fields"),
    (['[1, 2]'], r"data.jsonl:1: expected a JSON object"),
    (['{"source": 3, "target": "b"}'], r"data.jsonl:1: field 'source' must be a string"),
])
def test_malformed_jsonl_names_file_and_line(tmp_path, lines, message):
    with pytest.raises(MiniftError, match=message):
        load_examples(data=write(tmp_path, lines))


def test_missing_task_field_is_named(tmp_path):
    path = write(tmp_path, [json.dumps({"source": "a"})])
    with pytest.raises(MiniftError, match=r"data.jsonl:1: missing field 'target'"):
        load_examples(task="translation", data=path)


def test_missing_and_empty_files_are_errors(tmp_path):
    with pytest.raises(MiniftError, match="no such data file"):
        read_jsonl(tmp_path / "nope.jsonl")
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(MiniftError, match="holds no examples"):
        read_jsonl(tmp_path / "empty.jsonl")


def test_generated_task_examples_are_formatted():
    examples = load_examples(task="qa", split="val", n=5, seed=1)
    assert len(examples) == 5
    for e in examples:
        assert e.prompt.startswith("Context: ") and e.prompt.endswith("\nAnswer:")
        assert e.reference in e.fields["context"]  # extractive: the answer is in the passage


@pytest.mark.parametrize("kw, message", [
    (dict(task="qa", split="dev"), "unknown split 'dev'"),
    (dict(task="qa", n=0), "must be >= 1"),
    (dict(task="poetry"), "poetry"),
])
def test_bad_task_arguments_are_named(kw, message):
    with pytest.raises(MiniftError, match=message):
        load_examples(**kw)


def test_an_empty_split_is_an_error_naming_the_file_and_subset(tmp_path, capsys):
    from minift.cli import main

    path = write(tmp_path, [json.dumps({"source": "a", "target": "b", "subset": "general"})])
    with pytest.raises(MiniftError, match=r"data.jsonl: no example has subset 'kitchen'"):
        load_examples(data=path, subset="kitchen")
    assert main(["evaluate", "--model", "base", "--data", str(path), "--subset", "kitchen"]) == 2
    assert "no example has subset 'kitchen'" in capsys.readouterr().err
