"""The neural cache for streams (rnnlm.cache): no target is read before it is scored, the vectorized cache
equals a loop over positions, and θ, λ are chosen on dev alone (λ = 0 is the plain stream evaluation:
tests/test_dyneval.py, beside dynamic evaluation switched off)."""

import json
import math

import numpy as np
import pytest
import torch
import yaml

from rnnlm.cache import (cache_distributions, cache_metrics, cache_stream, cache_sums, cache_target_log_probs,
                         check_cacheable, fit_cache, mixed_logp)
from rnnlm.checkpoint import save_checkpoint
from rnnlm.cli import main
from rnnlm.data import EncodedSplit, encode_stream
from rnnlm.errors import UserError
from rnnlm.models import ModelConfig, build_model
from rnnlm.report import summary_markdown
from rnnlm.schema.evaluate import EvaluateConfig
from tests.pipeline_outputs import ROOT
from tests.test_streams import play, stream_metrics, stream_splits


def tiny_model(vocab, kind="lstm", seed=0):
    torch.manual_seed(seed)
    return build_model(ModelConfig(kind, len(vocab), vocab.pad_id, 8, 16, context=3)).eval()


def with_tokens(split, tokens):
    """``split`` with its one item's tokens replaced (same length, same character counts)."""
    return EncodedSplit(np.asarray(tokens, dtype=split.tokens.dtype), split.offsets, split.chars, stream=True)


@pytest.fixture(scope="module")
def streams():
    vocab, splits, texts = stream_splits(play(12))
    return vocab, splits, texts


def test_no_target_is_read_before_it_is_scored(streams):
    vocab, splits, _ = streams
    model, split = tiny_model(vocab), splits["train"]
    size, theta, lam = 30, 0.5, 0.3
    mixture, cache = cache_distributions(model, split, size, theta, lam)
    # the first target: the cache is empty, the mixture is the model's distribution
    with torch.no_grad():
        logits, _ = model(torch.from_numpy(split.tokens[:-1].astype(np.int64))[None])
    model_probs = torch.softmax(logits[0].double(), dim=-1)
    assert cache[0].sum() == 0 and torch.allclose(mixture[0], model_probs[0], atol=1e-12)
    assert torch.allclose(cache[1:].sum(dim=1), torch.ones(len(cache) - 1, dtype=torch.float64))
    # every token from position m + 1 of the stream on changed (targets m.. and inputs m + 1..): the
    # distributions at targets 0..m (each scored before its target is known) stay as they were
    tokens = split.tokens.copy()
    for m in (1, 17, 64, len(tokens) - 3):
        changed = tokens.copy()
        changed[m + 1:] = (changed[m + 1:] + 7 - 4) % (len(vocab) - 4) + 4  # other non-special tokens
        assert (changed[m + 1:] != tokens[m + 1:]).all()
        mixture2, cache2 = cache_distributions(model, with_tokens(split, changed), size, theta, lam)
        assert torch.equal(cache2[:m + 1], cache[:m + 1]) and torch.equal(mixture2[:m + 1], mixture[:m + 1])
        assert not torch.equal(cache2[m + 1:], cache[m + 1:])  # from target m + 1 on, target m is in the cache
    # the scored probabilities before m are those of the distributions
    logp = cache_target_log_probs(model, split, size, theta, lam)
    picked = mixture[torch.arange(len(logp)), torch.from_numpy(split.tokens[1:].astype(np.int64))]
    assert np.allclose(logp, picked.log().numpy(), atol=1e-9)


def brute_force(model, split, size, theta, lam):
    """p(target) at every target, one position at a time: the model's distribution from one pass, and the
    cache as a Python loop over the positions before each target."""
    tokens = torch.from_numpy(split.tokens.astype(np.int64))
    with torch.no_grad():
        states, _ = model.features(tokens[None, :-1])
        probs = torch.softmax(model.decoder(states[0]).double(), dim=-1)
    states, targets = states[0].double(), tokens[1:].tolist()
    out = []
    for t, target in enumerate(targets):
        p_model = probs[t, target].item()
        seen = range(max(0, t - size), t)
        if not seen:
            out.append(p_model)
            continue
        weights = {i: math.exp(theta * float(states[t] @ states[i])) for i in seen}
        p_cache = sum(w for i, w in weights.items() if targets[i] == target) / sum(weights.values())
        out.append((1 - lam) * p_model + lam * p_cache)
    return np.array(out)


@pytest.mark.parametrize("size", [1, 5, 40, 10_000])
def test_the_vectorized_cache_equals_a_loop_over_positions(streams, size, monkeypatch):
    vocab, splits, _ = streams
    model = tiny_model(vocab, "gru", seed=1)
    split = splits["dev"]
    monkeypatch.setattr("rnnlm.cache.ROWS", 7)  # several row groups per block, windows across blocks
    expected = brute_force(model, split, size, 0.7, 0.25)
    for block in (None, 13):
        got = np.exp(cache_target_log_probs(model, split, size, 0.7, 0.25) if block is None else
                     _blocked(model, split, size, 0.7, 0.25, block))
        assert np.allclose(got, expected, rtol=1e-5, atol=1e-9)


def _blocked(model, split, size, theta, lam, block):
    return torch.cat([mixed_logp(p["model_logp"], p["cache_logp"][0], p["has_cache"], lam)
                      for p in cache_stream(model, split, size, [theta], block=block)]).numpy()


def test_theta_and_lambda_are_chosen_on_dev_alone(streams):
    """dev: every character in turn, a period longer than the cache (no target is ever in it: the smallest λ
    wins); a test split of one short word over and over (every target in it: the cache wins big). The choice
    is dev's best whatever the test split, and test's own best λ is another one."""
    vocab, splits, texts = streams
    model = tiny_model(vocab)
    cycle = "".join(sorted(set(texts["train"]) - {"\n"}))
    size = 10
    assert len(cycle) > size
    dev = encode_stream(vocab, cycle * 8)
    looped = encode_stream(vocab, "the " * 60)
    thetas, lambdas = (0.5, 1.0), (0.05, 0.1, 0.2, 0.3, 0.6)
    on_dev = fit_cache(model, dev, size, thetas, lambdas, vocab.unk_id)
    on_test = fit_cache(model, looped, size, thetas, lambdas, vocab.unk_id)
    assert on_dev[1] == 0.05 and on_test[1] == 0.6
    for test in (splits["test"], looped):
        record = cache_metrics(model, {"dev": dev, "test": test}, size, vocab.unk_id, thetas, lambdas)
        assert (record["theta"], record["lambda"]) == on_dev[:2] and record["dev"] == on_dev[2]
        assert record["size"] == size and "dev_test" not in record


def test_only_recurrent_kinds_of_a_stream_get_a_cache(streams):
    vocab, splits, _ = streams
    for kind in ("mlp", "transformer"):
        config = ModelConfig(kind, len(vocab), vocab.pad_id, 8, 16, context=3, heads=2, ff_size=16, max_len=32)
        with pytest.raises(UserError, match=f"carries its state .*not {kind}"):
            cache_sums(build_model(config), splits["dev"], 10, [1.0], [0.1])
    with pytest.raises(UserError, match="stream corpus"):
        check_cacheable(tiny_model(vocab), stream=False)


def test_the_option_is_off_in_params_and_validated():
    assert yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))["evaluate"]["stream_cache"]["enabled"] is False
    base = {"batch_size": 8, "device": "cpu", "stream_dyneval": {"enabled": False, "segment": 50}}
    with pytest.raises(UserError, match="evaluate.stream_cache"):
        EvaluateConfig.from_params(base, "evaluate")   # every key is spelled out in params.yaml
    on = EvaluateConfig.from_params(base | {"stream_cache": {"enabled": True, "size": 500}}, "evaluate")
    assert on.stream_cache.size == 500
    for bad, message in [({"enabled": True, "size": 0}, "size must be > 0"),
                         ({"enabled": "yes", "size": 5}, "enabled must be bool"),
                         ({"enabled": True}, "size is missing")]:
        with pytest.raises(UserError, match=f"evaluate.stream_cache.{message}"):
            EvaluateConfig.from_params(base | {"stream_cache": bad}, "evaluate")


def scorer(vocab, text, tmp_path, capsys):
    """``(model, score)``: a tiny LSTM saved as a model file, and ``score(*flags)``, which runs `rnnlm score`
    on ``text`` with it and returns the exit code and what it printed."""
    model = tiny_model(vocab)
    path = tmp_path / "lstm.pt"
    save_checkpoint(path, model, vocab, {"seed": 0, "epochs_done": 1})
    (tmp_path / "dev.txt").write_text(text, encoding="utf-8")

    def score(*flags):
        capsys.readouterr()
        with pytest.raises(SystemExit) as done:
            main(["score", "--model", str(path), str(tmp_path / "dev.txt"), *flags])
        return done.value.code, capsys.readouterr()

    return model, score


def test_score_with_a_cache(streams, tmp_path, capsys):
    vocab, splits, texts = streams
    model, score = scorer(vocab, texts["dev"], tmp_path, capsys)
    code, out = score()
    plain = json.loads(out.out.splitlines()[-1])
    code, out = score("--cache", "50", "--cache-theta", "0.5", "--cache-lambda", "0.2")
    assert code == 0
    cached = json.loads(out.out.splitlines()[-1])
    split = encode_stream(vocab, texts["dev"])
    expected = -cache_target_log_probs(model, split, 50, 0.5, 0.2).sum() / split.num_targets
    assert cached["loss"] == pytest.approx(expected, rel=1e-9) and cached["loss"] != plain["loss"]
    code, out = score("--cache", "--cache-lambda", "0")
    assert code == 0 and json.loads(out.out.splitlines()[-1])["loss"] == pytest.approx(plain["loss"], rel=1e-9)
    code, out = score("--cache", "50", "--cache-lambda", "1.5")
    assert code != 0 and "--cache-lambda must be in [0, 1)" in out.err


def test_the_report_shows_the_cache_row_with_its_fit():
    lstm = stream_metrics(1.5, seed=0)
    cached = stream_metrics(1.4, seed=0) | {"theta": 0.2, "lambda": 0.15, "size": 1000}
    text = summary_markdown({"plays": {"lstm": lstm, "lstm+cache": cached, "ngram": stream_metrics(1.9)}})
    assert "| **lstm+cache** (best) |" in text and "| lstm " in text
    assert "lstm+cache: the model with a neural cache" in text and "θ 0.2 and λ 0.15 fit on dev only" in text
    assert "neural cache" not in summary_markdown({"plays": {"lstm": lstm, "ngram": stream_metrics(1.9)}})
