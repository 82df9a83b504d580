"""Scoring text with a language model: per item, then over all items, like KenLM's ``query``.

Each input line is one item, normalized by the rules its vocabulary carries (the corpus's ingest
rules), so raw text scores as the pipeline's own splits do; a line ingest would reject is reported
with its reason instead of being scored. The summary's ``loss`` is the mean negative log-likelihood
per predicted token (every token after <s>, </s> included) and ``bits_per_char`` divides the total
in bits by the characters covered (each item's end counted as one): the numbers of ``metrics/``.
"""

import math

import numpy as np

from .data import encode_split
from .evaluation import summarize
from .text import EMPTY

LN2 = math.log(2)


def normalize_line(vocab, raw):
    """``(item, None)`` or ``(None, (reason, detail))``: the vocabulary's rules, or a bare strip without."""
    if vocab.normalization is not None:
        return vocab.normalization.apply(raw)
    text = raw.strip()
    return (text, None) if text else (None, (EMPTY, "blank line"))


def score_lines(lm, lines):
    """``(records, summary)`` for the texts ``lines``: one record per line (scored or rejected)."""
    vocab = lm.vocab
    records, kept = [], []
    for number, raw in enumerate(lines, start=1):
        item, problem = normalize_line(vocab, raw)
        if problem is not None:
            records.append({"line": number, "text": raw, "rejected": problem[0], "detail": problem[1]})
        else:
            kept.append(len(records))
            records.append({"line": number, "text": item})
    split = encode_split(vocab, [records[i]["text"] for i in kept])
    nll = lm.target_losses(split) if len(split) else np.empty(0)
    ends = np.cumsum(split.lengths - 1)
    for i, end, targets, chars in zip(kept, ends.tolist(), (split.lengths - 1).tolist(), split.chars.tolist()):
        total = float(nll[end - targets:end].sum())
        records[i].update({"logprob_nats": -total, "logprob_bits": -total / LN2, "tokens": targets,
                           "perplexity": math.exp(total / targets) if total / targets < 700 else math.inf,
                           "bits_per_char": total / LN2 / chars, "oov": vocab.unknown_tokens(records[i]["text"])})
    summary = {"summary": True, "items": len(kept), "rejected": len(records) - len(kept)}
    if kept:
        total = float(nll.sum())
        unknown = int(sum(len(records[i]["oov"]) for i in kept))
        result = summarize(total, 0, int(split.num_targets), int(split.chars.sum()))
        summary |= {"tokens": result["tokens"], "oov_tokens": unknown, "logprob_nats": -total,
                    "logprob_bits": -total / LN2, "loss": result["loss"], "perplexity": result["perplexity"],
                    "bits_per_char": result["bits_per_char"]}
    return records, summary
