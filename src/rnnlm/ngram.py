"""An interpolated Kneser-Ney n-gram language model: the count-based baseline for the RNNs.

The recurrent models are only interesting if they beat a well-smoothed n-gram model on the same
splits, vocabulary and metrics, so this model reads the same ``EncodedSplit`` arrays and its
``evaluate`` returns the sums that :func:`rnnlm.evaluation.summarize` turns into the shared
metrics schema (loss in nats/token, perplexity, accuracy, bits per character, OOV rate).

Smoothing is interpolated Kneser-Ney with one absolute discount ``D`` (Chen & Goodman 1998)::

    P_k(w | h) = max(a_k(h w) - D, 0) / a_k(h .)  +  D * N_k(h .) / a_k(h .) * P_{k-1}(w | h')

where ``h'`` drops the oldest token of ``h``, ``a_k(h .)`` sums the counts over ``w``, ``N_k(h .)``
is the number of distinct ``w`` with ``a_k(h w) > 0``, and a history never seen in training
(``a_k(h .) = 0``) backs off entirely: ``P_k(w | h) = P_{k-1}(w | h')``. The counts ``a_k`` are

* raw counts at the highest order ``k = n``;
* continuation counts at lower orders, ``a_k(g) = |{u : c(u g) > 0}|`` (in how many distinct
  contexts ``g`` occurs), because a lower order only matters when the longer context is unknown,
  and then how *widely* a word is used predicts better than how *often*;
* except for lower-order n-grams that start with <s>: their left context is always <s> (the
  padding), so a continuation count would be 1 for all of them; like SRILM and KenLM they keep
  their raw counts.

The unigram level interpolates with the uniform distribution over the predictable vocabulary,
``P_0(w) = 1 / (V - 2)``, so a token never seen in training (e.g. <unk> when the training split
has none) still gets a non-zero probability. <pad> and <s> are never predicted: probability 0.

Histories are padded at the start with <s>: an item ``<s> t1 ... tn </s>`` is read as
``<s>^(n-1) t1 ... tn </s>`` (its own <s> plus ``n - 2`` copies), so every target has a full
history and ``t1`` is predicted from "start of item" at every order.
"""

import math
from collections import Counter, defaultdict

import numpy as np

MAX_CELLS = 2**21  # entries of one (positions, V) float64 chunk: 16 MiB (news: V ≈ 8.4k, ~250 rows)


def item_chunks(split, vocab_size, max_cells=MAX_CELLS, max_items=256):
    """Consecutive item indices of ``split`` whose targets times ``vocab_size`` stay under ``max_cells``:
    the chunks in which every (positions, V) distribution array of this package is built."""
    max_rows = max(1, max_cells // vocab_size)
    chunk, rows = [], 0
    for i, n_targets in enumerate((split.lengths - 1).tolist()):
        if chunk and (rows + n_targets > max_rows or len(chunk) == max_items):
            yield chunk
            chunk, rows = [], 0
        chunk.append(i)
        rows += n_targets
    if chunk:
        yield chunk


def fit_ngram(vocab, train, config):
    """The baseline as the pipeline fits it: ``config``'s order and discount over ``vocab``, on ``train``.

    The ngram stage reports this model and the mixture stage mixes it; one place keeps them the same.
    """
    return KneserNeyLM(len(vocab), vocab.pad_id, vocab.bos_id, config.order, config.discount).fit(train)


class KneserNeyLM:
    """Interpolated Kneser-Ney over token ids ``0 .. vocab_size - 1``; call :meth:`fit` first.

    ``pad_id`` and ``bos_id`` are excluded from prediction (probability 0); the remaining
    ``vocab_size - 2`` ids share the probability mass, so every distribution sums to 1.
    """

    def __init__(self, vocab_size, pad_id, bos_id, order=3, discount=0.75):
        if order < 1:
            raise ValueError(f"order must be >= 1, got {order}")
        if not 0 < discount < 1:
            raise ValueError(f"discount must be between 0 and 1, got {discount}")
        if vocab_size < 3 or not (0 <= pad_id < vocab_size and 0 <= bos_id < vocab_size) or pad_id == bos_id:
            raise ValueError("need vocab_size >= 3 and distinct pad_id, bos_id inside the vocabulary")
        self.vocab_size = vocab_size
        self.pad_id = pad_id
        self.bos_id = bos_id
        self.order = order
        self.discount = float(discount)
        self.predictable = np.ones(vocab_size, dtype=bool)
        self.predictable[[pad_id, bos_id]] = False
        # tables[k] (k = 2 .. order): history tuple of k-1 ids -> (sorted ids w, discounted counts
        # max(a_k(h w) - D, 0) / a_k(h .), back-off weight D * N_k(h .) / a_k(h .)): the two terms of
        # the formula that depend on the history, so a level adds a history's terms in one numpy step.
        self.tables = {}
        self.unigram = None     # P_1 as a (V,) array: it does not depend on the history
        self.num_ngrams = 0     # stored counts over all orders (the model's "parameters")

    # --- fitting ------------------------------------------------------------------------------

    def fit(self, split):
        """Count the n-grams of ``split`` (training items ``<s> t1 .. tn </s>``) and return self."""
        n, bos = self.order, self.bos_id
        # raw[k]: how often each k-gram ends at a target position (every token but an item's <s>).
        raw = {k: Counter() for k in range(1, n + 1)}
        first = max(n - 1, 1)  # index of the first target (the token after the item's own <s>)
        for i in range(len(split)):
            seq = [bos] * (n - 2) + split.item(i).tolist()
            for k in range(1, n + 1):
                # k shifted copies zipped together: the k-grams ending at seq[first], seq[first+1], ...
                raw[k].update(zip(*(seq[first - (k - 1) + j :] for j in range(k))))
        if any(max(g) >= self.vocab_size or min(g) < 0 for g in raw[1]):
            raise ValueError("split has token ids outside the vocabulary")
        adjusted = {n: raw[n]}
        for k in range(n - 1, 0, -1):
            # Continuation count of g: distinct (k+1)-grams u g seen, i.e. distinct left contexts.
            cont = Counter(g[1:] for g in raw[k + 1])
            adjusted[k] = Counter({g: (c if g[0] == bos else cont[g]) for g, c in raw[k].items()})
        self.num_ngrams = sum(len(adjusted[k]) for k in adjusted)

        self.tables = {}
        for k in range(2, n + 1):
            grouped = defaultdict(list)
            for g, c in adjusted[k].items():
                grouped[g[:-1]].append((g[-1], c))
            table = {}
            for hist, pairs in grouped.items():
                pairs.sort()
                words = np.fromiter((w for w, _ in pairs), dtype=np.int64, count=len(pairs))
                counts = np.fromiter((c for _, c in pairs), dtype=np.float64, count=len(pairs))
                total = float(counts.sum())
                table[hist] = (words, np.maximum(counts - self.discount, 0) / total,
                               self.discount * len(pairs) / total)
            self.tables[k] = table

        counts = np.zeros(self.vocab_size)
        for (w,), c in adjusted[1].items():
            counts[w] = c
        total, types = counts.sum(), np.count_nonzero(counts)
        uniform = self.predictable / self.predictable.sum()
        if total == 0:  # no training tokens: nothing but the uniform distribution is justified
            self.unigram = uniform
        else:
            d = self.discount
            self.unigram = np.maximum(counts - d, 0) / total + d * types / total * uniform
        return self

    # --- probabilities: one routine, distributions(), behind every use --------------------------

    def _check_fitted(self):
        if self.unigram is None:
            raise RuntimeError("KneserNeyLM: call fit() before asking for probabilities")

    def _as_histories(self, histories, level):
        histories = np.asarray(histories, dtype=np.int64)
        if histories.ndim != 2 or histories.shape[1] != level - 1:
            raise ValueError(f"histories of level {level} must be an (N, {level - 1}) array, got shape {histories.shape}")
        return histories

    def backoff_weights(self, histories, level):
        """``D * N_k(h .) / a_k(h .)`` of level ``k = level`` for each row ``h`` of ``histories`` (N, k - 1),
        1.0 where ``h`` was never seen there (``P_k = P_{k-1}``); with the flat indices and values of the
        discounted counts that level adds to an (N, V) array: ``(weights (N,), positions, additions)``."""
        histories = self._as_histories(histories, level)
        table, size = self.tables[level], self.vocab_size
        weights = np.ones(len(histories))
        positions, additions = [], []
        for r, hist in enumerate(map(tuple, histories.tolist())):
            entry = table.get(hist)
            if entry is not None:
                words, discounted, weights[r] = entry
                positions.append(words + r * size)
                additions.append(discounted)
        if not positions:
            return weights, np.empty(0, dtype=np.int64), np.empty(0)
        return weights, np.concatenate(positions), np.concatenate(additions)

    def distributions(self, histories, level=None):
        """``P_level(. | h)`` for every row ``h`` of ``histories`` (N, level - 1): an (N, V) float64 array.

        The one implementation of the smoothing formula (``level`` defaults to the model's order):
        starting from the unigram, each level scales the level below by its back-off weight, then
        adds its discounted counts. A weight of 1.0 for a history unseen at a level is exact, and one
        broadcast product over all rows is cheaper than gathering the seen rows; Python only touches
        one dict lookup per row and level. Single probabilities, distributions, evaluation and the
        ARPA writer all read these rows, so they agree bit for bit (argmax ties included).
        """
        self._check_fitted()
        level = self.order if level is None else level
        histories = self._as_histories(histories, level)
        out = np.repeat(self.unigram[None, :], len(histories), axis=0)
        for k in range(2, level + 1):
            weights, positions, additions = self.backoff_weights(histories[:, level - k:], k)
            out *= weights[:, None]
            # Flat indices are unique within one level (distinct words per row), so a fancy-indexed
            # += adds every term once (no np.add.at needed).
            out.reshape(-1)[positions] += additions
        return out

    def _history(self, history_ids):
        """The last ``order - 1`` ids of ``history_ids``, left-padded with <s>, as a (1, order - 1) array."""
        want = self.order - 1
        hist = [int(t) for t in history_ids][-want:] if want else []
        return np.array([[self.bos_id] * (want - len(hist)) + hist], dtype=np.int64).reshape(1, want)

    def distribution(self, history_ids):
        """P(. | history) over the whole vocabulary: a (V,) float64 array summing to 1.

        ``history_ids`` is the item so far, normally starting with <s>.
        """
        return self.distributions(self._history(history_ids))[0]

    def prob(self, history_ids, token_id):
        """P(token | history): one entry of :meth:`distribution`."""
        token_id = int(token_id)
        if not 0 <= token_id < self.vocab_size:
            raise ValueError(f"token id {token_id} outside the vocabulary (size {self.vocab_size})")
        return float(self.distribution(history_ids)[token_id])

    def histories(self, item):
        """The padded history of every target of one item ``<s> t1 .. tn </s>``: (n + 1, order - 1).

        Row ``j`` is the history of target ``j + 1`` (the item's ``(j + 1)``-th token), left-padded
        with <s> (see the module docstring), so ``distributions(histories(item))[j]`` equals
        ``distribution(item[:j + 1])``.
        """
        item = np.asarray(item, dtype=np.int64)
        width = self.order - 1
        if width == 0:
            return np.empty((len(item) - 1, 0), dtype=np.int64)
        padded = np.concatenate([np.full(width - 1, self.bos_id, dtype=np.int64), item])
        return np.lib.stride_tricks.sliding_window_view(padded, width)[: len(item) - 1]

    def split_distributions(self, split, max_cells=MAX_CELLS):
        """Yield ``(indices, targets (N,), P (N, V))`` chunk by chunk (:func:`item_chunks`) over every
        target of ``split`` (each token after an item's <s>), in item order."""
        for indices in item_chunks(split, self.vocab_size, max_cells):
            items = [split.item(i) for i in indices]
            targets = np.concatenate([item[1:] for item in items]).astype(np.int64)
            if len(targets) and (targets.min() < 0 or targets.max() >= self.vocab_size):
                raise ValueError("split has token ids outside the vocabulary")
            yield indices, targets, self.distributions(np.concatenate([self.histories(item) for item in items]))

    def target_probabilities(self, split, max_cells=MAX_CELLS):
        """P(target | history) of every target of ``split``, in item order: (N,) float64."""
        return np.concatenate([np.empty(0)] + [dist[np.arange(len(targets)), targets] for _, targets, dist
                                               in self.split_distributions(split, max_cells)])

    # --- evaluation ---------------------------------------------------------------------------

    def evaluate(self, split, unk_id=None, max_cells=MAX_CELLS):
        """Sums over every target of ``split``: ``(total_nll, correct, tokens, chars, unknown)``.

        Pass them to :func:`rnnlm.evaluation.summarize` for the metrics every model reports.
        ``correct`` counts targets equal to the argmax of the predicted distribution; ``unknown``
        counts targets equal to ``unk_id`` (None when no ``unk_id`` is given).
        """
        total_nll, correct, tokens, unknown = 0.0, 0, 0, 0
        for _, targets, dist in self.split_distributions(split, max_cells):
            total_nll -= float(np.log(dist[np.arange(len(targets)), targets]).sum())  # -inf: <pad>/<s> targets
            correct += int((dist.argmax(axis=1) == targets).sum())
            tokens += len(targets)
            unknown += int((targets == unk_id).sum()) if unk_id is not None else 0
        if not math.isfinite(total_nll):
            raise ValueError("a target has probability 0 (<pad> or <s> inside an item?)")
        return total_nll, correct, tokens, int(split.chars.sum()), unknown if unk_id is not None else None
