"""The CUDA path without a GPU: CUBLAS_WORKSPACE_CONFIG is set before strict determinism is turned on,
and a run's model and batches go to the device its config names (CUDA mocked, a fake device)."""

import os
import warnings

import pytest
import torch

from rnnlm import evaluation, seeding, training
from rnnlm.data import encode_split
from rnnlm.seeding import CUBLAS_VAR, deterministic, seed_everything
from rnnlm.vocab import Vocabulary
from tests.configs import train_config

NAMES = ["anna", "bob", "carl", "dora", "emil", "finn", "gus", "hana", "ivo", "jan", "kim", "lea"]


@pytest.fixture
def calls(monkeypatch):
    """Every ``use_deterministic_algorithms`` call, with the variable's value at that moment."""
    seen = []

    def record(mode, warn_only=False):
        seen.append({"mode": mode, "warn_only": warn_only, "cublas": os.environ.get(CUBLAS_VAR)})

    monkeypatch.setattr(seeding.torch, "use_deterministic_algorithms", record)
    monkeypatch.delenv(CUBLAS_VAR, raising=False)
    return seen


def cuda(monkeypatch, available=True, initialized=False):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: available)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: initialized)


def test_the_variable_is_set_before_strict_determinism_on_cuda(calls, monkeypatch):
    cuda(monkeypatch)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert deterministic(torch.device("cuda")) == "strict"
    assert calls == [{"mode": True, "warn_only": False, "cublas": ":4096:8"}]  # set at the call, not after
    assert os.environ[CUBLAS_VAR] == ":4096:8"


def test_seed_everything_sets_it_too_with_no_device_named(calls, monkeypatch):
    cuda(monkeypatch)
    seed_everything(0)
    assert calls == [{"mode": True, "warn_only": False, "cublas": ":4096:8"}]


@pytest.mark.parametrize("value", [":4096:8", ":16:8"])
def test_a_users_deterministic_value_wins(calls, monkeypatch, value):
    cuda(monkeypatch, initialized=True)  # the user's own variable was there before CUDA started
    monkeypatch.setenv(CUBLAS_VAR, value)
    assert deterministic("cuda") == "strict"
    assert calls[-1] == {"mode": True, "warn_only": False, "cublas": value}


def test_a_users_other_value_on_cuda_means_warn_only(calls, monkeypatch):
    cuda(monkeypatch)
    monkeypatch.setenv(CUBLAS_VAR, ":0:0")
    with pytest.warns(UserWarning, match="warn_only"):
        assert deterministic("cuda") == "warn_only"
    assert calls[-1] == {"mode": True, "warn_only": True, "cublas": ":0:0"}


def test_cuda_started_before_the_variable_means_warn_only(calls, monkeypatch):
    cuda(monkeypatch, initialized=True)  # PyTorch may have read (and cached) the unset variable already
    with pytest.warns(UserWarning, match="initialized before"):
        assert deterministic("cuda") == "warn_only"
    assert calls[-1]["warn_only"] is True


@pytest.mark.parametrize("available", [True, False])
def test_the_cpu_stays_strict_whatever_the_variable(calls, monkeypatch, available):
    cuda(monkeypatch, available=available, initialized=True)
    monkeypatch.setenv(CUBLAS_VAR, ":0:0")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert deterministic(torch.device("cpu")) == "strict"
    assert calls == [{"mode": True, "warn_only": False, "cublas": ":0:0"}]


def test_no_strict_call_on_cuda_without_a_deterministic_variable(calls, monkeypatch):
    """The done-when: every strict call on CUDA sees :4096:8 or :16:8 (each case above, at once)."""
    for initialized in (False, True):
        for value in (None, ":4096:8", ":16:8", ":0:0", ""):
            cuda(monkeypatch, initialized=initialized)
            if value is None:
                monkeypatch.delenv(CUBLAS_VAR, raising=False)
            else:
                monkeypatch.setenv(CUBLAS_VAR, value)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                deterministic("cuda")
    assert len(calls) == 10
    assert all(c["warn_only"] or c["cublas"] in (":4096:8", ":16:8") for c in calls), calls


class Stop(Exception):
    pass


def test_train_model_puts_model_and_batches_on_the_configured_device(monkeypatch, tmp_path, calls):
    """A fake device (meta): the model is moved to what ``device`` resolves to, seeding is told that
    device before the model exists, and the batches follow the model (stopped at the first batch)."""
    vocab = Vocabulary.build(NAMES, "char")
    splits = {"train": encode_split(vocab, NAMES[:8]), "dev": encode_split(vocab, NAMES[8:10])}
    meta = torch.device("meta")
    order = []
    monkeypatch.setattr(training, "resolve_device", lambda name: order.append(("resolve", name)) or meta)
    real_seed = training.seed_everything
    monkeypatch.setattr(training, "seed_everything",
                        lambda seed, device=None: order.append(("seed", device)) or real_seed(seed, device))
    real_build = training.build_model
    monkeypatch.setattr(training, "build_model", lambda config: order.append(("build",)) or real_build(config))
    monkeypatch.setattr(training, "make_optimizer", lambda cfg, params: torch.optim.SGD(params, lr=cfg.lr))
    moved = []

    def fake_to_device(tensors, device):
        moved.append(device)
        raise Stop

    monkeypatch.setattr(training, "to_device", fake_to_device)
    cfg = train_config(embedding_size=4, hidden_size=4, batch_size=4, epochs=1, workers=1, device="cuda")
    with pytest.raises(Stop):
        training.train_model("gru", cfg, vocab, splits, 0, tmp_path / "m.pt", progress=False, log=lambda *_: None)
    assert order[:3] == [("resolve", "cuda"), ("seed", meta), ("build",)]
    assert moved == [meta]  # the first batch goes where the model is
    assert calls and calls[0]["cublas"] == ":4096:8"


def test_evaluation_sends_batches_where_the_model_is(monkeypatch):
    vocab = Vocabulary.build(NAMES, "char")
    split = encode_split(vocab, NAMES)
    model = training.build_model(training.model_config_for("gru", train_config(embedding_size=4, hidden_size=4),
                                                           vocab)).to("meta")
    moved = []

    def fake_to_device(tensors, device):
        moved.append(device)
        raise Stop

    monkeypatch.setattr(evaluation, "to_device", fake_to_device)
    with pytest.raises(Stop):
        evaluation.evaluate_split(model, split, vocab.pad_id)
    assert moved == [torch.device("meta")]
