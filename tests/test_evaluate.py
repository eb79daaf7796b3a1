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
  go on, and generation stops at exactly the step where the last row finished.

The scripted model is a ``GPT`` subclass with a tiny config whose ``embed`` and ``forward_embeds``
are replaced by a bigram table: at every position the logits strongly favour ``NEXT[token]``.
Everything around it is the library's own code: ``GPT.generate`` (KV cache, padding masks, eos
handling), ``GPT._pick``, and ``generate_text``'s tokenizing, cutting, sorting, batching and decoding.
Tokens are bytes (a tokenizer without merges), so each character is one id and the script can be
written as words.
"""

import pytest
import torch
import torch.nn.functional as F

from minift import metrics
from minift.checkpoint import ModelBundle, load_model
from minift.evaluate import evaluate_examples, generate_text, teacher_forced_loss
from minift.model import GPT, GPTConfig
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

    def embed(self, idx):
        x = torch.zeros(*idx.shape, self.config.n_embd)
        x[..., 0] = idx.float()  # carry the id itself (exact in float32 for ids < 2**24)
        return x

    def forward_embeds(self, x, positions=None, key_padding_mask=None, cache=None):
        ids = x[..., 0].round().long()
        B, T = ids.shape
        past = cache.length if cache is not None else 0
        if positions is None:
            positions = torch.arange(past, past + T)
        if int(positions.max()) >= self.config.block_size:  # the real model refuses this too
            raise ValueError(f"position {int(positions.max())} is beyond block_size {self.config.block_size}")
        if past == 0:
            for r in range(B):
                real = key_padding_mask[r, -T:] if key_padding_mask is not None else torch.ones(T, dtype=torch.bool)
                self.windows.append(ids[r][real].tolist())
        if cache is not None:
            cache.length += T
        return self.table[ids]


def scripted_bundle(block_size=BLOCK):
    return ModelBundle(ScriptedGPT(block_size).eval(), TOK)


def ids_of(text):
    return TOK.encode(text)


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


# --- evaluate_examples ----------------------------------------------------------------------------------
def text_example(i, prompt, completion):
    return make_example("text", {"prompt": prompt, "completion": completion}, f"test:{i}")


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
