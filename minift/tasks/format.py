"""From an example to tokens, and the loss mask that grades only what the model must write.

A fine-tuning example is a *prompt* and a *completion*. For translation:

    prompt     = "English: the cat sleeps.\\nFrench:"
    completion = " le chat dort."

Both are tokenized and joined, with <|endoftext|> at the end so the model learns to stop:

    ids      = p0 p1 ... p(n-1) c0 c1 ... c(m-1) eot                 n + m + 1 tokens
    inputs   = ids[:-1]                                              (T,) with T = n + m
    targets  = ids[1:], but -100 wherever the token to predict is part of the prompt

    position t:  0    1   ...  n-2    n-1   n   ...  n+m-1
    input:       p0   p1  ...  p(n-2) p(n-1) c0  ... c(m-1)
    target:    -100 -100  ... -100    c0     c1  ... eot

The model still *reads* the prompt (attention sees every input), but ``lm_loss`` ignores targets of
-100, so the gradient only asks for the completion: the model is not trained to reproduce the
English, only to write the French. ``tests/test_tasks.py`` checks this mask on a worked example.

Batches are right-padded with <|pad|>: a causal model never looks right, so real tokens never see
the padding, and padded positions get target -100.

Too long for the block? The policy is: cut the *prompt* from the left (the end of the prompt,
next to the answer, matters most), never the completion, and count how often it happened. An
example whose completion alone does not fit is skipped and counted.

Templates leave the *style* out on purpose: a summary prompt ends with "Summary:" whether a
headline or a sentence is wanted. Choosing the style is the job of the fine-tuned model, or of a
soft prompt per style (``prompt_tuning.py``, tutorial 08): that is what the hybrid schedule teaches.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

TEMPLATES = {
    "translation": ("English: {source}\nFrench:", " {target}"),
    "summarization": ("Story: {document}\nSummary:", " {summary}"),
    "qa": ("Context: {context}\nQuestion: {question}\nAnswer:", " {answer}"),
    "text": ("{prompt}", "{completion}"),
}


def format_example(task: str, fields: dict) -> tuple[str, str]:
    """(prompt, completion) strings for one example of ``task`` (fields as in the JSONL)."""
    prompt_template, completion_template = TEMPLATES[task]
    return prompt_template.format(**fields), completion_template.format(**fields)


@dataclass
class EncodedExample:
    ids: list[int]  # prompt tokens + completion tokens + eot
    n_prompt: int  # how many of ids are the prompt
    truncated: bool = False  # the prompt was cut from the left to fit
    prompt_name: str | None = None  # the soft prompt this example uses, if any


def encode_example(tokenizer, prompt: str, completion: str, max_len: int,
                   prompt_name: str | None = None) -> EncodedExample | None:
    """Tokenize and fit into ``max_len + 1`` ids (inputs are ids[:-1], so max_len positions).

    Returns None when the completion (+ eot) alone leaves no room for one prompt token.
    """
    p = tokenizer.encode(prompt)
    c = tokenizer.encode(completion) + [tokenizer.eot_id]
    room = max_len + 1 - len(c)  # ids may be max_len + 1 long
    if room < 1:
        return None
    truncated = len(p) > room
    if truncated:
        p = p[-room:]  # keep the end of the prompt, right next to the answer
    return EncodedExample(ids=p + c, n_prompt=len(p), truncated=truncated, prompt_name=prompt_name)


@dataclass
class Batch:
    input_ids: torch.Tensor  # (B, T) long, right-padded with pad_id
    targets: torch.Tensor  # (B, T) long, -100 on prompt and padding positions
    attention_mask: torch.Tensor  # (B, T) bool, True on real tokens
    prompt_names: list = field(default_factory=list)  # (B,) soft prompt name or None per row

    def to(self, device) -> "Batch":
        return Batch(self.input_ids.to(device, non_blocking=True), self.targets.to(device, non_blocking=True),
                     self.attention_mask.to(device, non_blocking=True), self.prompt_names)

    def pin_memory(self) -> "Batch":
        """Page-locked host memory makes the copy to a CUDA GPU asynchronous."""
        return Batch(self.input_ids.pin_memory(), self.targets.pin_memory(),
                     self.attention_mask.pin_memory(), self.prompt_names)


def collate(examples: list[EncodedExample], pad_id: int) -> Batch:
    """Right-pad a list of encoded examples into a Batch with shifted, masked targets."""
    T = max(len(e.ids) - 1 for e in examples)
    B = len(examples)
    input_ids = torch.full((B, T), pad_id, dtype=torch.long)
    targets = torch.full((B, T), -100, dtype=torch.long)
    attention_mask = torch.zeros(B, T, dtype=torch.bool)
    for row, e in enumerate(examples):
        ids = torch.tensor(e.ids, dtype=torch.long)
        n = len(e.ids) - 1
        input_ids[row, :n] = ids[:-1]
        attention_mask[row, :n] = True
        # targets[t] = ids[t + 1], graded only from the last prompt position on (it predicts c0).
        targets[row, e.n_prompt - 1: n] = ids[e.n_prompt:]
    return Batch(input_ids, targets, attention_mask, [e.prompt_name for e in examples])
