"""The pipeline's model files read by tools this project did not write: KenLM reads the ARPA files fed
`rnnlm tokenize`, onnxruntime runs `rnnlm export`'s graphs; both give the project's own losses.

The tests on the pipeline's models need README's set-up (`dvc repro`) first, as README orders it."""

import json
import math

import kenlm
import numpy as np
import onnxruntime
import pytest
import torch

from rnnlm.arpa import read_arpa_header, write_arpa
from rnnlm.cli import main
from rnnlm.data import encode_split, load_encoded
from rnnlm.export import export_onnx
from rnnlm.lm import load_model, load_vocabulary
from rnnlm.ngram import KneserNeyLM
from rnnlm.scoring import printable_tokens
from rnnlm.text import Normalization
from rnnlm.vocab import Vocabulary

from .pipeline_outputs import CORPORA, KINDS, ROOT, require_all

ONNX_ITEMS = 200
KENLM_MAX_ORDER = 6   # the kenlm Python module's build reads ARPA files up to order 6


def kenlm_loss(arpa_path, lines, eos=True):
    """Nats per token (every token after <s>, </s> included unless ``eos`` is False: a stream) of
    whitespace-tokenized ``lines`` under KenLM."""
    reader = kenlm.Model(str(arpa_path))
    # per-token float32 scores summed in float64: KenLM's own sum of a 111k-token stream drifts by 1e-5
    log10_total = sum(score for line in lines for score, _, _ in reader.full_scores(line, bos=True, eos=eos))
    return -log10_total * math.log(10) / sum(len(line.split()) + eos for line in lines)


def kenlm_readable(corpus, tmp_path):
    """``(ARPA file, its test loss by the project)`` for KenLM: the ngram stage's file and metrics, or, where
    dev chose an order above what KenLM's default build reads, the same corpus's model refit at that limit on
    the same train split (the project's own reader scores any order: rnnlm score, tests/test_use_models.py)."""
    arpa = ROOT / f"models/{corpus}/ngram.arpa.gz"
    if read_arpa_header(arpa)["order"] <= KENLM_MAX_ORDER:
        return arpa, json.loads((ROOT / f"metrics/{corpus}/ngram.json").read_text())["test"]["loss"]
    vocab, splits = Vocabulary.load(ROOT / f"data/vocab/{corpus}.json"), load_encoded(ROOT / f"data/encoded/{corpus}")
    model = KneserNeyLM(len(vocab), vocab.pad_id, vocab.bos_id, KENLM_MAX_ORDER).fit(splits["train"])
    write_arpa(tmp_path / "ngram.arpa", model, vocab.tokens, header={"vocabulary": vocab.to_dict()})
    nll, *_ = model.evaluate(splits["test"], unk_id=vocab.unk_id)
    return tmp_path / "ngram.arpa", nll / splits["test"].num_targets


@pytest.mark.parametrize("corpus", CORPORA)
def test_kenlm_fed_rnnlm_tokenize_gives_the_ngram_stages_test_loss(corpus, capsys, monkeypatch, tmp_path):
    require_all()
    monkeypatch.chdir(ROOT)
    with pytest.raises(SystemExit) as done:
        main(["tokenize", "--model", f"models/{corpus}/ngram.arpa.gz", f"data/splits/{corpus}/test.txt"])
    out = capsys.readouterr()
    assert done.value.code == 0 and out.err == ""
    lines = out.out.splitlines()
    recorded = json.loads((ROOT / f"metrics/{corpus}/ngram.json").read_text())["test"]
    ends = not load_vocabulary(f"models/{corpus}/ngram.arpa.gz").stream  # a stream: one line, no </s>
    assert sum(len(line.split()) + ends for line in lines) == recorded["tokens"]
    arpa, loss = kenlm_readable(corpus, tmp_path)
    # the metrics file is rounded to 6 decimals; KenLM keeps probabilities in float32
    assert kenlm_loss(arpa, lines, eos=ends) == pytest.approx(loss, abs=1e-6)


def test_a_char_level_space_reaches_kenlm_as_the_arpa_token(tmp_path):
    """A corpus whose items hold spaces (a char vocabulary with " "): tokenize writes the space as the
    ARPA file's <U+0020>, and KenLM scores the items with the model's own loss."""
    rules = Normalization("name", "abcdefghijklmnopqrstuvwxyz ", True, True)
    train = ["mary jane", "ann lee", "jo ann", "mary", "lee ann", "jane doe"]
    test = ["mary ann", "jo lee", "ann"]
    vocab = Vocabulary.build(train, "char", normalization=rules)
    model = KneserNeyLM(len(vocab), vocab.pad_id, vocab.bos_id, 3).fit(encode_split(vocab, train))
    write_arpa(tmp_path / "ngram.arpa", model, vocab.tokens, header={"vocabulary": vocab.to_dict()})
    lines = [printable_tokens(vocab, item) for item in test]
    assert lines[0] == "m a r y <U+0020> a n n"
    split = encode_split(vocab, test)
    nll = model.evaluate(split, unk_id=vocab.unk_id)[0]
    assert kenlm_loss(tmp_path / "ngram.arpa", lines) == pytest.approx(nll / split.num_targets, rel=1e-6)


def onnx_loss(onnx_path, items):
    """Mean nats per token of ``items`` (normalized texts) under an exported graph, run by onnxruntime
    from its JSON alone: the vocabulary encodes, the state starts as the JSON says, batches are
    right-padded (every kind looks only back, so padding changes no real position)."""
    description = json.loads(onnx_path.with_suffix(".json").read_text())
    vocab = Vocabulary.from_dict(description["vocabulary"])
    session = onnxruntime.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    total, tokens = 0.0, 0
    for start in range(0, len(items), 50):
        ids = vocab.encode_many(items[start:start + 50])
        width = max(map(len, ids)) - 1
        x = np.full((len(ids), width), description["special_ids"]["pad"], dtype=np.int64)
        for row, item in enumerate(ids):
            x[row, :len(item) - 1] = item[:-1]
        feed = {"ids": x}
        for state in description["state"]:
            spec = state["initial"]
            feed[state["input"]] = np.full([len(ids) if d == "batch" else d for d in spec["shape"]], spec["fill"],
                                           dtype=spec["dtype"])
        log_probs = session.run(["log_probs"], feed)[0]                      # (B, T, V)
        for row, item in enumerate(ids):
            total -= float(log_probs[row, np.arange(len(item) - 1), item[1:]].astype(np.float64).sum())
            tokens += len(item) - 1
    return total / tokens, tokens


@pytest.mark.parametrize("corpus, kind", [(corpus, kind) for corpus in CORPORA for kind in KINDS[corpus]])
def test_onnx_export_scores_the_test_split_like_torch(corpus, kind, tmp_path):
    """The first 200 test items of each corpus, every kind of params.yaml's `kinds`: onnxruntime's mean
    loss per token is torch's to 1e-5."""
    require_all()
    path = ROOT / f"models/{corpus}/neural/{kind}.pt"
    lm = load_model(path)
    items = (ROOT / f"data/splits/{corpus}/test.txt").read_text(encoding="utf-8").splitlines()[:ONNX_ITEMS]
    export_onnx(lm.model, lm.vocab, tmp_path / f"{kind}.onnx", source=path)
    split = encode_split(lm.vocab, items)
    with torch.no_grad():
        want = float(np.mean(lm.target_losses(split)))
    got, tokens = onnx_loss(tmp_path / f"{kind}.onnx", items)
    assert tokens == split.num_targets and 0 < want < 20
    assert got == pytest.approx(want, abs=1e-5)
