"""The n-gram model as an ARPA file: an independent reader (KenLM) and the project's own reader
score a test split with the n-gram model's own loss: names at char level, words with <unk>, and a
stream (one long item without </s>, which KenLM scores as one sentence with ``eos=False``)."""

import gzip
import math

import numpy as np
import pytest

from rnnlm.arpa import arpa_token, load_arpa, read_arpa, write_arpa
from rnnlm.data import EncodedSplit, encode_split
from rnnlm.ngram import KneserNeyLM, select_order
from rnnlm.vocab import Vocabulary

from .conftest import TOY_NAMES

WORDS_TRAIN = ["the cat sat on the mat", "the dog sat on the log", "a cat and a dog", "the cat ate the rat",
               "a rat sat", "don't feed the cat"]
WORDS_TEST = ["the cat sat on a log", "the zebra ate a mat", "dog", "don't"]


STREAM = ("first citizen:\nbefore we proceed any further, hear me speak.\n\nall:\nspeak, speak.\n\n"
          "first citizen:\nyou are all resolved rather to die than to famish?\n\nall:\nresolved. resolved.\n") * 4


def _stream(vocab, text):
    """One item ``<s> t0 t1 ...`` without </s>: a text read as one stream (newlines are tokens)."""
    tokens = np.array(vocab.encode(text)[:-1], dtype=np.int32)
    return EncodedSplit(tokens, np.array([0, len(tokens)], dtype=np.int64), np.array([len(text)], dtype=np.int64))


def _fixture(level, order):
    """(vocab, fitted model, test split): names at char level; words with <unk> in training (min_freq 2);
    a stream of characters, trained on its first 400 characters and tested on the rest."""
    if level == "stream":
        vocab = Vocabulary.build([STREAM], "char")
        train, test = _stream(vocab, STREAM[:400]), _stream(vocab, STREAM[400:])
        return vocab, KneserNeyLM(len(vocab), vocab.pad_id, vocab.bos_id, order).fit(train), test
    if level == "char":
        train, test, min_freq = TOY_NAMES[:14], TOY_NAMES[14:] + ["zoe"], 1
    else:
        train, test, min_freq = WORDS_TRAIN, WORDS_TEST, 2
    vocab = Vocabulary.build(train, level, min_freq=min_freq)
    model = KneserNeyLM(len(vocab), vocab.pad_id, vocab.bos_id, order).fit(encode_split(vocab, train))
    return vocab, model, encode_split(vocab, test)


# KenLM's Python module is built for orders up to 6 (KENLM_MAX_ORDER), so only these go to KenLM;
# the own reader has no limit.
CASES = [(level, order) for level in ("char", "word", "stream") for order in (2, 3, 4, 5, 6)]


@pytest.mark.parametrize("level,order", CASES)
def test_kenlm_scores_the_arpa_file_with_the_models_loss(tmp_path, level, order):
    kenlm = pytest.importorskip("kenlm")  # the dev extra pins it: an ARPA reader this project did not write
    vocab, model, test = _fixture(level, order)
    nll = model.evaluate(test, unk_id=vocab.unk_id)[0]
    path = tmp_path / "ngram.arpa"
    write_arpa(path, model, vocab.tokens, header={"order": order})
    reader = kenlm.Model(str(path))
    # An item ends with </s>, which KenLM adds itself (eos=True); a stream has no end (eos=False).
    ends = level != "stream"
    log10_total = sum(reader.score(" ".join(arpa_token(vocab.tokens[t])
                                            for t in test.item(i).tolist()[1:len(test.item(i)) - ends]),
                                   bos=True, eos=ends) for i in range(len(test)))
    # KenLM keeps probabilities in float32 (relative error ~6e-8 per value): 1e-6 relative on the total
    assert -log10_total * math.log(10) == pytest.approx(nll, rel=1e-6)


@pytest.mark.parametrize("level,order", CASES + [("char", 1), ("stream", 1), ("stream", 8), ("word", 7), ("char", 10)])
def test_own_reader_gives_back_the_models_probabilities(tmp_path, level, order):
    vocab, model, test = _fixture(level, order)
    nll = model.evaluate(test, unk_id=vocab.unk_id)[0]
    path = tmp_path / "ngram.arpa.gz"
    write_arpa(path, model, vocab.tokens, header={"vocabulary": vocab.to_dict()})
    with gzip.open(path, "rt") as f:
        assert f.readline().startswith("# rnnlm-model {")
    arpa, header = load_arpa(path, vocab.tokens, vocab.bos_id)
    assert header["vocabulary"] == vocab.to_dict()
    assert -arpa.target_log10_probs(test).sum() * math.log(10) == pytest.approx(nll, rel=1e-12)
    for i in range(len(test)):
        item = test.item(i).tolist()
        for j in range(1, len(item)):
            dist = arpa.distribution(item[:j])
            np.testing.assert_allclose(dist, model.distribution(item[:j]), rtol=1e-12, atol=1e-300)
            assert dist.sum() == pytest.approx(1.0, abs=1e-12)


def test_arpa_file_is_deterministic_and_lists_its_counts(tmp_path):
    vocab, model, _ = _fixture("char", 3)
    write_arpa(tmp_path / "a.arpa.gz", model, vocab.tokens)
    write_arpa(tmp_path / "b.arpa.gz", model, vocab.tokens)
    assert (tmp_path / "a.arpa.gz").read_bytes() == (tmp_path / "b.arpa.gz").read_bytes()
    _, grams = read_arpa(tmp_path / "a.arpa.gz")
    assert sorted(grams) == [1, 2, 3]
    assert grams[1][("<s>",)][0] == -99.0 and ("<pad>",) not in grams[1]
    assert all(len(words) == k for k in grams for words in grams[k])
    # One <s>, first or nowhere (KenLM's n-grams): no "<s> <s> a" padding entries.
    assert all("<s>" not in words[1:] for k in grams for words in grams[k])
    assert any(words[0] == "<s>" for words in grams[3])


def test_orders_past_six_fit_choose_export_and_read_back(tmp_path):
    """Orders above KenLM's build limit of 6 (so KenLM is not asked): counted once at 10, every order
    scored on dev, the order-10 model written and read back by the own reader with its own loss."""
    vocab = Vocabulary.build([STREAM], "char")
    train, dev = _stream(vocab, STREAM[:400]), _stream(vocab, STREAM[400:])
    model = KneserNeyLM(len(vocab), vocab.pad_id, vocab.bos_id, 10).fit(train)
    chosen, losses = select_order(model, dev, range(2, 11))
    assert list(losses) == list(range(2, 11)) and all(math.isfinite(v) for v in losses.values())
    assert losses[chosen.order] == min(losses.values())
    path = tmp_path / "ngram.arpa"
    write_arpa(path, model, vocab.tokens)
    _, grams = read_arpa(path)
    assert sorted(grams) == list(range(1, 11))
    arpa, _ = load_arpa(path, vocab.tokens, vocab.bos_id)
    nll = model.evaluate(dev)[0]
    assert nll / dev.num_targets == pytest.approx(losses[10], rel=1e-12)
    assert -arpa.target_log10_probs(dev).sum() * math.log(10) == pytest.approx(nll, rel=1e-12)


def test_whitespace_tokens_are_escaped():
    assert arpa_token(" ") == "<U+0020>" and arpa_token("ab") == "ab"
