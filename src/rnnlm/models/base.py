"""What every model kind shares: its config, the model contract, dropout, the output layers, the loss.

**The contract.** Every kind is a :class:`LanguageModel`: ``forward(x, hidden=None) -> (logits,
hidden)`` with ``x`` (B, T) token ids and ``logits`` (B, T, V). ``hidden`` is whatever the kind
carries from one call to the next (a recurrent state, the last tokens of a window, a key/value
cache); ``None`` starts an item. Training and evaluation call ``features`` and project only the
real (non-padding) positions with ``decoder``: the output layer is the costly part of a word-level
model, and logits for padding would be thrown away anyway. Batches are right-padded, so a model
that only looks back (every kind here) never lets padding change a real position's output.

**Streams** (one long text read in chunks, ``rnnlm.streams``): ``carry(hidden)`` says what a kind takes
from one chunk into the next: its state detached from the graph (truncated back-propagation through
time: the values go on, the gradient stops at the chunk boundary), or None for a kind that starts every
chunk afresh. A kind that carries nothing reads at most ``context_limit`` tokens at once, so a stream is
scored in sliding windows of that many tokens (``rnnlm.stream_scoring``); the recurrent kinds carry their
state and the mlp its window (exact: its hidden IS the last ``context`` ids), the Transformer nothing.

For runtimes other than torch (``rnnlm.export``), each kind also states its ``hidden`` as a tuple
of tensors: ``state_names``, ``initial_state(batch_size)`` (the tensors equal to ``hidden=None``),
``state_tensors(hidden)`` and ``state_from_tensors(tensors)``.

**Dropout** (on embeddings, between layers, on outputs) comes in two modes: ``standard`` draws a
new mask for every position, ``locked`` (variational dropout, as in AWD-LSTM) draws one mask per
sequence and applies it at every time step, so a unit that is dropped stays dropped for the whole
sequence instead of flickering. ``embedding_dropout`` (AWD-LSTM's ``embedded_dropout``) drops whole
word types: every occurrence of a dropped token in the batch reads a zero vector.

**Output layers**: ``full`` (one linear layer, logits over the whole vocabulary) or ``adaptive`` (adaptive softmax, Grave et al. 2017, for large word
vocabularies). The adaptive layer puts the tokens that are most frequent among the training targets
in its head, whatever their ids (``AdaptiveOutput``: training sets the ranking, the checkpoint keeps
it). The adaptive layer's "logits" are already normalized log-probabilities; since
softmax(log p) = p, every caller that treats the output as logits (cross-entropy, argmax,
sampling, log_softmax) gets the same exact full-distribution answer without a branch. Only
training asks the adaptive layer for the target's log-probability alone, which skips the tail
clusters a batch's targets do not fall in. Either can be tied to the input embedding
(``tie_weights``, Press & Wolf 2017; Inan et al. 2017): one matrix is both a token's input vector
and its output vector, which on a small corpus regularizes the largest matrices of the model.
"""

from dataclasses import asdict, dataclass, field
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import UserError

DIV_VALUE = 4.0  # each tail cluster of the adaptive softmax projects 4x narrower than the one before (fairseq's)


@dataclass
class ModelConfig:
    kind: str              # a name of rnnlm.kinds.MODEL_CLASSES
    vocab_size: int
    pad_id: int            # its embedding stays zero and gets no gradient
    embedding_size: int = 96
    hidden_size: int = 96  # recurrent state; the mlp's hidden layers; the transformer's model width
    layers: int = 1
    dropout: float = 0.0
    tie_weights: bool = False
    dropout_mode: str = "standard"  # standard | locked (one mask per sequence, see LockedDropout)
    output: str = "full"   # full | adaptive (adaptive softmax; word-level vocabularies)
    adaptive_cutoffs: Optional[list] = field(default=None)  # ids where the head and each tail cluster end
    embedding_dropout: float = 0.0  # share of word types dropped per batch (every kind)
    weight_drop: float = 0.0        # DropConnect on the hidden-to-hidden weights (recurrent kinds)
    activation_reg: float = 0.0     # AR: alpha * mean squared (dropped) output (recurrent kinds)
    temporal_reg: float = 0.0       # TAR: beta * mean squared change of the output per step (recurrent kinds)
    context: int = 3                # mlp: tokens in the window
    bos_id: int = 2                 # mlp: the <s> that pads a window (rnnlm.vocab puts <s> at id 2)
    heads: int = 2                  # transformer: attention heads
    ff_size: int = 384              # transformer: feed-forward width
    max_len: int = 256              # transformer: positions it has embeddings for

    def to_dict(self):
        return asdict(self)


class LockedDropout(nn.Module):
    """Dropout whose mask is drawn once per sequence and shared by all its time steps.

    Input (B, T, H): the mask is (B, 1, H), broadcast over T, and scaled by 1 / (1 - p) like
    nn.Dropout so that evaluation (no dropout) sees activations of the same size.
    """

    def __init__(self, p):
        super().__init__()
        self.p = p

    def forward(self, x):  # (B, T, H)
        if not self.training or self.p == 0:
            return x
        mask = x.new_empty(x.shape[0], 1, x.shape[2]).bernoulli_(1 - self.p) / (1 - self.p)
        return x * mask


def make_dropout(p, mode):
    return LockedDropout(p) if mode == "locked" else nn.Dropout(p)


class AdaptiveOutput(nn.Module):
    """Adaptive softmax as an output layer: states (N, H) -> log-probabilities (N, V), normalized.

    Tokens are placed by *rank*, 0 the most frequent: the ranks below the first cut-off are scored
    in the head together with one entry per tail cluster; a rarer token's probability is its
    cluster's head probability times its share inside the cluster, computed through a smaller
    projection (each cluster 4x narrower than the one before). The buffer ``rank`` (id -> rank, a
    permutation saved in the state_dict) says which id has which rank; training sets it from the
    training targets' counts (``rank_by_counts``, ties by id), because ids need not follow frequency:
    a BPE vocabulary's are the tokenizer's (specials, the 256 bytes, then the merges), and even a
    char or word vocabulary puts its four specials first, two of which are never targets. Until it is
    set (and in a checkpoint from before it existed) the rank is the id. The output's columns are
    ids, as every output layer's: the distribution is gathered back from rank order.
    """

    def __init__(self, hidden_size, vocab_size, cutoffs, tied_embedding=None):
        super().__init__()
        cutoffs = list(cutoffs or [])
        if not cutoffs or any(b <= a for a, b in zip(cutoffs, cutoffs[1:])) or cutoffs[0] < 1 \
                or cutoffs[-1] >= vocab_size - 1:
            raise UserError(f"adaptive_cutoffs {cutoffs} must increase and stay between 1 and the vocabulary "
                            f"size - 2 ({vocab_size - 2}); adaptive softmax is meant for large word vocabularies")
        if tied_embedding is None and hidden_size // DIV_VALUE ** len(cutoffs) < 1:
            # torch would build the last cluster's projection 0 wide: its words then all get one probability
            raise UserError(f"hidden_size {hidden_size} is too small for {len(cutoffs)} adaptive_cutoffs: tail cluster "
                            f"i projects to hidden_size // {DIV_VALUE:g}**i dimensions, and the last would get none; "
                            f"use hidden_size >= {DIV_VALUE ** len(cutoffs):g}, fewer cutoffs, or tie_weights")
        self.adaptive = nn.AdaptiveLogSoftmaxWithLoss(hidden_size, vocab_size, cutoffs, div_value=DIV_VALUE)
        self.register_buffer("rank", torch.arange(vocab_size))                     # id -> rank, saved
        self.register_buffer("order", torch.arange(vocab_size), persistent=False)  # rank -> id, derived
        if tied_embedding is not None:  # their ids (the ranks' words) are set by _follow_rank below
            self.adaptive.head = TiedHead(hidden_size, tied_embedding, cutoffs[0], len(cutoffs))
            bounds = self.adaptive.cutoffs   # the cut-offs and the vocabulary size
            for i in range(len(self.adaptive.tail)):
                self.adaptive.tail[i] = TiedTail(hidden_size, tied_embedding, bounds[i + 1] - bounds[i])
        self._follow_rank()

    def rank_by_counts(self, counts):
        """Rank the ids by ``counts`` (V,), how often each is a training target: most frequent first, ties by id."""
        counts = torch.as_tensor(counts, dtype=torch.long, device=self.rank.device)
        order = torch.sort(-counts, stable=True).indices  # stable: equal counts keep the order of their ids
        with torch.no_grad():
            self.rank.copy_(torch.argsort(order))
        self._follow_rank()

    def _follow_rank(self):
        """The buffers derived from ``rank``: its inverse, and the tied head's embedding rows."""
        with torch.no_grad():
            self.order.copy_(torch.argsort(self.rank))
            if isinstance(self.adaptive.head, TiedHead):
                self.adaptive.head.ids.copy_(self.order[: self.adaptive.shortlist_size])
            bounds = self.adaptive.cutoffs
            for i, tail in enumerate(self.adaptive.tail):
                if isinstance(tail, TiedTail):
                    tail.ids.copy_(self.order[bounds[i]:bounds[i + 1]])

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs):
        if prefix + "rank" not in state_dict:  # saved before ids were ranked: the rank was the id
            state_dict[prefix + "rank"] = torch.arange(len(self.rank))  # (load_state_dict passes a copy)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)
        if not torch.equal(torch.sort(self.rank).values, torch.arange(len(self.rank), device=self.rank.device)):
            error_msgs.append(f"{prefix}rank is not a permutation of the ids")
        else:
            self._follow_rank()

    def forward(self, states):  # (..., H) -> (..., V)
        flat = states.reshape(-1, states.size(-1))
        by_rank = self.adaptive.log_prob(flat)  # (N, V): column r holds the token of rank r
        return by_rank.index_select(1, self.rank).reshape(*states.shape[:-1], -1)

    def target_log_probs(self, states, targets):  # (N, H), (N,) -> (N,)
        """log p(target) alone: the full distribution's value, without the clusters no target needs.

        The same arithmetic as ``nn.AdaptiveLogSoftmaxWithLoss.forward``, written out because
        that method fails on CUDA when exactly one target falls in a cluster (its ``squeeze()``
        turns the one row index into a 0-d tensor) and under bf16 autocast (it copies float32
        into a tensor of the input's dtype). Here every log-softmax runs in float32.
        """
        adaptive = self.adaptive
        targets = self.rank[targets]                                      # ids -> ranks, as the layer places them
        head = F.log_softmax(adaptive.head(states).float(), dim=-1)       # (N, shortlist + clusters)
        cutoffs = [0] + adaptive.cutoffs                                  # cutoffs[-1] == vocab size
        in_head = targets < adaptive.shortlist_size
        # the head entry to read: the word itself, or the cluster holding it
        cluster = torch.bucketize(targets, targets.new_tensor(adaptive.cutoffs[:-1]), right=True)
        head_entry = torch.where(in_head, targets, adaptive.shortlist_size + cluster - 1)
        out = head.gather(1, head_entry.unsqueeze(1)).squeeze(1)          # (N,)
        for i, tail in enumerate(adaptive.tail, start=1):
            rows = (cluster == i).nonzero().view(-1)                      # never 0-d
            if rows.numel() == 0:
                continue
            inside = F.log_softmax(tail(states.index_select(0, rows)).float(), dim=-1)
            local = inside.gather(1, (targets.index_select(0, rows) - cutoffs[i]).unsqueeze(1)).squeeze(1)
            out = out.index_add(0, rows, local)
        return out


class TiedHead(nn.Module):
    """The adaptive softmax's head with its word rows tied to the input embedding.

    The head scores the shortlist of most frequent words (in rank order) and one entry per tail
    cluster. Its word rows are the embedding's rows of those words (``ids``: the first ranks' ids,
    which ``AdaptiveOutput`` keeps up to date), read through a projection of the states down to the
    embedding size; the cluster rows are its own. The tail clusters are tied too (``TiedTail``).
    """

    def __init__(self, hidden_size, embedding, shortlist, clusters):
        super().__init__()
        E = embedding.weight.shape[1]
        self.embedding_weight = embedding.weight     # shared: the same Parameter as the embedding's
        self.register_buffer("ids", torch.zeros(shortlist, dtype=torch.long), persistent=False)  # the words by rank
        self.project = nn.Linear(hidden_size, E, bias=False) if hidden_size != E else nn.Identity()
        self.cluster_weight = nn.Parameter(torch.empty(clusters, E).uniform_(-0.1, 0.1))

    def forward(self, states):  # (N, H) -> (N, shortlist + clusters)
        rows = torch.cat([self.embedding_weight.index_select(0, self.ids), self.cluster_weight])
        return F.linear(self.project(states), rows)


class TiedTail(nn.Module):
    """A tail cluster of the adaptive softmax with its words tied to the input embedding, as adaptive input
    ties its clusters (Baevski & Auli 2019): the cluster scores its words against their embedding rows
    (``ids``: the ids of the cluster's ranks, which ``AdaptiveOutput`` keeps up to date), through its own
    projection of the states to the embedding size. It replaces the untied cluster's narrow projection
    and its own output matrix, so every word's output vector is its input vector.
    """

    def __init__(self, hidden_size, embedding, size):
        super().__init__()
        self.embedding_weight = embedding.weight     # shared: the same Parameter as the embedding's
        self.register_buffer("ids", torch.zeros(size, dtype=torch.long), persistent=False)  # its words by rank
        self.project = nn.Linear(hidden_size, embedding.weight.shape[1], bias=False)

    def forward(self, states):  # (N, H) -> (N, cluster size)
        return F.linear(self.project(states), self.embedding_weight.index_select(0, self.ids))


class LanguageModel(nn.Module):
    """The base of every kind: the embedding, the dropout, the output layer and the contract.

    A kind's ``__init__`` calls ``_build_embedding()``, builds its own layers, then
    ``_build_output(width)`` (in that order: the order parameters are created in is the order
    the seeded initialization draws them). It implements ``features(x, hidden) -> (states (B, T,
    width), hidden)`` and the state methods below. During training ``features`` may leave a
    penalty term in ``activation_penalty`` (AR/TAR), which the training step adds to the loss.
    """

    state_names = ("state",)

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.activation_penalty = None

    def _build_embedding(self):
        c = self.config
        self.embedding = nn.Embedding(c.vocab_size, c.embedding_size, padding_idx=c.pad_id)
        self.drop = make_dropout(c.dropout, c.dropout_mode)

    def _build_output(self, width):
        """The output layer over states of ``width``. Tied (``tie_weights``), the embedding matrix is
        also the output matrix: a full softmax reads it whole, through a projection of the states
        to the embedding size when the two differ; an adaptive softmax ties its head's words
        (``TiedHead``) and each tail cluster's (``TiedTail``)."""
        c = self.config
        tied = self.embedding if c.tie_weights else None
        if c.output == "adaptive":
            self.decoder = AdaptiveOutput(width, c.vocab_size, c.adaptive_cutoffs, tied_embedding=tied)
        elif tied is not None and width != c.embedding_size:
            self.decoder = nn.Sequential(nn.Linear(width, c.embedding_size, bias=False),
                                         nn.Linear(c.embedding_size, c.vocab_size))
            self.decoder[1].weight = self.embedding.weight
        else:
            self.decoder = nn.Linear(width, c.vocab_size)
            if tied is not None:
                self.decoder.weight = self.embedding.weight
        if tied is not None:
            # One matrix serves as input and output layer: the small uniform initialization of
            # pytorch/examples' word_language_model suits both; N(0, 1) makes a poor output layer.
            with torch.no_grad():
                nn.init.uniform_(self.embedding.weight, -0.1, 0.1)
                self.embedding.weight[c.pad_id].zero_()

    def set_target_counts(self, counts):
        """How often each id is a training target, (V,): an adaptive softmax ranks its ids by it (the other
        output layers need nothing). Training calls it once, before the first step."""
        if isinstance(self.decoder, AdaptiveOutput):
            self.decoder.rank_by_counts(counts)

    def embed(self, x):
        """Dropped-out embeddings (B, T, E) of ids (B, T); in training, whole word types drop first."""
        p = self.config.embedding_dropout
        if self.training and p > 0:
            weight = self.embedding.weight
            keep = weight.new_empty(weight.shape[0], 1).bernoulli_(1 - p) / (1 - p)
            embedded = F.embedding(x, weight * keep, padding_idx=self.config.pad_id)
        else:
            embedded = self.embedding(x)
        return self.drop(embedded)

    def features(self, x, hidden=None):
        """Top-layer states (B, T, width) for input ids (B, T), and the hidden state after them."""
        raise NotImplementedError

    def forward(self, x, hidden=None):
        states, hidden = self.features(x, hidden)
        return self.decoder(states), hidden  # (B, T, V)

    def num_parameters(self):
        return sum(p.numel() for p in self.parameters())  # tied weights are counted once

    # --- streams: what goes from one chunk of a long text into the next -------------------------

    context_limit = None  # the most tokens one call reads (None: any number); see ``carry``

    def carry(self, hidden):
        """The ``hidden`` to pass into the next chunk of a stream: the state detached from this chunk's
        graph, or None where the kind carries nothing (it then has a ``context_limit``)."""
        return detached(hidden)

    # --- the hidden state as plain tensors (export to other runtimes) ---------------------------

    def initial_state(self, batch_size):
        """The tensors of ``state_names`` that mean "start of an item" (what ``hidden=None`` does)."""
        raise NotImplementedError

    def state_tensors(self, hidden):
        """``hidden`` as a tuple of tensors, in the order of ``state_names``."""
        raise NotImplementedError

    def state_from_tensors(self, tensors):
        """The inverse of ``state_tensors``."""
        raise NotImplementedError

    @classmethod
    def macs_per_token(cls, config):
        """Multiply-adds per training token, roughly: only to start the longest runs first."""
        return config.hidden_size * (config.hidden_size + config.embedding_size)


def detached(hidden):
    """``hidden`` (a tensor, a tuple of them, or None) cut from the graph that made it."""
    if hidden is None:
        return None
    if isinstance(hidden, torch.Tensor):
        return hidden.detach()
    return tuple(detached(h) for h in hidden)


def state_losses(model, states, targets, with_logits=True):
    """Per-token negative log-likelihood (nats) of ``targets`` (N,) from top-layer ``states`` (N, H), and
    the logits (N, V) (None with ``with_logits=False`` and an adaptive output, which then scores the
    targets alone): the output half of ``token_losses``."""
    if not with_logits and isinstance(model.decoder, AdaptiveOutput):
        return -model.decoder.target_log_probs(states, targets), None
    logits = model.decoder(states)          # (N, V)
    return F.cross_entropy(logits, targets, reduction="none"), logits


def stream_losses(model, x, y, hidden=None):
    """Per-token negative log-likelihood (B * T,) of a dense stream chunk ``x``, ``y`` (B, T) read from
    ``hidden``, and the hidden state after it: no padding, so every position is scored."""
    states, hidden = model.features(x, hidden)  # (B, T, H)
    nll, _ = state_losses(model, states.reshape(-1, states.size(-1)), y.reshape(-1), with_logits=False)
    return nll, hidden


def token_losses(model, x, y, pad_id, with_logits=True):
    """Per-token negative log-likelihood (nats) and logits at the real positions only.

    Padding never enters the loss: its positions are dropped before the output layer, which also
    saves computing logits for them. Returns ``(nll (N,), logits (N, V), targets (N,))``; with
    ``with_logits=False`` (training) logits may be None, which lets the adaptive output score the
    targets alone.
    """
    states, _ = model.features(x)           # (B, T, H)
    mask = y != pad_id                      # (B, T)
    targets = y[mask]                       # (N,)
    nll, logits = state_losses(model, states[mask], targets, with_logits)
    return nll, logits, targets
