"""The command line: --help everywhere, and bad input as one line on stderr with exit code 2.

Output paths that cannot be used (a file where a folder is expected, a folder that cannot be
created or written) are refused before any work, by every command that writes, naming the path, and
nothing already there is lost. A full disk during a write is one line too, and keeps the previous file.
"""
import json
import subprocess
import sys

import pytest
import torch

from minift.cli import build_parser, main

SUBCOMMANDS = ["pretrain", "tokenizer", "bench", "plot", "data", "evaluate", "finetune", "report", "generate", "demo"]


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
    (["experiment", "strategies", "--lr-extend", "1", "--out", "/tmp/x"],
     "--lr-scales, --lr-extend, --seed and --val-limit belong to `experiment lr-sweep`"),
    (["experiment", "strategies", "--seed", "0", "--out", "/tmp/x"],  # given, even at lr-sweep's default
     "--lr-scales, --lr-extend, --seed and --val-limit belong to `experiment lr-sweep`"),
    (["experiment", "lr-sweep", "--lr-extend", "-1", "--out", "/tmp/minift-no-such-sweep"],
     "--lr-extend must be a whole number of rungs >= 0, got -1"),
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


# --- output paths that cannot be used -----------------------------------------------------------------

def one_line_error(argv, capsys):
    code = main(argv)
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert code == 2 and err.startswith("minift: error: ") and "\n" not in err and "Traceback" not in err, err
    return err, captured.out


def test_finetune_out_that_is_an_existing_file_is_refused_and_kept(tmp_path, capsys):
    target = tmp_path / "notes.txt"
    target.write_text("my notes")
    err, _ = one_line_error(["finetune", "--recipe", "full", "--out", str(target), "--device", "cpu"], capsys)
    assert f"{target}: is a file, not a folder" in err
    assert target.read_text() == "my notes"


def test_finetune_out_that_cannot_be_created_is_refused(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("kept")
    err, _ = one_line_error(["finetune", "--recipe", "full", "--out", str(blocker / "run"), "--device", "cpu"], capsys)
    assert f"{blocker / 'run'}: cannot create the --out run folder" in err
    assert blocker.read_text() == "kept"


def test_finetune_out_that_cannot_be_written_is_refused(tmp_path, capsys, monkeypatch):
    # A read-only folder, simulated: the tests may run as root, whom a chmod does not stop.
    import tempfile

    real_mkstemp = tempfile.mkstemp
    readonly = tmp_path / "readonly"
    readonly.mkdir()
    (readonly / "old.txt").write_text("kept")

    def mkstemp(*args, dir=None, **kwargs):
        if dir is not None and str(dir) == str(readonly):
            raise PermissionError(13, "Permission denied")
        return real_mkstemp(*args, dir=dir, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
    err, _ = one_line_error(["finetune", "--recipe", "full", "--out", str(readonly), "--device", "cpu"], capsys)
    assert f"{readonly}: cannot write into the --out run folder (Permission denied)" in err
    assert [p.name for p in readonly.iterdir()] == ["old.txt"] and (readonly / "old.txt").read_text() == "kept"


def test_report_of_a_folder_without_summary_names_the_path(tmp_path, capsys):
    err, out = one_line_error(["report", str(tmp_path)], capsys)
    assert f"{tmp_path / 'summary.json'}: no such file" in err and out == ""
    assert not (tmp_path / "report.md").exists()


def test_report_of_a_file_instead_of_a_run_folder_is_refused(tmp_path, capsys):
    target = tmp_path / "summary.json"
    target.write_text("{}")
    err, _ = one_line_error(["report", str(target)], capsys)
    assert f"{target}: is a file, not a run folder" in err and target.read_text() == "{}"


def fake_run(folder):
    folder.mkdir(exist_ok=True)
    (folder / "summary.json").write_text(json.dumps({
        "recipe": "r", "before": {"bleu": 1.0},
        "stages": [{"name": "s", "strategy": "full", "steps": 1, "metrics": {"bleu": 2.0}, "samples": []}]}))
    return folder


def test_report_out_that_is_a_folder_is_refused_and_kept(tmp_path, capsys):
    run_dir = fake_run(tmp_path / "run")
    target = tmp_path / "taken"
    target.mkdir()
    (target / "keep.md").write_text("kept")
    err, _ = one_line_error(["report", str(run_dir), "--out", str(target)], capsys)
    assert f"{target}: is a folder, not a file" in err and (target / "keep.md").read_text() == "kept"


def test_report_out_whose_folder_cannot_be_created_is_refused(tmp_path, capsys):
    run_dir = fake_run(tmp_path / "run")
    blocker = tmp_path / "file"
    blocker.write_text("kept")
    err, _ = one_line_error(["report", str(run_dir), "--out", str(blocker / "report.md")], capsys)
    assert f"{blocker}: is a file, not a folder (the folder of the report)" in err
    err, _ = one_line_error(["report", str(run_dir), "--out", str(blocker / "sub" / "report.md")], capsys)
    assert f"{blocker / 'sub'}: cannot create the folder of the report" in err
    assert blocker.read_text() == "kept" and not (run_dir / "report.md").exists()


def test_report_from_a_broken_summary_keeps_the_report_already_there(tmp_path, capsys):
    run_dir = fake_run(tmp_path / "run")
    assert main(["report", str(run_dir)]) == 0
    old = (run_dir / "report.md").read_text()
    assert "| s | full |" in old
    (run_dir / "summary.json").write_text('{"recipe": "r", "stages": [')  # cut off mid-write
    capsys.readouterr()
    err, _ = one_line_error(["report", str(run_dir)], capsys)
    assert f"{run_dir / 'summary.json'}: not valid JSON" in err
    assert (run_dir / "report.md").read_text() == old


# --- every command that writes: a bad output path fails at once, before any work ----------------------

def words(tmp):
    path = tmp / "words.txt"
    path.write_text("some words to learn from " * 20)
    return path


def logged_run(folder):
    folder.mkdir(exist_ok=True)
    (folder / "log.jsonl").write_text(json.dumps({"event": "train", "step": 1, "loss": 2.0}) + "\n")
    return folder


# command -> (what its output path must be, argv given that path and a scratch folder)
WRITERS = {
    "pretrain": ("folder", lambda p, tmp: ["pretrain", "--preset", "tiny", "--device", "cpu", "--out", p]),
    "finetune": ("folder", lambda p, tmp: ["finetune", "--recipe", "full", "--device", "cpu", "--out", p]),
    "tokenizer": ("file", lambda p, tmp: ["tokenizer", "--text", str(words(tmp)), "--vocab", "260", "--out", p]),
    "data": ("file", lambda p, tmp: ["data", "qa", "--examples", "2", "--out", p]),
    "evaluate": ("file", lambda p, tmp: ["evaluate", "--model", "base", "--task", "qa", "--device", "cpu",
                                         "--out", p]),
    "plot": ("file", lambda p, tmp: ["plot", str(logged_run(tmp / "run")), "--out", p]),
    "report": ("file", lambda p, tmp: ["report", str(fake_run(tmp / "run")), "--out", p]),
    "bench": ("file", lambda p, tmp: ["bench", "--only", "train", "--device", "cpu", "--json", p]),
    "experiment strategies": ("folder", lambda p, tmp: ["experiment", "strategies", "--device", "cpu", "--out", p]),
    "experiment lr-sweep": ("folder", lambda p, tmp: ["experiment", "lr-sweep", "--device", "cpu", "--out", p]),
    "demo": ("folder", lambda p, tmp: ["demo", "--device", "cpu", "--out", p]),
    "notebooks": ("folder", lambda p, tmp: ["notebooks", "--out", p]),
    "course figures": ("folder", lambda p, tmp: ["course", "figures", "--out", p]),
}


@pytest.fixture
def no_work(monkeypatch):
    """The first costly step of every writing command fails the test: the path check must come before it
    (and a command whose check went missing fails here in a moment instead of training for minutes)."""
    import minift.bench
    import minift.bundle
    import minift.course
    import minift.experiment
    import minift.finetune
    import minift.pretrain
    import minift.tasks
    from minift.tokenizer import Tokenizer

    def work(*args, **kwargs):
        raise AssertionError("work started before the output path was checked")

    for module, name in [(minift.pretrain, "corpus_texts"), (minift.finetune, "start_bundle"),
                         (minift.bundle, "load_model"), (minift.experiment, "load_model"),
                         (minift.bench, "bench_train"), (minift.tasks, "load_examples"),
                         (minift.course, "parse_cells")]:
        monkeypatch.setattr(module, name, work)
    monkeypatch.setattr(Tokenizer, "train", classmethod(work))


def refuse_writes_into(folder, monkeypatch):
    """A read-only ``folder``, simulated: the tests may run as root, whom a chmod does not stop."""
    import tempfile

    real_mkstemp = tempfile.mkstemp

    def mkstemp(*args, dir=None, **kwargs):
        if dir is not None and str(dir) == str(folder):
            raise PermissionError(13, "Permission denied")
        return real_mkstemp(*args, dir=dir, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)


def listing(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("case", ["wrong kind", "unwritable"])
@pytest.mark.parametrize("command", list(WRITERS))
def test_every_writing_command_refuses_an_unusable_output_path_at_once(command, case, tmp_path, capsys,
                                                                        monkeypatch, no_work):
    kind, argv = WRITERS[command]
    if case == "wrong kind":  # a file where a folder is expected, or a folder where a file is expected
        target = tmp_path / "taken"
        if kind == "folder":
            target.write_text("kept")
        else:
            target.mkdir()
            (target / "keep.txt").write_text("kept")
        out, named = target, target
        problem = "is a file, not a folder" if kind == "folder" else "is a folder, not a file"
    else:  # a folder that cannot be written: the --out folder itself, or the folder that would hold the file
        target = tmp_path / "readonly"
        target.mkdir()
        (target / "old.txt").write_text("kept")
        refuse_writes_into(target, monkeypatch)
        out, named = (target if kind == "folder" else target / "out.file"), target
        problem = "cannot write into the"
    def content():
        return listing(target) if target.is_dir() else target.read_bytes()

    before = content()
    err, _ = one_line_error(argv(str(out), tmp_path), capsys)
    assert f"{named}: {problem}" in err, err
    if case == "unwritable":
        assert err.endswith("(Permission denied)"), err
    assert content() == before  # nothing already there is lost, and no probe or temp file is left


@pytest.mark.parametrize("command", ["plot", "evaluate"])
def test_a_command_writing_into_an_unwritable_input_folder_is_refused_at_once(command, tmp_path, capsys,
                                                                              monkeypatch, no_work):
    # plot writes RUN/loss.svg and evaluate (without --out) writes its report into the model's folder.
    folder = logged_run(tmp_path / "run")
    (folder / "loss.svg").write_text("<svg>old</svg>")
    before = listing(folder)
    refuse_writes_into(folder, monkeypatch)
    argv = ["plot", str(folder)] if command == "plot" else ["evaluate", "--model", str(folder), "--task", "qa"]
    err, _ = one_line_error(argv, capsys)
    assert f"{folder}: cannot write into the " in err and err.endswith("(Permission denied)"), err
    assert listing(folder) == before


# --- a full disk: the write is refused, the previous file is kept -------------------------------------

def disk_full(monkeypatch):
    """Every fsync fails with ENOSPC, as a full disk reports it once the data must reach the disk."""
    import errno
    import os

    def fsync(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", fsync)


@pytest.mark.parametrize("command", ["report", "data"])
def test_a_full_disk_is_one_line_and_keeps_the_previous_file(command, tmp_path, capsys, monkeypatch):
    run_dir = fake_run(tmp_path / "run")
    if command == "report":
        target, argv = run_dir / "report.md", ["report", str(run_dir)]
    else:
        target, argv = run_dir / "qa.jsonl", ["data", "qa", "--examples", "2", "--out", str(run_dir / "qa.jsonl")]
    target.write_text("the previous version")
    before = listing(run_dir)
    disk_full(monkeypatch)
    err, _ = one_line_error(argv, capsys)
    assert f"{target}: cannot write (No space left on device)" in err, err
    assert listing(run_dir) == before  # the old file as it was, and no temp file left behind


# --- recipe fields refused before training ------------------------------------------------------------

@pytest.mark.parametrize("stage, message", [
    ('optimizer = "adam"', "stages[0].optimizer = 'adam': unknown optimizer; allowed: adamw, sgd"),
    ("l1 = -0.5", "stages[0].l1 = -0.5: must be >= 0"),
    ("momentum = 0.9", "stages[0].momentum = 0.9: only an 'sgd' stage uses it"),
])
def test_finetune_with_a_bad_optimizer_field_is_one_line_exit_2_before_training(tmp_path, capsys, stage, message,
                                                                                monkeypatch):
    import minift.finetune

    def no_training(*args, **kwargs):  # reached only if the recipe got through
        raise AssertionError("training started")

    monkeypatch.setattr(minift.finetune, "run_recipe", no_training)
    recipe = tmp_path / "bad.toml"
    recipe.write_text(f'[[stages]]\nstrategy = "full"\n{stage}\n')
    err, out = one_line_error(["finetune", "--recipe", str(recipe), "--out", str(tmp_path / "run")], capsys)
    assert f"{recipe}: {message}" in err and out == ""
    assert not (tmp_path / "run").exists()


def test_the_lr_sweeps_help_states_the_defaults_lr_sweep_applies(capsys):
    # The CLI passes lr-sweep's flags only when given; the help text repeats the library's defaults.
    import inspect

    from minift import experiment

    with pytest.raises(SystemExit):
        main(["experiment", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    sig = inspect.signature(experiment.lr_sweep).parameters
    scales = ",".join(f"{x:g}" for x in sig["scales"].default)
    assert sig["scales"].default == experiment.SWEEP_SCALES == (0.3, 1.0, 3.0)
    assert f"at least 3 (default: {scales})" in text
    assert f"0: never (default: {sig['extend'].default})" in text and sig["extend"].default == experiment.SWEEP_EXTEND
    assert f"the one seed it runs (default: {sig['seed'].default})" in text
    assert f"scored on (default: {sig['val_limit'].default})" in text and sig["val_limit"].default == 100
