"""Interpolated modified Kneser-Ney: discounts and probabilities checked against hand arithmetic, and
the vectorized model against a plain-Python oracle (dicts of tuples) written here.

Discounts by hand (Chen & Goodman's estimate), counts of counts n1..n4 = 10, 4, 2, 1::

    Y   = 10 / (10 + 2*4)       = 5/9
    D1  = 1 - 2 * 5/9 * 4/10    = 1 - 4/9  = 5/9
    D2  = 2 - 3 * 5/9 * 2/4     = 2 - 5/6  = 7/6
    D3+ = 3 - 4 * 5/9 * 1/2     = 3 - 10/9 = 17/9

A corpus by hand (char level, S = <s>, E = </s>), order 2: "aaaab" -> S a a a a b E, "aabab" -> S a a b a b E.
Vocabulary <pad> <unk> <s> </s> a b (a is more frequent): V = 6, 4 predictable ids, uniform 1/4 each.

Bigram level (the top level: raw counts): Sa 2, aa 4, ab 3, bE 2, ba 1.
    counts of counts n1..n4 = 1 (ba), 2 (Sa, bE), 1 (ab), 1 (aa)
    Y = 1 / (1 + 2*2) = 1/5;  D1 = 1 - 2 * 1/5 * 2/1 = 1/5;  D2 = 2 - 3 * 1/5 * 1/2 = 17/10;
    D3+ = 3 - 4 * 1/5 * 1/1 = 11/5
Unigram level (continuation counts: distinct left contexts among the bigram types Sa aa ab bE ba):
    a: {S, a, b} = 3,  b: {a} = 1,  E: {b} = 1;   n1..n4 = 2, 0, 1, 0
    n2 = 0: degenerate, so this level takes the fallback discounts D1, D2, D3+ = 0.5, 1.0, 1.5
    total 5, γ1 = (0.5 * 2 + 1.5 * 1) / 5 = 0.5
    P1(a) = (3 - 1.5)/5 + 0.5/4 = 0.425,  P1(b) = (1 - 0.5)/5 + 0.125 = 0.225,  P1(E) = 0.225,
    P1(<unk>) = 0.125;  sum 1
History "a": aa 4, ab 3 -> total 7, N3+ = 2, γ(a) = 11/5 * 2 / 7 = 4.4/7
    P2(b | a) = (3 - 2.2)/7 + 4.4/7 * 0.225 = (0.8 + 0.99)/7 = 1.79/7
    P2(a | a) = (4 - 2.2)/7 + 4.4/7 * 0.425 = (1.8 + 1.87)/7 = 3.67/7
    P2(E | a) = 4.4/7 * 0.225 = 0.99/7,  P2(<unk> | a) = 4.4/7 * 0.125 = 0.55/7;  sum 7/7
History "b": bE 2, ba 1 -> total 3, N1 = 1, N2 = 1, γ(b) = (0.2 + 1.7) / 3 = 1.9/3
    P2(E | b) = (2 - 1.7)/3 + 1.9/3 * 0.225 = (0.3 + 0.4275)/3,  P2(a | b) = (1 - 0.2)/3 + 1.9/3 * 0.425
History "S": Sa 2 -> total 2, N2 = 1, γ(S) = 1.7/2 = 0.85
    P2(a | S) = (2 - 1.7)/2 + 0.85 * 0.425 = 0.15 + 0.36125 = 0.51125

Degenerate counts by hand: "ab", "abb", "ba" -> S a b E, S a b b E, S b a E.
    Unigram continuation counts a 2 ({S, b}), b 3 ({S, a, b}), E 2 ({b, a}): n1 = 0 -> fallback.
    total 7, γ1 = (1.0 * 2 + 1.5 * 1) / 7 = 3.5/7
    P1(a) = (2 - 1)/7 + 3.5/28 = 7.5/28,  P1(b) = (3 - 1.5)/7 + 3.5/28 = 9.5/28,  P1(E) = 7.5/28,
    P1(<unk>) = 3.5/28;  sum 1
    Bigram raw counts Sa 2, Sb 1, ab 2, bE 2, bb 1, ba 1, aE 1: n3 = 0 -> fallback too.
    History "a": ab 2, aE 1 -> total 3, γ(a) = (1.0 * 1 + 0.5 * 1) / 3 = 0.5
    P2(b | a) = (2 - 1)/3 + 0.5 * 9.5/28,   P2(a | a) = 0.5 * 7.5/28 (aa never seen)
    Order 3: the bigram level is a lower level now. Bigrams starting with <s> keep their raw counts
    (Sa 2, Sb 1: nothing precedes an item's <s>, so they have no left context to count); the
    others get continuation counts: ab 1, bE 2, bb 1, ba 1, aE 1 -> n3 = 0, fallback again.
    History "S": Sa 2, Sb 1 -> total 3, γ(S) = (1.0 * 1 + 0.5 * 1) / 3 = 0.5
    P2(a | S) = (2 - 1)/3 + 0.5 * 7.5/28

The start of an item by hand, order 3 (KenLM's way: one <s>, first in an n-gram, never padded):
"ab", "abc", "bab" -> S a b E, S a b c E, S b a b E. Vocabulary <pad> <unk> <s> </s> a b c:
5 predictable ids, uniform 1/5. A target's history is the item so far, at most 2 tokens, so the
first target of an item is predicted from "S" alone at level 2, the second from "S t1" at level 3.
Trigram level (top, raw counts; only trigrams inside an item, none with two <s>):
    Sab 2 (items 1, 2), abE 2 (items 1, 3), abc 1, bcE 1, Sba 1, bab 1
    n1..n4 = 4, 2, 0, 0 -> fallback D1, D2, D3+ = 0.5, 1.0, 1.5
Bigram level (every target has a bigram; raw counts for Sa 2, Sb 1, which start with <s>;
continuation counts, the distinct trigram types ending in them, for the others):
    ab 2 ({Sab, bab}), bE 1 (abE), bc 1 (abc), cE 1 (bcE), ba 1 (Sba)
    n1..n4 = 5, 2, 0, 0 -> fallback
Unigram level (distinct bigram types ending in each word):
    a 2 ({Sa, ba}), b 2 ({Sb, ab}), c 1 (bc), E 2 ({bE, cE});  n3 = 0 -> fallback
    total 7, γ1 = (1.0 * 3 + 0.5 * 1) / 7 = 0.5
    P1(a) = P1(b) = P1(E) = (2 - 1)/7 + 0.5/5 = 17/70,  P1(c) = (1 - 0.5)/7 + 0.1 = 12/70,  P1(U) = 7/70
History "S" (level 2): Sa 2, Sb 1 -> total 3, γ(S) = (1.0 + 0.5)/3 = 0.5
    P2(a | S) = (2 - 1)/3 + 0.5 * 17/70 = 1/3 + 17/140,   P2(b | S) = (1 - 0.5)/3 + 17/140 = 1/6 + 17/140
    P2(c | S) = 0.5 * 12/70 = 6/70
History "a" (level 2): ab 2 -> total 2, γ(a) = 1.0/2 = 0.5;  P2(b | a) = (2 - 1)/2 + 0.5 * 17/70 = 1/2 + 17/140
History "b" (level 2): bE 1, bc 1, ba 1 -> total 3, γ(b) = 1.5/3 = 0.5
    P2(c | b) = 0.5/3 + 0.5 * 12/70 = 1/6 + 6/70,   P2(E | b) = 0.5/3 + 0.5 * 17/70 = 1/6 + 17/140
History "S a" (level 3): Sab 2 -> total 2, γ = 1.0/2 = 0.5
    P3(b | S a) = (2 - 1)/2 + 0.5 * P2(b | a) = 1/2 + 1/4 + 17/280 = 3/4 + 17/280
History "a b" (level 3): abE 2, abc 1 -> total 3, γ = (1.0 + 0.5)/3 = 0.5
    P3(E | a b) = (2 - 1)/3 + 0.5 * P2(E | b) = 1/3 + 1/12 + 17/280 = 5/12 + 17/280
    P3(c | a b) = (1 - 0.5)/3 + 0.5 * P2(c | b) = 1/6 + 1/12 + 3/70 = 1/4 + 3/70
History "c a" was never a trigram history: P3(w | c a) = P2(w | a).
"""

import math
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rnnlm.data import EncodedSplit, encode_split
from rnnlm.ngram import (FALLBACK_DISCOUNTS, KneserNeyLM, item_chunks, modified_kn_discounts, select_order,
                         target_chunks)
from rnnlm.results import summarize
from rnnlm.vocab import Vocabulary

HAND = ["aaaab", "aabab"]
DEGENERATE = ["ab", "abb", "ba"]
START = ["ab", "abc", "bab"]


def fit(vocab, items, order):
    return KneserNeyLM(len(vocab), vocab.pad_id, vocab.bos_id, order=order).fit(encode_split(vocab, items))


def ids(vocab, symbols):
    names = {"S": "<s>", "E": "</s>", "U": "<unk>"}
    return [vocab.index[names.get(s, s)] for s in symbols]


def stream_split(vocab, text):
    """One item ``<s> t0 t1 ...`` without </s>: a whole text read as one stream."""
    tokens = np.array(vocab.encode(text)[:-1], dtype=np.int32)
    return EncodedSplit(tokens, np.array([0, len(tokens)], dtype=np.int64), np.array([len(text)], dtype=np.int64))


# --- the oracle: modified Kneser-Ney written the obvious way ------------------------------------------

def reference_model(items, vocab_size, pad_id, bos_id, order):
    """``prob(history, w)`` and ``{level: (D1, D2, D3+)}`` by the textbook recursion over Counters of
    tuples: no arrays, no ids, nothing shared with rnnlm.ngram. ``history``: the item so far, its
    <s> included; as KenLM, an n-gram never reaches before the item's <s>."""
    raw = {k: Counter() for k in range(1, order + 1)}
    for item in items:                                 # item[0] is its <s>
        for t in range(1, len(item)):
            for k in range(1, min(order, t + 1) + 1):  # the k-grams ending at t inside the item
                raw[k][tuple(item[t - k + 1:t + 1])] += 1
    counts = {order: raw[order]}
    for k in range(order - 1, 0, -1):
        continuation = Counter(g[1:] for g in raw[k + 1])
        counts[k] = {g: (c if g[0] == bos_id else continuation[g]) for g, c in raw[k].items()}
    discounts = {}
    for k in range(1, order + 1):
        of = Counter(counts[k].values())
        n1, n2, n3, n4 = (of[i] for i in (1, 2, 3, 4))
        d = (0.5, 1.0, 1.5)
        if min(n1, n2, n3, n4) > 0:
            y = n1 / (n1 + 2 * n2)
            estimate = (1 - 2 * y * n2 / n1, 2 - 3 * y * n3 / n2, 3 - 4 * y * n4 / n3)
            if all(0 < estimate[i - 1] < i for i in (1, 2, 3)):
                d = estimate
        discounts[k] = d
    table = {k: {} for k in range(1, order + 1)}
    for k in range(1, order + 1):
        for g, c in counts[k].items():
            table[k].setdefault(g[:-1], {})[g[-1]] = c
    predictable = [w for w in range(vocab_size) if w not in (pad_id, bos_id)]

    def p(k, history, w):
        if k == 0:
            return 1 / len(predictable) if w in predictable else 0.0
        seen = table[k].get(tuple(history[len(history) - (k - 1):]) if k > 1 else ())
        if not seen:
            return p(k - 1, history, w)
        total = sum(seen.values())
        d = lambda c: discounts[k][min(c, 3) - 1]  # noqa: E731
        gamma = sum(d(c) for c in seen.values()) / total
        c = seen.get(w, 0)
        return (max(c - d(c), 0) / total if c else 0.0) + gamma * p(k - 1, history, w)

    def prob(history, w):
        kept = list(history)[max(0, len(history) - (order - 1)):] if order > 1 else []
        return p(len(kept) + 1, kept, w)               # the longest history the item has, at most order - 1

    return prob, discounts


# --- discounts ---------------------------------------------------------------------------------

def test_discounts_by_hand():
    discounts, fell_back = modified_kn_discounts((10, 4, 2, 1))
    assert not fell_back
    assert discounts == pytest.approx((5 / 9, 7 / 6, 17 / 9), abs=1e-15)


@pytest.mark.parametrize("counts_of_counts", [
    (0, 0, 0, 0),       # nothing counted
    (3, 0, 1, 1),       # n2 = 0: Y, D2 undefined
    (5, 1, 0, 0),       # n3 = 0
    (4, 2, 1, 0),       # n4 = 0: D3+ = 3, no mass from the frequent n-grams
    (1, 1, 10, 1),      # D2 = 2 - 3 * 1/3 * 10 = -8
    (1, 1, 1, 10),      # D3+ = 3 - 4 * 1/3 * 10 < 0
])
def test_degenerate_counts_of_counts_fall_back(counts_of_counts):
    assert modified_kn_discounts(counts_of_counts) == (FALLBACK_DISCOUNTS, True)
    assert FALLBACK_DISCOUNTS == (0.5, 1.0, 1.5)   # KenLM's --discount_fallback defaults


# --- probabilities by hand -----------------------------------------------------------------------

def test_order_one_by_hand():
    # One item "abbcccdddd": raw unigram counts a 1, b 2, c 3, d 4, E 1 -> n1..n4 = 2, 1, 1, 1;
    # Y = 2/4, D1 = 1 - 2 * 1/2 * 1/2 = 1/2, D2 = 2 - 3 * 1/2 * 1 = 1/2, D3+ = 3 - 4 * 1/2 * 1 = 1.
    # total 11, γ = (0.5 * 2 + 0.5 * 1 + 1 * 2) / 11 = 3.5/11; 6 predictable ids (uniform 1/6):
    #   P(a) = 0.5/11 + 3.5/66 = 6.5/66,  P(b) = 1.5/11 + 3.5/66 = 12.5/66,  P(c) = 2/11 + 3.5/66 = 15.5/66,
    #   P(d) = 3/11 + 3.5/66 = 21.5/66,   P(E) = 6.5/66,  P(<unk>) = 3.5/66;  sum 66/66
    vocab = Vocabulary.build(["abbcccdddd"], "char")
    lm = fit(vocab, ["abbcccdddd"], 1)
    assert lm.discounts == {1: pytest.approx((0.5, 0.5, 1.0), abs=1e-15)} and lm.discount_fallbacks == []
    a, b, c, d, E, U = ids(vocab, "abcdEU")
    for w, p in {a: 6.5, b: 12.5, c: 15.5, d: 21.5, E: 6.5, U: 3.5}.items():
        assert lm.prob([], w) == pytest.approx(p / 66, abs=1e-15)
        assert lm.prob([vocab.bos_id, b, c], w) == pytest.approx(p / 66, abs=1e-15)  # history ignored


def test_bigram_probabilities_and_discounts_by_hand():
    vocab = Vocabulary.build(HAND, "char")
    assert vocab.tokens == ["<pad>", "<unk>", "<s>", "</s>", "a", "b"]
    lm = fit(vocab, HAND, 2)
    assert lm.discounts[2] == pytest.approx((0.2, 1.7, 2.2), abs=1e-15)
    assert lm.discounts[1] == (0.5, 1.0, 1.5) and lm.discount_fallbacks == [1]
    a, b, S, E, U = ids(vocab, "abSEU")
    p1 = {a: 0.425, b: 0.225, E: 0.225, U: 0.125}
    for w, p in p1.items():
        assert lm.unigram[w] == pytest.approx(p, abs=1e-15)
        assert lm.prob([S, U], w) == pytest.approx(p, abs=1e-15)   # history <unk> never seen: P2 = P1
    assert lm.prob([S, a], b) == pytest.approx(1.79 / 7, abs=1e-15)
    assert lm.prob([S, a], a) == pytest.approx(3.67 / 7, abs=1e-15)
    assert lm.prob([S, a], E) == pytest.approx(0.99 / 7, abs=1e-15)
    assert lm.prob([S, a], U) == pytest.approx(0.55 / 7, abs=1e-15)
    assert lm.prob([S, b], E) == pytest.approx(0.7275 / 3, abs=1e-15)
    assert lm.prob([S, b], a) == pytest.approx(0.8 / 3 + 1.9 / 3 * 0.425, abs=1e-15)
    assert lm.prob([S], a) == pytest.approx(0.51125, abs=1e-15)
    assert lm.prob([], a) == lm.unigram[a]   # an empty history: no context at all, not padded with <s>


def test_degenerate_corpus_falls_back_by_hand():
    vocab = Vocabulary.build(DEGENERATE, "char")
    lm = fit(vocab, DEGENERATE, 2)
    assert lm.discount_fallbacks == [1, 2] and lm.discounts == {1: (0.5, 1.0, 1.5), 2: (0.5, 1.0, 1.5)}
    a, b, S, E, U = ids(vocab, "abSEU")
    for w, p in {a: 7.5, b: 9.5, E: 7.5, U: 3.5}.items():
        assert lm.unigram[w] == pytest.approx(p / 28, abs=1e-15)
    assert lm.prob([S, a], b) == pytest.approx(1 / 3 + 0.5 * 9.5 / 28, abs=1e-15)
    assert lm.prob([S, a], a) == pytest.approx(0.5 * 7.5 / 28, abs=1e-15)
    lm3 = fit(vocab, DEGENERATE, 3)
    assert lm3.distributions([[S]], level=2)[0, a] == pytest.approx(1 / 3 + 0.5 * 7.5 / 28, abs=1e-15)


def test_start_of_item_by_hand_order_3():
    vocab = Vocabulary.build(START, "char")
    assert sorted(vocab.tokens) == ["</s>", "<pad>", "<s>", "<unk>", "a", "b", "c"]
    lm = fit(vocab, START, 3)
    assert lm.discount_fallbacks == [1, 2, 3]
    a, b, c, S, E, U = ids(vocab, "abcSEU")
    for w, p in {a: 17, b: 17, c: 12, E: 17, U: 7}.items():
        assert lm.unigram[w] == pytest.approx(p / 70, abs=1e-15)
    # The first target of an item: history "S" alone, level 2 (no "S S" context exists).
    assert lm.prob([S], a) == pytest.approx(1 / 3 + 17 / 140, abs=1e-15)
    assert lm.prob([S], b) == pytest.approx(1 / 6 + 17 / 140, abs=1e-15)
    assert lm.prob([S], c) == pytest.approx(6 / 70, abs=1e-15)
    # The second and third: "S a" and "a b" at level 3.
    assert lm.prob([S, a], b) == pytest.approx(3 / 4 + 17 / 280, abs=1e-15)
    assert lm.prob([S, a, b], E) == pytest.approx(5 / 12 + 17 / 280, abs=1e-15)
    assert lm.prob([S, a, b], c) == pytest.approx(1 / 4 + 3 / 70, abs=1e-15)
    assert lm.prob([S, c, a], b) == pytest.approx(1 / 2 + 17 / 140, abs=1e-15)   # "c a" unseen: P2(b | a)
    # A whole split scores the same: "ab" -> a | S, b | S a, E | a b.
    nll = lm.evaluate(encode_split(vocab, ["ab"]))[0]
    assert nll == pytest.approx(-math.log((1 / 3 + 17 / 140) * (3 / 4 + 17 / 280) * (5 / 12 + 17 / 280)), rel=1e-14)
    np.testing.assert_array_equal(lm.histories(ids(vocab, "SabE")), [[-1, S], [S, a], [a, b]])


@pytest.mark.parametrize("items", [["a"], [""], ["ab"], ["abcabc"]])
@pytest.mark.parametrize("order", [1, 2, 3, 5])
def test_tiny_corpora_never_crash_and_stay_distributions(items, order):
    vocab = Vocabulary.build(["abc"], "char")
    lm = fit(vocab, items, order)
    assert set(lm.discount_fallbacks) <= set(range(1, order + 1))
    for hist in ([], vocab.encode("a")[:-1], vocab.encode("cba")[:-1], vocab.encode("abcabc")[:-1]):
        dist = lm.distribution(hist)
        assert abs(dist.sum() - 1) < 1e-12 and (dist[lm.predictable] > 0).all()
        assert dist[vocab.pad_id] == 0 and dist[vocab.bos_id] == 0


def test_no_training_tokens_gives_the_uniform_distribution():
    vocab = Vocabulary.build(["abc"], "char")
    empty = EncodedSplit(np.empty(0, dtype=np.int32), np.zeros(1, dtype=np.int64), np.empty(0, dtype=np.int64))
    lm = KneserNeyLM(len(vocab), vocab.pad_id, vocab.bos_id, 3).fit(empty)
    want = np.where(lm.predictable, 1 / (len(vocab) - 2), 0.0)
    np.testing.assert_array_equal(lm.distribution(vocab.encode("ab")[:-1]), want)
    assert lm.num_ngrams == 0


# --- against the oracle, and as distributions -----------------------------------------------------

corpora = st.lists(st.text(alphabet="abc", min_size=0, max_size=12), min_size=1, max_size=8)


@settings(max_examples=40, deadline=None)
@given(train=corpora, histories=st.lists(st.text(alphabet="abcd", max_size=6), min_size=1, max_size=5),
       order=st.integers(1, 4))
def test_equals_the_oracle_and_every_distribution_sums_to_one(train, histories, order):
    vocab = Vocabulary.build(["abc"], "char")   # "d" is <unk>, never seen in training
    split = encode_split(vocab, train)
    lm = KneserNeyLM(len(vocab), vocab.pad_id, vocab.bos_id, order).fit(split)
    prob, discounts = reference_model([split.item(i).tolist() for i in range(len(split))], len(vocab),
                                      vocab.pad_id, vocab.bos_id, order)
    assert lm.discounts.keys() == discounts.keys()
    assert all(lm.discounts[k] == pytest.approx(discounts[k], abs=1e-12) for k in discounts)
    for text in histories:
        history = vocab.encode(text)[:-1]
        dist = lm.distribution(history)
        assert abs(dist.sum() - 1) < 1e-12
        assert dist[vocab.pad_id] == 0 and dist[vocab.bos_id] == 0 and (dist[lm.predictable] > 0).all()
        want = [prob(history, w) for w in range(len(vocab))]
        np.testing.assert_allclose(dist, want, rtol=0, atol=1e-12)


@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_vectorized_distributions_equal_distribution_bit_for_bit(order):
    # One row per target of each item, history padded as evaluate() pads it; the rows must be the
    # very same floats as distribution() gives (argmax ties then break identically).
    vocab = Vocabulary.build(HAND, "char")
    lm = fit(vocab, DEGENERATE + HAND, order)
    for item in ["ab", "bbab", "", "abc"]:
        ids_ = vocab.encode(item)
        hists = lm.histories(ids_)
        assert hists.shape == (len(ids_) - 1, order - 1)
        rows = lm.distributions(hists)
        assert rows.shape == (len(ids_) - 1, len(vocab))
        for j in range(1, len(ids_)):
            assert np.array_equal(rows[j - 1], lm.distribution(ids_[:j])), (item, j)
        grams = np.concatenate([hists, np.array(ids_[1:])[:, None]], axis=1)
        assert np.array_equal(lm.ngram_probabilities(grams), rows[np.arange(len(rows)), ids_[1:]])


def test_distribution_is_a_copy():
    vocab = Vocabulary.build(HAND, "char")
    lm = fit(vocab, HAND, 3)
    S, a = ids(vocab, "Sa")
    lm.distribution([S, a])[:] = 0
    assert abs(lm.distribution([S, a]).sum() - 1) < 1e-12


@pytest.mark.parametrize("order", [1, 2, 3])
def test_evaluate_equals_token_by_token_sums(order):
    vocab = Vocabulary.build(HAND, "char")
    lm = fit(vocab, HAND + DEGENERATE, order)
    items = ["ba", "abc", "", "bbab"]  # "c" is not in the vocabulary -> <unk>
    split = encode_split(vocab, items)
    nll, correct, tokens, unknown, correct_known = 0.0, 0, 0, 0, 0
    for i in range(len(split)):
        item = split.item(i).tolist()
        for j in range(1, len(item)):
            nll -= math.log(lm.prob(item[:j], item[j]))
            hit = int(np.argmax(lm.distribution(item[:j])) == item[j])
            correct += hit
            tokens += 1
            unknown += int(item[j] == vocab.unk_id)
            correct_known += hit * int(item[j] != vocab.unk_id)
    got = lm.evaluate(split, unk_id=vocab.unk_id)
    assert got[0] == pytest.approx(nll, rel=1e-12)
    assert got[1:] == (correct, tokens, sum(len(s) + 1 for s in items), unknown, correct_known)
    assert tokens == split.num_targets and unknown == 1
    assert lm.evaluate(split)[4:] == (None, None)
    np.testing.assert_allclose(-np.log(lm.target_probabilities(split)).sum(), nll, rtol=1e-12)

    metrics = summarize(*got)
    assert set(metrics) == {"loss", "perplexity", "accuracy", "bits_per_char", "tokens", "oov_rate",
                            "accuracy_without_unk"}
    assert metrics["accuracy_without_unk"] == correct_known / (tokens - unknown)
    assert metrics["loss"] == pytest.approx(nll / tokens)
    assert metrics["bits_per_char"] == pytest.approx(nll / math.log(2) / split.chars.sum())


# --- one fit, every order; the order chosen on dev ------------------------------------------------

TEXT = ("the cat sat on the mat.\nthe dog sat on the log.\na cat and a dog sat on a mat.\n"
        "the rat ate the cat's food.\n") * 3


def test_every_lower_order_from_the_largest_fit_equals_a_direct_fit(toy_vocab, toy_splits):
    big = KneserNeyLM(len(toy_vocab), toy_vocab.pad_id, toy_vocab.bos_id, 6).fit(toy_splits["train"])
    dev = toy_splits["dev"]
    for order in range(1, 7):
        derived = big.with_order(order)
        direct = KneserNeyLM(len(toy_vocab), toy_vocab.pad_id, toy_vocab.bos_id, order).fit(toy_splits["train"])
        assert derived.order == order and derived.num_ngrams == direct.num_ngrams
        assert derived.discounts == direct.discounts
        for (_, t1, p1), (_, t2, p2) in zip(derived.split_distributions(dev), direct.split_distributions(dev)):
            assert np.array_equal(t1, t2) and np.array_equal(p1, p2)
        assert derived.evaluate(dev) == direct.evaluate(dev)
    with pytest.raises(ValueError):
        big.with_order(7)


def test_loss_by_order_equals_each_orders_evaluation(toy_vocab, toy_splits):
    lm = KneserNeyLM(len(toy_vocab), toy_vocab.pad_id, toy_vocab.bos_id, 5).fit(toy_splits["train"])
    losses = lm.loss_by_order(toy_splits["dev"], range(1, 6))
    for order, loss in losses.items():
        want = summarize(*lm.with_order(order).evaluate(toy_splits["dev"]))["loss"]
        assert loss == pytest.approx(want, rel=1e-12)


def test_select_order_takes_the_lowest_dev_loss():
    vocab = Vocabulary.build([TEXT], "char")
    train = stream_split(vocab, TEXT)
    lm = KneserNeyLM(len(vocab), vocab.pad_id, vocab.bos_id, 8).fit(train)
    dev = encode_split(vocab, ["the cat sat on the log.", "a dog ate the mat."])
    chosen, losses = select_order(lm, dev, range(2, 9))
    want = {k: summarize(*lm.with_order(k).evaluate(dev))["loss"] for k in range(2, 9)}
    assert list(losses) == list(range(2, 9)) and losses == pytest.approx(want, rel=1e-12)
    assert chosen.order == min(want, key=want.get)
    assert 2 < chosen.order < 8   # this text: longer contexts help, up to a point


def test_select_order_breaks_an_exact_tie_with_the_lower_order():
    class Fake:
        def loss_by_order(self, dev, orders):
            return dict(zip(orders, [2.0, 1.5, 1.5, 1.7]))

        def with_order(self, order):
            return order

    assert select_order(Fake(), None, [4, 3, 2, 5]) == (3, {2: 2.0, 3: 1.5, 4: 1.5, 5: 1.7})


# --- streams: one long item, no </s> ---------------------------------------------------------------

def test_a_stream_is_scored_like_any_item_and_cut_into_chunks():
    vocab = Vocabulary.build([TEXT], "char")
    train = stream_split(vocab, TEXT[:200])
    test = stream_split(vocab, TEXT[200:])
    assert test.item(0)[-1] != vocab.eos_id and len(test) == 1
    lm = KneserNeyLM(len(vocab), vocab.pad_id, vocab.bos_id, 4).fit(train)
    prob, _ = reference_model([train.item(0).tolist()], len(vocab), vocab.pad_id, vocab.bos_id, 4)
    item = test.item(0).tolist()
    want = np.array([prob(item[:j], item[j]) for j in range(1, len(item))])
    np.testing.assert_allclose(lm.target_probabilities(test), want, rtol=0, atol=1e-12)

    whole = list(lm.split_distributions(test))
    assert len(whole) == 1 and whole[0][0] == [0]
    small = 10 * len(vocab)   # 10 rows per chunk: the one item comes in pieces
    pieces = list(lm.split_distributions(test, max_cells=small))
    assert len(pieces) == math.ceil((len(item) - 1) / 10)
    assert all(indices == [0] and len(targets) <= 10 for indices, targets, _ in pieces)
    assert np.array_equal(np.concatenate([t for _, t, _ in pieces]), item[1:])
    assert np.array_equal(np.concatenate([p for _, _, p in pieces]), whole[0][2])
    chunked, at_once = lm.evaluate(test, max_cells=small), lm.evaluate(test)
    assert chunked[0] == pytest.approx(at_once[0], rel=1e-14) and chunked[1:] == at_once[1:]  # sums in another order


def test_target_chunks_keep_whole_items_and_cut_only_a_long_one(toy_vocab):
    items = ["ab", "abcdefghijklmnop", "", "cd", "ef"]
    split = encode_split(toy_vocab, items)
    budget = 6 * len(toy_vocab)   # 6 rows
    chunks = list(target_chunks(split, len(toy_vocab), budget))
    # targets: 3 (a b E), 17, 1 (E), 3, 3
    assert [c[0] for c in chunks] == [[0], [1], [1], [1], [2, 3], [4]]
    assert [(c[1], c[2]) for c in chunks] == [(0, 3), (3, 9), (9, 15), (15, 20), (20, 24), (24, 27)]
    # whole items that fit: the same groups as item_chunks (what the mixture pairs with neural batches)
    assert list(item_chunks(split, len(toy_vocab), budget)) == [[0], [1], [2, 3], [4]]


# --- the model's size, and what it refuses -------------------------------------------------------

def test_parameter_count_and_validation():
    vocab = Vocabulary.build(DEGENERATE, "char")
    # S a b E / S a b b E / S b a E: order 2 stores 7 bigrams + 3 unigrams; order 3 adds the 6
    # trigrams inside the items (Sab, abE, abb, bbE, Sba, baE: none starts before an item's <s>)
    assert fit(vocab, DEGENERATE, 2).num_ngrams == 7 + 3
    assert fit(vocab, DEGENERATE, 3).num_ngrams == 6 + 7 + 3
    with pytest.raises(ValueError):
        KneserNeyLM(len(vocab), vocab.pad_id, vocab.bos_id, order=0)
    with pytest.raises(ValueError):
        KneserNeyLM(len(vocab), vocab.pad_id, vocab.bos_id, order=2.5)
    with pytest.raises(RuntimeError):
        KneserNeyLM(len(vocab), vocab.pad_id, vocab.bos_id).prob([], 4)
    bad = EncodedSplit(np.array([2, 99], dtype=np.int32), np.array([0, 2]), np.array([1]))
    with pytest.raises(ValueError, match="outside the vocabulary"):
        KneserNeyLM(len(vocab), vocab.pad_id, vocab.bos_id).fit(bad)
