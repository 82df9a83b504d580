"""An interpolated modified Kneser-Ney n-gram language model: the count-based baseline for the RNNs.

The recurrent models are only interesting if they beat a well-smoothed n-gram model on the same
splits, vocabulary and metrics, so this model reads the same ``EncodedSplit`` arrays and its
``evaluate`` returns the sums that :func:`rnnlm.results.summarize` turns into the shared
metrics schema (loss in nats/token, perplexity, accuracy, bits per character, OOV rate).

Smoothing is interpolated modified Kneser-Ney (Chen & Goodman 1999), as KenLM's ``lmplz``
estimates it. Level ``k`` of an order-``n`` model (``k = 1 .. n``) gives::

    P_k(w | h) = max(a_k(h w) - D_k(a_k(h w)), 0) / a_k(h .)  +  γ_k(h) · P_{k-1}(w | h')

    γ_k(h)     = (D_k1 · N1(h .) + D_k2 · N2(h .) + D_k3+ · N3+(h .)) / a_k(h .)

where ``h`` holds the last ``k - 1`` tokens, ``h'`` drops the oldest of them, ``a_k(h .)`` sums the
counts over ``w``, ``N_i(h .)`` is the number of distinct ``w`` with ``a_k(h w) = i`` (``N3+``:
at least 3), and ``D_k(a)`` is ``D_k1``, ``D_k2`` or ``D_k3+`` for a count of 1, 2 or more. The
mass the discounts take from the seen words is exactly ``γ_k(h)``, so every ``P_k(. | h)`` sums
to 1. A history never seen at level ``k`` backs off entirely: ``P_k(w | h) = P_{k-1}(w | h')``.
``P_0`` is the uniform distribution over the predictable ids (all but <pad> and <s>), so a token
never seen in training (e.g. <unk> when the training split has none) keeps a non-zero
probability; <pad> and <s> are never predicted (probability 0).

Three discounts per level, not one: a count of 1 is mostly luck, a count of 3 much less so. They
come from that level's counts of counts ``n_i`` (how many k-grams have ``a_k = i``)::

    Y = n1 / (n1 + 2 n2),   D1 = 1 - 2 Y n2/n1,   D2 = 2 - 3 Y n3/n2,   D3+ = 3 - 4 Y n4/n3

Degenerate counts. On a tiny corpus some ``n_i`` (i = 1..4) can be 0, or a discount falls outside
``(0, i)`` (a ``D1`` of 0 would leave nothing for unseen words; a negative one would make
probabilities negative). KenLM stops there unless told ``--discount_fallback``; this model always
falls back, level by level, to KenLM's fallback discounts ``(0.5, 1.0, 1.5)``, and records which
levels did (``discount_fallbacks``). Any ``0 < D_i <= i`` keeps every distribution valid.

The counts ``a_k`` are

* raw counts at the highest order ``k = n``;
* continuation counts at lower orders, ``a_k(g) = |{u : c(u g) > 0}|`` (in how many distinct
  contexts ``g`` occurs), because a lower order only matters when the longer context is unknown,
  and then how *widely* a word is used predicts better than how *often*;
* except for lower-order n-grams that start with <s>: nothing stands before an item's <s>, so
  they have no left context to count; like SRILM and KenLM they keep their raw counts (for a
  history that starts with <s> such a level is the longest there is: see below).

The discounts of a level come from the counts that level uses, so level ``k`` of an order-``k``
model (raw counts) and of an order-``n > k`` model (continuation counts) differ.

The start of an item, as KenLM and SRILM handle it: one <s>, never padded. An n-gram holds <s>
only in its first position, so the history of target ``t_j`` of an item ``<s> t1 t2 ...`` is the
item so far, at most its last ``n - 1`` tokens: ``<s>`` alone for ``t1`` (a bigram context),
``<s> t1`` for ``t2``, ..., so ``t_j`` is predicted at level ``min(n, j + 1)``, from
``P_{m+1}(w | h)`` of its ``m``-token history down to ``P_0``. Counting matches: a k-gram that
would start before the item's <s> is not counted at all (padding with ``n - 2`` more copies of <s>
would count the item's first targets at every level from the same few counts, discount and
interpolate them again at each, and cost names 0.007 nats at order 5, 0.24 at order 10). In
arrays a history is ``n - 1`` wide: the positions before the item hold :data:`BEFORE_ITEM`, a
context never seen, so the levels it would need back off entirely (a history padded with <s>
gives the same, as ``<s> <s>`` is never counted). An item need not end with </s>: a whole book can
be one item ``<s> t0 t1 ... t_{N-1}`` (a stream), whose histories run across its newlines like
across any other token; only its first ``n - 2`` targets have short histories.

One fit for every order. Levels ``1 .. k`` depend only on the k-grams and (k+1)-grams of the
training split, so the counts fit once for the largest order ``n`` give every model of order
``m <= n``: raw counts at level ``m``, continuation counts below (:meth:`KneserNeyLM.with_order`);
:func:`select_order` then picks the order with the lowest dev loss.

How it is stored: n-grams are integers, never tuples. The training split's contexts of length
``j`` (the last ``j`` tokens before a target) are sorted unique int64 keys ``id(its newest j - 1
tokens) · V + its oldest token``, a context's id being its rank there; a k-gram ``h w`` is the key
``id(h) · V + w``, so a level's sorted keys group its n-grams by history. Counting is one argsort
per level (unique keys, and each target's n-gram among them), a lookup is ``np.searchsorted``: no
Python loop over tokens or n-grams, in fitting and in scoring.
"""

import math
from dataclasses import dataclass

import numpy as np

from .results import Tally

MAX_CELLS = 2**21  # entries of one (positions, V) float64 chunk: 16 MiB (news: V ≈ 8.4k, ~250 rows)
FALLBACK_DISCOUNTS = (0.5, 1.0, 1.5)  # KenLM's `lmplz --discount_fallback` defaults (D1, D2, D3+)
TARGET_ROWS = 2**16  # positions scored at once where only the targets' probabilities are needed
BEFORE_ITEM = -1     # a history's "token" before its item's <s>: no token (module docstring)


def item_chunks(split, vocab_size, max_cells=MAX_CELLS, max_items=256):
    """Consecutive item indices of ``split`` whose targets times ``vocab_size`` stay under ``max_cells``:
    the chunks in which every (positions, V) distribution array of this package is built. An item
    longer than the budget is a chunk of its own (:func:`target_chunks` cuts it further)."""
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


def target_chunks(split, vocab_size, max_cells=MAX_CELLS, max_items=256):
    """``(indices, start, stop)``: the chunks of :func:`item_chunks`, each with its targets' flat range.

    Flat target ``f`` is the ``f``-th target of the split counting item by item (every token after
    an item's <s>). A chunk of whole items covers ``[start, stop)``, exactly those items' targets.
    An item with more targets than ``max_cells // vocab_size`` is cut into consecutive pieces of at
    most that many targets, each yielded with ``indices == [i]`` and its own part of the range.
    """
    max_rows = max(1, max_cells // vocab_size)
    first = np.concatenate([[0], np.cumsum(split.lengths - 1)])   # flat index of each item's first target
    for indices in item_chunks(split, vocab_size, max_cells, max_items):
        start, stop = int(first[indices[0]]), int(first[indices[-1] + 1])
        if stop - start <= max_rows:
            yield indices, start, stop
        else:  # one long item (item_chunks puts it alone)
            for piece in range(start, stop, max_rows):
                yield indices, piece, min(piece + max_rows, stop)


def target_positions(split):
    """Where the targets of ``split`` sit in ``split.tokens``, in flat target order: (N,) int64."""
    is_target = np.ones(len(split.tokens), dtype=bool)
    starts = split.offsets[:-1][split.lengths > 0]
    is_target[starts] = False  # each item's own <s> is never predicted
    return np.flatnonzero(is_target)


def _item_starts(split, positions):
    """Where the item of each position starts (its <s>) in ``split.tokens``."""
    return split.offsets[np.searchsorted(split.offsets, positions, side="right") - 1]


def _tokens_before(tokens, positions, item_starts, back):
    """The token ``back`` places before each position, :data:`BEFORE_ITEM` where that is before its
    item's <s> (a history never reaches into the previous item, nor pads with more <s>)."""
    at = positions - back
    return np.where(at >= item_starts, tokens[np.maximum(at, 0)], BEFORE_ITEM)


def _split_histories(split, positions, width):
    """(N, width) int64: the ``width`` tokens before each position (oldest first) within its item,
    :data:`BEFORE_ITEM` before the item's <s>."""
    item_starts = _item_starts(split, positions)
    columns = [_tokens_before(split.tokens, positions, item_starts, back) for back in range(width, 0, -1)]
    return np.stack(columns, axis=1).astype(np.int64) if columns else np.empty((len(positions), 0), dtype=np.int64)


def _unique_inverse(keys):
    """``(sorted unique keys, each key's index among them)`` from one argsort (np.unique hashes or
    sorts twice, several times slower on these int64 keys)."""
    order = np.argsort(keys)
    ordered = keys[order]
    first = np.ones(len(keys), dtype=bool)
    first[1:] = ordered[1:] != ordered[:-1]
    inverse = np.empty(len(keys), dtype=np.int64)
    inverse[order] = np.cumsum(first) - 1
    return ordered[first], inverse


def _lookup(table, keys):
    """Index of each key in the sorted ``table``, -1 where absent (a negative key is always absent)."""
    if len(table) == 0:
        return np.full(len(keys), -1, dtype=np.int64)
    at = np.minimum(np.searchsorted(table, keys), len(table) - 1)
    return np.where(table[at] == keys, at, -1)


def modified_kn_discounts(counts_of_counts):
    """``((D1, D2, D3+), fell_back)`` from ``(n1, n2, n3, n4)`` (Chen & Goodman's estimate).

    ``fell_back`` is True, with :data:`FALLBACK_DISCOUNTS`, when some ``n_i`` is 0 or a discount
    ``D_i`` is outside ``(0, i)`` (module docstring: degenerate counts).
    """
    n1, n2, n3, n4 = (int(n) for n in counts_of_counts)
    if min(n1, n2, n3, n4) == 0:
        return FALLBACK_DISCOUNTS, True
    y = n1 / (n1 + 2 * n2)
    discounts = (1 - 2 * y * n2 / n1, 2 - 3 * y * n3 / n2, 3 - 4 * y * n4 / n3)
    if not all(0 < d < i for i, d in enumerate(discounts, start=1)):
        return FALLBACK_DISCOUNTS, True
    return discounts, False


@dataclass(frozen=True)
class Level:
    """Level ``k`` of a model, its n-grams grouped by history (history ``c`` owns entries
    ``starts[c] : starts[c + 1]``): the two history-dependent terms of the formula, ready to add."""

    keys: np.ndarray        # (M,) int64 sorted n-gram keys id(h) · V + w
    words: np.ndarray       # (M,) int64 w of each n-gram
    discounted: np.ndarray  # (M,) max(a(h w) - D(a), 0) / a(h .)
    starts: np.ndarray      # (H + 1,) int64 first entry of each history (histories = contexts of length k - 1)
    gamma: np.ndarray       # (H,) back-off weight γ(h)
    discounts: tuple        # (D1, D2, D3+)
    fell_back: bool         # True: the fallback discounts (degenerate counts of counts)


class _Counts:
    """The n-gram counts of one training split up to ``order``, shared by every order's model.

    ``contexts[j]`` (j = 0 .. order - 1): sorted keys of the contexts of length ``j`` before the
    targets (``contexts[0]`` is the empty context, id 0). ``keys[k]``, ``raw[k]``, ``adjusted[k]``
    (k = 1 .. order): the k-grams at targets, their raw counts, and the counts a lower level uses
    (continuation counts; raw for n-grams starting with <s>; ``adjusted[order]`` is not needed).
    Only k-grams inside an item count: level ``k`` sees the targets with at least ``k - 1`` tokens
    of their item before them (<s> included), so ``<s>`` is only ever a k-gram's first token.
    """

    def __init__(self, split, vocab_size, bos_id, order):
        v = self.vocab_size = vocab_size
        self.bos_id, self.order = bos_id, order
        tokens = split.tokens.astype(np.int64)
        if len(tokens) and (tokens.min() < 0 or tokens.max() >= v):
            raise ValueError("split has token ids outside the vocabulary")
        positions = target_positions(split)
        words = tokens[positions]
        depth = positions - _item_starts(split, positions)     # tokens of its item before each target, <s> too
        self.contexts = [np.zeros(1 if len(positions) else 0, dtype=np.int64)]
        self.keys, self.raw, self.adjusted = {}, {}, {}
        history = np.zeros(len(positions), dtype=np.int64)   # id of each target's history of length k - 1
        below = None                                          # each target's (k-1)-gram: its index
        for k in range(1, order + 1):
            self.keys[k], ngram = _unique_inverse(history * v + words)
            self.raw[k] = np.bincount(ngram, minlength=len(self.keys[k]))
            if k > 1:
                self.adjusted[k - 1] = self._adjusted(k - 1, ngram, below)
            if k == order:
                break
            # Level k + 1 counts only the targets with k tokens of their item before them: a longer
            # n-gram would need a second <s> (module docstring), so the others drop out here.
            keep = depth >= k
            positions, words, depth, history, ngram = (a[keep] for a in (positions, words, depth, history, ngram))
            # The history of length k: one more token, the oldest, in front of the one of length k - 1.
            context_keys, history = _unique_inverse(history * v + tokens[positions - k])
            self.contexts.append(context_keys)
            below = ngram
        self._levels = {}

    def _adjusted(self, k, upper, lower):
        """The counts level ``k`` uses below the top: a_k(g) = the number of distinct (k+1)-grams
        ``u g`` (continuation count), raw where ``g`` starts with <s> (nothing precedes it, so no
        (k+1)-gram ends with it). ``upper``, ``lower``: each target's (k+1)-gram and k-gram index,
        over the targets level k + 1 counts; the k-gram at a target is its (k+1)-gram's suffix."""
        suffix = np.empty(len(self.keys[k + 1]), dtype=np.int64)
        suffix[upper] = lower
        counts = np.bincount(suffix, minlength=len(self.keys[k]))
        if k == 1:  # a unigram never starts with <s> (<s> is never a target)
            return counts
        starts_with_bos = self.contexts[k - 1][self.keys[k] // self.vocab_size] % self.vocab_size == self.bos_id
        return np.where(starts_with_bos, self.raw[k], counts)

    def level(self, k, raw):
        """:class:`Level` ``k`` with raw counts (the top level) or adjusted counts (a lower one); cached."""
        if (k, raw) not in self._levels:
            self._levels[k, raw] = self._build_level(k, self.raw[k] if raw else self.adjusted[k])
        return self._levels[k, raw]

    def _build_level(self, k, counts):
        v, keys = self.vocab_size, self.keys[k]
        histories = keys // v
        discounts, fell_back = modified_kn_discounts([np.count_nonzero(counts == i) for i in (1, 2, 3, 4)])
        per_count = np.array((0.0,) + tuple(discounts))[np.minimum(counts, 3)]   # D(a) of each n-gram
        n_hist = len(self.contexts[k - 1])
        total = np.bincount(histories, weights=counts, minlength=n_hist)         # a(h .)
        mass = np.bincount(histories, weights=per_count, minlength=n_hist)       # Σ_w D(a(h w)) = γ · a(h .)
        starts = np.concatenate([[0], np.cumsum(np.bincount(histories, minlength=n_hist))])
        gamma = mass / total        # every history was seen before some target: no total is 0
        discounted = np.maximum(counts - per_count, 0) / total[histories]
        return Level(keys, keys % v, discounted, starts, gamma, tuple(float(d) for d in discounts), fell_back)


class KneserNeyLM:
    """Interpolated modified Kneser-Ney over token ids ``0 .. vocab_size - 1``; call :meth:`fit` first.

    ``pad_id`` and ``bos_id`` are excluded from prediction (probability 0); the remaining
    ``vocab_size - 2`` ids share the probability mass, so every distribution sums to 1.
    :meth:`fit` counts up to ``order``; :meth:`with_order` gives the model of any lower order
    from the same counts.
    """

    def __init__(self, vocab_size, pad_id, bos_id, order=3):
        if isinstance(order, bool) or not isinstance(order, (int, np.integer)) or order < 1:
            raise ValueError(f"order must be an int >= 1, got {order!r}")
        if vocab_size < 3 or not (0 <= pad_id < vocab_size and 0 <= bos_id < vocab_size) or pad_id == bos_id:
            raise ValueError("need vocab_size >= 3 and distinct pad_id, bos_id inside the vocabulary")
        self.vocab_size = vocab_size
        self.pad_id = pad_id
        self.bos_id = bos_id
        self.order = int(order)
        self.predictable = np.ones(vocab_size, dtype=bool)
        self.predictable[[pad_id, bos_id]] = False
        self.counts = None      # _Counts, shared with the models with_order() derives

    # --- fitting ------------------------------------------------------------------------------

    def fit(self, split):
        """Count the n-grams of ``split`` (training items ``<s> t1 t2 ...``) up to this order; return self."""
        self.counts = _Counts(split, self.vocab_size, self.bos_id, self.order)
        return self

    def with_order(self, order):
        """The model of ``order`` (1 .. the fitted order) from this model's counts: no counting again."""
        self._check_fitted()
        if not 1 <= order <= self.counts.order:
            raise ValueError(f"order must be between 1 and {self.counts.order} (the fitted order), got {order}")
        model = KneserNeyLM(self.vocab_size, self.pad_id, self.bos_id, order)
        model.counts = self.counts
        return model

    def _check_fitted(self):
        if self.counts is None:
            raise RuntimeError("KneserNeyLM: call fit() before asking for probabilities")

    def level(self, k):
        """:class:`Level` ``k`` (2 .. order) of this model: raw counts at the top level, adjusted below."""
        self._check_fitted()
        return self.counts.level(k, raw=k == self.order)

    @property
    def unigram(self):
        """P_1 as a (V,) array (it does not depend on the history)."""
        self._check_fitted()
        level = self.counts.level(1, raw=self.order == 1)
        uniform = self.predictable / self.predictable.sum()
        if len(level.words) == 0:   # no training tokens: nothing but the uniform distribution is justified
            return uniform
        unigram = np.zeros(self.vocab_size)
        unigram[level.words] = level.discounted
        return unigram + level.gamma[0] * uniform

    @property
    def discounts(self):
        """``{level: (D1, D2, D3+)}`` of this model, levels 1 .. order."""
        self._check_fitted()
        return {k: self.counts.level(k, raw=k == self.order).discounts for k in range(1, self.order + 1)}

    @property
    def discount_fallbacks(self):
        """The levels whose counts of counts were degenerate, so they use :data:`FALLBACK_DISCOUNTS`."""
        self._check_fitted()
        return [k for k in range(1, self.order + 1) if self.counts.level(k, raw=k == self.order).fell_back]

    @property
    def num_ngrams(self):
        """Stored n-grams over levels 1 .. order (the model's "parameters")."""
        return 0 if self.counts is None else sum(len(self.counts.keys[k]) for k in range(1, self.order + 1))

    def stored_ngrams(self, k):
        """The k-grams level ``k`` stores (seen in training), as token ids oldest first: (M, k) int64."""
        self._check_fitted()
        counts, v = self.counts, self.vocab_size
        keys = counts.keys[k]
        columns, context = [], keys // v
        for j in range(k - 1, 0, -1):  # unfold id(h), oldest token first: a context key is id(newer part) · V + oldest
            key = counts.contexts[j][context]
            columns.append(key % v)
            context = key // v
        return np.stack(columns + [keys % v], axis=1)

    # --- probabilities --------------------------------------------------------------------------

    def _as_histories(self, histories, level):
        histories = np.asarray(histories, dtype=np.int64)
        if histories.ndim != 2 or histories.shape[1] != level - 1:
            raise ValueError(f"histories of level {level} must be an (N, {level - 1}) array, got shape {histories.shape}")
        return histories

    def _level_arg(self, level):
        self._check_fitted()
        level = self.order if level is None else level
        if not 1 <= level <= self.order:
            raise ValueError(f"level must be between 1 and the model's order {self.order}, got {level}")
        return level

    def _context_ids(self, histories):
        """(N, L + 1) ids of each row's newest ``j`` tokens, j = 0 .. L (-1: never seen before a target)."""
        n_rows, width = histories.shape
        ids = np.empty((n_rows, width + 1), dtype=np.int64)
        ids[:, 0] = 0 if len(self.counts.contexts[0]) else -1
        for j in range(1, width + 1):
            # A key with an unknown (-1) shorter context is negative, so it is unknown too; so is a
            # context reaching before the item (BEFORE_ITEM): its levels back off entirely.
            oldest = histories[:, width - j]
            keys = np.where(oldest >= 0, ids[:, j - 1] * self.vocab_size + oldest, -1)
            ids[:, j] = _lookup(self.counts.contexts[j], keys)
        return ids

    def _weights(self, level, history_ids):
        """γ of each row at ``level`` (1.0 where the history is unseen), and the seen rows."""
        seen = np.flatnonzero(history_ids >= 0)
        weights = np.ones(len(history_ids))
        weights[seen] = level.gamma[history_ids[seen]]
        return weights, seen

    def _rows(self, context_ids, level):
        """``P_level(. | h)`` of each row: (N, V). Starting from the unigram, each level scales the level
        below by its back-off weight, then adds its discounted counts (a weight of 1.0 for an unseen
        history is exact, and one broadcast product is cheaper than gathering the seen rows)."""
        out = np.repeat(self.unigram[None, :], len(context_ids), axis=0)
        for k in range(2, level + 1):
            lv = self.level(k)
            weights, seen = self._weights(lv, context_ids[:, k - 1])
            out *= weights[:, None]
            # Each seen row's entries starts[h] : starts[h + 1], laid end to end.
            history_ids = context_ids[seen, k - 1]
            first, sizes = lv.starts[history_ids], lv.starts[history_ids + 1] - lv.starts[history_ids]
            entries = np.repeat(first - np.cumsum(sizes) + sizes, sizes) + np.arange(sizes.sum())
            # (row, word) pairs are distinct within a level, so a fancy-indexed += adds each term once.
            out[np.repeat(seen, sizes), lv.words[entries]] += lv.discounted[entries]
        return out

    def _probs(self, context_ids, targets, level):
        """``P_level(target | h)`` of each row: (N,), the very floats of :meth:`_rows` at the targets
        (same products and sums in the same order), without building (N, V)."""
        p = self.unigram[targets]
        for k in range(2, level + 1):
            lv = self.level(k)
            history_ids = context_ids[:, k - 1]
            p *= self._weights(lv, history_ids)[0]
            at = _lookup(lv.keys, np.where(history_ids >= 0, history_ids * self.vocab_size + targets, -1))
            found = at >= 0
            p[found] += lv.discounted[at[found]]
        return p

    def distributions(self, histories, level=None):
        """``P_level(. | h)`` for every row ``h`` of ``histories`` (N, level - 1): an (N, V) float64 array.

        ``level`` defaults to the model's order; a lower level gives the model's own lower-order
        distribution (continuation counts). Single probabilities, distributions and evaluation
        all read these rows, so they agree bit for bit (argmax ties included).
        """
        level = self._level_arg(level)
        return self._rows(self._context_ids(self._as_histories(histories, level)), level)

    def ngram_probabilities(self, ngrams, level=None):
        """``P_level(w | h)`` for every row ``h w`` of ``ngrams`` (N, level): (N,) float64, equal to
        the entries of :meth:`distributions` at ``w``."""
        level = self._level_arg(level)
        ngrams = np.asarray(ngrams, dtype=np.int64)
        if ngrams.ndim != 2 or ngrams.shape[1] != level:
            raise ValueError(f"n-grams of level {level} must be an (N, {level}) array, got shape {ngrams.shape}")
        return self._probs(self._context_ids(ngrams[:, :-1]), ngrams[:, -1], level)

    def backoff_weights(self, histories, level):
        """``(γ (N,), seen (N,) bool)`` of level ``level`` (2 .. order) for each row ``h`` of
        ``histories`` (N, level - 1); γ = 1.0 where ``h`` was never a history there."""
        level = self._level_arg(level)
        ids = self._context_ids(self._as_histories(histories, level))[:, level - 1]
        return self._weights(self.level(level), ids)[0], ids >= 0

    def _history(self, history_ids):
        """The last ``order - 1`` ids of ``history_ids``, left-filled with :data:`BEFORE_ITEM`, as a
        (1, order - 1) array."""
        want = self.order - 1
        hist = [int(t) for t in history_ids][-want:] if want else []
        return np.array([[BEFORE_ITEM] * (want - len(hist)) + hist], dtype=np.int64).reshape(1, want)

    def distribution(self, history_ids):
        """P(. | history) over the whole vocabulary: a (V,) float64 array summing to 1.

        ``history_ids`` is the item so far, normally starting with <s>; a history of ``m < order - 1``
        tokens is scored from level ``m + 1`` down (an empty one: the unigram distribution).
        """
        return self.distributions(self._history(history_ids))[0]

    def prob(self, history_ids, token_id):
        """P(token | history): one entry of :meth:`distribution`."""
        token_id = int(token_id)
        if not 0 <= token_id < self.vocab_size:
            raise ValueError(f"token id {token_id} outside the vocabulary (size {self.vocab_size})")
        return float(self.distribution(history_ids)[token_id])

    def histories(self, item):
        """The history of every target of one item ``<s> t1 t2 ...``: (targets, order - 1), read-only.

        Row ``j`` is the history of target ``j + 1`` (the item's ``(j + 1)``-th token): the item so
        far, left-filled with :data:`BEFORE_ITEM` (module docstring), so
        ``distributions(histories(item))[j]`` equals ``distribution(item[:j + 1])``. The rows are a
        sliding window over the item, not copies: a stream's histories cost one padded item.
        """
        item = np.asarray(item, dtype=np.int64)
        width, targets = self.order - 1, max(len(item) - 1, 0)
        if width == 0:
            return np.empty((targets, 0), dtype=np.int64)
        padded = np.concatenate([np.full(width - 1, BEFORE_ITEM, dtype=np.int64), item])
        return np.lib.stride_tricks.sliding_window_view(padded, width)[:targets]

    # --- whole splits ---------------------------------------------------------------------------

    def _targets(self, split, positions):
        targets = split.tokens[positions].astype(np.int64)
        if len(targets) and (targets.min() < 0 or targets.max() >= self.vocab_size):
            raise ValueError("split has token ids outside the vocabulary")
        return targets

    def split_distributions(self, split, max_cells=MAX_CELLS):
        """Yield ``(indices, targets (N,), P (N, V))`` over every target of ``split``, in flat target
        order (item by item, each token after an item's <s>), chunk by chunk (:func:`target_chunks`).

        ``indices`` lists the items a chunk covers: whole items, several per chunk, while an item's
        targets fit ``max_cells // V`` rows (the chunks of :func:`item_chunks`, which the mixture pairs
        with neural batches of the same items). An item longer than that comes in consecutive
        pieces, each yielded with ``indices == [i]`` and only its part of the item's targets.
        """
        self._check_fitted()
        positions = target_positions(split)
        for indices, start, stop in target_chunks(split, self.vocab_size, max_cells):
            at = positions[start:stop]
            histories = _split_histories(split, at, self.order - 1)
            yield indices, self._targets(split, at), self._rows(self._context_ids(histories), self.order)

    def _target_blocks(self, split, width):
        """``(targets, context ids (N, width + 1))`` of ``split``'s targets, :data:`TARGET_ROWS` at a time."""
        self._check_fitted()
        positions = target_positions(split)
        for start in range(0, len(positions), TARGET_ROWS):
            at = positions[start:start + TARGET_ROWS]
            yield self._targets(split, at), self._context_ids(_split_histories(split, at, width))

    def target_probabilities(self, split, max_cells=MAX_CELLS):
        """P(target | history) of every target of ``split``, in flat target order: (N,) float64
        (``max_cells`` is unused: no (N, V) array is built; kept for the callers' symmetry)."""
        return np.concatenate([np.empty(0)] + [self._probs(ids, targets, self.order)
                                               for targets, ids in self._target_blocks(split, self.order - 1)])

    def loss_by_order(self, split, orders):
        """``{order: loss in nats/token on split}`` of the model of each order in ``orders`` (each at
        most the fitted order), all from one pass over the split's histories."""
        self._check_fitted()
        orders = [int(k) for k in orders]
        models = {k: self.with_order(k) for k in orders}
        nll, tokens = dict.fromkeys(orders, 0.0), 0
        for targets, ids in self._target_blocks(split, max(orders) - 1):
            for k, model in models.items():
                with np.errstate(divide="ignore"):
                    nll[k] -= float(np.log(model._probs(ids, targets, k)).sum())
            tokens += len(targets)
        if not all(math.isfinite(v) for v in nll.values()):
            raise ValueError("a target has probability 0 (<pad> or <s> inside an item?)")
        if tokens == 0:
            raise ValueError("the split has no targets to score")
        return {k: nll[k] / tokens for k in orders}

    # --- evaluation ---------------------------------------------------------------------------

    def evaluate(self, split, unk_id=None, max_cells=MAX_CELLS):
        """Sums over every target of ``split``: ``(total_nll, correct, tokens, chars, unknown, correct_known)``.

        Pass them to :func:`rnnlm.results.summarize` for the metrics every model reports.
        ``correct`` counts targets equal to the argmax of the predicted distribution; ``unknown``
        counts targets equal to ``unk_id`` and ``correct_known`` the correct ones among the others
        (both None when no ``unk_id`` is given).
        """
        tally = Tally(unk_id)
        for _, targets, dist in self.split_distributions(split, max_cells):
            with np.errstate(divide="ignore"):
                nll = -float(np.log(dist[np.arange(len(targets)), targets]).sum())  # inf: <pad>/<s> targets
            tally.add(targets, nll, dist.argmax(axis=1))
        if not math.isfinite(tally.total_nll):
            raise ValueError("a target has probability 0 (<pad> or <s> inside an item?)")
        return tally.sums(int(split.chars.sum()))


def select_order(model, dev, orders):
    """``(the model of the order with the lowest dev loss, {order: dev loss})`` from a model fitted at
    ``max(orders)`` or higher. On an exact tie the lowest order wins (the smaller model)."""
    losses = model.loss_by_order(dev, sorted(orders))
    best = min(losses, key=lambda k: (losses[k], k))
    return model.with_order(best), losses


def discount_record(model):
    """The discounts of ``model`` as plain data: ``{"1": {"D1": .., "D2": .., "D3+": ..}, ...}``, with
    ``"fallback": true`` on a level whose counts of counts were degenerate."""
    fell_back = set(model.discount_fallbacks)
    return {str(k): dict(zip(("D1", "D2", "D3+"), d), **({"fallback": True} if k in fell_back else {}))
            for k, d in model.discounts.items()}


def fit_ngram(vocab, train, config, order=None):
    """The baseline's counts as the pipeline fits them: on ``train``, over ``vocab``, up to
    ``config.max_order`` (or ``order``); :func:`select_order` then picks the order on dev.

    The ngram stage fits and chooses; the mixture stage refits at the chosen order (``order``);
    one place keeps them the same.
    """
    return KneserNeyLM(len(vocab), vocab.pad_id, vocab.bos_id, order or config.max_order).fit(train)
