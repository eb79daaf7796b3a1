"""Generation-based evaluation: let the model write, then score what it wrote.

Validation *loss* says how likely the model finds the reference; a task *metric* says how good
what the model actually writes is. They disagree more than one would think (tutorial 10, section 5,
``python tutorials/10_evaluation.py``: fine-tuning on 300 translation pairs, the validation loss is
lowest at step 80, at 14.2 BLEU, then rises while BLEU goes on to 19.7 at step 140), so minift
measures both.

Decoding, batched:
    1. tokenize each prompt; cut it from the left so prompt + answer fit the block;
    2. left-pad the batch (B, T) with an attention mask, so every row's last prompt token is at
       the same column and one ``generate`` call serves all rows;
    3. greedy decoding (temperature 0) with the KV cache, each row stopping at <|endoftext|>;
    4. decode the new tokens and compare with the references using the task's metrics.

Rows may use different soft prompts, prefixes (or none) in the same batch: ``prompt.build_prefix``
and ``prompt.build_prefix_kv`` left-pad them and the model's masks keep rows apart.

Used by ``minift evaluate``, by every stage of ``minift finetune`` (metrics after each stage) and by
tutorial 10.
"""
from __future__ import annotations

import torch

from minift import metrics
from minift.model import lm_loss
from minift.tasks import MAIN_METRIC, TASK_METRICS, collate, encode_example


def metric_scores(task: str, predictions: list[str], references: list[str]) -> dict:
    """The task's metrics, 0–100."""
    if task == "translation":
        return {"bleu": metrics.bleu(predictions, references)}
    if task == "summarization":
        return metrics.rouge(predictions, references)
    return metrics.squad(predictions, references)


def choose_prompt(bundle, example) -> str | None:
    """The soft prompt an example uses by default: one named after its subset, else its task."""
    for name in (example.subset, example.task):
        if name is not None and name in bundle.prompts:
            return name
    return None


def row_prompt_names(bundle, examples, prompt_names="auto") -> list:
    """One soft-prompt name (or None) per example: "auto" chooses by subset, a name or None is for all."""
    if prompt_names == "auto":
        return [choose_prompt(bundle, e) for e in examples]
    if prompt_names is None or isinstance(prompt_names, str):
        return [prompt_names] * len(examples)
    return list(prompt_names)


def generate_text(bundle, texts: list[str], max_new_tokens: int = 64, prompt_names=None,
                  temperature: float = 0.0, top_k: int | None = None, batch_size: int = 32) -> list[str]:
    """Continue each text; returns only the new text, cut at <|endoftext|>."""
    from minift.errors import MiniftError
    from minift.strategies.prompt import build_prefix, build_prefix_kv

    model, tok = bundle.model, bundle.tokenizer
    model.eval()
    device = model.transformer.wte.weight.device
    names = list(prompt_names) if prompt_names is not None else [None] * len(texts)
    for name in names:
        if name is not None and name not in bundle.prompts:
            known = ", ".join(sorted(bundle.prompts)) or "none"
            raise MiniftError(f"no soft prompt named '{name}' in this model (it has: {known})")
    encoded = [tok.encode(t) for t in texts]
    order = sorted(range(len(texts)), key=lambda i: len(encoded[i]))  # similar lengths batch well
    outputs = [""] * len(texts)
    for start in range(0, len(order), batch_size):
        rows = order[start: start + batch_size]
        row_names = [names[i] for i in rows]
        prefix, prefix_mask = build_prefix(bundle.prompts, row_names, device=device)  # soft prompts' rows
        prefix_kv, kv_mask = build_prefix_kv(bundle.prompts, row_names, model.config.n_head, device=device)
        P = 0 if prefix is None else prefix.size(1)  # a prefix takes no positions: only soft prompts count
        room = max(1, model.config.block_size - P - max_new_tokens)
        ids = [encoded[i][-room:] or [tok.eot_id] for i in rows]
        T = max(len(x) for x in ids)
        idx = torch.full((len(rows), T), tok.pad_id, dtype=torch.long)
        mask = torch.zeros(len(rows), T, dtype=torch.bool)
        for r, x in enumerate(ids):
            idx[r, T - len(x):] = torch.tensor(x)
            mask[r, T - len(x):] = True
        out = model.generate(idx.to(device), max_new_tokens, temperature=temperature, top_k=top_k,
                             eos_id=tok.eot_id, prefix_embeds=prefix, attention_mask=mask.to(device),
                             prefix_mask=prefix_mask, prefix_kv=prefix_kv, prefix_kv_mask=kv_mask)
        for r, i in enumerate(rows):
            new = out[r, T:].tolist()
            if tok.eot_id in new:
                new = new[: new.index(tok.eot_id)]
            outputs[i] = tok.decode(new).strip()
    return outputs


def max_new_tokens_for(tokenizer, examples, cap: int) -> int:
    """Room for the longest reference in the set, plus a margin, within ``cap``."""
    longest = max(len(tokenizer.encode(" " + e.reference)) for e in examples)
    return max(4, min(cap, int(longest * 1.5) + 4))


def evaluate_examples(bundle, examples, prompt_names="auto", batch_size: int = 32,
                      max_new_tokens: int | None = None, n_samples: int = 5) -> dict:
    """Generate for every example and score: {"task", "n", "metrics", "main_metric", "samples"}."""
    task = examples[0].task
    prompt_names = row_prompt_names(bundle, examples, prompt_names)
    if max_new_tokens is None:
        max_new_tokens = max_new_tokens_for(bundle.tokenizer, examples, cap=bundle.model.config.block_size // 2)
    predictions = generate_text(bundle, [e.prompt for e in examples], max_new_tokens, prompt_names,
                                batch_size=batch_size)
    references = [e.reference for e in examples]
    scores = metric_scores(task, predictions, references)
    samples = [{"prompt": e.prompt, "reference": e.reference, "prediction": p, "subset": e.subset,
                "soft_prompt": name}
               for e, p, name in list(zip(examples, predictions, prompt_names))[:n_samples]]
    return {"task": task, "n": len(examples), "metrics": scores, "main_metric": MAIN_METRIC[task],
            "samples": samples, "metric_names": list(TASK_METRICS[task])}


def teacher_forced_loss(bundle, examples, prompt_names="auto", batch_size: int = 32) -> float:
    """Mean loss per graded token on the examples' completions (the validation loss)."""
    from minift.strategies.prompt import forward_with_prompts

    model, tok = bundle.model, bundle.tokenizer
    device = model.transformer.wte.weight.device
    prompt_names = row_prompt_names(bundle, examples, prompt_names)
    # Every row gets room for the widest prompt in use: a batch that mixes rows with and without a
    # prompt is left-padded to that width (prompt.build_prefix), whatever each row uses. A state's
    # ``positions`` is what it takes of the block: P for a soft prompt, 0 for a prefix.
    widest = max((bundle.prompts[n].positions for n in prompt_names if n is not None), default=0)
    encoded = []
    for e, name in zip(examples, prompt_names):
        enc = encode_example(tok, e.prompt, e.completion, model.config.block_size - widest, prompt_name=name)
        if enc is not None:
            encoded.append(enc)
    total, count = 0.0, 0
    for start in range(0, len(encoded), batch_size):
        batch = collate(encoded[start: start + batch_size], tok.pad_id).to(device)
        with torch.no_grad():  # (a with-block, not a decorator: tests/mutation.py can then mutate this function)
            logits = forward_with_prompts(model, bundle.prompts, batch.input_ids, batch.prompt_names)
        n = int((batch.targets != -100).sum())
        if n:  # a batch with nothing graded has no loss (lm_loss is 0 / 0 there), not a NaN one
            total += float(lm_loss(logits, batch.targets)) * n
            count += n
    return total / max(count, 1)
