"""Scoring text with a language model: per item, then over all items, like KenLM's ``query``.

Each input line is one item, normalized by the rules its vocabulary carries (the corpus's ingest
rules), so raw text scores as the pipeline's own splits do; a line ingest would reject is reported
with its reason instead of being scored. The summary's ``loss`` is the mean negative log-likelihood
per predicted token (every token after <s>, </s> included) and ``bits_per_char`` divides the total
in bits by the characters covered (each item's end counted as one): the numbers of ``metrics/``.

Input lines are split and decoded as the ingest stage reads a raw file (``rnnlm.ingest.decode_lines``):
a line that is not valid UTF-8 is one rejected record (``invalid_utf8``), and the others are scored.
``printable_tokens`` writes an item as its tokens separated by spaces, for tools that read whitespace
tokens beside the ARPA file (KenLM, SRILM: ``rnnlm tokenize``).

A stream model (one long text, its vocabulary's ``stream``) reads the input as one text instead
(``score_stream``): its lines keep their newlines, which are tokens, and the whole text is scored from
a zero state exactly as the evaluate stage scores a split, so scoring ``data/splits/<corpus>/test.txt``
gives the stage's test loss.
"""

import math

import numpy as np

from .arpa import arpa_token
from .data import encode_split, encode_stream
from .ingest import NOT_UTF8
from .results import summarize
from .text import EMPTY

LN2 = math.log(2)


def normalize_line(vocab, raw):
    """``(item, None)`` or ``(None, (reason, detail))``: the vocabulary's rules, or a bare strip without.

    ``raw`` is the line's text, or its bytes where it is not valid UTF-8 (``rnnlm.ingest.decode_lines``
    gives such a line no text): rejected as ``invalid_utf8``, as the ingest stage rejects it.
    """
    if isinstance(raw, bytes):
        return None, NOT_UTF8
    if vocab.normalization is not None:
        return vocab.normalization.apply(raw)
    text = raw.strip()
    return (text, None) if text else (None, (EMPTY, "blank line"))


def read_items(vocab, lines):
    """One record per line of ``lines`` (texts, or bytes for a line that is not UTF-8), numbered from 1:
    ``{"line", "text"}`` holding the normalized item, or ``{"line", "text", "rejected", "detail"}``
    holding the line as written (undecodable bytes shown as U+FFFD) and why ingest would reject it."""
    records = []
    for number, raw in enumerate(lines, start=1):
        item, problem = normalize_line(vocab, raw)
        if problem is None:
            records.append({"line": number, "text": item})
        else:
            text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else raw
            records.append({"line": number, "text": text, "rejected": problem[0], "detail": problem[1]})
    return records


def score_stream(lm, lines):
    """``(records, summary)`` of an input read as one stream: ``lines`` are its lines, each with its newline
    (``rnnlm.textstream.decode_stream_lines``), or the bytes of a line that is not valid UTF-8, which is a
    rejected record (line number and reason) and is left out of the text, as the ingest stage leaves it out.
    The summary has ``score_lines``' fields, over the one stream (``items`` 1)."""
    records, kept = [], []
    for number, line in enumerate(lines, start=1):
        if isinstance(line, bytes):
            records.append({"line": number, "text": line.decode("utf-8", errors="replace"),
                            "rejected": NOT_UTF8[0], "detail": NOT_UTF8[1]})
        else:
            kept.append(line)
    text = "".join(kept)
    summary = {"summary": True, "items": 1 if text else 0, "rejected": len(records)}
    if text:
        split = encode_stream(lm.vocab, text)
        total = float(lm.target_losses(split).sum())
        result = summarize(total, 0, int(split.num_targets), int(split.chars.sum()))
        # <unk> targets, less the text's own literal <unk> tokens (WikiText's): those are not words train lacks
        unseen = int((split.tokens[1:] == lm.vocab.unk_id).sum()) - lm.vocab.own_unk_count([text])
        summary |= {"tokens": result["tokens"], "oov_tokens": unseen,
                    "logprob_nats": -total, "logprob_bits": -total / LN2, "loss": result["loss"],
                    "perplexity": result["perplexity"], "bits_per_char": result["bits_per_char"]}
    return records, summary


def printable_tokens(vocab, item):
    """One normalized item as the model reads it, for other tools: its tokens joined by single spaces.

    Each token is written as the ARPA file writes it (``rnnlm.arpa.arpa_token``: whitespace inside a
    token, such as a char-level space, becomes ``<U+0020>``), so KenLM or SRILM, which split on
    whitespace, read back exactly the model's tokens; a token the vocabulary lacks is printed as
    written, and such a reader maps it to ``<unk>`` as the model does.
    """
    return " ".join(arpa_token(token) for token in vocab.token_strings(item))


def score_lines(lm, lines):
    """``(records, summary)`` for the texts ``lines`` (see ``read_items``): one record per line
    (scored or rejected)."""
    vocab = lm.vocab
    records = read_items(vocab, lines)
    kept = [i for i, record in enumerate(records) if "rejected" not in record]
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
