"""The command line: --help everywhere, and bad input as one line on stderr with exit code 2."""
import subprocess
import sys

import pytest
import torch

from minift.cli import build_parser, main

SUBCOMMANDS = ["pretrain", "tokenizer", "bench", "plot", "data", "evaluate", "finetune", "generate", "demo"]


def test_every_subcommand_has_a_help_page(capsys):
    for name in SUBCOMMANDS:
        with pytest.raises(SystemExit) as info:
            main([name, "--help"])
        assert info.value.code == 0
        out = capsys.readouterr().out
        assert f"usage: minift {name}" in out and "--" in out


def test_unknown_subcommand_is_one_line_exit_2_without_traceback():
    result = subprocess.run([sys.executable, "-m", "minift", "frobnicate"], capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "invalid choice: 'frobnicate'" in result.stderr and "Traceback" not in result.stderr


def run(argv, capsys):
    code = main(argv)
    err = capsys.readouterr().err.strip()
    return code, err


@pytest.mark.parametrize("argv, message", [
    (["pretrain", "--bogus"], "unrecognized arguments: --bogus"),
    (["generate", "--model", "/nonexistent/run", "hello"], "no model at /nonexistent/run"),
    (["evaluate", "--model", "base", "--task", "qa", "--limit", "0"], "argument --limit: expected a number >= 1, got 0"),
    (["evaluate", "--model", "base", "--task", "poetry"], "unknown task 'poetry'"),
    (["pretrain", "--preset", "tiny", "--n-embd", "30", "--n-head", "4"], "n_embd (30) must be divisible by n_head (4)"),
    (["pretrain", "--preset", "tiny", "--block-size", "0"], "block_size must be an integer >= 1"),
    (["pretrain", "--preset", "huge"], "unknown preset 'huge'"),
    (["finetune", "--recipe", "nope", "--out", "/tmp/x"], "unknown recipe 'nope'"),
    (["bench", "--device", "tpu"], "--device tpu: choose auto, cpu, cuda, cuda:N or mps"),
])
def test_bad_input_is_one_line_and_exit_2(argv, message, capsys):
    code, err = run(argv, capsys)
    assert code == 2
    assert err.startswith("minift: error: ") and message in err and "\n" not in err


def test_corrupt_or_foreign_checkpoints_are_refused(tmp_path, capsys):
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"\x00not a checkpoint at all")
    code, err = run(["generate", "--model", str(garbage), "hi"], capsys)
    assert code == 2 and "not a readable minift checkpoint" in err and str(garbage) in err
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    code, err = run(["generate", "--model", str(foreign), "hi"], capsys)
    assert code == 2 and "not a minift checkpoint" in err


def test_tokenizer_file_that_does_not_parse_is_refused(tmp_path, capsys):
    text = tmp_path / "t.txt"
    text.write_text("some words to learn from " * 50)
    bad = tmp_path / "tok.json"
    bad.write_text("{not json")
    code, err = run(["pretrain", "--preset", "tiny", "--text", str(text), "--tokenizer", str(bad),
                     "--out", str(tmp_path / "run")], capsys)
    assert code == 2 and str(bad) in err


def test_missing_text_file_is_named(tmp_path, capsys):
    code, err = run(["tokenizer", "--text", str(tmp_path / "missing.txt")], capsys)
    assert code == 2 and "missing.txt: no such text file" in err


def test_parser_lists_every_subcommand():
    parser = build_parser()
    help_text = parser.format_help()
    for name in SUBCOMMANDS:
        assert name in help_text
