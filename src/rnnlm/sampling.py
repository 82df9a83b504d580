"""Sampling from a trained model: temperature, top-k, greedy decoding, prompts; sample statistics.

A prompt is normalized like the corpus by ``prompt_ids``, the one normalizer of the generate stage and
``rnnlm sample``. A stream model (its vocabulary's ``stream``: one long text) never stops at ``</s>``
(its text has none) and keeps every newline; ``stream_sample_statistics`` judges its long samples.
"""

import statistics

import torch


def filter_logits(logits, temperature=1.0, top_k=None):
    """Scale logits by 1/temperature and keep only the ``top_k`` largest (others get -inf)."""
    if temperature <= 0:
        raise ValueError("temperature must be > 0")
    logits = logits / temperature
    if top_k is not None and top_k < logits.size(-1):
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    return logits


class ModelStepper:
    """A neural model (any kind) seen by the sampler: ``start`` a batch of rows on a prefix, then ``step``.

    Both return each row's next-token scores, (n, V) on the CPU: logits here, log-probabilities for
    the n-gram and mixture steppers (``rnnlm.lm``). Any scores equal to log-probabilities up to a
    constant per row will do: temperature, top-k and softmax do not see the constant.

    A kind with a fixed context (``context_limit``: the Transformer's positions) crops it as nanoGPT does:
    when its key/value cache is full, it starts again from the last ``context_limit // 2`` tokens (read
    afresh from position 0), so a sample can run to any length. For a stream Transformer the limit is the
    ``bptt`` it was trained on (``rnnlm.training.positions_for``): it never reads an untrained position.
    """

    def __init__(self, model):
        self.model = model.eval()
        self.device = next(model.parameters()).device
        self.hidden = None
        self.limit = model.context_limit
        self.ids, self.cached = None, 0  # with a limit: every row's tokens so far, and how many the cache holds

    def start(self, ids, n):
        self.ids = torch.tensor([ids] * n, device=self.device)                          # (n, P)
        logits, self.hidden = self.model(self.ids)  # (n, P, V); past the limit, read in windows
        self.cached = len(ids) if self.limit is None else min(len(ids), self.limit)
        # Draws happen on the CPU (with the caller's CPU generator), so a seed gives the same
        # samples from the same scores whatever device computed them.
        return logits[:, -1].float().cpu()

    def step(self, tokens):
        tokens = tokens.unsqueeze(1).to(self.device)                                    # (n, 1)
        if self.limit is None:
            logits, self.hidden = self.model(tokens, self.hidden)
            return logits[:, -1].float().cpu()
        self.ids = torch.cat([self.ids, tokens], dim=1)
        if self.cached < self.limit:
            logits, self.hidden = self.model(tokens, self.hidden)
            self.cached += 1
        else:  # the cache is full: crop to the last limit // 2 tokens and read them afresh
            kept = self.ids[:, -max(1, self.limit // 2):]
            logits, self.hidden = self.model(kept)
            self.cached = kept.shape[1]
        return logits[:, -1].float().cpu()


@torch.no_grad()
def sample_ids(stepper, vocab, n, ids, temperature=1.0, top_k=None, max_tokens=30, greedy=False, generator=None):
    """``n`` continuations of the token ids ``ids`` (starting with <s>) until </s> or ``max_tokens``.

    Returns one list of new token ids per row, without the </s>. <s>, <pad> and <unk> (which
    stands for no particular token) are never drawn; for a stream vocabulary </s> is not either,
    so every row runs to ``max_tokens``.
    """
    last = stepper.start(ids, n)
    out = [[] for _ in range(n)]
    done = torch.zeros(n, dtype=torch.bool)
    never = torch.tensor([vocab.bos_id, vocab.pad_id, vocab.unk_id] + ([vocab.eos_id] if vocab.stream else []))
    for _ in range(max_tokens):
        last = last.clone()
        last[:, never] = float("-inf")
        if greedy:
            nxt = last.argmax(dim=-1)
        else:
            probs = torch.softmax(filter_logits(last, temperature, top_k), dim=-1)
            nxt = torch.multinomial(probs, 1, generator=generator).squeeze(1)
        for row in range(n):
            if not done[row] and nxt[row].item() != vocab.eos_id:
                out[row].append(nxt[row].item())
        done |= nxt == vocab.eos_id
        if done.all():
            break
        last = stepper.step(nxt)
    return out


def prompt_ids(vocab, prompt, warn=None):
    """``(ids, text)`` of a prompt normalized like the corpus (the rules its vocabulary carries), ``<s>``
    first; ``warn`` (optional) gets one line per piece the vocabulary lacks. The one prompt normalizer of
    the generate stage and ``rnnlm sample``."""
    text = vocab.normalization.clean(prompt) if vocab.normalization is not None else prompt.strip()
    if not text:
        return [vocab.bos_id], ""
    what = "character" if vocab.level == "char" else "word"
    for piece in dict.fromkeys(vocab.unknown_tokens(text)):
        if warn is not None:
            warn(f"warning: prompt {what} {piece!r} is not in the model's vocabulary; the model reads it as <unk>")
    return vocab.encode(text)[:-1], text


def join_text(vocab, ids, rows, prefix=None):
    """Texts of the prompt ``ids`` followed by each row of new ids; ``prefix``: the prompt's text
    as the user wrote it (normalized), printed instead of decoding ``ids`` (which may hold <unk>)."""
    if vocab.level == "bpe":  # subword pieces carry their own spaces: decode prompt and continuation together
        return [vocab.decode(ids + row) for row in rows]
    prefix = vocab.decode(ids) if prefix is None else prefix
    sep = "" if vocab.level == "char" or not prefix else " "
    return [prefix + (sep + vocab.decode(row) if row else "") for row in rows]


@torch.no_grad()
def generate(model, vocab, n, prompt="", temperature=1.0, top_k=None, max_tokens=30, greedy=False,
             generator=None, warn=None):
    """Continue ``prompt`` (normalized by ``prompt_ids``) ``n`` times until the end token or ``max_tokens``
    new tokens.

    Returns the texts (prompt included). Special tokens are never emitted as text: <s>, <pad> and
    <unk> (which stands for no particular token) are never sampled, and a sequence stops at </s>.
    """
    ids, text = prompt_ids(vocab, prompt, warn)
    rows = sample_ids(ModelStepper(model), vocab, n, ids, temperature, top_k, max_tokens, greedy, generator)
    return join_text(vocab, ids, rows, prefix=text if text else None)


def sample_statistics(texts, train_items):
    """Statistics of ``texts`` (a list of samples): count, share not in ``train_items``, length in characters.

    The length's standard deviation is recorded beside its mean so that a reader (and the metrics
    gate) can tell how far the mean of this many samples may move when other samples are drawn.
    """
    lengths = [len(text) for text in texts]
    return {
        "samples": len(texts),
        "novel_share": sum(text not in train_items for text in texts) / len(texts),
        "mean_length": statistics.fmean(lengths),
        "std_length": statistics.stdev(lengths) if len(lengths) > 1 else 0.0,
    }


LONG_LINE = 20  # characters: a shorter line ("ROMEO:", "Ay.") is often in the text by chance


def stream_sample_statistics(samples, train_blocks, long_line=LONG_LINE):
    """Statistics of the long samples of stream models: count, length in characters, and how much they copy.

    ``samples``: {kind: its sampled texts}; returns {kind: statistics}. A stream sample is no item that is or
    is not in the training split, so copying is judged line by line: ``long_lines`` counts the sampled lines
    of at least ``long_line`` characters and ``copied_line_share`` is the share of them found verbatim in the
    training text (anywhere: a line of train may be longer). A model that learnt the text's style writes new
    lines; one that memorized it copies them. ``train_blocks``: the training text in pieces that each end at
    a line end (``rnnlm.textstream.file_blocks``), or whole as one piece; a sampled line holds no newline, so
    a copy of it lies inside one line of train and so inside one piece, and the text is never held whole. It
    is read once for every kind, and no further than the last block a line still unfound needs.
    """
    lines = {kind: [line for text in texts for line in text.split("\n") if len(line) >= long_line]
             for kind, texts in samples.items()}
    unseen = set().union(*lines.values())
    for block in train_blocks:
        if not unseen:
            break
        unseen = {line for line in unseen if line not in block}
    stats = {}
    for kind, texts in samples.items():
        lengths = [len(text) for text in texts]
        copied = sum(line not in unseen for line in lines[kind])
        stats[kind] = {
            "samples": len(texts),
            "mean_length": statistics.fmean(lengths),
            "std_length": statistics.stdev(lengths) if len(lengths) > 1 else 0.0,
            "long_lines": len(lines[kind]),
            "copied_line_share": copied / len(lines[kind]) if lines[kind] else 0.0,
        }
    return stats
