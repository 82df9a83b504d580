"""Training batches of one long text: B parallel streams cut into chunks of T tokens (truncated BPTT).

As in pytorch/examples' word_language_model, ``batchify`` lays the stream's tokens into B rows, each a
contiguous slice of the text, and an epoch walks the rows left to right in chunks of T = ``bptt`` tokens
(its ``get_batch``). The state a chunk ends with is where the next one starts, detached from the graph
(its ``repackage_hidden``; here the model contract's ``carry``, so the loop needs no branch per kind):
the values go on, the gradient stops at the chunk boundary. Every chunk is dense, B x T real targets and
no padding. The state starts from zero at each epoch's start (``CarriedState``).

Where the chunks fall in an epoch is its ``StreamPlan``, drawn from the epoch's own generator
(``training.epoch_rng(seed, epoch)``), so a run resumed at an epoch boundary sees the same chunks:

- **a random offset**: the epoch starts ``offset`` tokens into the stream (0 <= offset < T), so the chunk
  boundaries and the rows' first tokens move from epoch to epoch. With a fixed cut every epoch would
  split the text at the same places: the same tokens would always come right after a boundary (their
  state arrives with no gradient behind it) and the same tokens would always start a row from a zero
  state. The tokens before the offset, and the fewer than B left over after the last full column, skip
  that epoch only.
- **variable T** (``variable_bptt``, AWD-LSTM, Merity et al. 2018): each chunk's length is drawn, T with
  probability 0.95 and T / 2 otherwise, then Normal(that, 5), at least 5 (or T where T is smaller), and at
  most a kind's ``context_limit``. A chunk of length t holds t tokens per row but its loss is a mean, so
  its step's learning rate is scaled by t / T (``StreamPlan.lr_scales``, as AWD-LSTM does): every token
  then weighs the same in an epoch, whatever chunk it fell in.

The last chunk of an epoch is shorter when the rows' length is not a multiple of the chunk length.

A kind that carries nothing (the Transformer) reads every chunk from position 0, so ``bptt`` is all the
context it learns; training gives it only that many positions (``rnnlm.training.positions_for``), the
window its scoring and sampling then use.
"""

import contextlib
from dataclasses import dataclass

import numpy as np
import torch

from .errors import UserError
from .models import stream_losses

MIN_CHUNK = 5            # AWD-LSTM's shortest drawn chunk
CHUNK_STD = 5.0          # AWD-LSTM's spread of the drawn length (tokens)
HALF_CHUNK_SHARE = 0.05  # AWD-LSTM: one chunk in 20 is drawn around T / 2


@dataclass
class StreamPlan:
    """Where one epoch's chunks fall: rows start ``offset`` tokens in, each ``columns`` tokens long, cut
    into chunks of ``lengths`` (summing to ``columns``)."""

    offset: int
    columns: int
    lengths: list

    def lr_scales(self, bptt):
        """The factor of each chunk's learning rate: its length over T (1.0 for every full chunk)."""
        return [length / bptt for length in self.lengths]


def epoch_plan(targets, batch_size, bptt, rng, variable=False, limit=None):
    """The ``StreamPlan`` of one epoch over a stream of ``targets`` predicted tokens (module docstring);
    ``rng`` is the epoch's numpy Generator, ``limit`` the longest chunk the model reads (None: any)."""
    if targets < batch_size:
        raise UserError(f"the stream has {targets} training tokens, fewer than batch_size ({batch_size}) rows")
    offset = int(rng.integers(min(bptt, targets // batch_size)))
    columns = (targets - offset) // batch_size
    if not variable:
        lengths = [bptt] * (columns // bptt) + ([columns % bptt] if columns % bptt else [])
        return StreamPlan(offset, columns, lengths)
    lengths, done, shortest = [], 0, min(MIN_CHUNK, bptt)
    while done < columns:
        centre = bptt if rng.random() >= HALF_CHUNK_SHARE else bptt / 2
        length = max(shortest, int(rng.normal(centre, CHUNK_STD)))
        length = min(length, columns - done, limit or length)
        lengths.append(length)
        done += length
    return StreamPlan(offset, columns, lengths)


def batchify(tokens, offset, batch_size, columns):
    """Inputs and targets ``(x, y)``, (B, columns) int64 tensors: row ``b`` reads the stream's tokens from
    ``offset + b * columns`` on, and its targets are the tokens one further (the last target of a row is
    the first input of the next, so no transition of the text is left out)."""
    span = batch_size * columns
    x = torch.from_numpy(np.asarray(tokens[offset:offset + span], dtype=np.int64)).view(batch_size, columns)
    y = torch.from_numpy(np.asarray(tokens[offset + 1:offset + 1 + span], dtype=np.int64)).view(batch_size, columns)
    return x, y


def epoch_chunks(split, plan, batch_size):
    """``[(x, y, tokens)]``: the epoch's dense chunks, (B, t) each, in order, made before training starts;
    ``tokens`` (B * t) counts the chunk's targets, all real."""
    x, y = batchify(split.tokens, plan.offset, batch_size, plan.columns)
    chunks, start = [], 0
    for length in plan.lengths:
        end = start + length
        chunks.append((x[:, start:end].contiguous(), y[:, start:end].contiguous(), batch_size * length))
        start = end
    return chunks


class CarriedState:
    """``training.train_step``'s ``score`` on a stream: each chunk is read from the state the chunk before
    it left (``model.carry``: detached), and a new instance starts from a zero state."""

    def __init__(self):
        self.hidden = None

    def __call__(self, model, x, y, pad_id, with_logits=False):
        nll, hidden = stream_losses(model, x, y, self.hidden)
        self.hidden = model.carry(hidden)
        return nll, None, y.reshape(-1)


@contextlib.contextmanager
def scaled_lr(optimizer, factor):
    """Every learning rate of ``optimizer`` times ``factor`` for one step, then back as it was (so the
    schedule, which sets and reads the rates, never sees the scaling)."""
    if factor == 1.0:
        yield
        return
    saved = [group["lr"] for group in optimizer.param_groups]
    for group in optimizer.param_groups:
        group["lr"] = group["lr"] * factor
    try:
        yield
    finally:
        for group, lr in zip(optimizer.param_groups, saved):
            group["lr"] = lr
