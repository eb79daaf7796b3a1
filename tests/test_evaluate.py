"""Evaluation and sampling, pinned on models whose next token is known in advance.

What this file pins, and against what:

* ``generate_text`` hands each prompt's continuation back to that prompt, whatever the batching
  (prompts are sorted by length and split into batches): on a scripted model, against the
  continuation the script dictates, and on a tiny real model, against each prompt generated alone;
* the continuation is cut at the first <|endoftext|>;
* a prompt longer than the room (block_size - prefix - max_new_tokens) is cut from the LEFT: the
  model reads exactly the prompt's last ``room`` tokens;
* ``evaluate_examples`` scores exactly those outputs: EM/F1 computed by hand for a constructed case
  where swapping two predictions, or keeping what follows <|endoftext|>, changes the score;
* ``teacher_forced_loss`` is the mean over graded tokens, not the mean of batch means: against
  the per-token mean computed by hand from each example's logits alone;
* ``GPT._pick`` on known logits: top_k = 1 is argmax; only the top k ids are ever drawn;
  temperature divides the logits (empirical frequencies of many seeded draws against
  softmax(logits / T), within a stated bound, and entropy falls as T falls);
* ``GPT.generate``: a row that emitted the end-of-text id keeps emitting it while the other rows
  go on, and generation stops at exactly the step where the last row finished;
* soft prompts in ``generate_text``: each row reads its own prompt (or none) in a mixed batch, the
  unused prefix slots are masked, the prompt's length is taken from the text's room, an unknown
  name is an error that names it and the prompts there are;
* how the work is cut: prompts of similar length share a batch, 32 rows at a time by default,
  ``top_k`` reaches the sampler, at least one prompt token is always read, and generation stops
  once every row has ended (on the scripted model's record of what it was asked to read);
* the glue of ``evaluate_examples``: the whole report (keys, samples, soft prompt per row chosen by
  subset, else task), ``max_new_tokens_for`` on worked lengths, ``metric_scores`` on the worked
  examples of ``minift/metrics.py``, ``row_prompt_names`` and ``choose_prompt``;
* ``teacher_forced_loss`` with soft prompts: every row is cut to the room the widest prompt leaves,
  against each example scored alone by hand; an empty completion is graded on its end-of-text.

The scripted model is a ``GPT`` subclass with a tiny config whose ``embed`` and ``forward_embeds``
are replaced by a bigram table: at every position the logits strongly favour ``NEXT[token]``.
Everything around it is the library's own code: ``GPT.generate`` (KV cache, padding masks, eos
handling), ``GPT._pick``, and ``generate_text``'s tokenizing, cutting, sorting, batching and decoding.
Tokens are bytes (a tokenizer without merges), so each character is one id and the script can be
written as words. A scripted soft prompt is a few vectors that carry a trigger character and a flag
saying "prompt": the model reads a "?" in the text of a prompted row as that trigger, so the row
writes the trigger's word; without a prompt "?" is off the script.
"""

import math

import pytest
import torch
import torch.nn.functional as F

from minift import metrics
from minift.bundle import ModelBundle, load_model
from minift.errors import MiniftError
from minift.evaluate import (choose_prompt, evaluate_examples, generate_text, max_new_tokens_for, metric_scores,
                             row_prompt_names, teacher_forced_loss)
from minift.model import GPT, GPTConfig
from minift.strategies.prompt import SoftPrompt
from minift.tasks import encode_example
from minift.tasks.data import make_example
from minift.tokenizer import Tokenizer

TOK = Tokenizer({bytes([i]): i for i in range(256)})  # one byte = one id; eot 256, pad 257
EOT = TOK.eot_id
BLOCK = 32
# The script: a trigger character at the end of the prompt is followed by a word, then <|endoftext|>.
# All letters are distinct, so one bigram table can hold every chain.
WORDS = {"A": "dog", "B": "cat", "C": "fish", "L": "plumber"}
AFTER_EOT = "xyz"  # what the script writes after <|endoftext|>: shows up only if a cut or a pad is missing
FILLER = "-"  # not in the script: its successor is "~", then "~" forever
PLACEHOLDER = "?"  # not in the script either; a prompted row reads it as its prompt's trigger


def script() -> dict[int, int]:
    nxt = {}
    chains = [[ord(t)] + [ord(c) for c in w] + [EOT] for t, w in WORDS.items()]
    chains.append([EOT] + [ord(c) for c in AFTER_EOT] + [EOT])
    for chain in chains:
        for a, b in zip(chain, chain[1:]):
            assert nxt.get(a, b) == b, "the script must be a function of the last token"
            nxt[a] = b
    return nxt


class ScriptedGPT(GPT):
    """A GPT whose logits follow the script: next token = NEXT[last token], with a margin of 20."""

    def __init__(self, block_size=BLOCK):
        super().__init__(GPTConfig(vocab_size=TOK.vocab_size, block_size=block_size, n_layer=1, n_head=1, n_embd=4))
        table = torch.full((TOK.vocab_size, TOK.vocab_size), -10.0)
        table[:, ord("~")] = 10.0  # anything off the script is followed by "~"
        for a, b in script().items():
            table[a] = -10.0
            table[a, b] = 10.0
        self.register_buffer("table", table)
        self.windows = []  # the real token ids of each row the first time the model reads a batch
        self.reads = []  # (rows, slots) of each batch the first time the model reads it
        self.calls = 0  # forward passes; with the KV cache, one per generated token

    def embed(self, idx):
        x = torch.zeros(*idx.shape, self.config.n_embd)
        x[..., 0] = idx.float()  # carry the id itself (exact in float32 for ids < 2**24)
        return x

    def forward_embeds(self, x, positions=None, key_padding_mask=None, cache=None, return_hidden=False,
                       prefix_kv=None):
        assert not return_hidden, "the script has logits, not hidden states"
        assert prefix_kv is None, "the script knows no key/value prefix"
        self.calls += 1
        ids = x[..., 0].round().long()
        is_prompt = x[..., 1] > 0.5  # a soft prompt's vectors carry the flag; tokens and padding do not
        B, T = ids.shape
        past = cache.length if cache is not None else 0
        if positions is None:
            positions = torch.arange(past, past + T)
        if int(positions.max()) >= self.config.block_size:  # the real model refuses this too
            raise ValueError(f"position {int(positions.max())} is beyond block_size {self.config.block_size}")
        if past == 0:
            self.reads.append((B, T))
            for r in range(B):
                real = key_padding_mask[r, -T:] if key_padding_mask is not None else torch.ones(T, dtype=torch.bool)
                self.windows.append(ids[r][real].tolist())
        if cache is not None:
            cache.length += T
        logits = self.table[ids]
        for r in range(B):
            if is_prompt[r].any():  # "?" stands for the trigger that the row's prompt carries
                trigger = int(ids[r][is_prompt[r]][0])
                logits[r, ids[r] == ord(PLACEHOLDER)] = self.table[trigger]
        return logits


def scripted_prompt(trigger, n_tokens):
    """A soft prompt of n_tokens vectors, each carrying the id of ``trigger`` and the prompt flag."""
    weight = torch.zeros(n_tokens, 4)
    weight[:, 0] = ord(trigger)
    weight[:, 1] = 1.0
    return SoftPrompt.from_weight(weight)


# Two prompts of different lengths, so a batch that mixes them pads the shorter one.
PROMPTS = {"b": ("B", 3), "c": ("C", 2)}


def scripted_bundle(block_size=BLOCK, prompts=None):
    prompts = {name: scripted_prompt(t, n) for name, (t, n) in (prompts or {}).items()}
    return ModelBundle(ScriptedGPT(block_size).eval(), TOK, prompts=prompts)


def ids_of(text):
    return TOK.encode(text)


def text_example(i, prompt, completion, subset=None):
    record = {"prompt": prompt, "completion": completion}
    if subset is not None:
        record["subset"] = subset
    return make_example("text", record, f"test:{i}")


# --- generate_text ------------------------------------------------------------------------------------
def test_batched_outputs_come_back_to_their_own_prompts():
    # Lengths 5, 1, 3, 8, 1, 4, 1: sorting by length reorders them, batch_size 3 splits them into
    # three batches, the last one short. Each answer is fixed by its prompt's last character.
    texts = ["----A", "L", "--B", "-------C", "A", "---L", "B"]
    got = generate_text(scripted_bundle(), texts, max_new_tokens=10, batch_size=3)
    assert got == [WORDS[t[-1]] for t in texts]


@pytest.fixture(scope="module")
def tiny_bundle(tiny_setup):
    return load_model(tiny_setup / "base")


def test_batched_generation_on_a_real_model_equals_each_prompt_alone(tiny_bundle):
    texts = ["English: the cat sees the dog.\nFrench:", "the fish", "English: the bird sees the tree.\nFrench: le",
             "le livre voit", "English: the dog sees the book.\nFrench: le chien voit le", "the"]
    alone = [generate_text(tiny_bundle, [t], max_new_tokens=6, batch_size=1)[0] for t in texts]
    assert len(set(alone)) >= 3  # the prompts get different answers, so a mix-up would show
    assert generate_text(tiny_bundle, texts, max_new_tokens=6, batch_size=4) == alone


def test_generation_is_cut_at_the_first_end_of_text():
    bundle = scripted_bundle()
    # "A" writes "dog", <|endoftext|>; "L" writes the longer "plumber", so the "A" row is padded
    # with end-of-text ids for four more steps. Nothing from <|endoftext|> on may reach the text.
    assert generate_text(bundle, ["A"], max_new_tokens=10) == ["dog"]
    assert generate_text(bundle, ["A", "L"], max_new_tokens=10) == ["dog", "plumber"]


def test_a_prompt_longer_than_the_room_is_cut_from_the_left():
    bundle = scripted_bundle()
    max_new = 10
    room = BLOCK - 0 - max_new  # no soft prompt: 22 tokens of prompt fit
    long = "C" + FILLER * 40 + "A"  # its end says "dog"; its beginning would say "fish" or "~"
    got = generate_text(bundle, [long, "B"], max_new_tokens=max_new, batch_size=2)
    assert got == ["dog", "cat"]
    # The model read exactly the last `room` tokens of the long prompt (and all of the short one).
    assert sorted(bundle.model.windows) == sorted([ids_of(long)[-room:], ids_of("B")])


def test_each_row_reads_its_own_soft_prompt_in_a_mixed_batch():
    # One batch mixes prompt "b" (3 vectors, trigger B), prompt "c" (2 vectors, trigger C) and no
    # prompt. "?" becomes the row's trigger: "cat" under "b", "fish" under "c", off the script ("~")
    # without a prompt. "A" needs no prompt to write "dog", whatever prompt it has.
    bundle = scripted_bundle(prompts=PROMPTS)
    texts, names = ["--?", "?", "-?", "A"], ["b", "c", None, "b"]
    got = generate_text(bundle, texts, max_new_tokens=5, prompt_names=names, batch_size=4)
    assert got == ["cat", "fish", "~" * 5, "dog"]
    # What each row read: its own prompt's vectors, then its text; the prefix slots a row does not
    # use (one for "c", all three without a prompt) are masked, so the model never reads them.
    B, C = ord("B"), ord("C")
    assert sorted(bundle.model.windows) == sorted([[B] * 3 + ids_of("--?"), [C] * 2 + ids_of("?"),
                                                   ids_of("-?"), [B] * 3 + ids_of("A")])


def test_a_soft_prompt_takes_its_length_from_the_room_of_the_text():
    bundle = scripted_bundle(prompts=PROMPTS)
    max_new = 10
    room = BLOCK - 3 - max_new  # prompt "b" holds 3 positions: 19 tokens of text fit, for every row
    long = "C" + FILLER * 40 + PLACEHOLDER
    got = generate_text(bundle, [long, "B"], max_new_tokens=max_new, prompt_names=["b", None], batch_size=2)
    assert got == ["cat", "cat"]
    assert sorted(bundle.model.windows) == sorted([[ord("B")] * 3 + ids_of(long)[-room:], ids_of("B")])


def test_an_unknown_soft_prompt_is_an_error_that_names_it_and_the_known_ones():
    with pytest.raises(MiniftError) as info:
        generate_text(scripted_bundle(prompts=PROMPTS), ["A", "B"], prompt_names=[None, "zz"])
    assert "'zz'" in str(info.value) and "(it has: b, c)" in str(info.value)
    with pytest.raises(MiniftError) as info:
        generate_text(scripted_bundle(), ["A"], prompt_names=["b"])
    assert "'b'" in str(info.value) and "(it has: none)" in str(info.value)


def test_prompts_of_similar_length_share_a_batch():
    # Lengths 2, 7, 2, 7 in batches of 2: sorted by length, each batch holds two prompts of the same
    # length, so no row is padded (in the given order, every batch would be 7 slots wide).
    bundle = scripted_bundle()
    texts = ["-A", "------B", "-B", "------A"]
    assert generate_text(bundle, texts, max_new_tokens=10, batch_size=2) == ["dog", "cat", "cat", "dog"]
    assert bundle.model.reads == [(2, 2), (2, 7)]


def test_the_default_batch_is_32_rows_and_a_report_keeps_5_samples():
    examples = [text_example(i, "A", "dog") for i in range(33)]
    bundle = scripted_bundle()
    assert generate_text(bundle, ["A"] * 33, max_new_tokens=5) == ["dog"] * 33
    assert [rows for rows, _ in bundle.model.reads] == [32, 1]

    bundle = scripted_bundle()
    report = evaluate_examples(bundle, examples)
    assert [rows for rows, _ in bundle.model.reads] == [32, 1]
    assert report["n"] == 33 and len(report["samples"]) == 5

    bundle = scripted_bundle()
    teacher_forced_loss(bundle, examples)
    assert [rows for rows, _ in bundle.model.reads] == [32, 1]


def test_the_default_is_64_new_tokens():
    # "-" is followed by "~" forever: only the token budget ends it (a block of 128 leaves room).
    assert generate_text(scripted_bundle(block_size=128), [FILLER]) == ["~" * 64]


def test_top_k_reaches_the_sampler():
    # At temperature 1000 the script's margin of 20 shrinks to 0.02: drawing from all 258 ids is
    # close to uniform, while top_k = 1 still draws the script's token.
    texts, words = list(WORDS), list(WORDS.values())
    torch.manual_seed(0)
    assert generate_text(scripted_bundle(), texts, max_new_tokens=10, temperature=1000.0, top_k=1) == words
    assert generate_text(scripted_bundle(), texts, max_new_tokens=10, temperature=1000.0) != words


def test_generation_stops_at_the_step_where_the_last_row_ends():
    # "L" writes "plumber" and <|endoftext|>: 8 steps, one forward pass each with the KV cache, of
    # the budget of 20 (the script would go on writing "xyz" after <|endoftext|>).
    bundle = scripted_bundle()
    assert generate_text(bundle, ["A", "L"], max_new_tokens=20) == ["dog", "plumber"]
    assert bundle.model.calls == 8


def test_a_budget_that_fills_the_block_still_reads_the_last_prompt_token():
    # block_size - max_new_tokens = 0: the room is one token, the prompt's last one.
    bundle = scripted_bundle()
    assert generate_text(bundle, ["BA"], max_new_tokens=BLOCK) == ["dog"]
    assert bundle.model.windows[0] == ids_of("A")


# --- evaluate_examples ----------------------------------------------------------------------------------
def test_the_metric_is_computed_from_exactly_the_generated_outputs():
    # The model writes dog / cat / fish. References: dog, cat, "fish cake".
    #   exact match: 100, 100, 0                       -> 200 / 3
    #   F1: 100, 100, and for "fish" vs "fish cake": precision 1, recall 1/2, F1 = 2/3 -> 66.67
    #       mean (100 + 100 + 200/3) / 3 = 800 / 9
    examples = [text_example(0, "----A", "dog"), text_example(1, "B", "cat"), text_example(2, "--C", "fish cake")]
    references = [e.reference for e in examples]
    # The construct tells the right outputs from a swap and from an uncut end-of-text.
    right = metrics.squad(["dog", "cat", "fish"], references)
    assert right == pytest.approx({"exact_match": 200 / 3, "f1": 800 / 9})
    assert metrics.squad(["cat", "dog", "fish"], references)["f1"] < 30
    assert metrics.squad(["dog<|endoftext|>", "cat", "fish"], references)["exact_match"] < 50

    report = evaluate_examples(scripted_bundle(), examples, batch_size=2)
    assert report["metrics"] == pytest.approx({"exact_match": 200 / 3, "f1": 800 / 9})
    assert report["n"] == 3 and report["main_metric"] == "f1"
    assert [(s["prompt"], s["prediction"]) for s in report["samples"]] == [
        ("----A", "dog"), ("B", "cat"), ("--C", "fish")]


def test_the_report_holds_every_sample_with_the_soft_prompt_chosen_by_subset_else_task():
    # Prompts "b" and "text" (trigger C). By default a row takes the prompt named after its subset,
    # else the one named after its task:  "--?" (subset b) -> b -> "cat";  "?" (no subset) -> text
    # -> "fish";  "-A" (subset zz, no such prompt) -> text -> "dog", against "dog food".
    bundle = scripted_bundle(prompts={"b": ("B", 3), "text": ("C", 2)})
    examples = [text_example(0, "--?", "cat", subset="b"), text_example(1, "?", "fish"),
                text_example(2, "-A", "dog food", subset="zz")]
    report = evaluate_examples(bundle, examples, batch_size=2)
    assert report == {
        "task": "text", "n": 3, "main_metric": "f1", "metric_names": ["exact_match", "f1"],
        # EM 100, 100, 0; F1 100, 100 and 2/3 for "dog" against "dog food" (P 1, R 1/2).
        "metrics": pytest.approx({"exact_match": 200 / 3, "f1": 800 / 9}),
        "samples": [
            {"prompt": "--?", "reference": "cat", "prediction": "cat", "subset": "b", "soft_prompt": "b"},
            {"prompt": "?", "reference": "fish", "prediction": "fish", "subset": None, "soft_prompt": "text"},
            {"prompt": "-A", "reference": "dog food", "prediction": "dog", "subset": "zz", "soft_prompt": "text"},
        ]}
    assert [rows for rows, _ in bundle.model.reads] == [2, 1]  # batch_size reaches generation

    # prompt_names=None: no row gets a prompt, so "?" is off the script. The token budget is then
    # what ends those rows: the longest reference, " dog food", is 9 tokens, 9 * 1.5 + 4 = 17, cut to
    # half the block, 16.
    report = evaluate_examples(scripted_bundle(prompts={"b": ("B", 3), "text": ("C", 2)}), examples,
                               prompt_names=None)
    assert [(s["prediction"], s["soft_prompt"]) for s in report["samples"]] == [
        ("~" * 16, None), ("~" * 16, None), ("dog", None)]


def test_a_translation_is_scored_by_bleu():
    # One example (the task is read from it): its prompt ends "French:", off the script, so the
    # model writes "~"s and BLEU is 0; what is pinned is that BLEU, and only BLEU, is computed.
    example = make_example("translation", {"source": "the cat", "target": "le chat"}, "test:0")
    report = evaluate_examples(scripted_bundle(), [example])
    assert report["task"] == "translation" and report["n"] == 1
    assert report["metrics"] == {"bleu": 0.0}
    assert report["main_metric"] == "bleu" and report["metric_names"] == ["bleu"]


def test_metric_scores_route_each_task_to_its_metric():
    # The worked examples of minift/metrics.py.
    assert metric_scores("translation", ["the cat sat on the mat"], ["the cat is on the mat"]) == pytest.approx(
        {"bleu": 100 / 48 ** 0.25})
    assert metric_scores("summarization", ["sat the cat"], ["the cat sat"]) == pytest.approx(
        {"rouge1": 100.0, "rouge2": 50.0, "rougeL": 200 / 3})
    for task in ("qa", "text"):
        assert metric_scores(task, ["in Paris, France"], ["Paris"]) == pytest.approx({"exact_match": 0.0, "f1": 50.0})


def test_the_token_budget_is_one_and_a_half_times_the_longest_reference_plus_four():
    # " ab" and " abcd" are 3 and 5 byte tokens: int(5 * 1.5) + 4 = 7 + 4 = 11, within the cap;
    # a cap below that wins, but the budget never falls under 4.
    examples = [text_example(0, "x", "ab"), text_example(1, "y", "abcd")]
    assert max_new_tokens_for(TOK, examples, cap=100) == 11
    assert max_new_tokens_for(TOK, examples, cap=9) == 9
    assert max_new_tokens_for(TOK, examples, cap=2) == 4
    assert max_new_tokens_for(TOK, [text_example(0, "x", "")], cap=100) == 5  # " ": 1 token, 1 + 4


def test_row_prompt_names_auto_by_subset_else_task_one_name_for_all_or_one_per_row():
    bundle = scripted_bundle(prompts={"b": ("B", 3), "text": ("C", 2)})
    examples = [text_example(0, "p", "c", subset="b"), text_example(1, "p", "c"),
                text_example(2, "p", "c", subset="zz")]
    assert row_prompt_names(bundle, examples) == ["b", "text", "text"]  # "auto" is the default
    assert row_prompt_names(bundle, examples, "b") == ["b", "b", "b"]
    assert row_prompt_names(bundle, examples, None) == [None, None, None]
    assert row_prompt_names(bundle, examples, ("text", None, "b")) == ["text", None, "b"]
    # Without a prompt named after the task, a row whose subset has none gets none.
    only_b = scripted_bundle(prompts={"b": ("B", 3)})
    assert [choose_prompt(only_b, e) for e in examples] == ["b", None, None]


# --- teacher_forced_loss --------------------------------------------------------------------------------
def test_validation_loss_is_the_mean_over_graded_tokens_not_over_batches():
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=TOK.vocab_size, block_size=64, n_layer=1, n_head=2, n_embd=16)).eval()
    with torch.no_grad():
        model.transformer.wte.weight.mul_(40)  # a confident model: per-token losses spread widely
    # Completions of 1 to 40 characters; batch_size 2 makes batches of 2, 2 and 1 examples.
    pairs = [("ab", "c"), ("hello ", "a long answer that has forty characters!"), ("xyz", "uvw"),
             ("q", "twenty-five characters ok"), ("to", "be")]
    examples = [text_example(i, p, c) for i, (p, c) in enumerate(pairs)]
    bundle = ModelBundle(model, TOK)

    # By hand, one example at a time: -log p(target) summed over the graded positions.
    sums, counts = [], []
    for e in examples:
        enc = encode_example(TOK, e.prompt, e.completion, model.config.block_size)
        ids = torch.tensor(enc.ids)
        with torch.no_grad():
            logp = F.log_softmax(model(ids[:-1][None])[0].double(), dim=-1)
        graded = range(enc.n_prompt - 1, len(enc.ids) - 1)  # the positions that predict the completion + eot
        sums.append(-sum(float(logp[t, ids[t + 1]]) for t in graded))
        counts.append(len(graded))
    per_token = sum(sums) / sum(counts)
    batch_means = [sum(sums[i:i + 2]) / sum(counts[i:i + 2]) for i in (0, 2, 4)]
    assert abs(per_token - sum(batch_means) / 3) > 0.1  # the two averages really differ here

    assert teacher_forced_loss(bundle, examples, batch_size=2) == pytest.approx(per_token, rel=1e-5)
    # The batch size changes only how the work is cut up, not the number.
    assert teacher_forced_loss(bundle, examples, batch_size=5) == pytest.approx(per_token, rel=1e-5)


def test_a_batch_with_nothing_graded_adds_nothing_to_the_validation_loss(monkeypatch):
    """lm_loss is 0/0 = NaN on a batch with no graded position; the mean over graded tokens skips it."""
    import minift.evaluate as ev
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=TOK.vocab_size, block_size=64, n_layer=1, n_head=2, n_embd=16)).eval()
    examples = [text_example(i, p, c) for i, (p, c) in enumerate([("ab", "c"), ("xyz", "uvw"), ("to", "be")])]
    bundle = ModelBundle(model, TOK)
    expected = teacher_forced_loss(bundle, examples[1:], batch_size=1)
    real_collate, calls = ev.collate, []

    def collate(encoded, pad_id):
        batch = real_collate(encoded, pad_id)
        calls.append(1)
        if len(calls) == 1:  # the first batch (example 0): every position ungraded
            batch.targets.fill_(-100)
        return batch

    monkeypatch.setattr(ev, "collate", collate)
    got = teacher_forced_loss(bundle, examples, batch_size=1)
    assert math.isfinite(got) and got == pytest.approx(expected, rel=1e-6)


def test_an_empty_completion_is_graded_on_its_end_of_text():
    # One graded token: after "-" the script puts 10 on "~" and -10 on the other 257 ids, the
    # end-of-text id among them, so its loss is 20 + log(1 + 257 e^-20).
    loss = teacher_forced_loss(scripted_bundle(), [text_example(0, FILLER, "")])
    assert loss == pytest.approx(20 + math.log1p(257 * math.exp(-20)), rel=1e-6)


def summed_loss(model, prompt, completion, keep, prefix=None):
    """(-log p of the completion and eot, their count) for the last ``keep`` + 1 ids, read alone
    after the prefix vectors, at positions 0, 1, ...: the reference, written without the library's
    cutting and batching."""
    ids = (TOK.encode(prompt) + TOK.encode(completion) + [EOT])[-(keep + 1):]
    n_graded = len(TOK.encode(completion)) + 1
    x = model.embed(torch.tensor(ids[:-1])[None])
    P = 0
    if prefix is not None:
        P = prefix.size(0)
        x = torch.cat([prefix[None], x], 1)
    with torch.no_grad():
        logp = F.log_softmax(model.forward_embeds(x)[0, P:].double(), dim=-1)
    T = len(ids) - 1
    return -sum(float(logp[t, ids[t + 1]]) for t in range(T - n_graded, T)), n_graded


def test_validation_loss_with_soft_prompts_cuts_every_row_to_the_room_of_the_widest():
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=TOK.vocab_size, block_size=24, n_layer=1, n_head=2, n_embd=16)).eval()
    with torch.no_grad():
        model.transformer.wte.weight.mul_(40)
    prompt = SoftPrompt.from_weight(torch.randn(3, 16))  # 3 vectors: width 16 would cut far more
    bundle = ModelBundle(model, TOK, prompts={"p": prompt})
    # Both prompts are longer than the block; "p" is chosen by subset, the other row has none.
    examples = [text_example(0, "the first prompt is longer than the block", "abc", subset="p"),
                text_example(1, "and the second prompt is longer than it too", "de")]
    # With "p" in the batch, both rows keep 24 - 3 = 21 positions; the prompted row reads "p" first.
    s0, n0 = summed_loss(model, examples[0].prompt, "abc", 21, prefix=prompt.weight.detach())
    s1, n1 = summed_loss(model, examples[1].prompt, "de", 21)
    assert teacher_forced_loss(bundle, examples, batch_size=2) == pytest.approx((s0 + s1) / (n0 + n1), rel=1e-5)
    # No prompt at all: both rows keep the whole block of 24.
    s0, n0 = summed_loss(model, examples[0].prompt, "abc", 24)
    s1, n1 = summed_loss(model, examples[1].prompt, "de", 24)
    assert teacher_forced_loss(bundle, examples, prompt_names=None, batch_size=2) == pytest.approx(
        (s0 + s1) / (n0 + n1), rel=1e-5)


# --- GPT._pick on known logits --------------------------------------------------------------------------
LOGITS = torch.tensor([2.0, 1.0, 0.0, -1.0, 0.5, -2.0])
N_DRAWS = 20_000
# Each empirical frequency has a standard deviation of at most sqrt(0.25 / N) = 0.0035;
# a bound of 0.02 is more than 5 of them, so a correct sampler fails it with odds below 1e-6 per
# frequency, while the wrong temperature moves frequencies by 0.1 or more.
TOLERANCE = 0.02


def frequencies(temperature, top_k=None, seed=0, logits=LOGITS):
    g = torch.Generator().manual_seed(seed)
    ids = GPT._pick(logits.expand(N_DRAWS, -1), temperature, top_k, g)
    return torch.bincount(ids, minlength=logits.numel()).double() / N_DRAWS


def entropy(p):
    p = p[p > 0]
    return float(-(p * p.log()).sum())


def test_top_k_one_and_temperature_zero_are_argmax():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(64, 50, generator=g)
    for temperature in (0.5, 1.0, 3.0):
        assert torch.equal(GPT._pick(logits, temperature, 1, g), logits.argmax(-1))
    assert torch.equal(GPT._pick(logits, 0.0, None, g), logits.argmax(-1))


def test_only_the_top_k_ids_are_ever_drawn_in_softmax_proportions():
    k, temperature = 3, 1.5
    freq = frequencies(temperature, top_k=k)
    top = set(torch.topk(LOGITS, k).indices.tolist())  # ids 0, 1, 4
    drawn = set(torch.nonzero(freq).flatten().tolist())
    assert drawn == top  # never outside the top k, and every one of them is drawn
    expected = torch.zeros_like(freq)
    idx = torch.tensor(sorted(top))
    expected[idx] = torch.softmax(LOGITS[idx].double() / temperature, dim=0)  # renormalised over the k
    assert (freq - expected).abs().max() < TOLERANCE


def test_temperature_sharpens_below_one_and_flattens_above():
    freqs = {}
    for temperature in (0.5, 1.0, 2.0):
        freqs[temperature] = frequencies(temperature, seed=int(temperature * 10))
        expected = torch.softmax(LOGITS.double() / temperature, dim=0)
        assert (freqs[temperature] - expected).abs().max() < TOLERANCE, temperature
    assert entropy(freqs[0.5]) < entropy(freqs[1.0]) < entropy(freqs[2.0])
    assert freqs[0.5][0] > freqs[1.0][0] > freqs[2.0][0]  # the favourite gains as T falls


# --- GPT.generate: padding finished rows and stopping ------------------------------------------------------
def test_a_finished_row_keeps_emitting_eos_and_generation_stops_when_the_last_row_is_done():
    model = ScriptedGPT().eval()
    idx = torch.tensor([[ord("A")], [ord("L")]])
    for use_cache in (True, False):
        out = model.generate(idx, max_new_tokens=20, temperature=0.0, eos_id=EOT, use_cache=use_cache)
        # Row 0 ends "dog" at step 4 and is padded with eos (the script alone would go on "xyz");
        # row 1 writes "plumber" and ends at step 8: the output has exactly 1 + 8 columns.
        assert out[0].tolist() == [ord("A")] + ids_of("dog") + [EOT] * 5
        assert out[1].tolist() == [ord("L")] + ids_of("plumber") + [EOT]
    # Without an eos id nothing stops early, and the script shows what padding suppressed.
    free = model.generate(idx, max_new_tokens=7, temperature=0.0)
    assert free[0].tolist() == [ord("A")] + ids_of("dog") + [EOT] + ids_of("xyz")


def test_sampled_generation_pads_and_stops_the_same_way():
    # With a margin of 20 in the logits, sampling at T = 1 follows the script too (p > 1 - 1e-6).
    model = ScriptedGPT().eval()
    g = torch.Generator().manual_seed(0)
    out = model.generate(torch.tensor([[ord("B")], [ord("C")]]), 20, temperature=1.0, eos_id=EOT, generator=g)
    assert out.tolist() == [[ord("B")] + ids_of("cat") + [EOT, EOT], [ord("C")] + ids_of("fish") + [EOT]]
