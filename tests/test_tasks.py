"""Task formatting, the loss mask, batches, JSONL reading and writing, and their errors.

Pinned here: the prompt/completion templates; the ids, targets and loss mask of a worked example
(byte tokenizer, so every id is written by hand); the truncation boundary (a prompt that exactly
fills the room is whole, one token of room is still an example); batches' dtypes, soft-prompt
names per row, and their moves to a device or to pinned memory; which task a JSONL line is, its
``file:line``, subset filtering and ``n``; generated examples as ``minift.world.examples`` draws
them (seed, split, subset); ``write_jsonl`` writing readable UTF-8 that reads back the same; and
the errors, each naming the file and line (or the field) at fault.
"""
import json

import pytest
import torch

from minift.errors import MiniftError
from minift.model import GPT, GPTConfig, lm_loss
from minift.tasks import (Batch, collate, encode_example, format_example, load_examples, read_jsonl,
                          task_names, write_jsonl)
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
    # Ids and targets index embeddings and cross-entropy (long); the mask is a boolean mask, not 0./1.
    assert batch.input_ids.dtype == batch.targets.dtype == torch.long
    assert batch.attention_mask.dtype == torch.bool


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


def test_truncation_boundaries_a_prompt_that_fills_the_room_is_whole_one_token_of_room_is_enough(byte_tok):
    eot = byte_tok.eot_id
    # max_len 6 -> 7 ids; "ab" + eot takes 3: a 4-token prompt fits exactly and is not cut.
    enc = encode_example(byte_tok, "wxyz", "ab", max_len=6)
    assert enc.ids == [119, 120, 121, 122, 97, 98, eot] and enc.n_prompt == 4 and not enc.truncated
    # "abcde" + eot takes 6 of the 7: room for exactly one prompt token, the last one ("3").
    enc = encode_example(byte_tok, "0123", "abcde", max_len=6)
    assert enc.ids == [51, 97, 98, 99, 100, 101, eot] and enc.n_prompt == 1 and enc.truncated


def test_soft_prompt_names_travel_from_each_example_to_its_batch_row(byte_tok):
    styled = encode_example(byte_tok, "a", "b", max_len=8, prompt_name="headline")
    plain = encode_example(byte_tok, "c", "d", max_len=8)
    assert styled.prompt_name == "headline" and plain.prompt_name is None
    assert collate([styled, plain], byte_tok.pad_id).prompt_names == ["headline", None]


def small_batch(byte_tok):
    return collate([encode_example(byte_tok, "ab", "c", max_len=8, prompt_name="p1"),
                    encode_example(byte_tok, "d", "ef", max_len=8)], byte_tok.pad_id)


def test_batch_to_moves_every_tensor_and_keeps_the_prompt_names(byte_tok):
    batch = small_batch(byte_tok)
    # "meta" is a device every torch build has: tensors there keep shape and dtype, not values.
    moved = batch.to("meta")
    for name in ("input_ids", "targets", "attention_mask"):
        before, after = getattr(batch, name), getattr(moved, name)
        assert after.device.type == "meta", name
        assert after.shape == before.shape and after.dtype == before.dtype, name
    assert moved.prompt_names == ["p1", None]
    if torch.cuda.is_available():  # a real round trip keeps every value in its field
        back = batch.to("cuda").to("cpu")
        for name in ("input_ids", "targets", "attention_mask"):
            assert torch.equal(getattr(back, name), getattr(batch, name)), name


def test_pin_memory_pins_every_tensor_and_keeps_each_field(byte_tok, monkeypatch):
    if not torch.cuda.is_available():
        # Pinning needs a CUDA runtime; without one, a stand-in marks what it was asked to pin so
        # the test still checks which tensors are pinned and that each stays in its own field.
        def fake_pin(self):
            out = self.clone()
            out.pinned_by_test = True
            return out
        monkeypatch.setattr(torch.Tensor, "pin_memory", fake_pin)
        monkeypatch.setattr(torch.Tensor, "is_pinned", lambda self: getattr(self, "pinned_by_test", False))
    batch = small_batch(byte_tok)
    pinned = batch.pin_memory()
    assert isinstance(pinned, Batch)
    for name in ("input_ids", "targets", "attention_mask"):
        before, after = getattr(batch, name), getattr(pinned, name)
        assert after.is_pinned(), name
        assert torch.equal(after, before) and after.dtype == before.dtype, name
    assert pinned.prompt_names == ["p1", None]


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


def test_an_unrecognised_line_says_which_fields_it_has_and_what_each_task_needs(tmp_path):
    path = write(tmp_path, [json.dumps({"text": "a", "label": "b"})])
    with pytest.raises(MiniftError) as info:
        load_examples(data=path)
    assert str(info.value) == (f"{path}:1: no task's fields found (have label, text; need one of: source, target; "
                               "document, summary; context, question, answer; prompt, completion)")


def test_file_examples_know_their_line_and_filter_by_subset_and_n(tmp_path):
    path = write(tmp_path, [json.dumps({"source": "one", "target": "un", "subset": "general"}),
                            json.dumps({"source": "egg", "target": "oeuf", "subset": "kitchen"}),
                            json.dumps({"source": "two", "target": "deux", "subset": "general"}),
                            json.dumps({"source": "three", "target": "trois"})])  # no subset: never chosen by one
    general = load_examples(data=path, subset="general")
    assert [(e.reference, e.where) for e in general] == [("un", f"{path}:1"), ("deux", f"{path}:3")]
    assert [e.reference for e in load_examples(data=path, n=2)] == ["un", "oeuf"]  # the first n lines
    assert [e.reference for e in load_examples(data=path, n=1)] == ["un"]
    assert len(load_examples(data=path)) == 4  # no n, no subset: every line


def test_write_jsonl_writes_readable_utf8_that_reads_back_the_same(tmp_path):
    lines = ['{"source": "the egg", "target": "l\'œuf à la ferme", "subset": "kitchen"}',
             '{"prompt": "2+2=", "completion": " 4"}']
    examples = load_examples(data=write(tmp_path, lines))
    out = tmp_path / "out" / "copy.jsonl"
    out.parent.mkdir()
    write_jsonl(out, examples)
    # One JSON object per line, accents as themselves (not \u00e0): the file a person reads and edits.
    assert out.read_text(encoding="utf-8") == "\n".join(lines) + "\n"
    again = load_examples(data=out)
    assert [e.fields for e in again] == [e.fields for e in examples]
    assert [e.task for e in again] == ["translation", "text"]


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


def test_generated_tasks_are_the_three_the_world_makes():
    assert task_names() == ("translation", "summarization", "qa")  # "text" exists only as JSONL


@pytest.mark.parametrize("kw, world_kw", [
    (dict(task="translation", split="val", n=3), dict(seed=0, split="val")),  # seed 0 by default
    (dict(task="translation", split="val", n=3, seed=1), dict(seed=1, split="val")),
    (dict(task="summarization", split="test", n=2, subset="headline"), dict(seed=0, split="test", subset="headline")),
    (dict(task="qa", n=1), dict(seed=0, split="train")),  # n=1 is allowed; train by default
])
def test_generated_examples_are_the_worlds_draw_for_that_seed_split_and_subset(kw, world_kw):
    from minift.world import examples as world_examples

    got = load_examples(**kw)
    assert [e.fields for e in got] == world_examples(kw["task"], kw["n"], **world_kw)
    assert all(e.where == f"{kw['task']}/{world_kw['split']}" for e in got)
    if "subset" in kw:
        assert all(e.subset == kw["subset"] for e in got)


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
