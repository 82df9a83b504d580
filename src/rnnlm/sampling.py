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


@torch.no_grad()
def generate(model, vocab, n, prompt="", temperature=1.0, top_k=None, max_tokens=30, greedy=False,
             generator=None):
    """Continue ``prompt`` ``n`` times until the end token or ``max_tokens`` new tokens.

    Returns the texts (prompt included). Special tokens are never emitted as text: <s>, <pad> and
    <unk> (which stands for no particular token) are never sampled, and a sequence stops at </s>.
    """
    model.eval()
    device = next(model.parameters()).device
    ids = vocab.encode(prompt)[:-1] if prompt else [vocab.bos_id]  # drop the prompt's </s>
    x = torch.tensor([ids] * n, device=device)                      # (n, P)
    logits, hidden = model(x)
    # Draws happen on the CPU (with the caller's CPU generator), so a seed gives the same
    # samples from the same scores whatever device computed them.
    last = logits[:, -1].float().cpu()                              # (n, V)
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
        logits, hidden = model(nxt.unsqueeze(1).to(device), hidden)
        last = logits[:, -1].float().cpu()
    if vocab.level == "bpe":  # subword pieces carry their own spaces: decode prompt and continuation together
        return [vocab.decode(ids + row) for row in out]
    prefix = vocab.decode(ids)
    sep = "" if vocab.level == "char" or not prefix else " "
    return [prefix + (sep + vocab.decode(row) if row else "") for row in out]


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
