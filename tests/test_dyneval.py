"""Dynamic evaluation for streams (rnnlm.dyneval): no target is read before it is scored, η = λ = 0 (and the
cache's λ = 0) is the plain stream evaluation, the segment-by-segment update equals torch's own SGD step, η and
λ are chosen on dev alone, and the trained model is never changed."""

import copy
import json
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml

from rnnlm.cache import cache_sums, cache_target_log_probs
from rnnlm.checkpoint import save_checkpoint
from rnnlm.data import encode_stream, joined_streams, save_encoded
from rnnlm.dyneval import dyneval_metrics, dyneval_stream, dyneval_sums, dyneval_target_log_probs, fit_dyneval
from rnnlm.errors import UserError
from rnnlm.evaluation import evaluate_split
from rnnlm.models import ModelConfig, build_model
from rnnlm.report import summary_markdown
from rnnlm.schema.evaluate import EvaluateConfig
from rnnlm.stream_scoring import stream_target_losses
from tests.configs import params_section
from tests.pipeline_outputs import ROOT
from tests.test_cache import scorer, tiny_model, with_tokens
from tests.test_streams import play, stream_metrics, stream_splits


@pytest.fixture(scope="module")
def streams():
    return stream_splits(play(12))


def distributions(model, split, lr, decay, segment):
    """log p of every token at every target, in order: (N, V)."""
    return torch.cat([logits.log_softmax(dim=-1) for _, _, logits in dyneval_stream(model, split, lr, decay, segment)])


def test_no_target_is_read_before_it_is_scored(streams):
    vocab, splits, _ = streams
    model, split = tiny_model(vocab), splits["train"]
    scored = distributions(model, split, lr=0.5, decay=0.01, segment=7)
    tokens = split.tokens.copy()
    for m in (1, 17, 64, len(tokens) - 3):
        changed = tokens.copy()
        changed[m + 1:] = (changed[m + 1:] + 7 - 4) % (len(vocab) - 4) + 4  # other non-special tokens
        assert (changed[m + 1:] != tokens[m + 1:]).all()
        # targets m.. and inputs m + 1.. changed: the distributions at targets 0..m (each scored before its
        # target is known, and before any later one is learnt from) stay as they were
        again = distributions(model, with_tokens(split, changed), lr=0.5, decay=0.01, segment=7)
        assert torch.equal(again[:m + 1], scored[:m + 1])
        assert not torch.equal(again[m + 1:], scored[m + 1:])
    # the scored log-probabilities are those distributions' at the targets
    logp = dyneval_target_log_probs(model, split, lr=0.5, decay=0.01, segment=7)
    picked = scored[torch.arange(len(logp)), torch.from_numpy(split.tokens[1:].astype(np.int64))]
    assert np.allclose(logp, picked.double().numpy(), atol=1e-5)


# Each adaptation switched off: (its metrics of a split, at every grid point asked for; its per-target losses
# of a split; the relative tolerance of the metrics and the absolute one of the losses against the plain
# stream's). The cache reads the plain pass's own states; dynamic evaluation runs the network segment by
# segment, other matrix shapes than the plain pass's blocks, so with several torch threads float32's last
# digits differ (1e-9 held with one thread only).
SWITCHED_OFF = {
    "cache, λ = 0": (lambda model, split, unk_id: list(cache_sums(model, split, 20, [0.3, 1.0], [0.0], unk_id).values()),
                     lambda model, split: -cache_target_log_probs(model, split, 20, 0.5, 0.0), 1e-9, 1e-12),
    "dyneval, η = λ = 0": (lambda model, split, unk_id: [dyneval_sums(model, split, 0.0, 0.0, segment=9, unk_id=unk_id)],
                           lambda model, split: -dyneval_target_log_probs(model, split, 0.0, 0.0, segment=9), 1e-6, 1e-6),
}


@pytest.mark.parametrize("adaptation", SWITCHED_OFF)
def test_an_adaptation_switched_off_is_the_plain_stream_evaluation(streams, adaptation):
    metrics, target_losses, rel, atol = SWITCHED_OFF[adaptation]
    vocab, splits, _ = streams
    for kind in ("lstm", "rnn_scratch"):
        model = tiny_model(vocab, kind)
        for name in ("dev", "test"):
            plain = evaluate_split(model, splits[name], vocab.pad_id, unk_id=vocab.unk_id)
            for result in metrics(model, splits[name], vocab.unk_id):
                assert result.keys() == plain.keys()
                for key in plain:
                    assert result[key] == pytest.approx(plain[key], rel=rel, abs=1e-12), (kind, name, key)
        assert np.allclose(target_losses(model, splits["dev"]), stream_target_losses(model, splits["dev"]),
                           rtol=0, atol=atol)


def sgd_by_hand(model, split, lr, decay, segment):
    """The oracle: the model's forward and cross-entropy, torch.optim.SGD for the step, the decay towards the
    trained weights by hand; log p of every target, in order."""
    learner = copy.deepcopy(model).eval()
    trained = [p.detach().clone() for p in learner.parameters()]
    optimizer = torch.optim.SGD(learner.parameters(), lr=lr)
    tokens = torch.from_numpy(split.tokens.astype(np.int64))
    x, y = tokens[:-1], tokens[1:]
    out, hidden = [], None
    for start in range(0, len(y), segment):
        logits, hidden_after = learner(x[start:start + segment][None], hidden)
        losses = F.cross_entropy(logits[0], y[start:start + segment], reduction="none")
        out.append(-losses.detach().double())
        optimizer.zero_grad()
        losses.mean().backward()
        optimizer.step()
        with torch.no_grad():
            for p, p0 in zip(learner.parameters(), trained):
                p.add_(decay * (p0 - p))
        hidden = tuple(h.detach() for h in hidden_after) if isinstance(hidden_after, tuple) else hidden_after.detach()
    return torch.cat(out).numpy()


@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn_scratch"])
def test_the_update_is_sgd_on_each_segment_after_it_is_scored(streams, kind):
    vocab, splits, _ = streams
    model = tiny_model(vocab, kind, seed=2)
    for lr, decay, segment in [(0.3, 0.0, 11), (0.1, 0.05, 4)]:
        expected = sgd_by_hand(model, splits["dev"], lr, decay, segment)
        got = dyneval_target_log_probs(model, splits["dev"], lr, decay, segment)
        assert np.allclose(got, expected, rtol=1e-6, atol=1e-7), (kind, lr, decay, segment)


def test_a_repeated_text_is_learnt_and_the_trained_model_is_untouched(streams):
    vocab, _, texts = streams
    model = tiny_model(vocab)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    looped = encode_stream(vocab, texts["dev"][:80] * 12)
    plain = dyneval_sums(model, looped, 0.0, 0.0, unk_id=vocab.unk_id)
    adapted = dyneval_sums(model, looped, 0.5, 0.0, segment=20, unk_id=vocab.unk_id)
    assert adapted["loss"] < plain["loss"] - 0.3  # an untrained model learns the loop as it reads it
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    # and each split starts again from the trained weights: the same split twice, the same numbers
    assert dyneval_sums(model, looped, 0.5, 0.0, segment=20, unk_id=vocab.unk_id) == adapted


def test_the_learning_rate_and_decay_are_chosen_on_dev_alone(streams):
    vocab, splits, texts = streams
    model = tiny_model(vocab)
    lrs, decays = (0.0, 0.5, 2.0), (0.0, 0.1)
    dev = splits["dev"]
    on_dev = fit_dyneval(model, dev, 10, lrs, decays, vocab.unk_id)
    for test in (splits["test"], encode_stream(vocab, "the " * 60)):
        record = dyneval_metrics(model, {"dev": dev, "test": test}, 10, vocab.unk_id, lrs, decays)
        assert (record["lr"], record["decay"]) == on_dev[:2] and record["dev"] == on_dev[2]
        assert record["test"] == dyneval_sums(model, test, *on_dev[:2], 10, vocab.unk_id)
        assert record["segment"] == 10 and "dev_test" not in record
    grid = {(lr, decay): dyneval_sums(model, dev, lr, decay, 10, vocab.unk_id)["loss"] for lr in lrs for decay in decays}
    assert on_dev[2]["loss"] == min(grid.values())


def test_only_recurrent_kinds_of_a_stream_are_adapted(streams):
    vocab, splits, _ = streams
    for kind in ("mlp", "transformer"):
        config = ModelConfig(kind, len(vocab), vocab.pad_id, 8, 16, context=3, heads=2, ff_size=16, max_len=32)
        with pytest.raises(UserError, match=f"dynamic evaluation needs a kind that carries its state .*not {kind}"):
            dyneval_sums(build_model(config), splits["dev"], 0.1, 0.0)
    for lr, decay, segment, message in [(-1, 0, 5, "learning rate must be >= 0"), (0.1, 1.0, 5, r"decay must be in \[0, 1\)"),
                                        (0.1, 0, 0, "segment must be >= 1")]:
        with pytest.raises(UserError, match=message):
            dyneval_sums(tiny_model(vocab), splits["dev"], lr, decay, segment)


def test_the_option_is_off_in_params_and_validated():
    params = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))["evaluate"]
    assert params["stream_dyneval"]["enabled"] is False
    base = {"batch_size": 8, "device": "cpu", "stream_cache": {"enabled": False, "size": 10}}
    with pytest.raises(UserError, match="evaluate.stream_dyneval"):
        EvaluateConfig.from_params(base, "evaluate")   # every key is spelled out in params.yaml
    on = EvaluateConfig.from_params(base | {"stream_dyneval": {"enabled": True, "segment": 20}}, "evaluate")
    assert on.stream_dyneval.enabled and on.stream_dyneval.segment == 20
    with pytest.raises(UserError, match="evaluate.stream_dyneval.segment must be > 0"):
        EvaluateConfig.from_params(base | {"stream_dyneval": {"enabled": True, "segment": 0}}, "evaluate")


def test_score_with_dynamic_evaluation(streams, tmp_path, capsys):
    vocab, _, texts = streams
    model, score = scorer(vocab, texts["dev"], tmp_path, capsys)
    _, out = score()
    plain = json.loads(out.out.splitlines()[-1])
    code, out = score("--dyneval", "--dyneval-lr", "0.4", "--dyneval-decay", "0.02", "--dyneval-segment", "13")
    assert code == 0
    adapted = json.loads(out.out.splitlines()[-1])
    split = encode_stream(vocab, texts["dev"])
    expected = -dyneval_target_log_probs(model, split, 0.4, 0.02, 13).sum() / split.num_targets
    assert adapted["loss"] == pytest.approx(expected, rel=1e-9) and adapted["loss"] != plain["loss"]
    code, out = score("--dyneval", "--dyneval-lr", "0")
    assert code == 0 and json.loads(out.out.splitlines()[-1])["loss"] == pytest.approx(plain["loss"], rel=1e-9)
    for flags, message in [(("--dyneval", "--dyneval-decay", "1"), "decay must be in [0, 1)"),
                           (("--dyneval", "--cache"), "either --cache or --dyneval")]:
        code, out = score(*flags)
        assert code != 0 and message in out.err and "Traceback" not in out.err


def test_the_report_shows_the_dyneval_row_with_its_fit():
    lstm = stream_metrics(1.5, seed=0)
    adapted = stream_metrics(1.4, seed=0) | {"lr": 0.1, "decay": 0.0, "segment": 50}
    text = summary_markdown({"plays": {"lstm": lstm, "lstm+dyneval": adapted, "ngram": stream_metrics(1.9)}})
    assert "| **lstm+dyneval** (best) |" in text
    assert "lstm+dyneval: dynamic evaluation (Krause et al. 2018)" in text
    assert "segments of 50 targets" in text and "learning rate 0.1 and decay 0 fit on dev only" in text


def test_the_evaluate_stage_writes_a_row_per_adaptation_for_the_recurrent_kinds_of_a_stream(streams, tmp_path):
    """The real stage with evaluate.stream_cache and evaluate.stream_dyneval on: <kind>+cache.json and
    <kind>+dyneval.json for the LSTM, each with its settings fit on dev and the numbers its module gives; the
    mlp gets a line saying why it has no such row."""
    vocab, splits, texts = streams
    vocab.save(tmp_path / "vocab.json")
    save_encoded(tmp_path / "encoded.npz", {name: splits[name] for name in ("train", "dev", "test")})
    (tmp_path / "test.txt").write_text(texts["test"], encoding="utf-8")
    lstm = tiny_model(vocab)
    mlp = build_model(ModelConfig("mlp", len(vocab), vocab.pad_id, 8, 16, context=3))
    for kind, model in (("lstm", lstm), ("mlp", mlp)):
        save_checkpoint(tmp_path / "models" / f"{kind}.seeds" / "seed0.pt", model, vocab,
                        {"seed": 0, "epochs_done": 1, "best_epoch": 1})
    evaluate = params_section("evaluate") | {"stream_cache": {"enabled": True, "size": 20},
                                             "stream_dyneval": {"enabled": True, "segment": 25}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({
        "corpora": {"plays": "plays.txt"}, "kinds": {"plays": ["lstm", "mlp"]},
        "train": {"plays": params_section("train") | {"seeds": [0]}}, "evaluate": evaluate}))
    done = subprocess.run([sys.executable, str(ROOT / "stages" / "evaluate.py"), "--corpus", "plays",
                           "--vocab", "vocab.json", "--encoded", "encoded.npz", "--models-dir", "models",
                           "--test-split", "test.txt", "--metrics-dir", "metrics"], cwd=tmp_path,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    written = sorted(path.name for path in (tmp_path / "metrics").iterdir())
    assert written == ["lstm+cache.json", "lstm+dyneval.json", "lstm.json", "mlp.json"]
    assert "evaluate plays/mlp: no dyneval row (it needs a stream corpus and a recurrent kind)" in done.stdout
    adapted = json.loads((tmp_path / "metrics" / "lstm+dyneval.json").read_text())
    joined = {"dev": splits["dev"], "test": splits["test"], "dev_test": joined_streams(splits["dev"], splits["test"])}
    expected = dyneval_metrics(lstm, joined, 25, unk_id=vocab.unk_id)
    assert (adapted["lr"], adapted["decay"], adapted["segment"]) == (expected["lr"], expected["decay"], 25)
    for split in ("dev", "test", "dev_test"):
        assert adapted[split]["loss"] == pytest.approx(expected[split]["loss"], rel=1e-5), split
    assert adapted["params"] == lstm.num_parameters() and adapted["seed"] == 0
    cached = json.loads((tmp_path / "metrics" / "lstm+cache.json").read_text())
    assert cached["size"] == 20 and {"theta", "lambda"} <= cached.keys()
