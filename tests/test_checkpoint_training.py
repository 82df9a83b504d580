import pickle

import pytest
import torch

from rnnlm.checkpoint import load_checkpoint, read_checkpoint, save_checkpoint
from rnnlm.errors import UserError
from rnnlm.models import ModelConfig, build_model
from rnnlm.training import TrainingDiverged, train_model, train_runs
from rnnlm.vocab import Vocabulary
from tests.configs import replaced


def weights(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def assert_same_weights(a, b):
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_checkpoint_round_trip(tmp_path, toy_vocab):
    model = build_model(ModelConfig("lstm", len(toy_vocab), toy_vocab.pad_id, 8, 8, tie_weights=True))
    save_checkpoint(tmp_path / "m.pt", model, toy_vocab, {"epochs_done": 1})
    loaded, vocab, payload = load_checkpoint(tmp_path / "m.pt")
    assert vocab == toy_vocab and payload["training"] == {"epochs_done": 1}
    assert loaded.config == model.config and not loaded.training
    assert_same_weights(weights(loaded), weights(model))
    assert loaded.decoder.weight is loaded.embedding.weight


class Exploit:
    def __reduce__(self):
        return (exec, ("import pathlib; pathlib.Path(__import__('os').environ['PWNED']).write_text('ran')",))


def test_checkpoint_that_would_run_code_is_refused(tmp_path, monkeypatch):
    marker = tmp_path / "pwned"
    monkeypatch.setenv("PWNED", str(marker))
    path = tmp_path / "evil.pt"
    torch.save({"format_version": 1, "model": {}, "model_config": {}, "vocab": {}, "training": Exploit()}, path)
    with pytest.raises(UserError, match="refused to load"):
        read_checkpoint(path)
    assert not marker.exists()
    # the same file *would* run code if loaded unsafely: proves the test's payload is real
    torch.load(path, weights_only=False)
    assert marker.read_text() == "ran"


def test_vocabulary_that_does_not_match_the_weights_is_an_error(tmp_path, toy_vocab):
    model = build_model(ModelConfig("gru", len(toy_vocab), toy_vocab.pad_id, 8, 8))
    save_checkpoint(tmp_path / "m.pt", model, toy_vocab, {})
    payload = torch.load(tmp_path / "m.pt", weights_only=True)
    payload["vocab"]["tokens"] = payload["vocab"]["tokens"][:-1]
    torch.save(payload, tmp_path / "bad.pt")
    with pytest.raises(UserError, match="vocabulary has"):
        load_checkpoint(tmp_path / "bad.pt")


def test_a_checkpoint_of_another_vocabulary_is_refused_where_one_is_expected(tmp_path, toy_vocab):
    model = build_model(ModelConfig("gru", len(toy_vocab), toy_vocab.pad_id, 8, 8))
    save_checkpoint(tmp_path / "m.pt", model, toy_vocab, {})
    assert load_checkpoint(tmp_path / "m.pt", expect_vocab=toy_vocab)[1] == toy_vocab
    other = Vocabulary(toy_vocab.tokens[:4] + toy_vocab.tokens[:3:-1], toy_vocab.level)  # same size, other ids
    with pytest.raises(UserError, match="another vocabulary than the current one; rerun `dvc repro`"):
        load_checkpoint(tmp_path / "m.pt", expect_vocab=other)


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize("content", [b"", b"not a checkpoint", pickle.dumps([1, 2])])
def test_garbage_checkpoints_are_user_errors(tmp_path, content):
    (tmp_path / "x.pt").write_bytes(content)
    with pytest.raises(UserError):
        load_checkpoint(tmp_path / "x.pt")


def test_missing_checkpoint_says_how_to_build_it(tmp_path):
    with pytest.raises(UserError, match="dvc repro"):
        load_checkpoint(tmp_path / "nope.pt")


@pytest.mark.parametrize("kind", ["rnn_scratch", "lstm", "mlp", "transformer"])
def test_training_is_deterministic(kind, tmp_path, toy_vocab, toy_splits, tiny_train_config):
    cfg = replaced(tiny_train_config, dropout=0.2)
    a, rec_a = train_model(kind, cfg, toy_vocab, toy_splits, 3, tmp_path / "a.pt", progress=False)
    b, rec_b = train_model(kind, cfg, toy_vocab, toy_splits, 3, tmp_path / "b.pt", progress=False)
    assert_same_weights(weights(a), weights(b))
    assert rec_a["history"] == rec_b["history"]
    c, _ = train_model(kind, cfg, toy_vocab, toy_splits, 4, tmp_path / "c.pt", progress=False)
    assert not torch.equal(weights(a)["decoder.weight"], weights(c)["decoder.weight"])


def test_a_pool_of_workers_trains_every_run_as_one_process_would(tmp_path, toy_vocab, toy_splits, tiny_train_config):
    """The train stage's pool (several kinds and seeds, longest first, in spawned processes) changes
    nothing but where runs train: each run's weights and curve equal an in-process run's."""
    cfg = replaced(tiny_train_config, dropout=0.2)
    runs = [(kind, cfg, seed, tmp_path / "pool" / f"{kind}{seed}.pt", None)
            for kind in ("rnn", "lstm") for seed in (0, 1)]
    pooled = train_runs(runs, toy_vocab, toy_splits, workers=2)
    threads_before = torch.get_num_threads()
    torch.set_num_threads(1)  # as each worker has it
    try:
        for (kind, _, seed, path, _), record in zip(runs, pooled):
            model, alone = train_model(kind, cfg, toy_vocab, toy_splits, seed, tmp_path / f"{kind}{seed}.pt",
                                       progress=False)
            assert alone["history"] == record["history"], (kind, seed)
            assert_same_weights(weights(model), weights(load_checkpoint(path)[0]))
    finally:
        torch.set_num_threads(threads_before)


def test_finished_or_foreign_checkpoints_are_not_resumed(tmp_path, toy_vocab, toy_splits, tiny_train_config):
    cfg = replaced(tiny_train_config, epochs=3, resume=True)
    full, _ = train_model("gru", cfg, toy_vocab, toy_splits, 0, tmp_path / "full.pt", progress=False)
    path = tmp_path / "other.pt"
    train_model("gru", replaced(cfg, epochs=1), toy_vocab, toy_splits, 0, path, progress=False)
    logs = []
    again, _ = train_model("gru", cfg, toy_vocab, toy_splits, 0, path, log=logs.append, progress=False)
    assert not any("resuming" in line for line in logs)  # a finished 1-epoch run is another run
    assert_same_weights(weights(again), weights(full))


# Every random draw a run makes (dropout, weight drop, embedding dropout) and every state it keeps
# (the average of the weights) must resume exactly.
AWD = dict(weight_drop=0.3, embedding_dropout=0.2, activation_reg=1.0, temporal_reg=1.0, average_start=0.3)


@pytest.mark.parametrize("kind, settings", [("gru", {}), ("mlp", {}), ("transformer", {}), ("lstm", AWD)],
                         ids=["gru", "mlp", "transformer", "lstm-awd"])
def test_resume_after_interruption(kind, settings, tmp_path, toy_vocab, toy_splits, tiny_train_config, monkeypatch):
    import rnnlm.training as training

    cfg = replaced(tiny_train_config, epochs=3, dropout=0.3, resume=True, **settings)
    full, full_record = train_model(kind, cfg, toy_vocab, toy_splits, 0, tmp_path / "full.pt", progress=False)

    real_epoch = training.train_epoch
    calls = {"n": 0}

    def interrupted_epoch(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt  # Ctrl-C during the third epoch
        return real_epoch(*args, **kwargs)

    path = tmp_path / "run.pt"
    monkeypatch.setattr(training, "train_epoch", interrupted_epoch)
    with pytest.raises(KeyboardInterrupt):
        train_model(kind, cfg, toy_vocab, toy_splits, 0, path, progress=False)
    assert read_checkpoint(path)["training"]["epochs_done"] == 2
    monkeypatch.setattr(training, "train_epoch", real_epoch)
    logs = []
    resumed, record = train_model(kind, cfg, toy_vocab, toy_splits, 0, path, log=logs.append, progress=False)
    assert any("resuming" in line and "after epoch 2" in line for line in logs)
    assert_same_weights(weights(resumed), weights(full))
    assert [h["dev_loss"] for h in record["history"]] == [h["dev_loss"] for h in full_record["history"]]
    assert read_checkpoint(path)["training"]["complete"] and "optimizer" not in read_checkpoint(path)


def test_non_finite_loss_names_epoch_batch_and_hint(tmp_path, toy_vocab, toy_splits, tiny_train_config):
    cfg = replaced(tiny_train_config, lr=float("inf"), grad_clip=None, optimizer="sgd")
    with pytest.raises(TrainingDiverged, match=r"epoch \d+, batch \d+.*learning rate.*clipping"):
        train_model("rnn", cfg, toy_vocab, toy_splits, 0, tmp_path / "m.pt", progress=False)


class ScriptedDevLoss:
    """Stands in for ``split_loss`` in training: dev loss ``losses[epoch - 1]``, weights recorded.

    Real dev losses on toy data mostly fall; a script constructs the cases where the best epoch
    is not the last one.
    """

    def __init__(self, losses, first_epoch=1):
        self.losses, self.epoch, self.weights = losses, first_epoch, {}

    def __call__(self, model, split, pad_id, *args, **kwargs):
        self.weights[self.epoch] = weights(model)
        loss = self.losses[self.epoch - 1]
        self.epoch += 1
        return loss


def test_the_epoch_with_the_lowest_dev_loss_is_kept(tmp_path, toy_vocab, toy_splits, tiny_train_config, monkeypatch):
    import rnnlm.training as training

    dev = ScriptedDevLoss([3.0, 2.0, 2.5, 2.7])
    monkeypatch.setattr(training, "split_loss", dev)
    cfg = replaced(tiny_train_config, epochs=4)
    model, record = train_model("gru", cfg, toy_vocab, toy_splits, 0, tmp_path / "m.pt", progress=False)
    assert record["best_epoch"] == 2 and record["best_dev_loss"] == 2.0 and record["epochs_done"] == 4
    assert [h["dev_loss"] for h in record["history"]] == [3.0, 2.0, 2.5, 2.7]  # curves keep every epoch
    saved, _, payload = load_checkpoint(tmp_path / "m.pt")
    assert_same_weights(weights(saved), dev.weights[2])
    assert_same_weights(weights(model), dev.weights[2])
    assert not torch.equal(dev.weights[2]["decoder.weight"], dev.weights[4]["decoder.weight"])
    assert payload["training"]["best_epoch"] == 2 and payload["training"]["complete"]
    assert "best_model" not in payload and "optimizer" not in payload  # a finished run is no resume point


@pytest.mark.parametrize("patience, epochs_done", [(2, 4), (3, 5), (None, 6)])
def test_early_stopping_stops_after_patience_epochs_without_improvement(
        patience, epochs_done, tmp_path, toy_vocab, toy_splits, tiny_train_config, monkeypatch):
    import rnnlm.training as training

    dev = ScriptedDevLoss([3.0, 2.0, 2.5, 2.6, 2.7, 1.0])
    monkeypatch.setattr(training, "split_loss", dev)
    cfg = replaced(tiny_train_config, epochs=6, early_stopping_patience=patience)
    _, record = train_model("gru", cfg, toy_vocab, toy_splits, 0, tmp_path / "m.pt", progress=False)
    assert record["epochs_done"] == epochs_done == len(record["history"])
    assert record["complete"] and record["best_epoch"] == (6 if patience is None else 2)
    saved, _, _ = load_checkpoint(tmp_path / "m.pt")
    assert_same_weights(weights(saved), dev.weights[record["best_epoch"]])


@pytest.mark.parametrize("schedule", [
    {"scheduler": "onecycle"},
    {"scheduler": "cosine", "warmup": 0.2},
    {"scheduler": "plateau", "plateau_patience": 0},
])
def test_resume_with_a_scheduler_is_bit_identical(schedule, tmp_path, toy_vocab, toy_splits, tiny_train_config,
                                                  monkeypatch):
    """Interrupted in epoch 3 of 4, after the best epoch (1): best weights, scheduler and patience all resume."""
    import rnnlm.training as training

    losses = [2.0, 3.0, 2.5, 2.6]  # plateau (patience 0) cuts the rate after epochs 2, 3 and 4
    cfg = replaced(tiny_train_config, epochs=4, dropout=0.3, resume=True, early_stopping_patience=5,
                              **schedule)
    full_dev = ScriptedDevLoss(losses)
    monkeypatch.setattr(training, "split_loss", full_dev)
    full, full_record = train_model("lstm", cfg, toy_vocab, toy_splits, 0, tmp_path / "full.pt", progress=False)
    assert full_record["best_epoch"] == 1

    real_epoch = training.train_epoch
    calls = {"n": 0}

    def interrupted_epoch(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real_epoch(*args, **kwargs)

    path = tmp_path / "run.pt"
    monkeypatch.setattr(training, "train_epoch", interrupted_epoch)
    monkeypatch.setattr(training, "split_loss", ScriptedDevLoss(losses))
    with pytest.raises(KeyboardInterrupt):
        train_model("lstm", cfg, toy_vocab, toy_splits, 0, path, progress=False)
    stopped = read_checkpoint(path)
    assert stopped["training"]["epochs_done"] == 2 and stopped["scheduler"] is not None
    assert stopped["training"]["best_epoch"] == 1
    if schedule["scheduler"] != "plateau":  # per-step schedulers: one step per batch so far
        assert stopped["scheduler"]["last_epoch"] == 2 * -(-len(toy_splits["train"]) // cfg.batch_size)

    monkeypatch.setattr(training, "train_epoch", real_epoch)
    resumed_dev = ScriptedDevLoss(losses, first_epoch=3)
    monkeypatch.setattr(training, "split_loss", resumed_dev)
    logs = []
    resumed, record = train_model("lstm", cfg, toy_vocab, toy_splits, 0, path, log=logs.append, progress=False)
    assert any("after epoch 2" in line for line in logs)
    assert record["history"] == full_record["history"]  # train losses of epochs 3-4: same rates, same dropout
    assert record["best_epoch"] == 1
    assert_same_weights(resumed_dev.weights[4], full_dev.weights[4])  # the last epoch's weights
    assert_same_weights(weights(resumed), weights(full))              # the kept (best) weights
    assert_same_weights(weights(load_checkpoint(path)[0]), weights(load_checkpoint(tmp_path / "full.pt")[0]))
