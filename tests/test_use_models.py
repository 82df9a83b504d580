"""Every kind of model file through `rnnlm score`, `sample` and `info`, on a tiny char corpus and a
tiny word corpus: the command line scores a test file with the library's own evaluation."""

import json
from collections import Counter

import numpy as np
import pytest
import torch
from scipy.stats import chisquare

from rnnlm.arpa import write_arpa
from rnnlm.checkpoint import load_checkpoint, save_checkpoint
from rnnlm.cli import main
from rnnlm.data import encode_split
from rnnlm.evaluation import evaluate_split
from rnnlm.lm import load_model, mixture_spec
from rnnlm.mixture import evaluate_mixtures
from rnnlm.models import ModelConfig, build_model
from rnnlm.ngram import KneserNeyLM, discount_record
from rnnlm.novelty import novelty_grid
from rnnlm.results import summarize
from rnnlm.sampling import sample_ids
from rnnlm.text import Normalization
from rnnlm.vocab import Vocabulary

from .conftest import TOY_NAMES

KINDS = ("rnn_scratch", "rnn", "gru", "lstm")
LAMBDA = 0.37
CORPORA = {
    "names": (TOY_NAMES[:14], TOY_NAMES[14:] + ["zoe"], "char",
              Normalization("name", "abcdefghijklmnopqrstuvwxyz", True, True)),
    "news": (["the cat sat on the mat", "the dog sat on the log", "a cat and a dog", "the cat ate the rat",
              "a rat sat", "don't feed the cat"],
             ["the cat sat on a log", "the zebra ate a mat", "dog", "don't"], "word", Normalization("news")),
}


@pytest.fixture(scope="module", params=sorted(CORPORA))
def corpus(request, tmp_path_factory):
    """Every model file of one corpus in a models/<corpus>/ folder, the test split as a file."""
    name = request.param
    train, test, level, rules = CORPORA[name]
    root = tmp_path_factory.mktemp(name)
    folder = root / "models" / name
    folder.mkdir(parents=True)
    vocab = Vocabulary.build(train, level, min_freq=1 if level == "char" else 2, normalization=rules)
    splits = {"train": encode_split(vocab, train), "test": encode_split(vocab, test)}
    torch.manual_seed(0)
    for kind in KINDS:
        save_checkpoint(folder / f"{kind}.pt", build_model(ModelConfig(kind, len(vocab), vocab.pad_id, 8, 8)), vocab,
                        {"seed": 0, "run_id": {"config": {"epochs": 1}}})
    ngram = KneserNeyLM(len(vocab), vocab.pad_id, vocab.bos_id, 3).fit(splits["train"])
    write_arpa(folder / "ngram.arpa.gz", ngram, vocab.tokens,
               header={"vocabulary": vocab.to_dict(), "order": 3, "discounts": discount_record(ngram)})
    spec = mixture_spec([folder / "lstm.pt", folder / "ngram.arpa.gz"], [LAMBDA, 1 - LAMBDA], folder / "lstm+ngram.json",
                        kinds=["lstm"])
    (folder / "lstm+ngram.json").write_text(json.dumps(spec))
    (root / "test.txt").write_text("\n".join(test) + "\n")
    return {"root": root, "folder": folder, "vocab": vocab, "splits": splits, "ngram": ngram, "train": train}


def library_result(corpus, name):
    """The test metrics as the evaluate, ngram and mixture stages compute them."""
    vocab, test = corpus["vocab"], corpus["splits"]["test"]
    if name == "ngram":
        return summarize(*corpus["ngram"].evaluate(test, unk_id=vocab.unk_id))
    model = load_checkpoint(corpus["folder"] / "lstm.pt")[0] if name == "lstm+ngram" else \
        load_checkpoint(corpus["folder"] / f"{name}.pt")[0]
    if name == "lstm+ngram":
        return evaluate_mixtures([([model], [LAMBDA, 1 - LAMBDA])], corpus["ngram"], test, vocab.pad_id,
                                 unk_id=vocab.unk_id)[0]
    return evaluate_split(model, test, vocab.pad_id, unk_id=vocab.unk_id)


def run_cli(args, capsys):
    with pytest.raises(SystemExit) as done:
        main(args)
    out = capsys.readouterr()
    return done.value.code, out.out, out.err


FILES = {**{k: f"{k}.pt" for k in KINDS}, "ngram": "ngram.arpa.gz", "lstm+ngram": "lstm+ngram.json"}


@pytest.mark.parametrize("name", sorted(FILES))
def test_score_gives_the_stages_test_loss(corpus, name, capsys):
    code, out, _ = run_cli(["score", "--model", str(corpus["folder"] / FILES[name]), str(corpus["root"] / "test.txt")],
                           capsys)
    assert code == 0
    records = [json.loads(line) for line in out.splitlines()]
    summary, want = records[-1], library_result(corpus, name)
    assert summary["summary"] is True and summary["items"] == len(corpus["splits"]["test"])
    for key in ("loss", "perplexity", "bits_per_char"):
        assert summary[key] == pytest.approx(want[key], rel=1e-6), key
    assert summary["tokens"] == want["tokens"]
    items = records[:-1]
    assert sum(r["logprob_nats"] for r in items) == pytest.approx(summary["logprob_nats"], rel=1e-12)
    assert all(r["logprob_bits"] == pytest.approx(r["logprob_nats"] / np.log(2)) for r in items)
    assert all(r["perplexity"] == pytest.approx(np.exp(-r["logprob_nats"] / r["tokens"])) for r in items)


def test_score_normalizes_like_ingest_and_reports_rejects(corpus, capsys, tmp_path):
    vocab = corpus["vocab"]
    if vocab.level == "char":
        lines, bad, reason = ["  Émma ", "ava"], "b0b", "disallowed_characters"
    else:
        lines, bad, reason = ["The Cat-sat!", "the cat sat"], "?!", "empty"
    path = tmp_path / "in.txt"
    path.write_text("\n".join([lines[0], bad, lines[1]]) + "\n")
    code, out, _ = run_cli(["score", "--model", str(corpus["folder"] / "gru.pt"), str(path)], capsys)
    assert code == 0
    first, rejected, _, summary = [json.loads(line) for line in out.splitlines()]
    assert first["text"] == ("emma" if vocab.level == "char" else "the cat sat")
    assert rejected == {"line": 2, "text": bad, "rejected": reason, "detail": rejected["detail"]}
    assert summary["items"] == 2 and summary["rejected"] == 1
    code, out, _ = run_cli(["score", "--model", str(corpus["folder"] / "ngram.arpa.gz"), str(path), "--format", "csv"],
                           capsys)
    rows = out.splitlines()
    assert code == 0 and rows[0].startswith("line,text,tokens") and rows[-1].startswith("summary,")
    assert len(rows) == 5 and reason in rows[2]


def test_score_reports_oov_tokens(corpus, capsys, tmp_path):
    # a word the training split lacks; a letter of the alphabet that no training name has
    text, unknown = ("the zebra sat", ["zebra"]) if corpus["vocab"].level == "word" else ("quinn", ["q", "u"])
    path = tmp_path / "in.txt"
    path.write_text(text + "\n")
    _, out, _ = run_cli(["score", "--model", str(corpus["folder"] / "ngram.arpa.gz"), str(path)], capsys)
    record, summary = [json.loads(line) for line in out.splitlines()]
    assert record["oov"] == unknown and summary["oov_tokens"] == len(unknown)


@pytest.mark.parametrize("name", ["gru", "ngram", "lstm+ngram"])
def test_sample_normalizes_the_prompt_and_never_prints_unk(corpus, name, capsys):
    vocab = corpus["vocab"]
    prompt, unknown = ("Em1", "'1'") if vocab.level == "char" else ("The Zebra", "'zebra'")
    code, out, err = run_cli(["sample", "--model", str(corpus["folder"] / FILES[name]), "-n", "5", "--prompt", prompt,
                              "--max-tokens", "5", "--device", "cpu"], capsys)
    assert code == 0
    lines = out.splitlines()
    assert len(lines) == 5 and all(line.startswith(prompt.lower()) for line in lines)
    assert "<unk>" not in out
    assert err.count("\n") == 1 and unknown in err and "warning" in err


def test_checkpoint_option_still_works(corpus, capsys):
    code, out, _ = run_cli(["sample", "--checkpoint", str(corpus["folder"] / "lstm.pt"), "-n", "2"], capsys)
    assert code == 0 and len(out.splitlines()) == 2


def test_mixture_samples_follow_the_mixed_distribution(corpus):
    """20,000 next tokens after a fixed prefix: their counts fit λ·P_rnn + (1 − λ)·P_kn (chi-square)."""
    vocab = corpus["vocab"]
    mixture = load_model(corpus["folder"] / "lstm+ngram.json")
    prefix = vocab.encode(corpus["train"][0])[:2]          # <s> and the first token of a training item
    model = load_checkpoint(corpus["folder"] / "lstm.pt")[0]
    with torch.no_grad():
        p_rnn = torch.softmax(model(torch.tensor([prefix]))[0][0, -1].double(), -1).numpy()
    expected = LAMBDA * p_rnn + (1 - LAMBDA) * corpus["ngram"].distribution(prefix)
    expected[[vocab.bos_id, vocab.pad_id, vocab.unk_id]] = 0   # never drawn
    expected /= expected.sum()
    n = 20_000
    rows = sample_ids(mixture.stepper(), vocab, n, prefix, max_tokens=1, generator=torch.Generator().manual_seed(1))
    counts = Counter(row[0] if row else vocab.eos_id for row in rows)
    support = np.flatnonzero(expected > 0)
    observed = np.array([counts.get(int(t), 0) for t in support])
    assert observed.sum() == n
    # p < 1e-3 would fail a correct sampler once in a thousand runs (the draws are seeded: it does not flake)
    assert chisquare(observed, expected[support] * n).pvalue > 1e-3


@pytest.mark.parametrize("name", sorted(FILES))
def test_info_describes_the_file(corpus, name, capsys):
    code, out, _ = run_cli(["info", str(corpus["folder"] / FILES[name])], capsys)
    info = json.loads(out)
    assert code == 0 and info["vocabulary"]["size"] == len(corpus["vocab"])
    assert info["vocabulary"]["level"] == corpus["vocab"].level and info["vocabulary"]["normalization"]
    assert info["kind"] == {"ngram": "ngram", "lstm+ngram": "mixture"}.get(name, "neural")
    assert info["parameters"] > 0 and info["metrics"] is None


def test_info_finds_the_pipelines_metrics(corpus, capsys):
    metrics = corpus["root"] / "metrics" / corpus["folder"].name
    metrics.mkdir(parents=True, exist_ok=True)
    (metrics / "ngram.json").write_text(json.dumps({"dev": {"loss": 1.5}, "test": {"loss": 1.6}}))
    _, out, _ = run_cli(["info", str(corpus["folder"] / "ngram.arpa.gz")], capsys)
    assert json.loads(out)["metrics"]["test"] == {"loss": 1.6}
    (metrics / "ngram.json").unlink()


@pytest.mark.parametrize("args, message", [
    (["score", "--model", "x.txt"], "not a model file"),
    (["score", "--model", "nope.pt"], "checkpoint nope.pt not found"),
    (["info", "nope.json"], "not found"),
])
def test_mistakes_are_one_line(args, message, capsys):
    code, _, err = run_cli(args, capsys)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_novelty_grid_contract(corpus):
    lm = load_model(corpus["folder"] / "gru.pt")
    rows = novelty_grid(lm, corpus["train"], [0.5, 1.0], [None, 3], n=40, max_tokens=8)
    assert [(r["temperature"], r["top_k"]) for r in rows] == [(0.5, None), (0.5, 3), (1.0, None), (1.0, 3)]
    for row in rows:
        assert row["samples"] == 40 and 0 <= row["novel_share"] <= 1 and 0 < row["distinct_share"] <= 1
        assert row["mean_loglik_per_token"] < 0 and row["mean_loglik_per_sample"] < 0
