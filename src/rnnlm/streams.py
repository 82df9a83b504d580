"""Training batches of one long text: B parallel streams cut into chunks of T tokens (truncated BPTT).

As in pytorch/examples' word_language_model's ``batchify``, ``StreamChunks`` lays the stream's tokens into B rows, each a
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
from collections.abc import Sequence
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


class StreamChunks(Sequence):
    """The epoch's dense chunks ``(x, y, tokens)`` in order, (B, t) int64 tensors each, read from the stream
    as a step asks for one (``tokens``: the chunk's B * t targets, all real). Row ``b`` reads the stream
    from ``offset + b * columns`` on, and its targets are the tokens one further (the last target of a row
    is the first input of the next, so no transition of the text is left out), as word_language_model's
    ``batchify``; only a chunk's rows are read, so a memory-mapped stream (``rnnlm.data``) stays on disk.
    ``rows`` (a slice) keeps some of the B rows: a data-parallel process's share."""

    def __init__(self, tokens, plan, batch_size, rows=slice(None)):
        self.tokens, self.plan, self.batch_size, self.rows = tokens, plan, batch_size, range(batch_size)[rows]
        self.starts = np.concatenate([[0], np.cumsum(plan.lengths, dtype=np.int64)])

    def __len__(self):
        return len(self.plan.lengths)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(len(self))[i]]
        if not 0 <= i < len(self):
            raise IndexError(i)
        length, first = self.plan.lengths[i], self.plan.offset + int(self.starts[i])
        rows = np.stack([self.tokens[first + b * self.plan.columns:][:length + 1] for b in self.rows])
        rows = torch.from_numpy(rows.astype(np.int64))
        return rows[:, :-1].contiguous(), rows[:, 1:].contiguous(), len(self.rows) * length

    def share(self, rows):
        """The same chunks, only ``rows`` (a slice of the B rows) of each."""
        return StreamChunks(self.tokens, self.plan, self.batch_size, rows)


def epoch_chunks(split, plan, batch_size):
    """``StreamChunks`` of ``split`` for the epoch ``plan`` draws, ``batch_size`` rows."""
    return StreamChunks(split.tokens, plan, batch_size)


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
