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
        # tables[k] (k = 2 .. order): history tuple of k-1 ids -> (sorted ids w, counts a_k(h w),
        # a_k(h .), N_k(h .)). Sorted id arrays let prob() find one count with a binary search and
        # distribution() add all of a history's counts with one fancy-indexed numpy operation.
        self.tables = {}
        self.unigram = None     # P_1 as a (V,) array: it does not depend on the history
        self.num_ngrams = 0     # stored counts over all orders (the model's "parameters")
        self._cache = {}        # level -> (history, distribution): see _distribution

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
                table[hist] = (words, counts, float(counts.sum()), len(pairs))
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
        self._cache = {}
        return self

    # --- probabilities ------------------------------------------------------------------------

    def _history(self, history_ids):
        """The last ``order - 1`` ids of ``history_ids``, left-padded with <s>, as a tuple."""
        want = self.order - 1
        if want == 0:
            return ()
        hist = [int(t) for t in history_ids][-want:]
        return (self.bos_id,) * (want - len(hist)) + tuple(hist)

    def _check_fitted(self):
        if self.unigram is None:
            raise RuntimeError("KneserNeyLM: call fit() before asking for probabilities")

    def prob(self, history_ids, token_id):
        """P(token | history): ``history_ids`` is the item so far, normally starting with <s>.

        Computed with scalar arithmetic level by level (no (V,) arrays), so it is cheap for one
        token and independent of :meth:`distribution`, which the tests use as a cross-check.
        """
        self._check_fitted()
        token_id = int(token_id)
        if not 0 <= token_id < self.vocab_size:
            raise ValueError(f"token id {token_id} outside the vocabulary (size {self.vocab_size})")
        if not self.predictable[token_id]:
            return 0.0
        hist = self._history(history_ids)
        p = float(self.unigram[token_id])
        for k in range(2, self.order + 1):
            entry = self.tables[k].get(hist[len(hist) - (k - 1) :])
            if entry is None:
                continue  # unseen history: P_k = P_{k-1}
            words, counts, total, types = entry
            pos = np.searchsorted(words, token_id)
            c = counts[pos] if pos < len(words) and words[pos] == token_id else 0.0
            p = max(c - self.discount, 0.0) / total + self.discount * types / total * p
        return p

    def level_probs(self, hist, token_ids):
        """``P_k(w | hist)`` for each ``w`` of ``token_ids`` at the level ``k = len(hist) + 1``: (len,) float64.

        ``hist`` is a tuple of exactly ``k - 1`` ids (no padding is added): the interpolated value of
        one level, as the ARPA writer (``rnnlm.arpa``) stores it for every n-gram of that order. The
        float operations are :meth:`prob`'s, level by level in the same order.
        """
        self._check_fitted()
        hist = tuple(int(t) for t in hist)
        if len(hist) >= self.order:
            raise ValueError(f"a history of an order-{self.order} model has at most {self.order - 1} ids")
        token_ids = np.asarray(token_ids, dtype=np.int64)
        p = self.unigram[token_ids].astype(np.float64)
        for k in range(2, len(hist) + 2):
            entry = self.tables[k].get(hist[len(hist) - (k - 1):])
            if entry is None:
                continue  # unseen history: P_k = P_{k-1}
            words, counts, total, types = entry
            pos = np.minimum(np.searchsorted(words, token_ids), len(words) - 1)
            c = np.where(words[pos] == token_ids, counts[pos], 0.0)
            p = np.maximum(c - self.discount, 0.0) / total + self.discount * types / total * p
        return p

    def backoff_weight(self, hist):
        """The weight ``D * N_k(h .) / a_k(h .)`` that level ``k = len(hist) + 1`` gives the level
        below for the history ``hist``; 1.0 for a history never seen there (``P_k = P_{k-1}``)."""
        self._check_fitted()
        entry = self.tables[len(hist) + 1].get(tuple(int(t) for t in hist))
        if entry is None:
            return 1.0
        _, _, total, types = entry
        return self.discount * types / total

    def distribution(self, history_ids):
        """P(. | history) over the whole vocabulary: a (V,) float64 array summing to 1."""
        self._check_fitted()
        return self._distribution(self.order, self._history(history_ids)).copy()

    def _distribution(self, level, hist):
        """P_level(. | hist) as a (V,) array, shared with the cache: callers must not modify it.

        One slot per level remembers the last history: :meth:`evaluate` visits histories sorted
        by their reversed tuples, so all histories sharing a lower-order suffix come one after
        another and every lower-order distribution is computed once, while memory stays at one
        (V,) array per level (caching every bigram history would take V * V floats).
        """
        if level == 1:
            return self.unigram
        cached = self._cache.get(level)
        if cached is not None and cached[0] == hist:
            return cached[1]
        lower = self._distribution(level - 1, hist[1:])
        entry = self.tables[level].get(hist)
        if entry is None:
            dist = lower
        else:
            words, counts, total, types = entry
            dist = lower * (self.discount * types / total)
            dist[words] += np.maximum(counts - self.discount, 0) / total
        self._cache[level] = (hist, dist)
        return dist

    def histories(self, item):
        """The padded history of every target of one item ``<s> t1 .. tn </s>``: (n + 1, order - 1).

        Row ``j`` is the history of target ``j + 1`` (the item's ``(j + 1)``-th token), left-padded
        with <s> exactly as :meth:`evaluate` pads it, so ``distributions(histories(item))[j]``
        equals ``distribution(item[:j + 1])``.
        """
        item = np.asarray(item, dtype=np.int64)
        width = self.order - 1
        if width == 0:
            return np.empty((len(item) - 1, 0), dtype=np.int64)
        padded = np.concatenate([np.full(width - 1, self.bos_id, dtype=np.int64), item])
        return np.lib.stride_tricks.sliding_window_view(padded, width)[: len(item) - 1]

    def distributions(self, histories):
        """P(. | h) for every row ``h`` of ``histories`` (N, order - 1): an (N, V) float64 array.

        The vectorized form of :meth:`distribution` for many histories at once (one row per
        predicted position, as a mixture with a neural model needs). Level by level it does the
        same float operations in the same order as :meth:`_distribution` (scale the lower level
        by the back-off weight, then add the discounted counts), so each row is bit-identical to
        :meth:`distribution`'s and argmax ties break the same way. Python only touches one dict
        lookup per row and level; the (N, V) arithmetic is numpy.
        """
        self._check_fitted()
        histories = np.asarray(histories, dtype=np.int64)
        if histories.ndim != 2 or histories.shape[1] != self.order - 1:
            raise ValueError(f"histories must be an (N, {self.order - 1}) array, got shape {histories.shape}")
        n_rows, size = len(histories), self.vocab_size
        rows_as_tuples = [tuple(h) for h in histories.tolist()]
        out = None
        for k in range(2, self.order + 1):
            table = self.tables[k]
            # A weight of 1.0 for rows whose history is unseen at this level (P_k = P_(k-1)):
            # multiplying by 1.0 is exact, and one broadcast product over all rows is much
            # cheaper than gathering and scattering the seen rows.
            weights = np.ones(n_rows)
            positions, additions = [], []
            for r, hist in enumerate(rows_as_tuples):
                entry = table.get(hist[len(hist) - (k - 1):])
                if entry is None:
                    continue
                words, counts, total, types = entry
                weights[r] = self.discount * types / total
                positions.append(words + r * size)
                additions.append(np.maximum(counts - self.discount, 0) / total)
            if out is None:  # level 2 scales level 1, the unigram shared by every row: (N, V)
                out = self.unigram[None, :] * weights[:, None]
            else:
                out *= weights[:, None]
            if positions:
                # Flat indices are unique within one level (distinct words per row), so a
                # fancy-indexed += adds every term once (no np.add.at needed).
                flat = out.reshape(-1)  # a view: writes land in out
                flat[np.concatenate(positions)] += np.concatenate(additions)
        if out is None:  # order 1: the unigram for every row
            out = np.tile(self.unigram, (n_rows, 1))
        return out

    # --- evaluation ---------------------------------------------------------------------------

    def evaluate(self, split, unk_id=None):
        """Sums over every target of ``split``: ``(total_nll, correct, tokens, chars, unknown)``.

        Pass them to :func:`rnnlm.evaluation.summarize` for the metrics every model reports.
        ``correct`` counts targets equal to the argmax of the predicted distribution; ``unknown``
        counts targets equal to ``unk_id`` (None when no ``unk_id`` is given). Targets are grouped
        by history, so each distinct history costs one vectorized (V,) computation however many
        targets share it, instead of one Python loop over the vocabulary per token.
        """
        self._check_fitted()
        n, bos = self.order, self.bos_id
        groups = defaultdict(list)
        for i in range(len(split)):
            seq = [bos] * (n - 2) + split.item(i).tolist()
            first = max(n - 1, 1)  # index of the first target (the token after the item's own <s>)
            for j in range(first, len(seq)):
                groups[tuple(seq[j - (n - 1) : j])].append(seq[j])
        total_nll, correct, tokens = 0.0, 0, 0
        for hist in sorted(groups, key=lambda h: h[::-1]):
            targets = np.asarray(groups[hist], dtype=np.int64)
            if targets.min() < 0 or targets.max() >= self.vocab_size:
                raise ValueError("split has token ids outside the vocabulary")
            dist = self._distribution(n, hist)
            probs = dist[targets]
            total_nll -= float(np.log(probs).sum())  # -inf only for <pad>/<s> targets: a bug upstream
            correct += int((targets == int(np.argmax(dist))).sum())
            tokens += len(targets)
        unknown = None
        if unk_id is not None:
            unknown = sum(int((np.asarray(t) == unk_id).sum()) for t in groups.values())
        if not math.isfinite(total_nll):
            raise ValueError("a target has probability 0 (<pad> or <s> inside an item?)")
        return total_nll, correct, tokens, int(split.chars.sum()), unknown
