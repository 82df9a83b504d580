"""The neural + n-gram mixture: its corners are its components, its rows are distributions, and its
weights are the dev likelihood's maximum, chosen without looking at test."""

import copy
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from rnnlm import gates
from rnnlm.arpa import write_arpa
from rnnlm.data import encode_split, load_encoded, save_encoded
from rnnlm.errors import UserError
from rnnlm.evaluation import evaluate_split
from rnnlm.mixture import evaluate_mixtures, fit_weights, mixed_distributions, neural_target_probabilities
from rnnlm.ngram import KneserNeyLM, discount_record, fit_ngram
from rnnlm.results import Tally, summarize
from rnnlm.seeding import deterministic
from rnnlm.speed import is_timing
from rnnlm.training import train_model
from rnnlm.vocab import Vocabulary
from tests.conftest import TOY_NAMES
from tests.configs import mixture_config, ngram_config, params_section, train_config

ROOT = Path(__file__).resolve().parents[1]
TRAIN, DEV, TEST = TOY_NAMES[:14], TOY_NAMES[14:17], TOY_NAMES[17:] + ["zoe"]


@pytest.fixture(scope="module")
def vocab():
    return Vocabulary.build(TRAIN, "char")


@pytest.fixture(scope="module")
def splits(vocab):
    return {"train": encode_split(vocab, TRAIN), "dev": encode_split(vocab, DEV), "test": encode_split(vocab, TEST)}


@pytest.fixture(scope="module")
def trained(tmp_path_factory, vocab, splits):
    """A small LSTM trained for a few epochs: better than uniform, different from the n-gram."""
    deterministic()
    cfg = train_config(embedding_size=16, hidden_size=16, batch_size=4, epochs=5, lr=0.01, seeds=[0], workers=1)
    path = tmp_path_factory.mktemp("model") / "seed0.pt"
    model, record = train_model("lstm", cfg, vocab, splits, 0, path, progress=False, log=lambda *_: None)
    return model.eval(), path


@pytest.fixture(scope="module")
def ngram(vocab, splits):
    return KneserNeyLM(len(vocab), vocab.pad_id, vocab.bos_id, order=3).fit(splits["train"])


def assert_same_metrics(got, want, tol=1e-9):
    assert set(got) == set(want)
    for key, value in want.items():
        assert got[key] == pytest.approx(value, rel=0, abs=tol), key


@pytest.mark.parametrize("split", ["dev", "test"])
def test_lambda_one_is_the_recurrent_model(split, trained, ngram, vocab, splits):
    model = copy.deepcopy(trained[0]).double()  # float64 throughout, so both paths agree to rounding
    want = evaluate_split(model, splits[split], vocab.pad_id, unk_id=vocab.unk_id)
    (got,) = evaluate_mixtures([([model], [1.0, 0.0])], ngram, splits[split], vocab.pad_id, unk_id=vocab.unk_id)
    if split == "dev":
        assert want["oov_rate"] > 0  # "luna", "sofia": u and f are unknown, and their <unk> is scored too
    assert_same_metrics(got, want)


def ngram_correct_known(ngram, split, unk_id):
    """The n-gram's correct predictions of targets other than <unk>, counted from its distributions
    (the oracle for ``KneserNeyLM.evaluate``'s own count)."""
    return sum(int(((dist.argmax(axis=1) == targets) & (targets != unk_id)).sum())
               for _, targets, dist in ngram.split_distributions(split))


@pytest.mark.parametrize("split", ["dev", "test"])
def test_lambda_zero_is_the_ngram_model(split, trained, ngram, vocab, splits):
    sums = ngram.evaluate(splits[split], unk_id=vocab.unk_id)
    assert sums[5] == ngram_correct_known(ngram, splits[split], vocab.unk_id)  # correct targets but <unk>
    want = summarize(*sums)
    (got,) = evaluate_mixtures([([trained[0]], [0.0, 1.0])], ngram, splits[split], vocab.pad_id, unk_id=vocab.unk_id)
    assert_same_metrics(got, want)


def argmax_hits_by_hand(predict, split, unk_id):
    """(correct, correct on targets other than <unk>, <unk> targets, targets): the argmax of ``predict(prefix)``
    (a distribution over the vocabulary) against each target, one prefix at a time."""
    correct = correct_known = unknown = tokens = 0
    for i in range(len(split)):
        item = split.item(i).tolist()
        for j in range(1, len(item)):
            hit = int(np.argmax(predict(item[:j]))) == item[j]
            correct += hit
            correct_known += hit and item[j] != unk_id
            unknown += item[j] == unk_id
            tokens += 1
    return correct, correct_known, unknown, tokens


def test_accuracy_without_unk_is_the_hand_count_over_the_other_targets(trained, ngram, vocab, splits):
    """The dev split's <unk> targets ("luna", "sofia": u and f are unknown) are left out of
    accuracy_without_unk, and counted in accuracy, for the neural model and for the mixture alike."""
    model, lam = trained[0], 0.3

    def neural(prefix):
        with torch.no_grad():
            return model(torch.tensor([prefix]))[0][0, -1].numpy()

    dev = splits["dev"]
    correct, correct_known, unknown, tokens = argmax_hits_by_hand(neural, dev, vocab.unk_id)
    assert unknown > 0  # <unk> is a target
    got = evaluate_split(model, dev, vocab.pad_id, unk_id=vocab.unk_id)
    assert got["accuracy"] == correct / tokens
    assert got["accuracy_without_unk"] == correct_known / (tokens - unknown)
    # a model that always predicts <unk>: every <unk> target is a hit for accuracy, and none for the other
    always_unk = copy.deepcopy(model)
    with torch.no_grad():
        always_unk.decoder.bias[vocab.unk_id] += 1e3
    got = evaluate_split(always_unk, dev, vocab.pad_id, unk_id=vocab.unk_id)
    assert got["accuracy"] == unknown / tokens and got["accuracy_without_unk"] == 0
    assert "accuracy_without_unk" not in evaluate_split(model, dev, vocab.pad_id)  # no unk_id: nothing to leave out
    # no <unk> among the training targets: the plain accuracy says it all
    assert "accuracy_without_unk" not in evaluate_split(model, splits["train"], vocab.pad_id, unk_id=vocab.unk_id)

    def mixed(prefix):
        with torch.no_grad():
            p_rnn = torch.softmax(model(torch.tensor([prefix]))[0][0, -1].double(), dim=-1).numpy()
        return lam * p_rnn + (1 - lam) * ngram.distribution(prefix)

    correct, correct_known, unknown, tokens = argmax_hits_by_hand(mixed, dev, vocab.unk_id)
    (got,) = evaluate_mixtures([([model], [lam, 1 - lam])], ngram, dev, vocab.pad_id, unk_id=vocab.unk_id)
    assert got["accuracy"] == correct / tokens
    assert got["accuracy_without_unk"] == correct_known / (tokens - unknown)


def test_summarize_reports_accuracy_without_unk_only_where_unk_is_a_target():
    both = summarize(10.0, 6, 20, 30, unknown=5, correct_known=3)
    assert both["accuracy"] == 6 / 20 and both["accuracy_without_unk"] == 3 / 15 and both["oov_rate"] == 5 / 20
    assert "accuracy_without_unk" not in summarize(10.0, 6, 20, 30, unknown=0, correct_known=6)
    assert "accuracy_without_unk" not in summarize(10.0, 6, 20, 30, unknown=5)  # a caller that did not count it


@pytest.mark.parametrize("array", [np.array, torch.tensor])
def test_a_tally_of_chunks_counts_what_summarize_needs(array):
    """Two chunks, <unk> = 1: targets 1 0 2 | 1 3, predicted 1 0 0 | 2 3, losses 2.0 + 3.0 nats."""
    tally = Tally(unk_id=1)
    tally.add(array([1, 0, 2]), 2.0, array([1, 0, 0]))
    tally.add(array([1, 3]), 3.0, array([2, 3]))
    # 3 hits (the <unk> at 0, the 0, the 3), 2 of them not <unk>; 2 <unk> targets of 5
    assert tally.sums(chars=9) == (5.0, 3, 5, 9, 2, 2)
    assert tally.summary(chars=9) == summarize(5.0, 3, 5, 9, unknown=2, correct_known=2)
    loss_only = Tally(accuracy=False)   # no predictions, no unk_id: neither counted
    loss_only.add(array([1, 0]), 1.5)
    assert loss_only.sums(chars=4) == (1.5, None, 2, 4, None, None)
    assert "accuracy" not in loss_only.summary(chars=4) and "oov_rate" not in loss_only.summary(chars=4)


def test_mixed_rows_are_distributions_and_match_both_models_position_by_position(trained, ngram, vocab, splits):
    model, lam = trained[0], 0.3
    rows = []
    for targets, ((_, dist),) in mixed_distributions([([model], [lam, 1 - lam])], ngram, splits["dev"], vocab.pad_id,
                                                     max_cells=60):
        assert dist.shape == (len(targets), len(vocab)) and dist.dtype == np.float64
        rows.append(dist)
    rows = np.concatenate(rows)  # small max_cells: several chunks, so chunk boundaries are covered too
    np.testing.assert_allclose(rows.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    assert (rows > 0).all()
    # Row by row: the mixture of the model's next-token softmax after each prefix and the
    # n-gram's distribution for the same history, computed independently one prefix at a time.
    r = 0
    for i in range(len(DEV)):
        item = splits["dev"].item(i).tolist()
        for j in range(1, len(item)):
            with torch.no_grad():
                logits, _ = model(torch.tensor([item[:j]]))
            p_rnn = torch.softmax(logits[0, -1].double(), dim=-1).numpy()
            want = lam * p_rnn + (1 - lam) * ngram.distribution(item[:j])
            np.testing.assert_allclose(rows[r], want, rtol=1e-6, atol=1e-9)
            r += 1
    assert r == len(rows)


def test_target_probabilities_agree_with_the_models(trained, ngram, vocab, splits):
    model = trained[0]
    p_rnn = neural_target_probabilities(model, splits["test"], vocab.pad_id)
    p_ngram = ngram.target_probabilities(splits["test"])
    want_rnn = evaluate_split(model, splits["test"], vocab.pad_id)["loss"]
    want_ngram = summarize(*ngram.evaluate(splits["test"]))["loss"]
    assert -np.log(p_rnn).mean() == pytest.approx(want_rnn, rel=1e-6)
    assert -np.log(p_ngram).mean() == pytest.approx(want_ngram, rel=1e-12)
    # Position by position, in the order of the rows checked above (so λ is fit on aligned pairs).
    at_targets = {0.0: [], 1.0: []}
    corners = [([model], [0.0, 1.0]), ([model], [1.0, 0.0])]
    for targets, mixed in mixed_distributions(corners, ngram, splits["test"], vocab.pad_id):
        for lam, (_, dist) in zip((0.0, 1.0), mixed):
            at_targets[lam].append(dist[np.arange(len(targets)), targets])
    np.testing.assert_allclose(p_ngram, np.concatenate(at_targets[0.0]), rtol=1e-12)
    np.testing.assert_allclose(p_rnn, np.concatenate(at_targets[1.0]), rtol=1e-5)


def log_likelihood(weights, probabilities):
    return np.log(np.asarray(weights) @ np.asarray(probabilities)).sum()


def test_fit_weights_finds_the_optimum_of_a_constructed_case():
    # Token A: rnn 0.9, ngram 0.1; token B: rnn 0.3, ngram 0.6. The derivative
    # 0.8 / (0.1 + 0.8 λ) - 0.3 / (0.6 - 0.3 λ) vanishes at 0.48 - 0.24 λ = 0.03 + 0.24 λ: λ = 0.9375.
    p = [[0.9, 0.3], [0.1, 0.6]]
    weights = fit_weights(p)
    assert weights[0] == pytest.approx(0.9375, abs=1e-8) and weights.sum() == pytest.approx(1.0, abs=1e-15)
    grid = np.linspace(0, 1, 100_001)
    assert log_likelihood(weights, p) >= max(log_likelihood([g, 1 - g], p) for g in grid) - 1e-12


def test_fit_weights_of_three_components_meets_the_optimality_conditions():
    """At the maximum over the simplex, mean(p_k / P_mix) is 1 for a used component and at most 1 for
    an unused one (the KKT conditions of this concave problem); no point of a grid does better."""
    rng = np.random.default_rng(0)
    p = rng.uniform(0.01, 1.0, size=(3, 200))
    p[2] *= 0.2  # a weak component, which the optimum drops
    weights = fit_weights(p)
    ratio = (p / (weights @ p)).mean(axis=1)
    for w, r in zip(weights, ratio):
        assert r == pytest.approx(1.0, abs=1e-6) if w > 1e-6 else r <= 1 + 1e-6
    assert weights[2] < 1e-6
    grid = [(a, b, 1 - a - b) for a in np.linspace(0, 1, 201) for b in np.linspace(0, 1, 201) if a + b <= 1]
    assert log_likelihood(weights, p) >= max(log_likelihood(g, p) for g in grid) - 1e-9


def test_fit_weights_at_the_corners():
    assert fit_weights([[0.5, 0.4], [0.1, 0.2]])[0] == pytest.approx(1.0, abs=1e-6)  # the first model is better everywhere
    assert fit_weights([[0.1, 0.2], [0.5, 0.4]])[0] == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match="same"):
        fit_weights([[]])


def test_two_neural_models_mix_with_the_ngram_like_the_formula(trained, ngram, vocab, splits):
    model = trained[0]
    other = copy.deepcopy(model)
    with torch.no_grad():
        for p in other.parameters():
            p.mul_(0.7)
    weights = [0.5, 0.3, 0.2]
    (got,) = evaluate_mixtures([([model, other], weights)], ngram, splits["test"], vocab.pad_id)
    p = np.stack([neural_target_probabilities(model, splits["test"], vocab.pad_id),
                  neural_target_probabilities(other, splits["test"], vocab.pad_id),
                  ngram.target_probabilities(splits["test"])])
    assert got["loss"] == pytest.approx(-np.log(np.asarray(weights) @ p).mean(), rel=1e-9)


def test_bad_weights_and_bad_kind_are_refused(trained, ngram, vocab, splits):
    with pytest.raises(ValueError, match="sum to 1"):
        evaluate_mixtures([([trained[0]], [1.5, -0.5])], ngram, splits["dev"], vocab.pad_id)
    with pytest.raises(ValueError, match="one weight per neural model"):
        evaluate_mixtures([([trained[0]], [1.0])], ngram, splits["dev"], vocab.pad_id)
    with pytest.raises(UserError, match=r"mixture\.news\.model\.0 must be one of"):
        mixture_config("news", **{"model": "bilstm"})
    with pytest.raises(UserError, match="must not repeat a kind"):
        mixture_config("news", **{"model": ["lstm", "lstm"]})


# --- the stage ------------------------------------------------------------------------------------

def train_stage_output(workdir, checkpoint):
    """The train stage's folder for the lstm: two seeds (the same weights twice is enough to check
    the spread block) and the first seed's copy as lstm.pt."""
    (workdir / "models" / "lstm.seeds").mkdir(parents=True)
    for name in ("lstm.seeds/seed0.pt", "lstm.seeds/seed1.pt", "lstm.pt"):
        (workdir / "models" / name).write_bytes(checkpoint.read_bytes())


def ngram_stage_output(workdir, encoded, **header):
    """The ngram stage's output: the ARPA file of the order it chose (say 3), with its header
    (``header`` changes it)."""
    vocab, cfg = Vocabulary.load(workdir / "vocab.json"), ngram_config()
    fitted = fit_ngram(vocab, load_encoded(workdir / encoded)["train"], cfg, order=3)
    write_arpa(workdir / "ngram.arpa.gz", fitted, vocab.tokens,
               header={"vocabulary": vocab.to_dict(), "order": 3, "discounts": discount_record(fitted),
                       "min_order": cfg.min_order, "max_order": cfg.max_order, "corpus": "names"} | header)


def start_stage(workdir, encoded):
    params = {"corpora": {"names": "names.txt"}, "kinds": {"names": ["lstm"]}, "mixture": {"names": {"model": "lstm"}},
              "ngram": {"names": params_section("ngram")},
              "train": {"names": params_section("train") | {"seeds": [0, 1]}}}
    (workdir / "params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")
    (workdir / "test.txt").write_text("ava\nmia\n", encoding="utf-8")   # a char corpus: no literal <unk>
    return subprocess.run([sys.executable, str(ROOT / "stages" / "mixture.py"), "--corpus", "names",
                           "--vocab", "vocab.json", "--encoded", str(encoded), "--test-split", "test.txt",
                           "--models-dir", "models",
                           "--arpa", "ngram.arpa.gz", "--metrics", "metrics/names/mixture.json",
                           "--model-file", "mixture.json", "--speed", "speed/stages/names/mixture.json"],
                          cwd=workdir, capture_output=True, text=True)


def run_stage(workdir, encoded):
    ngram_stage_output(workdir, encoded)
    done = start_stage(workdir, encoded)
    assert done.returncode == 0, done.stderr
    return json.loads((workdir / "metrics" / "names" / "mixture.json").read_text(encoding="utf-8"))


def test_stage_refits_the_ngram_at_the_order_of_its_arpa_file_or_refuses_it(tmp_path, vocab, splits):
    vocab.save(tmp_path / "vocab.json")
    save_encoded(tmp_path / "a.npz", splits)
    fitted = fit_ngram(vocab, splits["train"], ngram_config(), order=3)
    for header, message in [({"max_order": 5}, "not written by the ngram stage for this vocabulary and params"),
                            ({"order": 11}, "not written by the ngram stage for this vocabulary and params"),
                            ({"discounts": discount_record(fitted.with_order(2))}, "fit on another train split")]:
        ngram_stage_output(tmp_path, "a.npz", **header)
        done = start_stage(tmp_path, "a.npz")
        assert done.returncode == 2 and message in done.stderr, (header, done.stderr)


def test_stage_fits_lambda_on_dev_never_on_test(tmp_path, trained, ngram, vocab, splits):
    model, path = trained
    train_stage_output(tmp_path, path)
    vocab.save(tmp_path / "vocab.json")
    save_encoded(tmp_path / "a.npz", splits)
    # Same train and dev, but a test split the n-gram has memorized (the training items): its
    # best λ is far from dev's, so a stage that looked at test would report another λ.
    swapped = dict(splits, test=splits["train"])
    save_encoded(tmp_path / "b.npz", swapped)

    dev_lambda = fit_weights([neural_target_probabilities(model, splits["dev"], vocab.pad_id),
                              ngram.target_probabilities(splits["dev"])])[0]
    test_lambda = fit_weights([neural_target_probabilities(model, swapped["test"], vocab.pad_id),
                               ngram.target_probabilities(swapped["test"])])[0]
    assert 0 < dev_lambda < 1 and abs(dev_lambda - test_lambda) > 0.2  # the construction disagrees

    first, second = run_stage(tmp_path, "a.npz"), run_stage(tmp_path, "b.npz")
    lam = first["weights"]["lstm"]
    assert lam == pytest.approx(dev_lambda, abs=1e-6) == second["weights"]["lstm"]
    assert first["weights"]["ngram"] == pytest.approx(1 - lam, abs=1e-6)
    assert first["dev"] == second["dev"] and first["test"] != second["test"]
    (want,) = evaluate_mixtures([([model], [lam, 1 - lam])], ngram, splits["test"], vocab.pad_id,
                                unk_id=vocab.unk_id)
    assert first["test"]["loss"] == pytest.approx(want["loss"], abs=1e-5)
    assert first["kinds"] == ["lstm"] and first["order"] == 3 and first["seed"] == 0
    assert first["params"] == model.num_parameters() + ngram.num_ngrams
    assert first["seeds"]["weight_lstm"] == {"mean": lam, "std": 0.0, "n": 2, "min": lam, "max": lam}
    assert first["seeds"]["test_loss"]["n"] == 2 and set(first["seeds"]) >= {"dev_loss", "test_perplexity"}
    assert not [key for key in gates.flatten(first) if is_timing(key)]  # the seconds: speed/stages/names/mixture.json
    speed = json.loads((tmp_path / "speed" / "stages" / "names" / "mixture.json").read_text(encoding="utf-8"))
    assert speed["kinds"] == ["lstm"] and speed["seed"] == 0 and 0 < speed["ngram_fit_seconds"] <= speed["seconds"]
    # The mixture beats both of its components on dev (λ was chosen there).
    rnn_dev = evaluate_split(model, splits["dev"], vocab.pad_id)["loss"]
    ngram_dev = summarize(*ngram.evaluate(splits["dev"]))["loss"]
    assert first["dev"]["loss"] < min(rnn_dev, ngram_dev)


def test_stage_writes_the_headline_mixture_as_a_model_file(tmp_path, trained, vocab, splits):
    """The model file names the first seed's checkpoint and the ARPA file, with the first seed's λ;
    loaded back it scores the test split with the stage's headline test loss."""
    from rnnlm.lm import load_model
    from rnnlm.scoring import score_lines

    _, path = trained
    train_stage_output(tmp_path, path)
    vocab.save(tmp_path / "vocab.json")
    save_encoded(tmp_path / "a.npz", splits)
    metrics = run_stage(tmp_path, "a.npz")
    spec = json.loads((tmp_path / "mixture.json").read_text(encoding="utf-8"))
    assert [c["file"] for c in spec["components"]] == ["models/lstm.pt", "ngram.arpa.gz"] and spec["seed"] == 0
    assert spec["components"][0]["weight"] == pytest.approx(metrics["weights"]["lstm"], abs=1e-6)
    _, summary = score_lines(load_model(tmp_path / "mixture.json"), TEST)
    assert summary["loss"] == pytest.approx(metrics["test"]["loss"], rel=1e-6, abs=1e-6)
