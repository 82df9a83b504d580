"""Interpolated Kneser-Ney: probabilities checked against hand arithmetic on a toy corpus.

Toy training corpus (char level), written S = <s>, E = </s>:

    "ab"  -> S a b E
    "abb" -> S a b b E
    "ba"  -> S b a E

Vocabulary: <pad> <unk> <s> </s> b a (b is more frequent), so V = 6 and the predictable
vocabulary is {<unk>, </s>, b, a}: 4 ids, uniform probability 1/4 each. Discount D = 0.75.

Unigram level (shared by both orders): continuation counts = distinct bigram types ending in w.
Bigrams at target positions: Sa Sb ab bE bb ba aE (7 types).
    N(a) = |{Sa, ba}| = 2,  N(b) = |{Sb, ab, bb}| = 3,  N(E) = |{bE, aE}| = 2,  N(<unk>) = 0
    total 7, 3 types with a count, so the uniform weight is D * 3 / 7 = 2.25 / 7
    P1(a)     = (2 - .75)/7 + 2.25/7 * 1/4 = 5/28 + 2.25/28 = 7.25/28
    P1(b)     = (3 - .75)/7 + 2.25/28      = 9/28 + 2.25/28 = 11.25/28
    P1(E)     = 7.25/28
    P1(<unk>) = 2.25/28           (never seen, but non-zero thanks to the uniform level)
    sum       = (7.25 + 11.25 + 7.25 + 2.25) / 28 = 1
"""

import math

import numpy as np
import pytest

from rnnlm.data import encode_split
from rnnlm.evaluation import summarize
from rnnlm.ngram import KneserNeyLM
from rnnlm.vocab import Vocabulary

TRAIN = ["ab", "abb", "ba"]
D = 0.75

P1 = {"a": 7.25 / 28, "b": 11.25 / 28, "E": 7.25 / 28, "<unk>": 2.25 / 28}


@pytest.fixture(scope="module")
def vocab():
    return Vocabulary.build(TRAIN, "char")


def ids(vocab, symbols):
    names = {"S": "<s>", "E": "</s>"}
    return [vocab.index[names.get(s, s)] for s in symbols]


def fit(vocab, order):
    return KneserNeyLM(len(vocab), vocab.pad_id, vocab.bos_id, order=order, discount=D).fit(
        encode_split(vocab, TRAIN))


def test_toy_vocabulary(vocab):
    assert vocab.tokens == ["<pad>", "<unk>", "<s>", "</s>", "b", "a"]


def test_order_one_uses_raw_counts(vocab):
    # order 1: the unigram level is the highest order, so it uses raw counts, not P1:
    # targets a 3, b 4, E 3 -> total 10, 3 types, uniform weight D * 3/10 = 0.225
    #   P(a) = (3 - .75)/10 + 0.225/4 = 0.28125,  P(b) = 3.25/10 + 0.05625 = 0.38125
    #   P(E) = 0.28125,  P(<unk>) = 0.05625;  sum = 1
    lm = fit(vocab, 1)
    a, b, E = ids(vocab, "abE")
    expected = {a: 0.28125, b: 0.38125, E: 0.28125, vocab.unk_id: 0.05625}
    for w, p in expected.items():
        assert lm.prob([], w) == pytest.approx(p, abs=1e-12)
        assert lm.prob([vocab.bos_id, b], w) == pytest.approx(p, abs=1e-12)  # history ignored


def test_unigram_level_uses_continuation_counts(vocab):
    # order 2, unseen history <unk>: P2 = P1, the continuation-count unigram of the docstring.
    lm = fit(vocab, 2)
    a, b, E = ids(vocab, "abE")
    for w, p in zip([a, b, E, vocab.unk_id], [P1["a"], P1["b"], P1["E"], P1["<unk>"]]):
        assert lm.prob([vocab.unk_id], w) == pytest.approx(p, abs=1e-12)


def test_bigram_probabilities_by_hand(vocab):
    lm = fit(vocab, 2)
    a, b, S, E = ids(vocab, "abSE")
    # Highest order = raw bigram counts. History "a": ab x2, aE x1 -> total 3, 2 types,
    # backoff weight D * 2 / 3 = 0.5.
    #   P(b | a) = (2 - .75)/3 + 0.5 * P1(b) = 1.25/3 + 0.5 * 11.25/28
    assert lm.prob([S, a], b) == pytest.approx(1.25 / 3 + 0.5 * 11.25 / 28, abs=1e-12)
    #   P(E | a) = (1 - .75)/3 + 0.5 * P1(E)
    assert lm.prob([S, a], E) == pytest.approx(0.25 / 3 + 0.5 * 7.25 / 28, abs=1e-12)
    #   P(a | a) = 0 + 0.5 * P1(a)   (aa never seen)
    assert lm.prob([S, a], a) == pytest.approx(0.5 * 7.25 / 28, abs=1e-12)
    # History "S": Sa x2, Sb x1 -> total 3, 2 types. P(E | S) = 0 + 0.5 * P1(E).
    assert lm.prob([S], E) == pytest.approx(0.5 * 7.25 / 28, abs=1e-12)
    # History "b": bE x2, bb x1, ba x1 -> total 4, 3 types, weight D * 3/4 = 0.5625.
    #   P(E | b) = (2 - .75)/4 + 0.5625 * P1(E)
    assert lm.prob([S, a, b], E) == pytest.approx(1.25 / 4 + 0.5625 * 7.25 / 28, abs=1e-12)
    # Unseen history <unk>: back off entirely, P(w | <unk>) = P1(w).
    assert lm.prob([S, vocab.unk_id], b) == pytest.approx(P1["b"], abs=1e-12)
    # An empty history is padded with <s>: same as history "S".
    assert lm.prob([], a) == pytest.approx(lm.prob([S], a), abs=1e-15)


def test_trigram_probabilities_by_hand(vocab):
    lm = fit(vocab, 3)
    a, b, S, E = ids(vocab, "abSE")
    # Padded items: S S a b E / S S a b b E / S S b a E. Trigrams at target positions (raw counts):
    #   SSa 2, SSb 1, Sab 2, abE 1, abb 1, bbE 1, Sba 1, baE 1.
    # Bigram level: bigrams starting with S keep raw counts (Sa 2, Sb 1); the others get
    # continuation counts = distinct trigram types ending in them:
    #   ab: {Sab} 1, bE: {abE, bbE} 2, bb: {abb} 1, ba: {Sba} 1, aE: {baE} 1.
    # Unigram level: as in the module docstring (P1).
    #
    # P2(b | a): history "a" has ab 1, aE 1 -> total 2, 2 types, weight D * 2/2 = 0.75
    #   = (1 - .75)/2 + 0.75 * P1(b) = 0.125 + 0.75 * 11.25/28
    p2_b_a = 0.125 + 0.75 * 11.25 / 28
    # P3(b | S a): history "S a" has Sab 2 -> total 2, 1 type, weight D * 1/2 = 0.375
    #   = (2 - .75)/2 + 0.375 * P2(b | a)
    assert lm.prob([S, a], b) == pytest.approx(1.25 / 2 + 0.375 * p2_b_a, abs=1e-12)
    # P2(E | b): history "b" has bE 2, bb 1, ba 1 -> total 4, 3 types, weight 0.5625
    #   = (2 - .75)/4 + 0.5625 * P1(E)
    p2_e_b = 1.25 / 4 + 0.5625 * 7.25 / 28
    # P3(E | a b): history "a b" has abE 1, abb 1 -> total 2, 2 types, weight 0.75
    #   = (1 - .75)/2 + 0.75 * P2(E | b)
    assert lm.prob([S, a, b], E) == pytest.approx(0.125 + 0.75 * p2_e_b, abs=1e-12)
    # P3(a | S S) (first token): history "S S" has SSa 2, SSb 1 -> total 3, 2 types, weight 0.5;
    # P2(a | S) uses the raw counts Sa 2, Sb 1 -> (2 - .75)/3 + 0.5 * P1(a)
    p2_a_s = 1.25 / 3 + 0.5 * 7.25 / 28
    assert lm.prob([S], a) == pytest.approx(1.25 / 3 + 0.5 * p2_a_s, abs=1e-12)
    # Only the last two tokens matter: "b a b" -> history "a b".
    assert lm.prob([S, b, a, b], E) == pytest.approx(lm.prob([S, a, b], E), abs=1e-15)
    # History "<unk> b": trigram history unseen -> P3 = P2(E | b).
    assert lm.prob([S, vocab.unk_id, b], E) == pytest.approx(p2_e_b, abs=1e-12)
    # History "b <unk>": both levels unseen -> P1.
    assert lm.prob([S, b, vocab.unk_id], a) == pytest.approx(P1["a"], abs=1e-12)
    # <unk> never seen: P3(<unk> | S a) = 0.375 * P2(<unk> | a) = 0.375 * 0.75 * P1(<unk>)
    assert lm.prob([S, a], vocab.unk_id) == pytest.approx(0.375 * 0.75 * 2.25 / 28, abs=1e-12)


@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_distributions_sum_to_one_and_match_prob(vocab, order):
    lm = fit(vocab, order)
    a, b, S, E = ids(vocab, "abSE")
    u = vocab.unk_id
    histories = [[], [S], [S, a], [S, a, b], [S, b, a], [S, u], [S, u, u], [S, a, u], [S, u, b], [S, b, b, b, a]]
    for hist in histories:
        dist = lm.distribution(hist)
        assert dist.shape == (len(vocab),)
        assert abs(dist.sum() - 1) < 1e-9
        assert dist[vocab.pad_id] == 0 and dist[vocab.bos_id] == 0
        assert (dist[[u, E, a, b]] > 0).all()
        assert lm.prob(hist, vocab.pad_id) == 0 and lm.prob(hist, vocab.bos_id) == 0
        for w in range(len(vocab)):
            assert lm.prob(hist, w) == pytest.approx(dist[w], abs=1e-12)


@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_vectorized_distributions_equal_distribution_bit_for_bit(vocab, order):
    # One row per target of each item, history padded as evaluate() pads it; the rows must be the
    # very same floats as distribution() gives (argmax ties then break identically).
    lm = fit(vocab, order)
    for item in ["ab", "bbab", "", "abc"]:
        ids_ = vocab.encode(item)
        hists = lm.histories(ids_)
        assert hists.shape == (len(ids_) - 1, order - 1)
        rows = lm.distributions(hists)
        assert rows.shape == (len(ids_) - 1, len(vocab))
        for j in range(1, len(ids_)):
            assert np.array_equal(rows[j - 1], lm.distribution(ids_[:j])), (item, j)


def test_distribution_is_a_copy(vocab):
    lm = fit(vocab, 3)
    S, a = ids(vocab, "Sa")
    dist = lm.distribution([S, a])
    dist[:] = 0
    assert abs(lm.distribution([S, a]).sum() - 1) < 1e-9


@pytest.mark.parametrize("order", [1, 2, 3])
def test_evaluate_equals_token_by_token_sums(vocab, order):
    lm = fit(vocab, order)
    items = ["ba", "abc", "", "bbab"]  # "c" is not in the vocabulary -> <unk>
    split = encode_split(vocab, items)
    nll, correct, tokens, unknown = 0.0, 0, 0, 0
    for i in range(len(split)):
        item = split.item(i).tolist()
        for j in range(1, len(item)):
            nll -= math.log(lm.prob(item[:j], item[j]))
            correct += int(np.argmax(lm.distribution(item[:j])) == item[j])
            tokens += 1
            unknown += int(item[j] == vocab.unk_id)
    got = lm.evaluate(split, unk_id=vocab.unk_id)
    assert got[0] == pytest.approx(nll, rel=1e-12)
    assert got[1:] == (correct, tokens, sum(len(s) + 1 for s in items), unknown)
    assert tokens == split.num_targets and unknown == 1
    assert lm.evaluate(split)[4] is None

    metrics = summarize(*got)
    assert set(metrics) == {"loss", "perplexity", "accuracy", "bits_per_char", "tokens", "oov_rate"}
    assert metrics["loss"] == pytest.approx(nll / tokens)
    assert metrics["bits_per_char"] == pytest.approx(nll / math.log(2) / split.chars.sum())


def test_parameter_count_and_validation(vocab):
    # order 2 stores 7 bigrams + 3 unigrams; order 3 adds the 8 trigram types.
    assert fit(vocab, 2).num_ngrams == 7 + 3
    assert fit(vocab, 3).num_ngrams == 8 + 7 + 3
    with pytest.raises(ValueError):
        KneserNeyLM(len(vocab), vocab.pad_id, vocab.bos_id, order=0)
    with pytest.raises(ValueError):
        KneserNeyLM(len(vocab), vocab.pad_id, vocab.bos_id, discount=1.0)
    with pytest.raises(RuntimeError):
        KneserNeyLM(len(vocab), vocab.pad_id, vocab.bos_id).prob([], 4)
