"""Sampling from a trained model: temperature, top-k, greedy decoding, prompts; sample statistics."""

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
    """

    def __init__(self, model):
        self.model = model.eval()
        self.device = next(model.parameters()).device
        self.hidden = None

    def start(self, ids, n):
        logits, self.hidden = self.model(torch.tensor([ids] * n, device=self.device))  # (n, P, V)
        # Draws happen on the CPU (with the caller's CPU generator), so a seed gives the same
        # samples from the same scores whatever device computed them.
        return logits[:, -1].float().cpu()

    def step(self, tokens):
        logits, self.hidden = self.model(tokens.unsqueeze(1).to(self.device), self.hidden)
        return logits[:, -1].float().cpu()


@torch.no_grad()
def sample_ids(stepper, vocab, n, ids, temperature=1.0, top_k=None, max_tokens=30, greedy=False, generator=None):
    """``n`` continuations of the token ids ``ids`` (starting with <s>) until </s> or ``max_tokens``.

    Returns one list of new token ids per row, without the </s>. <s>, <pad> and <unk> (which
    stands for no particular token) are never drawn.
    """
    last = stepper.start(ids, n)
    out = [[] for _ in range(n)]
    done = torch.zeros(n, dtype=torch.bool)
    never = torch.tensor([vocab.bos_id, vocab.pad_id, vocab.unk_id])
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
             generator=None):
    """Continue ``prompt`` ``n`` times until the end token or ``max_tokens`` new tokens.

    Returns the texts (prompt included). Special tokens are never emitted as text: <s>, <pad> and
    <unk> (which stands for no particular token) are never sampled, and a sequence stops at </s>.
    """
    ids = vocab.encode(prompt)[:-1] if prompt else [vocab.bos_id]  # drop the prompt's </s>
    rows = sample_ids(ModelStepper(model), vocab, n, ids, temperature, top_k, max_tokens, greedy, generator)
    return join_text(vocab, ids, rows)


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
