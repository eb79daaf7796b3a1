"""The course's autograder, ``minift grade`` (``minift/grade.py``), and the stubs of tutorials/exercises/.

What this pins:
- the shipped stubs load (their signatures are the grader's) and fail every check with the line
  "not implemented: <the stub's message>";
- minift's own pieces, placed in a copy of the stubs, pass every check; so do pieces written by hand
  from the stubs' docstrings (the exercises can be solved as stated);
- one planted bug per exercise, and more (a wrong scale, a missing mask, an off-by-one,
  ignore_index not ignored, bias correction missing, overlapping pairs merged wrongly, warmup off by
  one, the wrong block frozen, the prompt after the text, unclipped counts, F1 without
  normalisation, ...), each a one-line change to the hand-written solution, fails the check meant
  to catch it;
- bad input (a missing file, a syntax error, a wrong signature, a function that raises) is a FAIL
  line per check naming the exercise and what happened, exit 1, no traceback; misuse (an unknown
  exercise, --path not a folder) exits 2; results go to stdout only, and a rerun prints the same.

The checks themselves live in minift/grade.py only; this file imports them.
"""
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from minift import grade
from minift.cli import main

STUBS = Path(__file__).resolve().parent.parent / "tutorials" / "exercises"
RAISE = "    raise NotImplementedError("


def place(folder: Path, name: str, body: str, header: str = "") -> Path:
    """Copy the stub of ``name`` into ``folder`` with its ``raise NotImplementedError(...)`` (the last
    statement of the file) replaced by ``body``; ``header`` goes just before the function."""
    stub = (STUBS / f"{name}.py").read_text(encoding="utf-8")
    assert stub.count(RAISE) == 1, name
    source = stub[:stub.index(RAISE)] + textwrap.indent(textwrap.dedent(body).strip() + "\n", "    ")
    if header:
        function = grade.EXERCISES[name].function
        at = source.index(f"def {function}(")
        source = source[:at] + textwrap.dedent(header).strip() + "\n\n\n" + source[at:]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.py"
    path.write_text(source, encoding="utf-8")
    return path


# --- minift's own pieces, each called from its stub ------------------------------------------------
MINIFT = {
    "attention": ("import torch.nn.functional as F", """
        return F.scaled_dot_product_attention(q, k, v, is_causal=causal)  # minift's sdpa path
    """),
    "block": ("", "return block(x, mask=mask)"),
    "cross_entropy": ("from minift.loss import linear_cross_entropy", """
        V = logits.size(-1)  # hidden = the logits, head = the identity
        return linear_cross_entropy(logits.reshape(-1, V), torch.eye(V), targets.reshape(-1),
                                    ignore_index=ignore_index)
    """),
    "adamw": ("from minift.optim import AdamW", """
        param = torch.nn.Parameter(p.clone())
        opt = AdamW([param], lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, foreach=False)
        param.grad = grad.clone()
        opt.state[param] = {"step": t - 1, "exp_avg": m.clone(), "exp_avg_sq": v.clone()}
        opt.step()
        return param.detach(), opt.state[param]["exp_avg"], opt.state[param]["exp_avg_sq"]
    """),
    # Bound at import: the grader swaps minift.tokenizer.merge_pair for this function while it trains.
    "bpe_merge": ("from minift.tokenizer import merge_pair as minift_merge_pair",
                  "return minift_merge_pair(word, a, b)"),
    "lr_schedule": ("from minift.optim import lr_at as minift_lr_at",
                    "return minift_lr_at(step, max_lr, warmup_steps, total_steps, min_lr_ratio)"),
    "freezing": ("from minift.strategies.layers import freeze_blocks as minift_freeze_blocks",
                 "return minift_freeze_blocks(model, keep)"),
    "soft_prompt": ("from types import SimpleNamespace\n\nfrom minift.strategies.prompt import forward_with_prompts",
                    """
        # A SoftPrompt would copy the tensor; this stand-in holds the very tensor, so its gradient is ours.
        # kind and positions: what forward_with_prompts asks every per-row state (a soft prompt is "input").
        soft = SimpleNamespace(weight=prompt, n_tokens=prompt.size(0), n_embd=prompt.size(1), kind="input",
                               positions=prompt.size(0))
        return forward_with_prompts(model, {"p": soft}, input_ids, ["p"] * input_ids.size(0), attention_mask)
    """),
    "bleu_precision": ("from minift.metrics import bleu_details", """
        details = bleu_details([" ".join(hypothesis)], [" ".join(reference)])
        return details["counts"][n - 1], details["totals"][n - 1]
    """),
    "squad_f1": ("from minift.metrics import token_f1 as minift_token_f1",
                 "return minift_token_f1(prediction, answer)"),
}

# --- the same pieces written by hand from the stubs' docstrings --------------------------------------
HAND = {
    "attention": """
        T = q.size(-2)
        scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))
        if causal:
            allowed = torch.ones(T, T, dtype=torch.bool).tril()
            scores = scores.masked_fill(~allowed, float("-inf"))
        return torch.softmax(scores, dim=-1) @ v
    """,
    "block": """
        x = x + block.attn(block.ln_1(x), mask=mask)
        x = x + block.mlp(block.ln_2(x))
        return x
    """,
    "cross_entropy": """
        V = logits.size(-1)
        logits, targets = logits.reshape(-1, V).float(), targets.reshape(-1)
        graded = targets != ignore_index
        safe = torch.where(graded, targets, torch.zeros_like(targets))
        lse = torch.logsumexp(logits, dim=-1)
        picked = logits.gather(1, safe[:, None]).squeeze(1)
        losses = torch.where(graded, lse - picked, torch.zeros_like(lse))
        return losses.sum() / graded.sum().clamp(min=1)
    """,
    "adamw": """
        b1, b2 = betas
        p = p * (1 - lr * weight_decay)
        m = b1 * m + (1 - b1) * grad
        v = b2 * v + (1 - b2) * grad * grad
        m_hat = m / (1 - b1 ** t)
        v_hat = v / (1 - b2 ** t)
        p = p - lr * m_hat / (v_hat.sqrt() + eps)
        return p, m, v
    """,
    "bpe_merge": """
        out, i = [], 0
        while i < len(word):
            if i + 1 < len(word) and word[i] == a and word[i + 1] == b:
                out.append(a + b)
                i += 2
            else:
                out.append(word[i])
                i += 1
        return out
    """,
    "lr_schedule": """
        min_lr = min_lr_ratio * max_lr
        if step < warmup_steps:
            return max_lr * (step + 1) / warmup_steps
        if step >= total_steps:
            return min_lr
        q = (step - warmup_steps) / (total_steps - warmup_steps)
        return min_lr + 0.5 * (max_lr - min_lr) * (1 + math.cos(math.pi * q))
    """,
    "freezing": """
        L = len(model.transformer.h)
        blocks = {i % L for i in keep}
        names = []
        for name, p in model.named_parameters():
            trained = name.startswith("transformer.h.") and int(name.split(".")[2]) in blocks
            p.requires_grad_(trained)
            if trained:
                names.append(name)
        return names
    """,
    "soft_prompt": """
        from minift.model import positions_from_mask

        B, T = input_ids.shape
        P = prompt.size(0)
        text = model.embed(input_ids)
        x = torch.cat([prompt.unsqueeze(0).expand(B, -1, -1), text], dim=1)
        real = positions = None
        if attention_mask is not None:
            real = torch.cat([torch.ones(B, P, dtype=torch.bool), attention_mask.to(torch.bool)], 1)
            positions = positions_from_mask(real, P + T, x.device)
        out = model.forward_embeds(x, positions=positions, key_padding_mask=real)
        return out[:, P:]
    """,
    "bleu_precision": """
        hyp = Counter(tuple(hypothesis[i:i + n]) for i in range(len(hypothesis) - n + 1))
        ref = Counter(tuple(reference[i:i + n]) for i in range(len(reference) - n + 1))
        matches = sum(min(count, ref[gram]) for gram, count in hyp.items())
        return matches, sum(hyp.values())
    """,
    "squad_f1": """
        def normalise(s):
            s = "".join(ch for ch in s.lower() if ch not in set(string.punctuation))
            s = re.sub(r"\\b(a|an|the)\\b", " ", s)
            return s.split()

        pred, gold = normalise(prediction), normalise(answer)
        shared = sum((Counter(pred) & Counter(gold)).values())
        if shared == 0:
            return 0.0
        precision, recall = shared / len(pred), shared / len(gold)
        return 100 * 2 * precision * recall / (precision + recall)
    """,
}

# --- planted bugs: (exercise, what, old, new, the check that must catch it) --------------------------
PLANTED = [
    ("attention", "wrong scale 1/hs", "/ math.sqrt(q.size(-1))", "/ q.size(-1)", "values with the causal mask"),
    ("attention", "mask computed but not applied", "scores = scores.masked_fill(", "scores.masked_fill(",
     "no position sees a later one"),
    ("attention", "mask off by one (sees the next token)", ".tril()", ".tril(1)", "no position sees a later one"),
    ("attention", "softmax over the queries", "softmax(scores, dim=-1)", "softmax(scores, dim=-2)",
     "causal=False"),
    ("attention", "softmax without subtracting the max", "torch.softmax(scores, dim=-1)",
     "(scores.exp() / scores.exp().sum(-1, keepdim=True))", "large scores"),
    ("block", "ln_1 before the MLP", "block.mlp(block.ln_2(x))", "block.mlp(block.ln_1(x))", "values equal"),
    ("block", "the mask not passed on", "mask=mask)", "mask=None)", "padding mask"),
    ("block", "no residual around the MLP", "x = x + block.mlp(", "x = block.mlp(", "values equal"),
    ("cross_entropy", "ignore_index not ignored (every position averaged)", "graded.sum().clamp(min=1)",
     "targets.numel()", "targets -100 add nothing"),
    ("cross_entropy", "-100 hard-coded", "graded = targets != ignore_index", "graded = targets != -100",
     "another ignore_index"),
    ("cross_entropy", "no guard for all ignored (0/0)", "graded.sum().clamp(min=1)", "graded.sum()",
     "every target ignored"),
    ("cross_entropy", "naive log-sum-exp", "torch.logsumexp(logits, dim=-1)", "logits.exp().sum(-1).log()",
     "large logits"),
    ("adamw", "bias correction missing", "m_hat = m / (1 - b1 ** t)", "m_hat = m", "the first step"),
    ("adamw", "eps inside the square root", "(v_hat.sqrt() + eps)", "(v_hat + eps).sqrt()", "eps is added after"),
    ("adamw", "coupled L2 instead of decoupled decay", "p = p * (1 - lr * weight_decay)\n",
     "grad = grad + weight_decay * p\n", "decoupled weight decay"),
    ("adamw", "another default weight_decay", "weight_decay=1e-2):", "weight_decay=0.0):", "default hyperparameters"),
    ("bpe_merge", "overlapping pairs reused (i += 1 after a merge)", "i += 2", "i += 1", "overlapping pairs"),
    ("bpe_merge", "bytes matched instead of tokens", "word[i] == a and word[i + 1] == b",
     "word[i] + word[i + 1] == a + b", "several bytes"),
    ("bpe_merge", "the input word rewritten in place",
     "return out\n", "word[:] = out\nreturn out\n", "left unchanged"),
    ("lr_schedule", "warmup off by one", "max_lr * (step + 1) / warmup_steps", "max_lr * step / warmup_steps",
     "warmup: step s"),
    ("lr_schedule", "no floor after total_steps", "    return min_lr\n", "    return 0.0\n", "the floor"),
    ("lr_schedule", "another default min_lr_ratio", "min_lr_ratio=0.1):", "min_lr_ratio=0.0):", "defaults to 0.1"),
    ("freezing", "the wrong block frozen (-1 read as block 1)", "{i % L for i in keep}", "{abs(i) for i in keep}",
     "keep=[-1]"),
    ("freezing", "old flags kept (only True is set)", "p.requires_grad_(trained)",
     "p.requires_grad_(True) if trained else None", "flags set before are overwritten"),
    ("soft_prompt", "the prompt appended after the text", "torch.cat([prompt.unsqueeze(0).expand(B, -1, -1), text]",
     "torch.cat([text, prompt.unsqueeze(0).expand(B, -1, -1)]", "values equal"),
    ("soft_prompt", "the prompt's outputs kept instead of the tokens'", "return out[:, P:]", "return out[:, :T]",
     "values equal"),
    ("soft_prompt", "positions not counted from the mask", "positions = positions_from_mask(real, P + T, x.device)",
     "positions = None", "left padding"),
    ("bleu_precision", "unclipped counts", "min(count, ref[gram])", "(count if ref[gram] else 0)", "clipping"),
    ("bleu_precision", "one n-gram too few (range off by one)", "for i in range(len(hypothesis) - n + 1)",
     "for i in range(len(hypothesis) - n)", "worked example"),
    ("squad_f1", "F1 without normalisation", "pred, gold = normalise(prediction), normalise(answer)",
     "pred, gold = prediction.split(), answer.split()", "normalisation"),
    ("squad_f1", "articles removed inside words", r'r"\b(a|an|the)\b"', 'r"(a|an|the)"', "whole words"),
    ("squad_f1", "a fraction instead of a percentage", "return 100 * 2 * precision", "return 2 * precision",
     "worked example"),
    ("squad_f1", "shared tokens not clipped", "shared = sum((Counter(pred) & Counter(gold)).values())",
     "shared = sum(1 for t in pred if t in gold)", "repeated tokens"),
]


def fails(results):
    return [r for r in results if not r.passed]


def test_every_exercise_has_a_stub_whose_function_has_the_graders_signature():
    assert sorted(p.stem for p in STUBS.glob("*.py")) == sorted(grade.EXERCISES)
    for ex in grade.EXERCISES.values():
        grade.load_function(ex, STUBS)  # raises LoadFailed on a missing function or another signature


def test_the_shipped_stubs_fail_every_check_with_the_not_implemented_line(capsys):
    results = grade.grade()
    assert len(results) == sum(len(ex.checks) for ex in grade.EXERCISES.values()) >= 60
    for r in results:
        function = grade.EXERCISES[r.exercise].function
        assert not r.passed and r.detail.startswith(f"not implemented: write {function}: "), r.line()
    # The stub's own message, as the stub wrote it: the grader adds nothing and cuts nothing.
    assert results[0].line() == ("FAIL attention: " + grade.EXERCISES["attention"].checks[0].title
                                 + ": not implemented: write attention_head: scores q kᵀ/√hs, −∞ above the "
                                   "diagonal if causal, softmax over the keys, times v")
    assert capsys.readouterr().out == ""  # grade() prints nothing; run() does


@pytest.mark.parametrize("solutions", ["minift", "hand"])
def test_solutions_pass_every_check(solutions, tmp_path, capsys):
    for name in grade.EXERCISES:
        if solutions == "minift":
            header, body = MINIFT[name]
            place(tmp_path, name, body, header)
        else:
            place(tmp_path, name, HAND[name])
    code = main(["grade", "--path", str(tmp_path)])
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert [line for line in lines if not line.startswith("PASS ")] == [lines[-1]], captured.out
    n = sum(len(ex.checks) for ex in grade.EXERCISES.values())
    assert lines[-1] == f"score: {n}/{n} checks passed; 10/10 exercises complete"
    assert code == 0 and captured.err == ""


@pytest.mark.parametrize("exercise, what, old, new, caught_by", PLANTED, ids=[f"{p[0]}: {p[1]}" for p in PLANTED])
def test_a_planted_bug_is_caught(exercise, what, old, new, caught_by, tmp_path):
    body = textwrap.dedent(HAND[exercise])
    if old in body:
        assert body.count(old) == 1  # the plant changes exactly one place
        place(tmp_path, exercise, body.replace(old, new))
    else:  # a default in the signature: plant it in the stub's def line
        path = place(tmp_path, exercise, body)
        source = path.read_text(encoding="utf-8")
        assert source.count(old) == 1
        path.write_text(source.replace(old, new), encoding="utf-8")
    failed = fails(grade.grade([exercise], tmp_path))
    assert any(caught_by in r.check for r in failed), (what, [r.line() for r in failed])


def test_every_exercise_has_a_planted_bug():
    assert {p[0] for p in PLANTED} == set(grade.EXERCISES)


def test_the_exercises_readme_lists_every_exercise_as_the_grader_knows_it():
    readme = (STUBS / "README.md").read_text(encoding="utf-8")
    rows = [line for line in readme.splitlines() if line.startswith("| `")]
    assert len(rows) == len(grade.EXERCISES)
    for row, ex in zip(rows, grade.EXERCISES.values()):
        assert row.startswith(f"| `{ex.name}` | `{ex.function}({ex.signature})` | {ex.lesson} | ")
        assert row.endswith(f"| {len(ex.checks)} |"), row
    assert f"{sum(len(ex.checks) for ex in grade.EXERCISES.values())} checks in all" in readme


# --- bad input ---------------------------------------------------------------------------------------
def grade_cli(argv, capsys):
    code = main(argv)
    captured = capsys.readouterr()
    assert "Traceback" not in captured.out + captured.err
    return code, captured.out.splitlines(), captured.err


def test_a_missing_file_fails_every_check_of_its_exercise(tmp_path, capsys):
    code, lines, err = grade_cli(["grade", "squad_f1", "--path", str(tmp_path)], capsys)
    checks = grade.EXERCISES["squad_f1"].checks
    assert code == 1 and err == "" and len(lines) == len(checks) + 1
    for line, check in zip(lines, checks):
        assert line == f"FAIL squad_f1: {check.title}: cannot load: file not found: {tmp_path / 'squad_f1.py'}"
    assert lines[-1] == f"score: 0/{len(checks)} checks passed; 0/1 exercises complete"


@pytest.mark.parametrize("source, message", [
    ("def token_f1(prediction, answer)\n    return 0.0\n", "cannot load: syntax error: * (squad_f1.py, line 1)"),
    ("def token_f1(prediction):\n    return 0.0\n",
     "cannot load: wrong signature: expected token_f1(prediction, answer), got token_f1(prediction)"),
    ("def token_f1(answer, prediction):\n    return 0.0\n",
     "cannot load: wrong signature: expected token_f1(prediction, answer), got token_f1(answer, prediction)"),
    ("def f1(prediction, answer):\n    return 0.0\n", "cannot load: squad_f1.py defines no function token_f1"),
    ("token_f1 = 50.0\n", "cannot load: token_f1 in squad_f1.py is a float, not a function"),
    ("import nothing_of_that_name\n", "cannot load: importing squad_f1.py raised ModuleNotFoundError: "
                                       "No module named 'nothing_of_that_name' (squad_f1.py, line 1)"),
], ids=["syntax error", "a parameter missing", "parameters swapped", "no such function", "not a function",
        "the import fails"])
def test_a_file_that_cannot_be_used_is_one_line_per_check(source, message, tmp_path, capsys):
    (tmp_path / "squad_f1.py").write_text(source, encoding="utf-8")
    code, lines, err = grade_cli(["grade", "squad_f1", "--path", str(tmp_path)], capsys)
    checks = grade.EXERCISES["squad_f1"].checks
    assert code == 1 and err == ""
    head, _, tail = message.partition("*")  # "*": Python's own wording of a syntax error, which varies
    assert len(lines) == len(checks) + 1
    for line, check in zip(lines, checks):
        assert line.startswith(f"FAIL squad_f1: {check.title}: {head}") and line.endswith(tail), line
        assert tail or line == f"FAIL squad_f1: {check.title}: {message}"


def test_a_function_that_raises_names_the_exception_and_the_line(tmp_path, capsys):
    (tmp_path / "squad_f1.py").write_text(
        "def token_f1(prediction, answer):\n    words = prediction.split()\n    return 100 / len(words)\n")
    code, lines, err = grade_cli(["grade", "squad_f1", "--path", str(tmp_path)], capsys)
    assert code == 1 and err == ""
    # The worked example has words, so it runs and is wrong; the empty strings divide by zero.
    assert lines[0].startswith("FAIL squad_f1: the worked example: 'in Paris, France' vs 'Paris' is 50: "
                               "token_f1('in Paris, France', 'Paris') = 33.3333, expected 50")
    empty = next(line for line in lines if "empty after normalisation" in line)
    assert empty.endswith(": raised ZeroDivisionError: division by zero (squad_f1.py, line 3)")


def test_an_endless_loop_is_stopped_and_fails(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(grade, "CHECK_SECONDS", 0.2)
    # i is never advanced past a token that starts no pair: the loop never ends on most words.
    place(tmp_path, "bpe_merge", textwrap.dedent(HAND["bpe_merge"]).replace("        i += 1\n", ""))
    code, lines, err = grade_cli(["grade", "bpe_merge", "--path", str(tmp_path)], capsys)
    assert code == 1 and err == ""
    stopped = [line for line in lines if line.endswith(": still running after 0.2 s: stopped (an endless loop?)")]
    assert len(stopped) >= 4, lines


def test_a_student_changing_its_inputs_in_place_does_not_fool_the_grader(tmp_path, capsys):
    # Correct, but it divides q in place: graded on shared tensors, the reference computed after it
    # would see the divided q and call this solution wrong.
    body = textwrap.dedent(HAND["attention"]).replace("scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))",
                                                      "q /= math.sqrt(q.size(-1))\nscores = q @ k.transpose(-2, -1)")
    place(tmp_path, "attention", body)
    code, lines, err = grade_cli(["grade", "attention", "--path", str(tmp_path)], capsys)
    assert code == 0, lines


def test_what_a_student_prints_stays_off_the_results(tmp_path, capsys):
    place(tmp_path, "squad_f1", 'print("debugging", prediction)\n' + textwrap.dedent(HAND["squad_f1"]))
    code, lines, err = grade_cli(["grade", "squad_f1", "--path", str(tmp_path)], capsys)
    assert code == 0 and all(line.startswith(("PASS ", "score: ")) for line in lines)
    assert "debugging in Paris, France" in err  # the student's own output, on stderr


def test_the_real_command_exits_1_with_nothing_on_stderr(tmp_path):
    (tmp_path / "lr_schedule.py").write_text(
        "def lr_at(step, max_lr, warmup_steps, total_steps, min_lr_ratio=0.1):\n    raise ValueError('no')\n")
    result = subprocess.run([sys.executable, "-m", "minift", "grade", "lr_schedule", "--path", str(tmp_path)],
                            capture_output=True, text=True)
    assert result.returncode == 1 and result.stderr == ""
    assert all(line.endswith("raised ValueError: no (lr_schedule.py, line 2)")
               for line in result.stdout.splitlines()[:-1])


@pytest.mark.parametrize("argv, message", [
    (["grade", "atention"], "unknown exercise 'atention'; the exercises are: " + ", ".join(grade.EXERCISES)),
    (["grade", "--path", "/nonexistent/exercises"], "--path /nonexistent/exercises: not a folder (it does not exist)"),
])
def test_misuse_is_one_line_and_exit_2(argv, message, capsys):
    code, lines, err = grade_cli(argv, capsys)
    assert code == 2 and lines == [] and err.strip() == f"minift: error: {message}"


def test_a_file_given_as_path_is_misuse(tmp_path, capsys):
    (tmp_path / "squad_f1.py").write_text("")
    code, lines, err = grade_cli(["grade", "--path", str(tmp_path / "squad_f1.py")], capsys)
    assert code == 2 and lines == []
    assert err.strip() == f"minift: error: --path {tmp_path / 'squad_f1.py'}: not a folder"


def test_a_rerun_prints_the_same_lines(tmp_path, capsys):
    # A bug whose lines carry numbers (the first difference, its index, the largest difference).
    place(tmp_path, "attention", textwrap.dedent(HAND["attention"]).replace("/ math.sqrt(q.size(-1))", "/ 3.0"))
    first = grade_cli(["grade", "attention", "--path", str(tmp_path)], capsys)
    assert first[0] == 1 and any(": y at index (" in line for line in first[1])
    assert grade_cli(["grade", "attention", "--path", str(tmp_path)], capsys) == first


def test_grade_has_a_help_page(capsys):
    with pytest.raises(SystemExit) as info:
        main(["grade", "--help"])
    out = capsys.readouterr().out
    assert info.value.code == 0 and "usage: minift grade [-h] [--path DIR] [EXERCISE ...]" in out
    assert "autograder" in out and ", ".join(grade.EXERCISES) in " ".join(out.split())


def test_grading_a_copy_of_the_stubs_leaves_no_bytecode_behind(tmp_path):
    shutil.copytree(STUBS, tmp_path / "exercises")
    grade.grade(["lr_schedule"], tmp_path / "exercises")
    assert not (tmp_path / "exercises" / "__pycache__").exists()


def test_grading_leaves_the_callers_random_state_as_it_was():
    # The checks seed torch's generator; a notebook or a test that grades must not find it reseeded.
    import torch

    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    grade.grade(["freezing"])
    assert torch.equal(torch.rand(3), expected)
