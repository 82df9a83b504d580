"""Scoring one long text: every target exactly once, each with as much of the text before it as the model reads.

A stream split (``EncodedSplit.stream``) is one item ``<s> t0 ... t(N-1)``, scored from a zero state (its
``<s>``), as the text is read from its start, in consecutive blocks of targets so that memory stays bounded
(a block's logits are (block, V), and at word level V can be 10k+):

- a kind that carries its state from chunk to chunk (``context_limit`` None: the recurrent kinds carry
  their state, the mlp its window) reads the stream in one row (batch 1), each block from the state the
  block before it left: the numbers of one pass over the whole stream, to float rounding;
- a kind with a fixed context (``context_limit`` W: the Transformer, which carries no cache across chunks)
  is scored with the strided sliding window of Hugging Face's perplexity guide: windows of W tokens,
  S = W // 2 apart; the first window scores all its targets, each later one only its last S (those no
  earlier window scored). Every target is scored exactly once, and every target after the first window
  sees at least W - S tokens of context (itself included: the W - S tokens before its target). W is the
  context the model was trained on: a Transformer trained on a stream has ``max_len = min(max_len, bptt)``
  positions (``rnnlm.training.positions_for``), so no window reads a position that got no gradient.

Training's dev loss, the evaluate stage, ``rnnlm score`` and the mixture all read streams through
``StreamReader`` (``evaluate_stream``, ``stream_target_losses``, ``rnnlm.mixture``).
"""

import numpy as np
import torch

from .models import state_losses
from .results import Tally

STREAM_CELLS = 1 << 22  # logits entries of one block: 16 MiB in float32
MAX_BLOCK = 4096        # targets per block, at most


def block_size(vocab_size, cells=STREAM_CELLS):
    """Targets per block for a vocabulary of ``vocab_size``: its logits stay under ``cells`` entries."""
    return max(1, min(MAX_BLOCK, cells // vocab_size))


class StreamReader:
    """A model's top-layer states at a stream's targets, block by consecutive block (``states``); call it
    in eval mode under ``torch.no_grad``."""

    def __init__(self, model, split):
        tokens = torch.from_numpy(np.asarray(split.item(0), dtype=np.int64))
        self.inputs, self.targets = tokens[:-1], tokens[1:]   # input p predicts target p
        self.model = model
        self.device = next(model.parameters()).device
        self.limit = model.context_limit
        self.hidden, self.done = None, 0

    def __len__(self):
        return len(self.targets)

    def states(self, start, end):
        """States (end - start, width) at targets ``start .. end - 1``; blocks must come in order."""
        if self.limit is None:
            if start != self.done:
                raise ValueError(f"a carried state reads blocks in order: expected block {self.done}, got {start}")
            states, hidden = self.model.features(self.inputs[start:end][None].to(self.device), self.hidden)
            self.hidden, self.done = self.model.carry(hidden), end
            return states[0]
        return self._windowed(start, end)

    # --- the sliding window of a fixed-context kind ----------------------------------------------

    def window(self, j):
        """``(begin, first scored, end)`` input positions of window ``j``."""
        W, S, N = self.limit, max(1, self.limit // 2), len(self.targets)
        if j == 0:
            return 0, 0, min(W, N)
        end = min(W + j * S, N)
        return end - W, W + (j - 1) * S, end

    def window_of(self, position):
        """The window that scores the target at input ``position``."""
        W, S = self.limit, max(1, self.limit // 2)
        return 0 if position < W else 1 + (position - W) // S

    def _windowed(self, start, end):
        windows = range(self.window_of(start), self.window_of(end - 1) + 1)
        parts, full = [], [j for j in windows if j > 0]
        if windows[0] == 0:  # window 0: the stream's first min(W, N) inputs, read from a zero state
            _, _, stop = self.window(0)
            states, _ = self.model.features(self.inputs[:stop][None].to(self.device))
            parts.append(states[0, start:min(end, stop)])
        if full:  # every later window is W inputs long: one batch of them
            spans = [self.window(j) for j in full]
            batch = torch.stack([self.inputs[begin:stop] for begin, _, stop in spans]).to(self.device)
            states, _ = self.model.features(batch)                                   # (G, W, width)
            for row, (begin, first, stop) in enumerate(spans):
                lo, hi = max(start, first), min(end, stop)
                parts.append(states[row, lo - begin:hi - begin])
        return torch.cat(parts)


def blocks(reader, block):
    """``(start, end)`` of the consecutive blocks of ``block`` targets over a reader's stream."""
    return [(start, min(start + block, len(reader))) for start in range(0, len(reader), block)]


@torch.no_grad()
def evaluate_stream(model, split, unk_id=None, accuracy=True, block=None):
    """Sums over every target of a stream split: ``(total_nll, correct, tokens, chars, unknown, correct_known)``,
    for ``rnnlm.results.summarize``, as the item path and the n-gram give them: ``correct`` None without
    ``accuracy``, ``unknown`` None without ``unk_id``, ``correct_known`` (the correct predictions of targets
    other than ``unk_id``) None without both. ``summarize`` reports ``accuracy_without_unk`` from it only
    where ``<unk>`` is among the targets (a word-level stream), so a char stream without ``<unk>`` targets
    gets no such key, as an item corpus without them gets none."""
    was_training = model.training
    model.eval()
    reader = StreamReader(model, split)
    tally = Tally(unk_id, accuracy)
    for start, end in blocks(reader, block or block_size(model.config.vocab_size)):
        targets = reader.targets[start:end].to(reader.device)
        nll, logits = state_losses(model, reader.states(start, end), targets, with_logits=accuracy)
        tally.add(targets, nll.double().sum().item(), logits.argmax(dim=-1) if accuracy else None)
    model.train(was_training)
    return tally.sums(int(split.chars.sum()))


@torch.no_grad()
def stream_target_losses(model, split, block=None):
    """−log P(target | the text before it) (nats) of every target of a stream split, in order: (N,) float64."""
    model.eval()
    reader = StreamReader(model, split)
    losses = [np.empty(0)]
    for start, end in blocks(reader, block or block_size(model.config.vocab_size)):
        # the full distribution's loss, as the evaluate stage scores it (an adaptive output's last digits differ)
        nll, _ = state_losses(model, reader.states(start, end), reader.targets[start:end].to(reader.device))
        losses.append(nll.double().cpu().numpy())
    return np.concatenate(losses)
